package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
	"github.com/chrysalis-cc/chrysalis/models/engine"
	"github.com/chrysalis-cc/chrysalis/models/ollama"
)

func init() {
	register("engine", "the inference engine: build ollama statically and reproducibly (build)", runEngine)
	register("testmodel", "write the tiny deterministic test model directory (engine + ollama store)", runTestModel)
}

func engineUsage(w io.Writer) {
	fmt.Fprint(w, `usage:
  chrysalis engine build [--out FILE] [--cache DIR] [--force]
      return the engine pinned by models/engine/engine.lock (ollama, static,
      CPU backend): from the cache ($CHRYSALIS_ENGINE_CACHE, default
      ~/.cache/chrysalis/engine) when present, else built from the Go module
      proxy (several minutes cold) and checked against the pinned SHA-256;
      print its path, SHA-256 and size; with --out also copy it to FILE
`)
}

func testModelUsage(w io.Writer) {
	fmt.Fprint(w, `usage:
  chrysalis testmodel --out DIR [--engine FILE]
      write the model directory of the catalog's test model chrysalis-tiny to
      DIR (which must not exist or be empty): engine/ollama (FILE, default the
      pinned engine from the cache, built if missing) and store/ (ollama's
      model store with the generated GGUF); then
      'chrysalis model pack --dir DIR --out IMAGE' builds its model disk
`)
}

func runEngine(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, engineUsage, []subcommand{{"build", engineBuild}}, args, stdout, stderr)
}

func engineBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := groupFlagSet("engine", "build", engineUsage, stderr)
	out := fs.String("out", "", "also copy the binary to `FILE` (replaced atomically)")
	cache := fs.String("cache", "", "cache `directory` (default $"+engine.CacheEnv+" or ~/.cache/chrysalis/engine)")
	force := fs.Bool("force", false, "rebuild even when the pinned binary is cached")
	if err := mfParseFlags(fs, args, 0); err != nil {
		return mfHelpOK(err)
	}
	lock, err := engine.DefaultLock()
	if err != nil {
		return err
	}
	res, err := engine.Build(ctx, lock, engine.Options{Cache: *cache, Force: *force, Log: stderr})
	if err != nil {
		return err
	}
	how := "cached"
	if !res.Cached {
		how = fmt.Sprintf("built in %.1f s", res.Duration.Seconds())
	}
	fmt.Fprintf(stdout, "engine   %s %s (%s)\n", lock.Module, lock.Version, how)
	fmt.Fprintf(stdout, "path     %s\n", res.Path)
	fmt.Fprintf(stdout, "sha256   %s\n", res.SHA256)
	fmt.Fprintf(stdout, "size     %d\n", res.Size)
	if *out != "" {
		if err := copyExecutable(res.Path, *out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "copied   %s\n", *out)
	}
	return nil
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Create(dst, 0o755, false, func(f *os.File) error {
		_, err := io.Copy(f, in)
		return err
	})
}

func runTestModel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("testmodel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		testModelUsage(stderr)
		fs.PrintDefaults()
	}
	out := fs.String("out", "", "model `directory` to write")
	eng := fs.String("engine", "", "engine binary `FILE` (default: the pinned engine, built if missing)")
	if err := mfParseFlags(fs, args, 0); err != nil {
		return mfHelpOK(err)
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	if *eng == "" {
		lock, err := engine.DefaultLock()
		if err != nil {
			return err
		}
		res, err := engine.Build(ctx, lock, engine.Options{Log: stderr})
		if err != nil {
			return err
		}
		*eng = res.Path
	}
	res, err := ollama.WriteTestModelDir(*out, *eng)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "model     %s in %s\n", ollama.TestModelName, *out)
	fmt.Fprintf(stdout, "engine    %s sha256 %s\n", ollama.EngineFile, res.EngineSHA256)
	fmt.Fprintf(stdout, "gguf      %d bytes sha256 %s\n", res.GGUFSize, res.GGUFSHA256)
	fmt.Fprintf(stdout, "manifest  %s sha256 %s\n", res.Store.Manifest, res.Store.ManifestSHA256)
	fmt.Fprintf(stdout, "next      chrysalis model pack --dir %s --out IMAGE\n", *out)
	return nil
}
