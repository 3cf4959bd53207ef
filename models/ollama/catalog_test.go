package ollama

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/chrysalis-cc/chrysalis/models/catalog"
	"github.com/chrysalis-cc/chrysalis/models/engine"
	"github.com/chrysalis-cc/chrysalis/models/gguf"
	"github.com/chrysalis-cc/chrysalis/models/pack"
	"github.com/chrysalis-cc/chrysalis/models/verity"
)

// TestCatalogEntry regenerates the test model's directory with the pinned
// engine, packs it and compares every value of its catalog entry.
func TestCatalogEntry(t *testing.T) {
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	m, ok := cat.Lookup(TestModelName)
	if !ok {
		t.Fatalf("catalog has no %s", TestModelName)
	}
	if m.Source != "generated:models/gguf.Tiny" || m.Revision != gguf.GeneratorVersion || m.ArchiveSHA256 != gguf.TinySHA256 ||
		m.Engine != "ollama" || m.ContextSize != TestModelContext || !m.Test {
		t.Errorf("catalog entry %+v does not describe the generator's output", m)
	}
	bin := engineBinary(t)
	lock, err := engine.DefaultLock()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	res, err := WriteTestModelDir(dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	if res.EngineSHA256 != lock.BinarySHA256 {
		t.Fatalf("engine %s has sha256 %s, engine.lock pins %s: the catalog's image needs the pinned engine (chrysalis engine build)", bin, res.EngineSHA256, lock.BinarySHA256)
	}
	p, err := pack.Pack(context.Background(), dir, filepath.Join(t.TempDir(), "model.img"), pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := catalog.Model{
		Name: m.Name, Source: m.Source, Revision: m.Revision, ArchiveSHA256: res.GGUFSHA256,
		ImageSHA256: hex.EncodeToString(p.ImageSHA256), RootHash: hex.EncodeToString(p.RootHash),
		Salt: hex.EncodeToString(p.Salt), UUID: verity.FormatUUID(p.UUID), ImageSize: p.Size,
		Engine: m.Engine, EngineArgs: m.EngineArgs, ContextSize: m.ContextSize, Test: m.Test,
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	if got.ArchiveSHA256 != m.ArchiveSHA256 || got.ImageSHA256 != m.ImageSHA256 || got.RootHash != m.RootHash ||
		got.Salt != m.Salt || got.UUID != m.UUID || got.ImageSize != m.ImageSize {
		t.Errorf("packed test model differs from the catalog:\n got %+v\nwant %+v", got, *m)
	}
}
