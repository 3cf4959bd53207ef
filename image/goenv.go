package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	"golang.org/x/mod/modfile"
)

// ModulePath is this repository's Go module path.
const ModulePath = "github.com/chrysalis-cc/chrysalis"

// Module paths of the pinned initramfs tooling; their versions come from
// go.mod (u-root: the code compiled into the image) and from this
// binary's build info (mkuimage: the code that assembles the archive).
const (
	urootModule    = "github.com/u-root/u-root"
	mkuimageModule = "github.com/u-root/mkuimage"
)

// goEnv is what the build needs to know about the Go toolchain.
type goEnv struct {
	Version string // go1.26.8
	GOROOT  string
	GOMOD   string

	GOAMD64, GOEXPERIMENT, GOFLAGS string
}

// goEnvIn runs `go env -json` in dir with the go command on PATH.
func goEnvIn(ctx context.Context, dir string) (*goEnv, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, errors.New("the go command is not on PATH (needed to compile the agent and u-root init)")
	}
	cmd := exec.CommandContext(ctx, goBin, "env", "-json", "GOVERSION", "GOROOT", "GOMOD", "GOAMD64", "GOEXPERIMENT", "GOFLAGS")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go env in %s: %v: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	var v struct{ GOVERSION, GOROOT, GOMOD, GOAMD64, GOEXPERIMENT, GOFLAGS string }
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	return &goEnv{Version: v.GOVERSION, GOROOT: v.GOROOT, GOMOD: v.GOMOD, GOAMD64: v.GOAMD64, GOEXPERIMENT: v.GOEXPERIMENT, GOFLAGS: v.GOFLAGS}, nil
}

// checkReproducible refuses Go settings from the environment that would
// change the compiled init and agent (the build sets GOOS, GOARCH and
// CGO_ENABLED itself).
func (e *goEnv) checkReproducible() error {
	if e.GOAMD64 != "" && e.GOAMD64 != "v1" {
		return fmt.Errorf("GOAMD64=%s would change the compiled binaries; unset it (releases use v1)", e.GOAMD64)
	}
	if e.GOEXPERIMENT != "" {
		return fmt.Errorf("GOEXPERIMENT=%s would change the compiled binaries; unset it", e.GOEXPERIMENT)
	}
	for _, f := range strings.Fields(e.GOFLAGS) {
		name, val, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		switch {
		case name == "buildvcs" || name == "modcacherw" || name == "trimpath" || name == "p" || name == "x" || name == "v":
		case name == "mod" && val == "readonly":
		default:
			return fmt.Errorf("GOFLAGS contains %s, which could change the compiled binaries or go.mod; unset it (allowed: -buildvcs, -modcacherw, -mod=readonly, -trimpath, -p, -x, -v)", f)
		}
	}
	return nil
}

// findModuleRoot returns the root of the chrysalis module containing dir
// (dir itself when it is the root).
func findModuleRoot(ctx context.Context, dir string) (string, error) {
	env, err := goEnvIn(ctx, dir)
	if err != nil {
		return "", err
	}
	if env.GOMOD == "" || env.GOMOD == os.DevNull {
		return "", fmt.Errorf("%s is not inside a Go module; run the build in a checkout of %s (or pass its root with --src)", dir, ModulePath)
	}
	root := filepath.Dir(env.GOMOD)
	return root, checkModuleRoot(root)
}

// checkModuleRoot checks that root holds the go.mod of this module.
func checkModuleRoot(root string) error {
	gomod := filepath.Join(root, "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return fmt.Errorf("%s is not the root of a checkout of %s: %w", root, ModulePath, err)
	}
	if mp := modfile.ModulePath(data); mp != ModulePath {
		return fmt.Errorf("%s is module %q, not %s; run the build in a checkout of %s", gomod, mp, ModulePath, ModulePath)
	}
	return nil
}

