package engine

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultLock(t *testing.T) {
	l, err := DefaultLock()
	if err != nil {
		t.Fatal(err)
	}
	if l.Module != "github.com/ollama/ollama" || l.Version != "v0.17.4" || l.Package != l.Module {
		t.Errorf("lock pins %s %s %s", l.Module, l.Version, l.Package)
	}
	if got := l.AptLine(); got != "apt-get install -y --no-install-recommends nlohmann-json3-dev libstb-dev" {
		t.Errorf("AptLine() = %q", got)
	}
}

func TestParseLockErrors(t *testing.T) {
	good := string(embeddedLock)
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"unknown field", `"module"`, `"modul"`, "unknown field"},
		{"version", `"version": "v0.17.4"`, `"version": "0.17.4"`, "vMAJOR.MINOR.PATCH"},
		{"sum", `"sum": "h1:`, `"sum": "h2:`, "go.sum hash"},
		{"package", `"package": "github.com/ollama/ollama"`, `"package": "github.com/other/x"`, "not in module"},
		{"ldflags version", `version.Version=0.17.4`, `version.Version=0.17.5`, "version.Version"},
		{"static", `-extldflags -static`, ``, "statically"},
		{"binary hash", `"binary_sha256": "`, `"binary_sha256": "X`, "binary_sha256"},
		{"go", `"go": "go1.`, `"go": "1.`, "not a Go version"},
		{"empty apt version", `"version": "3.11.2-2"`, `"version": ""`, "no name or version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.Replace(good, tc.old, tc.new, 1)
			if in == good {
				t.Fatalf("%q not in the lock", tc.old)
			}
			_, err := ParseLock([]byte(in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := ParseLock([]byte(good + "{}")); err == nil || !strings.Contains(err.Error(), "trailing data") {
		t.Errorf("trailing data: %v", err)
	}
}

func TestCacheDir(t *testing.T) {
	t.Setenv(CacheEnv, "/some/where")
	if d, err := CacheDir(); err != nil || d != "/some/where" {
		t.Errorf("CacheDir() = %q, %v", d, err)
	}
	t.Setenv(CacheEnv, "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, err := CacheDir(); err != nil || d != "/xdg/chrysalis/engine" {
		t.Errorf("CacheDir() = %q, %v", d, err)
	}
}

func TestCached(t *testing.T) {
	l, err := DefaultLock()
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	if _, ok, err := Cached(l, cache); ok || err != nil {
		t.Fatalf("empty cache: ok %v, err %v", ok, err)
	}
	// A file under the pinned name with other content is refused by hash.
	p := CachePath(cache, l.BinarySHA256)
	if err := os.WriteFile(p, []byte("not the engine"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, ok, err := Cached(l, cache)
	if ok || err == nil || !strings.Contains(err.Error(), l.BinarySHA256) || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("corrupt cache entry: ok %v, err %v", ok, err)
	}
	// Build takes the same path and reports the same error instead of building.
	if _, err := Build(context.Background(), l, Options{Cache: cache}); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("Build with a corrupt cache entry: %v", err)
	}
}

// TestStubCompiles compiles the miniaudio stub the way mtmd-helper.cpp
// includes it, as C++ and as C, and runs the decoder calls: they must
// fail cleanly.
func TestStubCompiles(t *testing.T) {
	stub, err := filepath.Abs("stub")
	if err != nil {
		t.Fatal(err)
	}
	prog := `#define MINIAUDIO_IMPLEMENTATION
#define MA_NO_ENCODING
#define MA_API static
#include "miniaudio/miniaudio.h"
int main(void) {
    ma_decoder_config c = ma_decoder_config_init(ma_format_f32, 1, 16000);
    ma_decoder d;
    ma_uint64 frames = 1, got = 1;
    float buf[4];
    if (ma_decoder_init_memory("RIFF", 4, &c, &d) == MA_SUCCESS) return 1;
    if (ma_decoder_get_length_in_pcm_frames(&d, &frames) == MA_SUCCESS || frames != 0) return 2;
    if (ma_decoder_read_pcm_frames(&d, buf, 4, &got) == MA_SUCCESS || got != 0) return 3;
    if (ma_decoder_uninit(&d) != MA_SUCCESS) return 4;
    return 0;
}
`
	for _, cc := range []struct{ bin, ext string }{{"g++", "cpp"}, {"gcc", "c"}} {
		t.Run(cc.bin, func(t *testing.T) {
			if _, err := exec.LookPath(cc.bin); err != nil {
				t.Skipf("%s not installed", cc.bin)
			}
			dir := t.TempDir()
			src := filepath.Join(dir, "main."+cc.ext)
			if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
				t.Fatal(err)
			}
			exe := filepath.Join(dir, "main")
			if out, err := exec.Command(cc.bin, "-Wall", "-Wextra", "-Werror", "-I"+stub, "-o", exe, src).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", cc.bin, err, out)
			}
			if out, err := exec.Command(exe).CombinedOutput(); err != nil {
				t.Fatalf("stub program: %v\n%s", err, out)
			}
		})
	}
}

// TestBuildReproducible builds the engine from scratch with every cache,
// path and HOME different from the usual ones and requires the pinned
// SHA-256. It takes several minutes (a full cgo build of llama.cpp), so
// it only runs with CHRYSALIS_TEST_ENGINE_BUILD=1; CI checks the same
// thing by running `chrysalis engine build` on a fresh machine.
func TestBuildReproducible(t *testing.T) {
	if os.Getenv("CHRYSALIS_TEST_ENGINE_BUILD") != "1" {
		t.Skip("set CHRYSALIS_TEST_ENGINE_BUILD=1 for a cold engine build (several minutes)")
	}
	l, err := DefaultLock()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	env := []string{
		"GOPATH=" + filepath.Join(tmp, "gopath"),
		"GOMODCACHE=" + filepath.Join(tmp, "modcache"),
		"GOCACHE=" + filepath.Join(tmp, "gocache"),
	}
	if mc := os.Getenv("CHRYSALIS_TEST_ENGINE_GOPROXY"); mc != "" {
		env = append(env, "GOPROXY="+mc)
	}
	start := time.Now()
	r, err := Build(context.Background(), l, Options{Cache: filepath.Join(tmp, "cache"), Force: true, Env: env, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold build in %v: %s, %d bytes, sha256 %s", time.Since(start), r.Path, r.Size, r.SHA256)
	// The module cache is read-only; let TempDir remove it.
	_ = exec.Command("chmod", "-R", "u+w", tmp).Run()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func TestStubDir(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "cache")
	d1, err := stubDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join("stub", "miniaudio", "miniaudio.h"))
	h := filepath.Join(d1, "miniaudio", "miniaudio.h")
	if got, err := os.ReadFile(h); err != nil || string(got) != string(want) {
		t.Fatalf("stub in the cache: %v", err)
	}
	// A damaged copy is replaced, at the same path.
	if err := os.WriteFile(h, []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	d2, err := stubDir(cache)
	if err != nil || d2 != d1 {
		t.Fatalf("second stubDir = %q, %v; want %q", d2, err, d1)
	}
	if got, _ := os.ReadFile(h); string(got) != string(want) {
		t.Error("damaged stub not replaced")
	}
	if ents, _ := os.ReadDir(cache); len(ents) != 1 {
		t.Errorf("cache holds %d entries, want the stub directory only", len(ents))
	}
}
