package ollama

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
	"github.com/chrysalis-cc/chrysalis/models/gguf"
)

// Media types of the manifest, its config and its layers.
const (
	MediaManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaConfig   = "application/vnd.docker.container.image.v1+json"
	MediaModel    = "application/vnd.ollama.image.model"
	MediaTemplate = "application/vnd.ollama.image.template"
	MediaParams   = "application/vnd.ollama.image.params"
)

// Registry and Namespace are where ollama files a model created locally
// under a bare name: manifests/registry.ollama.ai/library/NAME/TAG.
const (
	Registry  = "registry.ollama.ai"
	Namespace = "library"
)

// Architecture is the config's "architecture" field. ollama writes its own
// runtime.GOARCH there; the store is written for the amd64 engine on any
// host, so it is fixed.
const Architecture = "amd64"

// Model is what a store holds for one model: the equivalent of a
// Modelfile with FROM, TEMPLATE and PARAMETER lines.
type Model struct {
	Name string // [a-z0-9][a-z0-9._-]*; the manifest is NAME/Tag
	Tag  string // "" means "latest"
	GGUF string // path of the GGUF weights, copied into the store unchanged
	// Template is the Go text/template that renders the chat messages
	// into the prompt (TEMPLATE); empty means no template layer.
	Template string
	// Params are the PARAMETER values, e.g. num_ctx, num_thread,
	// temperature; nil or empty means no params layer. They are written
	// as JSON with sorted keys.
	Params map[string]any
}

// Blob is one content-addressed file of the store.
type Blob struct {
	MediaType string
	Digest    string // "sha256:<hex>"
	Size      int64
}

// Result is what WriteStore wrote.
type Result struct {
	Manifest       string // path of the manifest file
	ManifestSHA256 string // hex SHA-256 of the manifest bytes
	Config         Blob
	Layers         []Blob // model, then template, then params
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,79}$`)

// manifest and config mirror the JSON ollama reads; field order is the
// order ollama writes. Layers carry no "from" (ollama records the
// absolute blob path there when it creates a model; the server does not
// need it, and it would make the store depend on where it was written).
type manifest struct {
	SchemaVersion int     `json:"schemaVersion"`
	MediaType     string  `json:"mediaType"`
	Config        layer   `json:"config"`
	Layers        []layer `json:"layers"`
}

type layer struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type config struct {
	ModelFormat   string   `json:"model_format"`
	ModelFamily   string   `json:"model_family"`
	ModelFamilies []string `json:"model_families"`
	ModelType     string   `json:"model_type"`
	FileType      string   `json:"file_type"`
	Architecture  string   `json:"architecture"`
	OS            string   `json:"os"`
	RootFS        rootFS   `json:"rootfs"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

// fileTypes names general.file_type values as ollama shows them.
var fileTypes = map[uint32]string{0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 15: "Q4_K_M", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}

// WriteStore writes m into the ollama model store rooted at dir
// (OLLAMA_MODELS): blobs/sha256-<hex> for the GGUF, the template, the
// params and the config, and manifests/registry.ollama.ai/library/NAME/TAG.
// Every file depends only on m's content, never on dir, the time or the
// host. Existing blobs with the right content are kept; files are written
// atomically.
func WriteStore(dir string, m Model) (*Result, error) {
	if !nameRE.MatchString(m.Name) {
		return nil, fmt.Errorf("ollama: model name %q is not [a-z0-9][a-z0-9._-]* (at most 80 bytes)", m.Name)
	}
	tag := m.Tag
	if tag == "" {
		tag = "latest"
	}
	if !nameRE.MatchString(tag) {
		return nil, fmt.Errorf("ollama: tag %q is not [a-z0-9][a-z0-9._-]*", tag)
	}
	hdr, err := readHeader(m.GGUF)
	if err != nil {
		return nil, err
	}
	blobs := filepath.Join(dir, "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return nil, fmt.Errorf("ollama: %w", err)
	}
	res := &Result{}
	model, err := copyBlob(blobs, m.GGUF)
	if err != nil {
		return nil, err
	}
	model.MediaType = MediaModel
	res.Layers = append(res.Layers, model)
	if m.Template != "" {
		b, err := putBlob(blobs, MediaTemplate, []byte(m.Template))
		if err != nil {
			return nil, err
		}
		res.Layers = append(res.Layers, b)
	}
	if len(m.Params) > 0 {
		pj, err := json.Marshal(m.Params) // map keys are sorted
		if err != nil {
			return nil, fmt.Errorf("ollama: params of %s: %w", m.Name, err)
		}
		b, err := putBlob(blobs, MediaParams, pj)
		if err != nil {
			return nil, err
		}
		res.Layers = append(res.Layers, b)
	}
	cfg := config{
		ModelFormat:  "gguf",
		ModelType:    humanNumber(hdr.params),
		FileType:     hdr.fileType,
		Architecture: Architecture,
		OS:           "linux",
		RootFS:       rootFS{Type: "layers"},
	}
	cfg.ModelFamily, cfg.ModelFamilies = hdr.arch, []string{hdr.arch}
	for _, l := range res.Layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest)
	}
	cj, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("ollama: config: %w", err)
	}
	if res.Config, err = putBlob(blobs, MediaConfig, cj); err != nil {
		return nil, err
	}
	man := manifest{SchemaVersion: 2, MediaType: MediaManifest, Config: layer(res.Config)}
	for _, l := range res.Layers {
		man.Layers = append(man.Layers, layer(l))
	}
	mj, err := json.Marshal(man)
	if err != nil {
		return nil, fmt.Errorf("ollama: manifest: %w", err)
	}
	res.Manifest = filepath.Join(dir, "manifests", Registry, Namespace, m.Name, tag)
	if err := os.MkdirAll(filepath.Dir(res.Manifest), 0o755); err != nil {
		return nil, fmt.Errorf("ollama: %w", err)
	}
	if err := atomicfile.WriteFile(res.Manifest, mj, 0o644); err != nil {
		return nil, fmt.Errorf("ollama: manifest of %s: %w", m.Name, err)
	}
	sum := sha256.Sum256(mj)
	res.ManifestSHA256 = hex.EncodeToString(sum[:])
	return res, nil
}