func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// moduleVersions reads the u-root version from the go.mod in root, and the
// mkuimage version from this binary's build info (checked against go.mod:
// a chrysalis binary built from another checkout would assemble the
// archive with other code than this checkout pins).
func moduleVersions(root string) (uroot, mkuimage string, err error) {
	gomod := filepath.Join(root, "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", "", err
	}
	f, err := modfile.ParseLax(gomod, data, nil)
	if err != nil {
		return "", "", err
	}
	req := map[string]string{}
	for _, r := range f.Require {
		req[r.Mod.Path] = r.Mod.Version
	}
	for _, r := range f.Replace {
		if r.Old.Path == urootModule || r.Old.Path == mkuimageModule {
			return "", "", fmt.Errorf("%s replaces %s; a release must use the pinned module version", gomod, r.Old.Path)
		}
	}
	uroot = req[urootModule]
	if uroot == "" {
		return "", "", fmt.Errorf("%s does not require %s", gomod, urootModule)
	}
	mkuimage = req[mkuimageModule]
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path != mkuimageModule {
				continue
			}
			if d.Replace != nil {
				return "", "", fmt.Errorf("this binary was built with %s replaced by %s; rebuild it from a clean checkout", mkuimageModule, d.Replace.Path)
			}
			if mkuimage != "" && d.Version != mkuimage {
				return "", "", fmt.Errorf("this binary was built with %s %s but %s pins %s; rebuild chrysalis from this checkout", mkuimageModule, d.Version, gomod, mkuimage)
			}
			mkuimage = d.Version
		}
	}
	if mkuimage == "" {
		return "", "", fmt.Errorf("cannot tell the %s version (not in %s nor in the build info)", mkuimageModule, gomod)
	}
	return uroot, mkuimage, nil
}

// gitState returns the commit checked out in root and whether the work
// tree differs from it, or "unknown" when git cannot tell. Changes under
// the absolute paths in ignore (the release being written) and their
// staging siblings do not count.
func gitState(ctx context.Context, root string, ignore []string) (commit string, dirty bool) {
	git, err := exec.LookPath("git")
	if err != nil {
		return "unknown", false
	}
	run := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, git, append([]string{"-C", root}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0", "LC_ALL=C")
		return cmd.Output()
	}
	out, err := run("rev-parse", "--verify", "HEAD")
	if err != nil {
		return "unknown", false
	}
	commit = strings.TrimSpace(string(out))
	if !gitCommitRE(commit) {
		return "unknown", false
	}
	out, err = run("rev-parse", "--show-toplevel")
	if err != nil {
		return "unknown", false
	}
	// Porcelain paths are relative to the top of the work tree.
	top := strings.TrimSpace(string(out))
	var rel []string
	for _, ig := range ignore {
		if r, err := relPath(top, ig); err == nil {
			rel = append(rel, r)
		}
	}
	st, err := run("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".")
	if err != nil {
		return "unknown", false
	}
	for _, rec := range strings.Split(string(st), "\x00") {
		if len(rec) < 4 {
			continue
		}
		p := rec[3:]
		if !ignoredPath(p, rel) {
			dirty = true
			break
		}
	}
	return commit, dirty
}

func gitCommitRE(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func ignoredPath(p string, ignore []string) bool {
	for _, ig := range ignore {
		if ig == "" {
			continue
		}
		if p == ig || strings.HasPrefix(p, ig+"/") {
			return true
		}
		// Staging and swap-aside siblings of the release directory.
		dir, base := filepath.Split(ig)
		first := strings.SplitN(strings.TrimPrefix(p, dir), "/", 2)[0]
		if strings.HasPrefix(p, dir) && strings.HasPrefix(first, "."+base+".") {
			return true
		}
	}
	return false
}

// relPath is filepath.Rel after resolving symlinks on both sides, in
// slash form; it fails for paths outside base.
func relPath(base, target string) (string, error) {
	if b, err := filepath.EvalSymlinks(base); err == nil {
		base = b
	}
	dir, file := filepath.Split(filepath.Clean(target))
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		target = filepath.Join(d, file)
	}
	r, err := filepath.Rel(base, target)
	if err != nil {
		return "", err
	}
	if r == ".." || strings.HasPrefix(r, "../") {
		return "", errors.New("outside")
	}
	return filepath.ToSlash(r), nil
}
