package ollama

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/models/gguf"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// tree returns every regular file under dir with its SHA-256.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			t.Errorf("%s is not a regular file", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeGGUF(t *testing.T, p gguf.Params) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gguf.Generate(f, p); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n got %s\nwant %s", name, got, want)
	}
}

func TestWriteStoreDeterministic(t *testing.T) {
	m := Model{Name: TestModelName, GGUF: writeGGUF(t, gguf.Tiny()), Template: TestModelTemplate, Params: TestModelParams()}
	a, b := t.TempDir(), filepath.Join(t.TempDir(), "elsewhere", "store")
	ra, err := WriteStore(a, m)
	if err != nil {
		t.Fatal(err)
	}
	m.GGUF = writeGGUF(t, gguf.Tiny()) // another copy of the same bytes
	rb, err := WriteStore(b, m)
	if err != nil {
		t.Fatal(err)
	}
	ta, tb := tree(t, a), tree(t, b)
	if len(ta) != 5 {
		t.Fatalf("store has %d files, want 4 blobs and a manifest: %v", len(ta), ta)
	}
	for name, sum := range ta {
		if tb[name] != sum {
			t.Errorf("%s: %s in one store, %q in the other", name, sum, tb[name])
		}
	}
	if ra.ManifestSHA256 != rb.ManifestSHA256 {
		t.Error("manifest hashes differ")
	}
	// Every blob is named by its content's digest; the model blob is the GGUF.
	for name, sum := range ta {
		if strings.HasPrefix(name, "blobs/") && name != "blobs/sha256-"+sum {
			t.Errorf("%s holds content with sha256 %s", name, sum)
		}
	}
	if ta["blobs/sha256-"+gguf.TinySHA256] == "" {
		t.Errorf("no blob for the GGUF (sha256 %s)", gguf.TinySHA256)
	}
	man, err := os.ReadFile(filepath.Join(a, "manifests", "registry.ollama.ai", "library", TestModelName, "latest"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(man, []byte(`"from"`)) || bytes.Contains(man, []byte(a)) {
		t.Errorf("manifest records a path: %s", man)
	}
	golden(t, "tiny.manifest.json", man)
	cfg, err := os.ReadFile(filepath.Join(a, "blobs", "sha256-"+strings.TrimPrefix(ra.Config.Digest, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "tiny.config.json", cfg)
	var c config
	if err := json.Unmarshal(cfg, &c); err != nil || c.ModelType != "115K" || c.ModelFamily != "llama" || len(c.RootFS.DiffIDs) != 3 {
		t.Errorf("config %s: %v", cfg, err)
	}
	// Writing again over an existing store changes nothing.
	if _, err := WriteStore(a, m); err != nil {
		t.Fatal(err)
	}
	if again := tree(t, a); len(again) != len(ta) {
		t.Errorf("rewrite left %d files, want %d", len(again), len(ta))
	}
}

func TestWriteStoreErrors(t *testing.T) {
	good := writeGGUF(t, gguf.Tiny())
	notGGUF := filepath.Join(t.TempDir(), "x.gguf")
	if err := os.WriteFile(notGGUF, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    Model
		want string
	}{
		{"bad name", Model{Name: "Tiny/../x", GGUF: good}, "model name"},
		{"bad tag", Model{Name: "tiny", Tag: "a b", GGUF: good}, "tag"},
		{"missing weights", Model{Name: "tiny", GGUF: filepath.Join(t.TempDir(), "none.gguf")}, "no such file"},
		{"not gguf", Model{Name: "tiny", GGUF: notGGUF}, "bad magic"},
		{"params", Model{Name: "tiny", GGUF: good, Params: map[string]any{"x": func() {}}}, "params of tiny"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := WriteStore(t.TempDir(), tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestHumanNumber(t *testing.T) {
	for n, want := range map[uint64]string{999: "999", 115392: "115K", 1500000: "1.50M", 2000000: "2M", 7241732096: "7.2B", 8e9: "8B"} {
		if got := humanNumber(n); got != want {
			t.Errorf("humanNumber(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestWriteTestModelDir(t *testing.T) {
	eng := filepath.Join(t.TempDir(), "engine-bytes")
	if err := os.WriteFile(eng, []byte("any engine binary is copied as is\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, b := t.TempDir(), filepath.Join(t.TempDir(), "b")
	ra, err := WriteTestModelDir(a, eng)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteTestModelDir(b, eng); err != nil {
		t.Fatal(err)
	}
	ta, tb := tree(t, a), tree(t, b)
	if len(ta) != 6 || ta[EngineFile] != ra.EngineSHA256 || ra.GGUFSHA256 != gguf.TinySHA256 {
		t.Fatalf("model dir %v, result %+v", ta, ra)
	}
	for k, v := range ta {
		if tb[k] != v {
			t.Errorf("%s differs between two model dirs", k)
		}
	}
	if _, err := WriteTestModelDir(a, eng); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("writing into a full directory: %v", err)
	}
}
