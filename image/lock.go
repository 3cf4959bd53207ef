package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"
)

// LockFormat is the only inputs.lock format version this code reads.
const LockFormat = 1

// Role says what an input is used for. Every role must appear exactly once
// in a lock.
type Role string

// The roles of the inputs of a release.
const (
	// RoleKernel is the package carrying the signed bzImage
	// (usr/lib/modules/<kver>/vmlinuz).
	RoleKernel Role = "kernel"
	// RoleKernelModules is the package carrying the kernel's loadable
	// modules (usr/lib/modules/<kver>/kernel/**.ko.xz).
	RoleKernelModules Role = "kernel-modules"
	// RoleKernelConfig is the package carrying the kernel's build config
	// and modules.builtin (usr/lib/modules/<kver>/config).
	RoleKernelConfig Role = "kernel-config"
	// RoleFirmware is the package carrying the TDVF-capable OVMF.fd.
	RoleFirmware Role = "firmware"
)

// Roles lists every role in the order builds process them.
var Roles = []Role{RoleKernel, RoleKernelModules, RoleKernelConfig, RoleFirmware}

func knownRole(r Role) bool {
	for _, k := range Roles {
		if k == r {
			return true
		}
	}
	return false
}

// Input is one pinned Debian package.
type Input struct {
	// Role is what the build uses the package for.
	Role Role `json:"role"`
	// Package is the Debian binary package name.
	Package string `json:"package"`
	// Version is the full Debian version (with epoch, if any).
	Version string `json:"version"`
	// Arch is the Debian architecture (amd64, or all).
	Arch string `json:"arch"`
	// Suite is informational: the suite the package was picked from.
	Suite string `json:"suite"`
	// Filename is the pool path below the mirror root, as in the
	// Packages index.
	Filename string `json:"filename"`
	// Size is the .deb's size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the .deb's SHA-256, lowercase hex.
	SHA256 string `json:"sha256"`
}

// Lock is the parsed image/inputs.lock: everything a release is built from
// that does not live in this repository.
type Lock struct {
	// Format is LockFormat.
	Format int `json:"format"`
	// Go is the Go toolchain version (as `go env GOVERSION` prints it)
	// the agent and the u-root init must be compiled with.
	Go string `json:"go"`
	// Inputs are the pinned packages, one per role.
	Inputs []Input `json:"inputs"`
}

// Input returns the input with role r. Validate guarantees it exists.
func (l *Lock) Input(r Role) (Input, bool) {
	for _, in := range l.Inputs {
		if in.Role == r {
			return in, true
		}
	}
	return Input{}, false
}

// maxLockSize bounds inputs.lock; real ones are about 2 KiB.
const maxLockSize = 1 << 20

