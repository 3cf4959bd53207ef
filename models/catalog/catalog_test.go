package catalog

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/models/pack"
	"github.com/chrysalis-cc/chrysalis/models/verity"
)

func TestEmbeddedValidates(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Models {
		if got, ok := c.Lookup(m.Name); !ok || got.Name != m.Name {
			t.Fatalf("lookup %q", m.Name)
		}
	}
}

// packed builds a tiny generated model directory and returns the entry
// describing its image.
func packed(t *testing.T) Model {
	base := t.TempDir()
	src := filepath.Join(base, "m")
	os.Mkdir(src, 0o755)
	os.WriteFile(filepath.Join(src, "model.gguf"), []byte("GGUF test model"), 0o644)
	res, err := pack.Pack(context.Background(), src, filepath.Join(base, "m.img"), pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return Model{
		Name: "test-tiny", Source: "generated:catalog_test", Revision: "1",
		ArchiveSHA256: strings.Repeat("ab", 32),
		ImageSHA256:   hex.EncodeToString(res.ImageSHA256),
		RootHash:      hex.EncodeToString(res.RootHash),
		Salt:          hex.EncodeToString(res.Salt),
		UUID:          verity.FormatUUID(res.UUID),
		ImageSize:     res.Size,
		Engine:        "llama.cpp", EngineArgs: []string{"--threads", "1"},
		ContextSize: 512, Test: true,
	}
}

func TestValidate(t *testing.T) {
	good := packed(t)
	c := &Catalog{Version: 1, Models: []Model{good}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if m, ok := c.Lookup("test-tiny"); !ok || m.RootHash != good.RootHash {
		t.Fatal("lookup failed")
	}
	if _, ok := c.Lookup("nope"); ok {
		t.Fatal("lookup of a missing name succeeded")
	}
	for name, mut := range map[string]func(*Model){
		"name upper":       func(m *Model) { m.Name = "Test" },
		"name empty":       func(m *Model) { m.Name = "" },
		"name slash":       func(m *Model) { m.Name = "a/b" },
		"no source":        func(m *Model) { m.Source = "" },
		"short hash":       func(m *Model) { m.RootHash = m.RootHash[:62] },
		"upper hex":        func(m *Model) { m.ImageSHA256 = strings.ToUpper(m.ImageSHA256) },
		"salt not derived": func(m *Model) { m.Salt = strings.Repeat("00", 32) },
		"uuid upper":       func(m *Model) { m.UUID = strings.ToUpper(m.UUID) },
		"uuid bad":         func(m *Model) { m.UUID = "x" },
		"engine":           func(m *Model) { m.Engine = "tgi" },
		"ctx":              func(m *Model) { m.ContextSize = 0 },
		"size":             func(m *Model) { m.ImageSize = 4097 },
		"empty arg":        func(m *Model) { m.EngineArgs = []string{""} },
	} {
		m := good
		mut(&m)
		if err := (&Catalog{Version: 1, Models: []Model{m}}).Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := (&Catalog{Version: 1, Models: []Model{good, good}}).Validate(); err == nil {
		t.Error("duplicate names accepted")
	}
}

func TestParseStrict(t *testing.T) {
	for _, in := range []string{
		`{"version":2,"models":[]}`,
		`{"version":1,"models":[],"extra":1}`,
		`{"version":1,"models":[]} {}`,
		`{"version":1,"models":[{"name":"x","bogus":1}]}`,
		`[]`,
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: accepted", in)
		}
	}
	if _, err := Parse([]byte(`{"version":1,"models":[]}`)); err != nil {
		t.Fatal(err)
	}
}
