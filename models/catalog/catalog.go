package catalog

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"

	"github.com/chrysalis-cc/chrysalis/models/verity"
)

// Version is the catalog format version this package reads.
const Version = 1

// Engines are the known engine names.
var Engines = []string{"llama.cpp", "ollama", "vllm"}

//go:embed catalog.json
var embedded []byte

// Catalog is a decoded catalog file.
type Catalog struct {
	Version int     `json:"version"`
	Models  []Model `json:"models"`
}

// Model is one pinned model.
type Model struct {
	Name string `json:"name"` // lowercase [a-z0-9][a-z0-9._:-]*, at most 128 bytes
	// Source is where the model came from (e.g. "hf:Qwen/Qwen3-0.6B-GGUF"
	// or "generated:testmodel") and Revision its pinned revision (a commit).
	Source   string `json:"source"`
	Revision string `json:"revision"`
	// ArchiveSHA256 is the hex SHA-256 of the archive (or the canonical
	// tar of the download) the image was packed from.
	ArchiveSHA256 string   `json:"archive_sha256"`
	ImageSHA256   string   `json:"image_sha256"`
	RootHash      string   `json:"root_hash"` // dm-verity root hash (sha256)
	Salt          string   `json:"salt"`      // dm-verity salt, hex
	UUID          string   `json:"uuid"`      // dm-verity superblock UUID
	ImageSize     int64    `json:"image_size"`
	Engine        string   `json:"engine"`
	EngineArgs    []string `json:"engine_args,omitempty"`
	ContextSize   int      `json:"context_size"`
	Test          bool     `json:"test,omitempty"`
}

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._:-]{0,127}$`)
	hex64  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Parse decodes and validates a catalog strictly.
func Parse(b []byte) (*Catalog, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Catalog
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("catalog: trailing data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Default returns the embedded catalog.
func Default() (*Catalog, error) { return Parse(embedded) }

// Validate checks the version and every entry, and that names are unique.
func (c *Catalog) Validate() error {
	if c.Version != Version {
		return fmt.Errorf("catalog: version %d, want %d", c.Version, Version)
	}
	seen := map[string]bool{}
	for i := range c.Models {
		m := &c.Models[i]
		if err := m.Validate(); err != nil {
			return fmt.Errorf("catalog: model %d (%q): %w", i, m.Name, err)
		}
		if seen[m.Name] {
			return fmt.Errorf("catalog: duplicate model name %q", m.Name)
		}
		seen[m.Name] = true
	}
	return nil
}

// Validate checks one entry.
func (m *Model) Validate() error {
	if !nameRE.MatchString(m.Name) {
		return fmt.Errorf("bad name %q (want [a-z0-9][a-z0-9._:-]*, at most 128 bytes)", m.Name)
	}
	if m.Source == "" || m.Revision == "" {
		return errors.New("source and revision are required")
	}
	for _, f := range []struct{ name, v string }{
		{"archive_sha256", m.ArchiveSHA256}, {"image_sha256", m.ImageSHA256},
		{"root_hash", m.RootHash}, {"salt", m.Salt},
	} {
		if !hex64.MatchString(f.v) {
			return fmt.Errorf("%s %q is not 64 lowercase hex digits", f.name, f.v)
		}
	}
	u, err := verity.ParseUUID(m.UUID)
	if err != nil {
		return fmt.Errorf("uuid: %w", err)
	}
	if m.UUID != verity.FormatUUID(u) {
		return fmt.Errorf("uuid %q is not in canonical lowercase form", m.UUID)
	}
	seed := []byte(m.ImageSHA256)
	if m.Salt != hex.EncodeToString(verity.DeriveSalt(seed)) || u != verity.DeriveUUID(seed) {
		return errors.New("salt and uuid are not derived from image_sha256 (models/pack)")
	}
	if m.ImageSize <= 0 || m.ImageSize%verity.DefaultBlockSize != 0 {
		return fmt.Errorf("image_size %d is not a positive multiple of %d", m.ImageSize, verity.DefaultBlockSize)
	}
	if !slices.Contains(Engines, m.Engine) {
		return fmt.Errorf("unknown engine %q (want one of %v)", m.Engine, Engines)
	}
	for _, a := range m.EngineArgs {
		if a == "" {
			return errors.New("empty engine argument")
		}
	}
	if m.ContextSize <= 0 || m.ContextSize > 1<<24 {
		return fmt.Errorf("context_size %d out of range", m.ContextSize)
	}
	return nil
}

// Lookup returns the model called name.
func (c *Catalog) Lookup(name string) (*Model, bool) {
	for i := range c.Models {
		if c.Models[i].Name == name {
			return &c.Models[i], true
		}
	}
	return nil, false
}