// ReadLock reads and validates the lock file at path.
func ReadLock(file string) (*Lock, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("inputs lock: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLockSize+1))
	if err != nil {
		return nil, fmt.Errorf("inputs lock %s: %w", file, err)
	}
	l, err := ParseLock(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return l, nil
}

// ParseLock decodes a lock strictly (unknown fields, duplicate keys and
// trailing data are errors) and validates it. Errors are one line and
// name the entry and the problem.
func ParseLock(data []byte) (*Lock, error) {
	if len(data) > maxLockSize {
		return nil, fmt.Errorf("inputs lock is larger than %d bytes", maxLockSize)
	}
	if err := checkDuplicateKeys(data); err != nil {
		return nil, fmt.Errorf("inputs lock: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var l Lock
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("inputs lock: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("inputs lock: trailing data after the JSON object")
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return &l, nil
}

var (
	goVersionRE = regexp.MustCompile(`^go1\.[0-9]+(\.[0-9]+)?((rc|beta)[0-9]+)?$`)
	// Debian policy 5.6.1 (package) and 5.6.12 (version).
	debPackageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	debVersionRE = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$`)
	debArchRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	sha256RE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	suiteRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
)

// Validate checks the lock and returns the first problem as one line that
// names the entry.
func (l *Lock) Validate() error {
	if l.Format != LockFormat {
		return fmt.Errorf("inputs lock: format %d is not supported (want %d)", l.Format, LockFormat)
	}
	if !goVersionRE.MatchString(l.Go) {
		return fmt.Errorf("inputs lock: go %q is not a Go toolchain version like go1.26.8", l.Go)
	}
	seen := map[Role]int{}
	for i, in := range l.Inputs {
		if err := in.validate(); err != nil {
			return fmt.Errorf("inputs lock: %s: %w", in.describe(i), err)
		}
		if j, dup := seen[in.Role]; dup {
			return fmt.Errorf("inputs lock: %s: role %q is already used by input %d (%s)", in.describe(i), in.Role, j+1, l.Inputs[j].Package)
		}
		seen[in.Role] = i
	}
	for _, r := range Roles {
		if _, ok := seen[r]; !ok {
			return fmt.Errorf("inputs lock: no input has role %q (every role must be pinned: %s)", r, rolesList())
		}
	}
	// The kernel image, its modules and its config are one build of one
	// kernel: modules only load into the kernel they were built with.
	k, _ := l.Input(RoleKernel)
	for _, r := range []Role{RoleKernelModules, RoleKernelConfig} {
		in, _ := l.Input(r)
		if in.Version != k.Version || in.Arch != k.Arch {
			return fmt.Errorf("inputs lock: input %s (role %s): version %s/%s differs from the kernel's %s/%s (%s); they must come from the same kernel build",
				in.Package, r, in.Version, in.Arch, k.Version, k.Arch, k.Package)
		}
	}
	return nil
}

func rolesList() string {
	s := make([]string, len(Roles))
	for i, r := range Roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

func (in Input) describe(i int) string {
	if in.Package != "" {
		return fmt.Sprintf("input %d (%s)", i+1, in.Package)
	}
	return fmt.Sprintf("input %d", i+1)
}

// debFilename is the pool file name of a package: the epoch is not part
// of it.
func debFilename(pkg, version, arch string) string {
	if i := strings.IndexByte(version, ':'); i >= 0 {
		version = version[i+1:]
	}
	return pkg + "_" + version + "_" + arch + ".deb"
}

func (in Input) validate() error {
	switch {
	case in.Role == "":
		return errors.New("role is missing")
	case !knownRole(in.Role):
		return fmt.Errorf("role %q is unknown (known: %s)", in.Role, rolesList())
	case !debPackageRE.MatchString(in.Package):
		return fmt.Errorf("package %q is not a Debian package name", in.Package)
	case !debVersionRE.MatchString(in.Version):
		return fmt.Errorf("version %q is not a Debian version", in.Version)
	case !debArchRE.MatchString(in.Arch):
		return fmt.Errorf("arch %q is not a Debian architecture", in.Arch)
	case in.Suite != "" && !suiteRE.MatchString(in.Suite):
		return fmt.Errorf("suite %q is not a suite name", in.Suite)
	case in.Size <= 0:
		return fmt.Errorf("size %d must be positive", in.Size)
	case !sha256RE.MatchString(in.SHA256):
		return fmt.Errorf("sha256 %q is not 64 lowercase hex digits", in.SHA256)
	}
	f := in.Filename
	if f == "" || path.IsAbs(f) || path.Clean(f) != f || strings.HasPrefix(f, "../") || !strings.HasPrefix(f, "pool/") {
		return fmt.Errorf("filename %q is not a clean relative pool/ path", f)
	}
	if strings.ContainsAny(f, "\\?#%\x00 ") {
		return fmt.Errorf("filename %q contains characters not allowed in a pool path", f)
	}
	if want := debFilename(in.Package, in.Version, in.Arch); path.Base(f) != want {
		return fmt.Errorf("filename %q does not match package, version and arch (want .../%s)", f, want)
	}
	return nil
}

// checkDuplicateKeys rejects JSON documents where an object repeats a key:
// encoding/json keeps the last one silently, so a reviewer and the build
// could read different values.
func checkDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var walk func(depth int) error
	walk = func(depth int) error {
		if depth > 64 {
			return errors.New("JSON nested too deeply")
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return nil
		}
		switch d {
		case '{':
			keys := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				if keys[k] {
					return fmt.Errorf("duplicate key %q", k)
				}
				keys[k] = true
				if err := walk(depth + 1); err != nil {
					return err
				}
			}
		case '[':
			for dec.More() {
				if err := walk(depth + 1); err != nil {
					return err
				}
			}
		}
		_, err = dec.Token() // closing delimiter
		return err
	}
	return walk(0)
}
