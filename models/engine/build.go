package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

//go:embed stub/miniaudio/miniaudio.h
var stubFS embed.FS

// CacheEnv overrides the cache directory.
const CacheEnv = "CHRYSALIS_ENGINE_CACHE"

// Headers are the include files the module zip lacks, each with the apt
// package that provides it (the miniaudio one is our stub).
var Headers = map[string]string{
	"/usr/include/nlohmann/json_fwd.hpp": "nlohmann-json3-dev",
	"/usr/include/nlohmann/json.hpp":     "nlohmann-json3-dev",
	"/usr/include/stb/stb_image.h":       "libstb-dev",
}

// CacheDir returns $CHRYSALIS_ENGINE_CACHE, or ~/.cache/chrysalis/engine
// (the user cache directory).
func CacheDir() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("engine: no cache directory (set %s): %w", CacheEnv, err)
	}
	return filepath.Join(d, "chrysalis", "engine"), nil
}

// CachePath is where the binary with the given hex SHA-256 lives in the
// cache: the cache is content-addressed.
func CachePath(cache, sha256hex string) string {
	return filepath.Join(cache, "sha256-"+sha256hex)
}

// Options tune Build.
type Options struct {
	// Cache is the cache directory; "" means CacheDir().
	Cache string
	// Force rebuilds even when the pinned binary is cached.
	Force bool
	// Env entries (KEY=VALUE) override the build environment last, e.g.
	// GOCACHE or GOMODCACHE for a cold build.
	Env []string
	// Log receives the go command's output and progress lines.
	Log io.Writer
}

// Result is a built or cached engine.
type Result struct {
	Path     string // the binary in the cache
	SHA256   string
	Size     int64
	Cached   bool          // found in the cache, not built
	Duration time.Duration // of the build (0 when cached)
}

// Cached returns the pinned binary from the cache after checking its
// SHA-256, or ok=false when it is absent.
func Cached(l *Lock, cache string) (r *Result, ok bool, err error) {
	p := CachePath(cache, l.BinarySHA256)
	sum, size, err := hashFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("engine: %w", err)
	}
	if sum != l.BinarySHA256 {
		return nil, false, fmt.Errorf("engine: cached %s has sha256 %s, not the %s its name promises; delete it and rebuild", p, sum, l.BinarySHA256)
	}
	return &Result{Path: p, SHA256: sum, Size: size, Cached: true}, true, nil
}

// Build returns the engine pinned by l: from the cache when present (and
// not opt.Force), else built from the Go module proxy with cgo and
// linked statically, checked against l.BinarySHA256 and moved into the
// cache atomically. See the package documentation for how the build is
// made reproducible.
func Build(ctx context.Context, l *Lock, opt Options) (*Result, error) {
	logw := opt.Log
	if logw == nil {
		logw = io.Discard
	}
	cache := opt.Cache
	if cache == "" {
		var err error
		if cache, err = CacheDir(); err != nil {
			return nil, err
		}
	}
	if !opt.Force {
		if r, ok, err := Cached(l, cache); err != nil || ok {
			return r, err
		}
	}
	if err := checkHeaders(l); err != nil {
		return nil, err
	}
	start := time.Now()
	work, err := os.MkdirTemp("", "chrysalis-engine-")
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	defer os.RemoveAll(work)
	for _, d := range []string{"home", "tmp", "bin"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
	}
	stub, err := stubDir(cache)
	if err != nil {
		return nil, err
	}
	env, err := buildEnv(ctx, l, work, stub, opt.Env)
	if err != nil {
		return nil, err
	}
	if err := checkToolchain(ctx, l, env); err != nil {
		return nil, err
	}
	mv := l.Module + "@" + l.Version
	fmt.Fprintf(logw, "engine: checking %s against %s\n", mv, l.Sum)
	out, err := goCmd(ctx, work, env, nil, "mod", "download", "-json", mv)
	if err != nil {
		return nil, fmt.Errorf("engine: go mod download %s: %w\n%s", mv, err, out)
	}
	var dl struct{ Sum, Error string }
	if err := json.Unmarshal(out, &dl); err != nil {
		return nil, fmt.Errorf("engine: go mod download %s: %w", mv, err)
	}
	if dl.Sum != l.Sum {
		return nil, fmt.Errorf("engine: module %s has go.sum hash %q, engine.lock pins %q", mv, dl.Sum, l.Sum)
	}
	pkg := l.Package + "@" + l.Version
	fmt.Fprintf(logw, "engine: go install %s (static, cgo; a cold build takes several minutes)\n", pkg)
	if _, err := goCmd(ctx, work, env, logw, "install", "-trimpath", "-tags", l.Tags, "-ldflags", l.LDFlags, pkg); err != nil {
		return nil, fmt.Errorf("engine: building %s: %w", pkg, err)
	}
	bin := filepath.Join(work, "bin", filepath.Base(l.Package))
	sum, size, err := hashFile(bin)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	dur := time.Since(start)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	dst := CachePath(cache, sum)
	if err := install(bin, dst); err != nil {
		return nil, err
	}
	if sum != l.BinarySHA256 {
		return nil, fmt.Errorf("engine: built %s is %d bytes with sha256 %s, but engine.lock pins %s (%d bytes); kept at %s. "+
			"The likely cause is a different toolchain: the lock expects %s (this host: %s)",
			pkg, size, sum, l.BinarySHA256, l.BinarySize, dst, describe(l.Toolchain), describe(hostToolchain(ctx, l)))
	}
	return &Result{Path: dst, SHA256: sum, Size: size, Duration: dur}, nil
}

