package ollama

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/chrysalis-cc/chrysalis/models/gguf"
)

// TestModelName is the catalog name of the generated test model.
const TestModelName = "chrysalis-tiny"

// TestModelTemplate renders chat messages for the test model: one
// "<|role|>content" line per message, then "<|assistant|>". The prompt
// thus ends in the byte '>', after which the model's greedy output is
// gguf.CycleText(gguf.Tiny(), '>', n).
const TestModelTemplate = "{{ range .Messages }}<|{{ .Role }}|>{{ .Content }}\n{{ end }}<|assistant|>"

// TestModelContext is the test model's num_ctx.
const TestModelContext = 512

// TestModelParams are its PARAMETER values: a 512-token context, one
// thread (ggml's spin barriers starve on a busy host otherwise) and
// greedy sampling.
func TestModelParams() map[string]any {
	return map[string]any{"num_ctx": TestModelContext, "num_thread": 1, "temperature": 0}
}

// Model directory layout: the engine binary and the store, packed
// together by models/pack so the engine is measured with the model.
const (
	EngineFile = "engine/ollama"
	StoreDir   = "store"
)

// DirResult describes a model directory written by WriteTestModelDir.
type DirResult struct {
	GGUFSHA256   string // hex SHA-256 of the generated GGUF
	GGUFSize     int64
	EngineSHA256 string // hex SHA-256 of the engine binary copied in
	Store        *Result
}

// WriteTestModelDir writes the test model's directory to dir, which must
// not exist or be empty: engine/ollama (a copy of the engine binary at
// engine) and store/ (WriteStore of the GGUF generated from gguf.Tiny(),
// TestModelTemplate and TestModelParams). Every byte depends only on the
// generator and the engine binary.
func WriteTestModelDir(dir, engine string) (*DirResult, error) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("ollama: model directory %s is not empty", dir)
	} else if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("ollama: %w", err)
	}
	res := &DirResult{}
	var err error
	if res.EngineSHA256, err = copyFile(engine, filepath.Join(dir, EngineFile), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp("", "chrysalis-tiny-*.gguf")
	if err != nil {
		return nil, fmt.Errorf("ollama: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := gguf.Generate(io.MultiWriter(tmp, h), gguf.Tiny())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("ollama: %w", err)
	}
	res.GGUFSHA256, res.GGUFSize = hex.EncodeToString(h.Sum(nil)), n
	res.Store, err = WriteStore(filepath.Join(dir, StoreDir), Model{
		Name:     TestModelName,
		GGUF:     tmp.Name(),
		Template: TestModelTemplate,
		Params:   TestModelParams(),
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// copyFile copies src to dst (creating its directory) and returns the hex
// SHA-256 of the bytes copied.
func copyFile(src, dst string, mode os.FileMode) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("ollama: engine: %w", err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("ollama: %w", err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return "", fmt.Errorf("ollama: %w", err)
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("ollama: copying %s to %s: %w", src, dst, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
