package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/chrysalis-cc/chrysalis/image"
)

func init() {
	register("build", "build the reproducible release directory (kernel, OVMF, initramfs, cmdline)", runBuild)
}

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: chrysalis build [--out release] [--lock image/inputs.lock] [--mirror URL] [--cache DIR]")
		fmt.Fprintln(stderr, "Run inside a checkout of "+image.ModulePath+"; the agent and u-root init are compiled from it.")
		fs.PrintDefaults()
	}
	out := fs.String("out", "release", "release `directory` to create or replace (atomically)")
	lock := fs.String("lock", "", "inputs lock `file` (default: <module root>/image/inputs.lock)")
	mirror := fs.String("mirror", "", "Debian mirror `URL` (default: $"+image.MirrorEnv+", then the apt sources)")
	cache := fs.String("cache", "", "download cache `directory` (default: $XDG_CACHE_HOME/chrysalis/debs or ~/.cache/chrysalis/debs)")
	src := fs.String("src", "", "module root `directory` to build from (default: the module containing the working directory)")
	commit := fs.String("source-commit", "", "source commit to record in release.json (default: git rev-parse HEAD, with the dirty flag from git status)")
	verbose := fs.Bool("v", false, "print progress")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	opts := image.Options{
		Out:          *out,
		SourceDir:    *src,
		LockFile:     *lock,
		Mirror:       *mirror,
		CacheDir:     *cache,
		SourceCommit: *commit,
	}
	if *verbose {
		opts.Log = stderr
	}
	rel, err := image.Build(ctx, opts)
	if err != nil {
		return err
	}
	printReleaseSummary(stdout, rel)
	return nil
}

func printReleaseSummary(w io.Writer, rel *image.Release) {
	fmt.Fprintf(w, "release %s\n", rel.Dir)
	fmt.Fprintf(w, "  kernel %s, go %s, u-root %s, source %s", rel.KernelVersion, rel.GoVersion, rel.URootVersion, rel.SourceCommit)
	if rel.SourceDirty {
		fmt.Fprint(w, " (dirty)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  modules (%d): %v\n", len(rel.Modules), rel.Modules)
	for _, name := range image.ReleaseFiles {
		size := "-"
		if f, ok := rel.File(name); ok {
			size = fmt.Sprint(f.Size)
		}
		fmt.Fprintf(w, "  %-12s %10s  %s\n", name, size, rel.Sums[name])
	}
	s := rel.Stats
	fmt.Fprintf(w, "  took %s; inputs: %d cache hits, %d downloaded (%d bytes)\n",
		s.Duration.Round(100*time.Millisecond), s.CacheHits, s.Downloads, s.Downloaded)
}