type header struct {
	arch, fileType string
	params         uint64
}

// readHeader parses the GGUF header of path for the config's fields.
func readHeader(path string) (*header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ollama: model weights: %w", err)
	}
	defer f.Close()
	h, err := gguf.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("ollama: %s: %w", path, err)
	}
	arch, _ := h.Get("general.architecture")
	a, ok := arch.(string)
	if !ok || a == "" {
		return nil, fmt.Errorf("ollama: %s: no general.architecture string", path)
	}
	out := &header{arch: a, fileType: "unknown"}
	if ft, ok := h.Get("general.file_type"); ok {
		if v, ok := ft.(uint32); ok && fileTypes[v] != "" {
			out.fileType = fileTypes[v]
		}
	}
	for _, t := range h.Tensors {
		out.params += t.Elements()
	}
	return out, nil
}

// humanNumber formats a parameter count the way ollama shows it.
func humanNumber(n uint64) string {
	trim := func(v float64, unit string, prec int) string {
		if v == float64(uint64(v)) {
			return strconv.FormatUint(uint64(v), 10) + unit
		}
		return strconv.FormatFloat(v, 'f', prec, 64) + unit
	}
	switch {
	case n >= 1e9:
		return trim(float64(n)/1e9, "B", 1)
	case n >= 1e6:
		return trim(float64(n)/1e6, "M", 2)
	case n >= 1e3:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 0, 64) + "K"
	}
	return strconv.FormatUint(n, 10)
}

func blobPath(blobs, hexsum string) string { return filepath.Join(blobs, "sha256-"+hexsum) }

// putBlob stores b under its digest.
func putBlob(blobs, mediaType string, b []byte) (Blob, error) {
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	out := Blob{MediaType: mediaType, Digest: "sha256:" + h, Size: int64(len(b))}
	if have, err := os.ReadFile(blobPath(blobs, h)); err == nil && bytes.Equal(have, b) {
		return out, nil
	}
	if err := atomicfile.WriteFile(blobPath(blobs, h), b, 0o644); err != nil {
		return out, fmt.Errorf("ollama: blob %s: %w", mediaType, err)
	}
	return out, nil
}

// copyBlob streams the file src into the store, hashing it on the way,
// and renames it to its digest.
func copyBlob(blobs, src string) (Blob, error) {
	in, err := os.Open(src)
	if err != nil {
		return Blob{}, fmt.Errorf("ollama: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(blobs, ".incoming-")
	if err != nil {
		return Blob{}, fmt.Errorf("ollama: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), in)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Blob{}, fmt.Errorf("ollama: copying %s into the store: %w", src, err)
	}
	hexsum := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp.Name(), blobPath(blobs, hexsum)); err != nil {
		return Blob{}, fmt.Errorf("ollama: %w", err)
	}
	if n == 0 {
		return Blob{}, errors.New("ollama: " + src + " is empty")
	}
	return Blob{Digest: "sha256:" + hexsum, Size: n}, nil
}
