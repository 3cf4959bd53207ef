package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/models/engine"
	"github.com/chrysalis-cc/chrysalis/models/gguf"
	"github.com/chrysalis-cc/chrysalis/models/ollama"
)

func TestTestModelCommand(t *testing.T) {
	eng := filepath.Join(t.TempDir(), "engine")
	content := []byte("engine bytes, copied unchanged\n")
	if err := os.WriteFile(eng, content, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	code, out, errs := cli("testmodel", "--out", dir, "--engine", eng)
	if code != 0 {
		t.Fatalf("rc %d: %s%s", code, out, errs)
	}
	if !strings.Contains(out, "gguf      469472 bytes sha256 "+gguf.TinySHA256) || !strings.Contains(out, "model pack --dir "+dir) {
		t.Errorf("output:\n%s", out)
	}
	got, err := os.ReadFile(filepath.Join(dir, ollama.EngineFile))
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("engine copy: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "store", "manifests", "registry.ollama.ai", "library", "chrysalis-tiny", "latest")); err != nil {
		t.Error(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"testmodel", "--out", dir, "--engine", eng}, "not empty"},
		{[]string{"testmodel", "--engine", eng}, "--out is required"},
		{[]string{"testmodel", "--out", t.TempDir(), "--engine", filepath.Join(t.TempDir(), "none")}, "no such file"},
		{[]string{"engine", "build", "extra"}, "unexpected arguments"},
		{[]string{"engine", "frob"}, "unknown subcommand"},
	} {
		if code, _, errs := cli(tc.args...); code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: rc %d, stderr %q; want an error containing %q", tc.args, code, errs, tc.want)
		}
	}
	if code, _, errs := cli("engine", "build", "-h"); code != 0 || !strings.Contains(errs, "chrysalis engine build") {
		t.Errorf("engine build -h: rc %d %s", code, errs)
	}
}

// TestEngineBuildCached serves the pinned engine from a cache: with
// CHRYSALIS_TEST_ENGINE (the binary `chrysalis engine build` printed).
func TestEngineBuildCached(t *testing.T) {
	src := os.Getenv("CHRYSALIS_TEST_ENGINE")
	if src == "" {
		t.Skip("set CHRYSALIS_TEST_ENGINE to the engine binary (chrysalis engine build prints its path)")
	}
	lock, err := engine.DefaultLock()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	if err := os.WriteFile(engine.CachePath(cache, lock.BinarySHA256), b, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "ollama")
	code, out, errs := cli("engine", "build", "--cache", cache, "--out", dst)
	if code != 0 || !strings.Contains(out, "(cached)") || !strings.Contains(out, "sha256   "+lock.BinarySHA256) {
		t.Fatalf("rc %d:\n%s%s", code, out, errs)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, b) {
		t.Errorf("--out copy differs: %v", err)
	}
	if st, err := os.Stat(dst); err != nil || st.Mode().Perm()&0o100 == 0 {
		t.Errorf("--out copy is not executable: %v", err)
	}
}
