package gguf

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/small.gguf")

// small is a model small enough to keep as a golden file and fuzz seed.
func small() Params {
	return Params{Name: "small", Seed: 7, Layers: 1, Dim: 8, Heads: 2, FF: 8, Context: 64, Cycle: true}
}

func generate(t testing.TB, p Params) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := Generate(&b, p)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(b.Len()) {
		t.Fatalf("Generate returned %d, wrote %d bytes", n, b.Len())
	}
	return b.Bytes()
}

func TestGeneratePinned(t *testing.T) {
	noCycle := Tiny()
	noCycle.Cycle = false
	for _, tc := range []struct {
		name   string
		p      Params
		size   int
		sha256 string
	}{
		{"tiny", Tiny(), 469472, TinySHA256},
		{"tiny-random", noCycle, 469472, "4de5a4481a8c37f8371ae4865458e668b96b9ccddc4f92519209e47a88da355e"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := generate(t, tc.p), generate(t, tc.p)
			if !bytes.Equal(a, b) {
				t.Fatal("two runs differ")
			}
			sum := sha256.Sum256(a)
			if len(a) != tc.size || hex.EncodeToString(sum[:]) != tc.sha256 {
				t.Errorf("got %d bytes, sha256 %x; want %d bytes, %s (bump GeneratorVersion if the change is intended)",
					len(a), sum, tc.size, tc.sha256)
			}
		})
	}
	if got := ParamCount(Tiny()); got != 115392 {
		t.Errorf("ParamCount(Tiny()) = %d, want 115392", got)
	}
}

func TestGenerateGoldenFile(t *testing.T) {
	got := generate(t, small())
	path := filepath.Join("testdata", "small.gguf")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test -update if intended)", path)
	}
}

func TestParseGenerated(t *testing.T) {
	b := generate(t, Tiny())
	f, err := Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || len(f.KVs) != 23 || len(f.Tensors) != 21 || f.Alignment != 32 {
		t.Fatalf("version %d, %d kvs, %d tensors, alignment %d; want 3, 23, 21, 32", f.Version, len(f.KVs), len(f.Tensors), f.Alignment)
	}
	want := map[string]any{
		"general.architecture":                   "llama",
		"general.name":                           "chrysalis-tiny",
		"llama.embedding_length":                 uint32(64),
		"llama.block_count":                      uint32(2),
		"llama.attention.head_count_kv":          uint32(4),
		"llama.attention.layer_norm_rms_epsilon": float32(1e-5),
		"tokenizer.ggml.add_bos_token":           true,
		"tokenizer.ggml.eos_token_id":            uint32(2),
	}
	for k, v := range want {
		if got, ok := f.Get(k); !ok || got != v {
			t.Errorf("%s = %v (%T), want %v (%T)", k, got, got, v, v)
		}
	}
	tok, _ := f.Get("tokenizer.ggml.tokens")
	arr, ok := tok.(Array)
	if !ok || arr.Type != TypeString || len(arr.Values) != VocabSize || arr.Values[3+0x41] != "<0x41>" {
		t.Fatalf("tokenizer.ggml.tokens = %T with %d values", tok, len(arr.Values))
	}
	// The tensors are back to back, each padded to 32, and end the file.
	var off uint64
	for _, ti := range f.Tensors {
		if ti.Offset != off || ti.Type != TypeF32 {
			t.Fatalf("tensor %s at %d type %d, want %d type 0", ti.Name, ti.Offset, ti.Type, off)
		}
		n, ok := ti.Size()
		if !ok {
			t.Fatalf("no size for %s", ti.Name)
		}
		off = alignUp(off+n, 32)
	}
	if end := uint64(f.DataOffset) + off; end != uint64(len(b)) {
		t.Errorf("data ends at %d, file is %d bytes", end, len(b))
	}
	last := f.Tensors[len(f.Tensors)-1]
	if last.Name != "output.weight" || len(last.Dims) != 2 || last.Dims[0] != 64 || last.Dims[1] != VocabSize {
		t.Errorf("last tensor %s %v, want output.weight [64 259]", last.Name, last.Dims)
	}
}

func TestCycle(t *testing.T) {
	next := Cycle(Tiny())
	b, seen := PrintableFirst, map[int]bool{}
	for range 95 {
		if seen[b] {
			t.Fatalf("byte %#x reached twice within 95 steps", b)
		}
		seen[b] = true
		b = next[b]
	}
	if b != PrintableFirst || len(seen) != 95 {
		t.Fatalf("not one cycle through the 95 printable bytes")
	}
	for c := range 256 {
		if (c < PrintableFirst || c > PrintableLast) != (next[c] < 0) {
			t.Errorf("next[%#x] = %d", c, next[c])
		}
	}
	s, err := CycleText(Tiny(), '>', 190)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 190 || s[:95] != s[95:] || s[94] != '>' || strings.Contains(s[:95], s[:1]+s[:1]) {
		t.Errorf("CycleText = %q", s)
	}
	if _, err := CycleText(Tiny(), '\n', 1); err == nil {
		t.Error("CycleText from a newline: no error")
	}
}

func TestGenerateRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Params)
		want string
	}{
		{"no name", func(p *Params) { p.Name = "" }, "Name"},
		{"layers", func(p *Params) { p.Layers = 0 }, "Layers"},
		{"heads", func(p *Params) { p.Heads = 3 }, "Heads"},
		{"odd head", func(p *Params) { p.Heads = 64 }, "Heads"},
		{"context", func(p *Params) { p.Context = 1 }, "Context"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Tiny()
			tc.edit(&p)
			_, err := Generate(&bytes.Buffer{}, p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// header builds a GGUF header by hand for the error cases.
type header struct{ bytes.Buffer }

func (h *header) u32(v uint32) *header {
	_ = binary.Write(h, binary.LittleEndian, v)
	return h
}

func (h *header) u64(v uint64) *header {
	_ = binary.Write(h, binary.LittleEndian, v)
	return h
}

func (h *header) str(s string) *header {
	h.u64(uint64(len(s)))
	h.WriteString(s)
	return h
}

func start(nt, nkv uint64) *header {
	h := &header{}
	return h.u32(Magic).u32(3).u64(nt).u64(nkv)
}

func TestParseErrors(t *testing.T) {
	valid := generate(t, small())
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "unexpected EOF"},
		{"truncated", valid[:1000], "unexpected EOF"},
		{"magic", append([]byte("GGUX"), valid[4:]...), "bad magic"},
		{"version", (&header{}).u32(Magic).u32(4).Bytes(), "version 4"},
		{"tensor count", start(1<<40, 0).Bytes(), "tensor count"},
		{"kv count", start(0, 1<<40).Bytes(), "metadata count"},
		{"long key", start(0, 1).u64(1 << 40).Bytes(), "string length"},
		{"empty key", start(0, 1).str("").Bytes(), "empty key"},
		{"duplicate key", start(0, 2).str("a").u32(4).u32(1).str("a").u32(4).u32(1).Bytes(), "duplicate key"},
		{"unknown type", start(0, 1).str("a").u32(99).Bytes(), "unknown value type 99"},
		{"bad bool", append(start(0, 1).str("a").u32(uint32(TypeBool)).Bytes(), 2), "bool value 2"},
		{"nested array", start(0, 1).str("a").u32(uint32(TypeArray)).u32(uint32(TypeArray)).u64(1).u32(4).Bytes(), "nested arrays"},
		{"long array", start(0, 1).str("a").u32(uint32(TypeArray)).u32(4).u64(1 << 40).Bytes(), "array length"},
		{"short array", start(0, 1).str("a").u32(uint32(TypeArray)).u32(4).u64(3).u32(1).Bytes(), "array element 1"},
		{"alignment", start(0, 1).str("general.alignment").u32(uint32(TypeUint32)).u32(3).Bytes(), "general.alignment 3"},
		{"dims", start(1, 0).str("t").u32(5).Bytes(), "5 dimensions"},
		{"zero dim", start(1, 0).str("t").u32(1).u64(0).Bytes(), "dimension 0"},
		{"overflow", start(1, 0).str("t").u32(2).u64(1 << 40).u64(1 << 40).Bytes(), "overflows"},
		{"block", start(1, 0).str("t").u32(1).u64(33).u32(2).u64(0).Bytes(), "not a multiple of type 2's block of 32"},
		{"offset", start(1, 0).str("t").u32(1).u64(4).u32(0).u64(3).Bytes(), "offset 3"},
		{"duplicate tensor", start(2, 0).str("t").u32(1).u64(4).u32(0).u64(0).str("t").u32(1).u64(4).u32(0).u64(32).Bytes(), "duplicate name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(bytes.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	// A header with only the counts is a valid (empty) file.
	f, err := Parse(bytes.NewReader(start(0, 0).Bytes()))
	if err != nil || f.DataOffset != 32 {
		t.Errorf("empty header: %v, %+v", err, f)
	}
}

func FuzzParse(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "small.gguf"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:200])
	f.Add(start(1, 1).str("general.alignment").u32(uint32(TypeUint32)).u32(64).str("t").u32(2).u64(2).u64(2).u32(0).u64(0).Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(bytes.NewReader(b))
		if err != nil {
			return
		}
		if h.DataOffset < 24 || uint64(h.DataOffset)%h.Alignment != 0 {
			t.Fatalf("DataOffset %d with alignment %d", h.DataOffset, h.Alignment)
		}
		for _, ti := range h.Tensors {
			if len(ti.Dims) < 1 || len(ti.Dims) > MaxDims || ti.Offset%h.Alignment != 0 {
				t.Fatalf("accepted tensor %+v", ti)
			}
		}
	})
}
