package image

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ReleaseFormat is the release.json format version.
const ReleaseFormat = 1

// Names of the files in a release directory.
const (
	FileFirmware    = "OVMF.fd"
	FileKernel      = "vmlinuz"
	FileInitrd      = "initrd"
	FileCmdline     = "cmdline"
	FileReleaseJSON = "release.json"
	FileSHA256SUMS  = "SHA256SUMS"
)

// ReleaseFiles are the files SHA256SUMS covers, in its (byte-sorted)
// order.
var ReleaseFiles = []string{FileFirmware, FileCmdline, FileInitrd, FileReleaseJSON, FileKernel}

// describedFiles are the files release.json describes (all but itself).
var describedFiles = []string{FileFirmware, FileCmdline, FileInitrd, FileKernel}

// ReleaseInput is an input as recorded in release.json.
type ReleaseInput struct {
	Role     Role   `json:"role"`
	Package  string `json:"package"`
	Version  string `json:"version"`
	Arch     string `json:"arch"`
	Filename string `json:"filename"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// ReleaseFile is one release file's size and digest.
type ReleaseFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Release describes a built release directory. Its exported JSON fields
// are release.json: deterministic (no times, host paths or user names).
type Release struct {
	// Format is ReleaseFormat.
	Format int `json:"format_version"`
	// SourceCommit is the git commit the release was built from, or
	// "unknown"; SourceDirty says the work tree had changes.
	SourceCommit string `json:"source_commit"`
	SourceDirty  bool   `json:"source_dirty"`
	// GoVersion is the toolchain that compiled the agent and init.
	GoVersion string `json:"go_version"`
	// URootVersion and MkuimageVersion are the initramfs tooling.
	URootVersion    string `json:"uroot_version"`
	MkuimageVersion string `json:"mkuimage_version"`
	// KernelVersion is the kernel release string (uname -r).
	KernelVersion string `json:"kernel_version"`
	// KernelConfig are the checked CONFIG_ options and their values.
	KernelConfig map[string]string `json:"kernel_config"`
	// Cmdline is the kernel command line (also the cmdline file).
	Cmdline string `json:"cmdline"`
	// Modules are the initramfs's module files in load order.
	Modules []string `json:"modules"`
	// BuiltinModules are requested modules the kernel has built in.
	BuiltinModules []string `json:"builtin_modules"`
	// Inputs are the pinned packages the release was built from.
	Inputs []ReleaseInput `json:"inputs"`
	// Files are the release files other than release.json and
	// SHA256SUMS.
	Files []ReleaseFile `json:"files"`

	// Dir is the release directory (not serialised).
	Dir string `json:"-"`
	// Sums maps every file SHA256SUMS covers to its digest (not
	// serialised; release.json's own digest is here).
	Sums map[string]string `json:"-"`
	// Stats are about the build that made the release (zero after
	// LoadRelease; not serialised).
	Stats BuildStats `json:"-"`

	jsonSize int64 // size of release.json
}

// BuildStats describe one Build run.
type BuildStats struct {
	Duration   time.Duration
	CacheHits  int
	Downloads  int
	Downloaded int64
}

// Path is the path of a release file.
func (r *Release) Path(name string) string { return filepath.Join(r.Dir, name) }

// File returns the recorded size and digest of a release file.
func (r *Release) File(name string) (ReleaseFile, bool) {
	if name == FileReleaseJSON {
		if s, ok := r.Sums[name]; ok {
			return ReleaseFile{Name: name, SHA256: s, Size: r.jsonSize}, true
		}
	}
	for _, f := range r.Files {
		if f.Name == name {
			return f, true
		}
	}
	return ReleaseFile{}, false
}

// marshal returns release.json's bytes: indented, fields in declaration
// order, map keys sorted, trailing newline.
func (r *Release) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// formatSHA256SUMS renders sums in sha256sum's text format, sorted by name.
func formatSHA256SUMS(sums map[string]string) []byte {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	return b.Bytes()
}

// parseSHA256SUMS reads sha256sum's format (text "  " or binary " *").
func parseSHA256SUMS(data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		if len(line) < 67 || !sha256RE.MatchString(line[:64]) || line[64] != ' ' || (line[65] != ' ' && line[65] != '*') {
			return nil, fmt.Errorf("SHA256SUMS line %d is not \"<sha256>  <name>\"", n)
		}
		name := line[66:]
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("SHA256SUMS lists %s twice", name)
		}
		out[name] = line[:64]
	}
	return out, sc.Err()
}

// Seal hashes the release files in dir, records them in rel, and writes
// release.json and SHA256SUMS: what the builder does last, and what tests
// use to make a directory of their own files that LoadRelease accepts.
func Seal(dir string, rel *Release) error {
	sums := map[string]string{}
	rel.Files = nil
	for _, n := range describedFiles {
		s, size, _, err := hashFile(filepath.Join(dir, n), false)
		if err != nil {
			return err
		}
		sums[n] = s
		rel.Files = append(rel.Files, ReleaseFile{Name: n, Size: size, SHA256: s})
	}
	sort.Slice(rel.Files, func(i, j int) bool { return rel.Files[i].Name < rel.Files[j].Name })
	rj, err := rel.marshal()
	if err != nil {
		return err
	}
	if err := writeFileMode(filepath.Join(dir, FileReleaseJSON), rj, 0o644); err != nil {
		return err
	}
	sums[FileReleaseJSON] = sha256Hex(rj)
	rel.Sums = sums
	rel.jsonSize = int64(len(rj))
	return writeFileMode(filepath.Join(dir, FileSHA256SUMS), formatSHA256SUMS(sums), 0o644)
}

// maxReleaseFile bounds a release file read by LoadRelease.
const maxReleaseFile = 1 << 30

// LoadRelease reads the release in dir and checks it: SHA256SUMS must list
// exactly the release files, every file must match its digest, and
// release.json must parse and agree with the files. A tampered file gives
// an error naming it.
func LoadRelease(dir string) (*Release, error) {
	sumsData, err := os.ReadFile(filepath.Join(dir, FileSHA256SUMS))
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", dir, err)
	}
	sums, err := parseSHA256SUMS(sumsData)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", dir, err)
	}
	for _, n := range ReleaseFiles {
		if _, ok := sums[n]; !ok {
			return nil, fmt.Errorf("release %s: SHA256SUMS does not list %s", dir, n)
		}
	}
	if len(sums) != len(ReleaseFiles) {
		for n := range sums {
			if !contains(ReleaseFiles, n) {
				return nil, fmt.Errorf("release %s: SHA256SUMS lists unexpected file %q", dir, n)
			}
		}
	}
	sizes := map[string]int64{}
	var relJSON []byte
	for _, n := range ReleaseFiles {
		p := filepath.Join(dir, n)
		got, size, data, err := hashFile(p, n == FileReleaseJSON)
		if err != nil {
			return nil, fmt.Errorf("release %s: %w", dir, err)
		}
		if got != sums[n] {
			return nil, fmt.Errorf("release %s: %s does not match SHA256SUMS (file has sha256 %s, SHA256SUMS says %s): the file was modified", dir, n, got, sums[n])
		}
		sizes[n] = size
		if n == FileReleaseJSON {
			relJSON = data
		}
	}
	dec := json.NewDecoder(bytes.NewReader(relJSON))
	dec.DisallowUnknownFields()
	var r Release
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("release %s: %s: %w", dir, FileReleaseJSON, err)
	}
	if r.Format != ReleaseFormat {
		return nil, fmt.Errorf("release %s: %s: format_version %d is not supported (want %d)", dir, FileReleaseJSON, r.Format, ReleaseFormat)
	}
	for _, n := range describedFiles {
		f, ok := r.File(n)
		if !ok {
			return nil, fmt.Errorf("release %s: %s does not describe %s", dir, FileReleaseJSON, n)
		}
		if f.SHA256 != sums[n] || f.Size != sizes[n] {
			return nil, fmt.Errorf("release %s: %s disagrees with %s about %s", dir, FileReleaseJSON, FileSHA256SUMS, n)
		}
	}
	cmdline, err := os.ReadFile(filepath.Join(dir, FileCmdline))
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", dir, err)
	}
	if string(cmdline) != r.Cmdline {
		return nil, fmt.Errorf("release %s: %s disagrees with %s", dir, FileCmdline, FileReleaseJSON)
	}
	r.Dir = dir
	r.Sums = sums
	r.jsonSize = sizes[FileReleaseJSON]
	return &r, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// hashFile hashes the regular file p (keeping its bytes if keep).
func hashFile(p string, keep bool) (sum string, size int64, data []byte, err error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, nil, err
	}
	if !st.Mode().IsRegular() {
		return "", 0, nil, fmt.Errorf("%s is not a regular file", filepath.Base(p))
	}
	h := sha256.New()
	var w io.Writer = h
	var buf bytes.Buffer
	if keep {
		w = io.MultiWriter(h, &buf)
	}
	n, err := io.Copy(w, io.LimitReader(f, maxReleaseFile+1))
	if err != nil {
		return "", 0, nil, err
	}
	if n > maxReleaseFile {
		return "", 0, nil, fmt.Errorf("%s is larger than %d bytes", filepath.Base(p), maxReleaseFile)
	}
	return hex.EncodeToString(h.Sum(nil)), n, buf.Bytes(), nil
}

// Test hooks for failure injection.
var (
	// beforeCommitHook runs after the staging directory is complete and
	// synced, just before it is renamed into place.
	beforeCommitHook func(stage string) error
)

// writeReleaseDir builds a release directory atomically: fill writes the
// files into a fresh staging directory next to dest (same filesystem);
// then every file and the directory are fsynced and the staging
// directory replaces dest in one rename (RENAME_EXCHANGE when dest
// exists, falling back to rename-aside). On any error the staging
// directory is removed and dest is untouched. An existing dest must be a
// release directory (hold release.json) or empty: nothing else is ever
// replaced.
func writeReleaseDir(dest string, fill func(stage string) error) (err error) {
	dest = filepath.Clean(dest)
	if err := checkReplaceable(dest); err != nil {
		return err
	}
	parent, base := filepath.Split(dest)
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("release dir: %w", err)
	}
	stage, err := os.MkdirTemp(parent, "."+base+".staging-")
	if err != nil {
		return fmt.Errorf("release dir: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(stage)
		}
	}()
	if err := fill(stage); err != nil {
		return err
	}
	// Fixed modes whatever the umask; fsync contents and names.
	ents, err := os.ReadDir(stage)
	if err != nil {
		return fmt.Errorf("release dir: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			return fmt.Errorf("release dir: %s is not a regular file", e.Name())
		}
		if err := syncFile(filepath.Join(stage, e.Name()), 0o644); err != nil {
			return fmt.Errorf("release dir: %w", err)
		}
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		return fmt.Errorf("release dir: %w", err)
	}
	if err := syncDir(stage); err != nil {
		return fmt.Errorf("release dir: %w", err)
	}
	if beforeCommitHook != nil {
		if err := beforeCommitHook(stage); err != nil {
			return err
		}
	}
	if err := commitDir(stage, dest); err != nil {
		return fmt.Errorf("release dir: %w", err)
	}
	return syncDir(parent)
}

// checkReplaceable refuses to replace anything that is not a release.
func checkReplaceable(dest string) error {
	st, err := os.Lstat(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release dir: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("release dir: %s exists and is not a directory; remove it or choose another --out", dest)
	}
	ents, err := os.ReadDir(dest)
	if err != nil {
		return fmt.Errorf("release dir: %w", err)
	}
	if len(ents) == 0 {
		return nil
	}
	if _, err := os.Lstat(filepath.Join(dest, FileReleaseJSON)); err != nil {
		return fmt.Errorf("release dir: %s exists and is not a release (no %s); remove it or choose another --out", dest, FileReleaseJSON)
	}
	for _, e := range ents {
		if e.IsDir() {
			return fmt.Errorf("release dir: %s has a subdirectory %s, so it is not a release; remove it or choose another --out", dest, e.Name())
		}
	}
	return nil
}

// renameExchange swaps two paths atomically (renameat2 RENAME_EXCHANGE,
// Linux 3.15+, not on every filesystem); a variable for tests.
var renameExchange = defaultRenameExchange

func defaultRenameExchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// commitDir moves stage to dest, replacing an existing dest.
func commitDir(stage, dest string) error {
	if _, err := os.Lstat(dest); errors.Is(err, fs.ErrNotExist) {
		return os.Rename(stage, dest)
	}
	// Swap atomically: afterwards stage holds the old release.
	err := renameExchange(stage, dest)
	if err == nil {
		return os.RemoveAll(stage)
	}
	if !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOSYS) && !errors.Is(err, syscall.EOPNOTSUPP) {
		return err
	}
	// No RENAME_EXCHANGE here: rename the old release aside, the new one
	// in, then delete the old one (put it back if the second step fails).
	parent, base := filepath.Split(dest)
	if parent == "" {
		parent = "."
	}
	old, err := os.MkdirTemp(parent, "."+base+".old-")
	if err != nil {
		return err
	}
	if err := os.Remove(old); err != nil {
		return err
	}
	if err := os.Rename(dest, old); err != nil {
		return err
	}
	if err := os.Rename(stage, dest); err != nil {
		if rerr := os.Rename(old, dest); rerr != nil {
			return fmt.Errorf("%w (and restoring the old release from %s failed: %v)", err, old, rerr)
		}
		return err
	}
	return os.RemoveAll(old)
}

func syncFile(p string, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// releaseInputs converts lock inputs for release.json (suite is
// informational and left out: it does not identify bytes).
func releaseInputs(l *Lock) []ReleaseInput {
	out := make([]ReleaseInput, 0, len(l.Inputs))
	for _, r := range Roles {
		in, _ := l.Input(r)
		out = append(out, ReleaseInput{Role: in.Role, Package: in.Package, Version: in.Version, Arch: in.Arch, Filename: in.Filename, Size: in.Size, SHA256: in.SHA256})
	}
	return out
}
