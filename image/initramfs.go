package image

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/cpio"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/mkuimage/uimage/builder"
	"github.com/u-root/mkuimage/uimage/initramfs"
	"github.com/u-root/uio/llog"
)

// Paths inside the initramfs.
const (
	// InitramfsModuleDir holds the kernel modules, compressed as shipped.
	InitramfsModuleDir = "lib/modules"
	// InitramfsLoadOrder lists the module file names, dependencies first;
	// the agent loads them in this order with finit_module.
	InitramfsLoadOrder = "lib/modules/load.order"
	// InitramfsAgent is where the agent binary lands (u-root's binary
	// builder puts commands in bin/); bin/uinit links to it.
	InitramfsAgent = "bin/agent"
)

// initramfsSpec is what goes into the initramfs.
type initramfsSpec struct {
	moduleRoot string // Go module root: `go build` runs here
	goroot     string
	initPkg    string
	agentPkg   string
	modules    []*KernelModule
	logOut     io.Writer
}

// buildInitramfs writes the u-root initramfs to out (a newc cpio),
// using work as scratch space. The archive is a function of the sources,
// the toolchain and the modules only: u-root zeroes mtimes, owners and
// inode numbers and sorts entries; normalizingWriter below also fixes the
// permission bits that would otherwise follow the builder's umask.
func buildInitramfs(ctx context.Context, spec initramfsSpec, work, out string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	modDir := filepath.Join(work, "modules")
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		return err
	}
	var files []string
	for _, m := range spec.modules {
		p := filepath.Join(modDir, m.File)
		if err := writeFileMode(p, m.Data, 0o644); err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
		files = append(files, p+":"+InitramfsModuleDir+"/"+m.File)
	}
	lo := filepath.Join(work, "load.order")
	if err := writeFileMode(lo, LoadOrder(spec.modules), 0o644); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	files = append(files, lo+":"+InitramfsLoadOrder)

	tmp := filepath.Join(work, "uroot")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	env := golang.Default(
		golang.DisableCGO(),
		golang.WithGOOS("linux"),
		golang.WithGOARCH("amd64"),
		golang.WithGOROOT(spec.goroot),
		golang.WithWorkingDir(spec.moduleRoot),
	)
	// VCS stamping would make the binaries depend on .git metadata; the
	// source commit is recorded in release.json instead.
	bopts := &golang.BuildOpts{ExtraArgs: []string{"-buildvcs=false"}}
	logOut := spec.logOut
	if logOut == nil {
		logOut = io.Discard
	}
	l := llog.New(slog.LevelWarn, llog.WritePrintf(logOut))
	opts := uimage.Opts{
		Env: env,
		Commands: []uimage.Commands{
			{Builder: builder.Busybox, Packages: []string{spec.initPkg}, BuildOpts: bopts},
			{Builder: builder.Binary, Packages: []string{spec.agentPkg}, BuildOpts: bopts},
		},
		TempDir:     tmp,
		ExtraFiles:  files,
		SkipLDD:     true,
		OutputFile:  &normalizingCPIO{path: out},
		BaseArchive: &initramfs.Archive{Archive: uimage.DefaultRamfs()},
		InitCmd:     "init",
		UinitCmd:    filepath.Base(spec.agentPkg),
		// No DefaultShell: the production image has no shell.
	}
	if err := uimage.CreateInitramfs(l, opts); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	return ctx.Err()
}

// normalizingCPIO is an initramfs.WriteOpener writing a newc cpio to path
// with the permission bits of host-made files and directories fixed:
// directories 0755, files 0755 if the owner could execute them, else
// 0644. Records of u-root's default ramfs (dev nodes, /tmp 01777-style
// dirs) are constants and pass unchanged.
type normalizingCPIO struct {
	path string
}

func (n *normalizingCPIO) OpenWriter() (initramfs.Writer, error) {
	base := map[string]cpio.Info{}
	if a := uimage.DefaultRamfs(); a != nil {
		for _, r := range a.Files {
			r = cpio.MakeReproducible(r)
			base[r.Name] = r.Info
		}
	}
	w, err := (&initramfs.CPIOFile{Path: n.path}).OpenWriter()
	if err != nil {
		return nil, err
	}
	return &normalizingWriter{Writer: w, base: base}, nil
}

type normalizingWriter struct {
	initramfs.Writer
	base map[string]cpio.Info
}

func (w *normalizingWriter) WriteRecord(r cpio.Record) error {
	return w.Writer.WriteRecord(normalizeRecord(r, w.base))
}

// normalizeRecord fixes r's permission bits unless r is one of the
// default-ramfs constants.
func normalizeRecord(r cpio.Record, base map[string]cpio.Info) cpio.Record {
	r = cpio.MakeReproducible(r)
	if info, ok := base[r.Name]; ok && info == r.Info {
		return r
	}
	const perm = 0o7777
	switch r.Mode & cpio.S_IFMT {
	case cpio.S_IFDIR:
		r.Mode = r.Mode&^perm | 0o755
	case cpio.S_IFREG:
		if r.Mode&0o100 != 0 {
			r.Mode = r.Mode&^perm | 0o755
		} else {
			r.Mode = r.Mode&^perm | 0o644
		}
	}
	return r
}

// writeFileMode writes data to p with exactly mode (not masked by the
// umask).
func writeFileMode(p string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
