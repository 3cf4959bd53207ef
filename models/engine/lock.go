package engine

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

//go:embed engine.lock
var embeddedLock []byte

// Lock pins the engine build: the module and its go.sum hash, the exact
// build flags, the toolchain and apt header packages the pinned binary
// was built with, and the binary's SHA-256.
type Lock struct {
	Module   string `json:"module"`  // github.com/ollama/ollama
	Version  string `json:"version"` // v0.17.4
	Sum      string `json:"sum"`     // go.sum hash of the module zip (h1:...)
	Package  string `json:"package"` // the main package built (the module root)
	Go       string `json:"go"`      // the Go toolchain (go env GOVERSION)
	Tags     string `json:"tags"`    // -tags
	LDFlags  string `json:"ldflags"` // -ldflags
	GOAMD64  string `json:"goamd64"` // v1: baseline x86-64, safe in TCG guests
	CFLAGS   string `json:"cgo_cflags"`
	CXXFLAGS string `json:"cgo_cxxflags"`
	LDFLAGS  string `json:"cgo_ldflags"`
	// Toolchain is what the static binary links in or is compiled by,
	// as "package version" (dpkg) or the compiler's first --version line.
	Toolchain []Pinned `json:"toolchain"`
	// Apt are the header packages the module zip lacks (it drops vendor/).
	Apt          []Pinned `json:"apt"`
	BinarySHA256 string   `json:"binary_sha256"`
	BinarySize   int64    `json:"binary_size"`
}

// Pinned is a named input with its version.
type Pinned struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

var (
	hex64  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	h1RE   = regexp.MustCompile(`^h1:[A-Za-z0-9+/]{43}=$`)
	semver = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`)
)

// DefaultLock returns the embedded models/engine/engine.lock.
func DefaultLock() (*Lock, error) { return ParseLock(embeddedLock) }

// ParseLock decodes a lock strictly: unknown fields, trailing data and
// missing or malformed values are errors.
func ParseLock(b []byte) (*Lock, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l Lock
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("engine lock: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("engine lock: trailing data after the JSON object")
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("engine lock: %w", err)
	}
	return &l, nil
}

// Validate checks every field.
func (l *Lock) Validate() error {
	switch {
	case l.Module == "" || strings.ContainsAny(l.Module, "@ "):
		return fmt.Errorf("module %q is not a module path", l.Module)
	case !semver.MatchString(l.Version):
		return fmt.Errorf("version %q is not vMAJOR.MINOR.PATCH", l.Version)
	case !h1RE.MatchString(l.Sum):
		return fmt.Errorf("sum %q is not an h1: go.sum hash", l.Sum)
	case l.Package != l.Module && !strings.HasPrefix(l.Package, l.Module+"/"):
		return fmt.Errorf("package %q is not in module %q", l.Package, l.Module)
	case !strings.HasPrefix(l.Go, "go1."):
		return fmt.Errorf("go %q is not a Go version", l.Go)
	case !strings.Contains(l.LDFlags, "-X "+l.Module+"/version.Version="+strings.TrimPrefix(l.Version, "v")):
		return fmt.Errorf("ldflags %q do not set version.Version to %s", l.LDFlags, strings.TrimPrefix(l.Version, "v"))
	case !strings.Contains(l.LDFlags, "-extldflags -static"):
		return fmt.Errorf("ldflags %q do not link statically", l.LDFlags)
	case l.GOAMD64 == "":
		return errors.New("goamd64 is empty")
	case !hex64.MatchString(l.BinarySHA256):
		return fmt.Errorf("binary_sha256 %q is not 64 lowercase hex digits", l.BinarySHA256)
	case l.BinarySize <= 0:
		return fmt.Errorf("binary_size %d is not positive", l.BinarySize)
	case len(l.Apt) == 0 || len(l.Toolchain) == 0:
		return errors.New("apt and toolchain must list the build inputs")
	}
	for _, p := range append(append([]Pinned{}, l.Apt...), l.Toolchain...) {
		if p.Name == "" || p.Version == "" {
			return fmt.Errorf("pinned input %q has no name or version", p.Name)
		}
	}
	return nil
}

// AptLine is the apt-get command that installs the header packages.
func (l *Lock) AptLine() string {
	names := make([]string, len(l.Apt))
	for i, p := range l.Apt {
		names[i] = p.Name
	}
	return "apt-get install -y --no-install-recommends " + strings.Join(names, " ")
}