// buildEnv is the complete environment of the go command: nothing from
// the caller's environment reaches the build except PATH and the module
// and build caches (resolved before HOME is replaced), so the binary
// does not depend on the user, HOME, TZ, locale or temp directory.
func buildEnv(ctx context.Context, l *Lock, work, stub string, extra []string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "-json", "GOPATH", "GOMODCACHE", "GOCACHE", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GOINSECURE").Output()
	if err != nil {
		return nil, fmt.Errorf("engine: go env: %w (is Go %s on PATH?)", err, l.Go)
	}
	var ge map[string]string
	if err := json.Unmarshal(out, &ge); err != nil {
		return nil, fmt.Errorf("engine: go env: %w", err)
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, k := range []string{"GOPATH", "GOMODCACHE", "GOCACHE", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GOINSECURE"} {
		if ge[k] != "" {
			env = append(env, k+"="+ge[k])
		}
	}
	env = append(env,
		"HOME="+filepath.Join(work, "home"),
		"TMPDIR="+filepath.Join(work, "tmp"),
		"GOBIN="+filepath.Join(work, "bin"),
		"TZ=UTC", "LC_ALL=C", "SOURCE_DATE_EPOCH=0",
		"GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-mod=mod",
		"GOOS=linux", "GOARCH=amd64", "GOAMD64="+l.GOAMD64,
		"CGO_ENABLED=1", "CC=gcc", "CXX=g++",
		"CGO_CFLAGS="+l.CFLAGS, "CGO_CXXFLAGS="+l.CXXFLAGS, "CGO_LDFLAGS="+l.LDFLAGS,
		// -trimpath keeps the CGO_* variables out of the build info,
		// -buildid= drops the build ID that hashes them, and the stub has
		// no __FILE__: the stub's path leaves no trace in the binary.
		"CGO_CPPFLAGS=-I"+stub,
	)
	return append(env, extra...), nil
}

// stubDir writes the embedded miniaudio stub into the cache, named by
// its content's hash, and returns the include directory. A stable path
// keeps the go build cache of the cgo packages valid between builds.
func stubDir(cache string) (string, error) {
	stub, _ := stubFS.ReadFile("stub/miniaudio/miniaudio.h")
	sum := sha256.Sum256(stub)
	dir := filepath.Join(cache, "stub-"+hex.EncodeToString(sum[:8]))
	if have, err := os.ReadFile(filepath.Join(dir, "miniaudio", "miniaudio.h")); err == nil && bytes.Equal(have, stub) {
		return dir, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	tmp, err := os.MkdirTemp(cache, ".stub-")
	if err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Mkdir(filepath.Join(tmp, "miniaudio"), 0o755); err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "miniaudio", "miniaudio.h"), stub, 0o644); err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	_ = os.Chmod(tmp, 0o755)
	_ = os.RemoveAll(dir) // a stale or partial copy
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("engine: installing the miniaudio stub: %w", err)
	}
	return dir, nil
}

func goCmd(ctx context.Context, dir string, env []string, logw io.Writer, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env = dir, env
	var buf bytes.Buffer
	cmd.Stdout = &buf
	if logw != nil {
		cmd.Stderr = io.MultiWriter(&buf, logw)
	} else {
		cmd.Stderr = &buf
	}
	err := cmd.Run()
	return buf.Bytes(), err
}

func checkHeaders(l *Lock) error {
	var missing []string
	for h, pkg := range Headers {
		if _, err := os.Stat(h); err != nil {
			missing = append(missing, h+" ("+pkg+")")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("engine: missing headers %s: run %s", strings.Join(missing, ", "), l.AptLine())
	}
	return nil
}

// checkToolchain refuses a Go toolchain other than the pinned one: the
// Go compiler and linker are part of the binary.
func checkToolchain(ctx context.Context, l *Lock, env []string) error {
	cmd := exec.CommandContext(ctx, "go", "env", "GOVERSION")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("engine: go env GOVERSION: %w", err)
	}
	if v := strings.TrimSpace(string(out)); v != l.Go {
		return fmt.Errorf("engine: Go toolchain is %s, engine.lock pins %s (the binary would differ)", v, l.Go)
	}
	return nil
}

// hostToolchain describes this host's versions of the lock's toolchain
// entries: dpkg versions of packages, and for "gcc" its --version line.
func hostToolchain(ctx context.Context, l *Lock) []Pinned {
	var out []Pinned
	for _, p := range l.Toolchain {
		v := "unknown"
		if p.Name == "gcc" {
			if b, err := exec.CommandContext(ctx, "gcc", "--version").Output(); err == nil {
				v, _, _ = strings.Cut(string(b), "\n")
			}
		} else if b, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", p.Name).Output(); err == nil {
			v = string(b)
		}
		out = append(out, Pinned{p.Name, v})
	}
	return out
}

func describe(ps []Pinned) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Name + " " + p.Version
	}
	return strings.Join(s, ", ")
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// install copies bin into the cache at dst atomically (temporary file in
// the cache directory, fsync, rename), executable.
func install(bin, dst string) error {
	in, err := os.Open(bin)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".incoming-")
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, in)
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return fmt.Errorf("engine: installing into the cache %s: %w", dst, err)
	}
	return nil
}
