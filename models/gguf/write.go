package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// GeneratorVersion names the generator's output: it changes whenever the
// bytes Generate writes for the same Params change. The catalog records it
// as the test model's revision.
const GeneratorVersion = "tiny-gguf-v1"

// Alignment is the tensor data alignment the generator writes
// (general.alignment, GGUF's default).
const Alignment = 32

// Params are the parameters of a generated llama-architecture model.
type Params struct {
	Name    string // general.name
	Seed    uint64 // splitmix64 seed of every random weight
	Layers  int    // llama.block_count
	Dim     int    // llama.embedding_length
	Heads   int    // llama.attention.head_count (= head_count_kv)
	FF      int    // llama.feed_forward_length
	Context int    // llama.context_length
	// Cycle makes greedy decoding emit a fixed printable byte cycle (see
	// the package documentation); without it the weights are plain
	// random.
	Cycle bool
}

// Tiny returns the parameters of the catalog's test model.
func Tiny() Params {
	return Params{Name: "chrysalis-tiny", Seed: 1, Layers: 2, Dim: 64, Heads: 4, FF: 128, Context: 4096, Cycle: true}
}

// Vocab sizes: <unk>, <s>, </s>, then the 256 byte tokens <0x00>..<0xFF>.
const (
	VocabSize    = 3 + 256
	byteTokenOff = 3
	// PrintableFirst..PrintableLast are the bytes the cycle runs over.
	PrintableFirst = 0x20
	PrintableLast  = 0x7e
)

// Token types (llama.cpp's llama_token_type).
const (
	tokUnknown = 2
	tokControl = 3
	tokByte    = 6
)

func (p Params) validate() error {
	switch {
	case p.Name == "":
		return errors.New("gguf: Params.Name is empty")
	case p.Layers < 1 || p.Layers > 64:
		return fmt.Errorf("gguf: Params.Layers %d out of range 1..64", p.Layers)
	case p.Dim < 8 || p.Dim > 4096:
		return fmt.Errorf("gguf: Params.Dim %d out of range 8..4096", p.Dim)
	case p.Heads < 1 || p.Dim%p.Heads != 0 || (p.Dim/p.Heads)%2 != 0:
		return fmt.Errorf("gguf: Params.Heads %d does not split Dim %d into even head sizes", p.Heads, p.Dim)
	case p.FF < 1 || p.FF > 16384:
		return fmt.Errorf("gguf: Params.FF %d out of range 1..16384", p.FF)
	case p.Context < 16 || p.Context > 1<<20:
		return fmt.Errorf("gguf: Params.Context %d out of range 16..1048576", p.Context)
	}
	return nil
}

// rng is splitmix64.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// uniform returns a float32 in [-1, 1) from the top 24 bits.
func (r *rng) uniform() float32 {
	return float32(r.next()>>40)/float32(1<<23) - 1
}

// intn returns an integer in [0, n) (n small; the modulo bias is
// irrelevant for a test model and the result is deterministic).
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// Cycle returns the successor map of the greedy cycle of p's weights:
// next[b] is the byte the model emits after byte b, for every printable
// byte b (0x20..0x7e), and -1 for the others. It is a single cycle through
// all 95 printable bytes, shuffled with p.Seed.
func Cycle(p Params) [256]int {
	var next [256]int
	for i := range next {
		next[i] = -1
	}
	order := cycleOrder(p.Seed)
	for i, b := range order {
		next[b] = int(order[(i+1)%len(order)])
	}
	return next
}

// cycleOrder shuffles the printable bytes (Fisher-Yates) with its own
// generator, so the cycle does not depend on the other weights.
func cycleOrder(seed uint64) []byte {
	order := make([]byte, 0, PrintableLast-PrintableFirst+1)
	for b := PrintableFirst; b <= PrintableLast; b++ {
		order = append(order, byte(b))
	}
	r := &rng{s: seed ^ 0x6379636c65} // "cycle"
	for i := len(order) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		order[i], order[j] = order[j], order[i]
	}
	return order
}

// CycleText returns the n bytes greedy decoding emits after the byte
// last (which must be printable): next(last), next(next(last)), ...
func CycleText(p Params, last byte, n int) (string, error) {
	next := Cycle(p)
	if next[last] < 0 {
		return "", fmt.Errorf("gguf: byte %#02x is not printable, its successor is not fixed", last)
	}
	out := make([]byte, 0, n)
	b := int(last)
	for range n {
		b = next[b]
		out = append(out, byte(b))
	}
	return string(out), nil
}

type kv struct {
	key string
	val any // uint32, float32, bool, string, []string, []float32, []int32
}

type tensor struct {
	name string
	ne   []uint64
	data []float32
}

// model builds the metadata and tensors of p.
func model(p Params) ([]kv, []tensor) {
	tokens := make([]string, VocabSize)
	scores := make([]float32, VocabSize)
	types := make([]int32, VocabSize)
	tokens[0], types[0] = "<unk>", tokUnknown
	tokens[1], types[1] = "<s>", tokControl
	tokens[2], types[2] = "</s>", tokControl
	for b := range 256 {
		tokens[byteTokenOff+b] = fmt.Sprintf("<0x%02X>", b)
		types[byteTokenOff+b] = tokByte
	}
	headDim := p.Dim / p.Heads
	kvs := []kv{
		{"general.architecture", "llama"},
		{"general.name", p.Name},
		{"general.file_type", uint32(0)}, // all F32
		{"general.alignment", uint32(Alignment)},
		{"llama.context_length", uint32(p.Context)},
		{"llama.embedding_length", uint32(p.Dim)},
		{"llama.block_count", uint32(p.Layers)},
		{"llama.feed_forward_length", uint32(p.FF)},
		{"llama.attention.head_count", uint32(p.Heads)},
		{"llama.attention.head_count_kv", uint32(p.Heads)},
		{"llama.rope.dimension_count", uint32(headDim)},
		{"llama.rope.freq_base", float32(10000)},
		{"llama.attention.layer_norm_rms_epsilon", float32(1e-5)},
		{"llama.vocab_size", uint32(VocabSize)},
		{"tokenizer.ggml.model", "llama"},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.scores", scores},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.unknown_token_id", uint32(0)},
		{"tokenizer.ggml.bos_token_id", uint32(1)},
		{"tokenizer.ggml.eos_token_id", uint32(2)},
		{"tokenizer.ggml.add_bos_token", true},
		{"tokenizer.ggml.add_eos_token", false},
	}

	r := &rng{s: p.Seed}
	d, ff := p.Dim, p.FF
	random := func(n int, scale float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = r.uniform() * scale
		}
		return v
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	// A matrix with ne = [in, out] is stored row by row, one row of `in`
	// values per output channel.
	readScale := float32(1 / math.Sqrt(float64(d)))
	writer := func(in, out int) []float32 {
		w := random(in*out, 0.02)
		if p.Cycle {
			clear(w[:in]) // output channel 0 (the cycle's bias channel) is never written
		}
		return w
	}

	embd := random(VocabSize*d, 1)
	if p.Cycle {
		for t := range VocabSize {
			embd[t*d] = 8 // channel 0: constant, positive after RMSNorm
		}
	}
	ts := []tensor{{"token_embd.weight", []uint64{uint64(d), VocabSize}, embd}}
	for l := range p.Layers {
		pre := fmt.Sprintf("blk.%d.", l)
		ts = append(ts,
			tensor{pre + "attn_norm.weight", []uint64{uint64(d)}, ones(d)},
			tensor{pre + "attn_q.weight", []uint64{uint64(d), uint64(d)}, random(d*d, readScale)},
			tensor{pre + "attn_k.weight", []uint64{uint64(d), uint64(d)}, random(d*d, readScale)},
			tensor{pre + "attn_v.weight", []uint64{uint64(d), uint64(d)}, random(d*d, readScale)},
			tensor{pre + "attn_output.weight", []uint64{uint64(d), uint64(d)}, writer(d, d)},
			tensor{pre + "ffn_norm.weight", []uint64{uint64(d)}, ones(d)},
			tensor{pre + "ffn_gate.weight", []uint64{uint64(d), uint64(ff)}, random(d*ff, readScale)},
			tensor{pre + "ffn_up.weight", []uint64{uint64(d), uint64(ff)}, random(d*ff, readScale)},
			tensor{pre + "ffn_down.weight", []uint64{uint64(ff), uint64(d)}, writer(ff, d)},
		)
	}
	out := random(VocabSize*d, 1)
	if p.Cycle {
		next := Cycle(p)
		for t := range VocabSize {
			clear(out[t*d : (t+1)*d])
			out[t*d] = -2 // non-printable tokens lose against every printable one
		}
		for b, nb := range next {
			if nb < 0 {
				continue
			}
			// The logit of next(b) is largest when the hidden state is
			// (close to) b's embedding.
			row := out[(byteTokenOff+nb)*d : (byteTokenOff+nb+1)*d]
			copy(row, embd[(byteTokenOff+b)*d:(byteTokenOff+b+1)*d])
			row[0] = 2
		}
	}
	ts = append(ts,
		tensor{"output_norm.weight", []uint64{uint64(d)}, ones(d)},
		tensor{"output.weight", []uint64{uint64(d), VocabSize}, out},
	)
	return kvs, ts
}

// ParamCount returns the number of weights of p.
func ParamCount(p Params) int64 {
	_, ts := model(p)
	var n int64
	for _, t := range ts {
		n += int64(len(t.data))
	}
	return n
}

// Generate writes the GGUF v3 file of p to w and returns the bytes
// written. The output depends only on p.
func Generate(w io.Writer, p Params) (int64, error) {
	if err := p.validate(); err != nil {
		return 0, err
	}
	kvs, ts := model(p)
	cw := &countWriter{w: bufio.NewWriterSize(w, 1<<16)}
	e := &enc{w: cw}
	e.u32(Magic)
	e.u32(3)
	e.u64(uint64(len(ts)))
	e.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		e.str(kv.key)
		e.value(kv.val)
	}
	var off uint64
	for _, t := range ts {
		e.str(t.name)
		e.u32(uint32(len(t.ne)))
		for _, n := range t.ne {
			e.u64(n)
		}
		e.u32(uint32(TypeF32))
		e.u64(off)
		off = alignUp(off+uint64(len(t.data))*4, Alignment)
	}
	e.pad()
	for _, t := range ts {
		for _, f := range t.data {
			e.u32(math.Float32bits(f))
		}
		e.pad()
	}
	if e.err != nil {
		return cw.n, fmt.Errorf("gguf: writing %s: %w", p.Name, e.err)
	}
	if err := cw.w.(*bufio.Writer).Flush(); err != nil {
		return cw.n, fmt.Errorf("gguf: writing %s: %w", p.Name, err)
	}
	return cw.n, nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

type enc struct {
	w   *countWriter
	err error
	buf [8]byte
}

func (e *enc) write(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *enc) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:4], v)
	e.write(e.buf[:4])
}

func (e *enc) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:8], v)
	e.write(e.buf[:8])
}

func (e *enc) str(s string) {
	e.u64(uint64(len(s)))
	e.write([]byte(s))
}

func (e *enc) pad() {
	if n := alignUp(uint64(e.w.n), Alignment) - uint64(e.w.n); n > 0 {
		e.write(make([]byte, n))
	}
}

func (e *enc) value(v any) {
	switch v := v.(type) {
	case uint32:
		e.u32(uint32(TypeUint32))
		e.u32(v)
	case float32:
		e.u32(uint32(TypeFloat32))
		e.u32(math.Float32bits(v))
	case bool:
		e.u32(uint32(TypeBool))
		if v {
			e.write([]byte{1})
		} else {
			e.write([]byte{0})
		}
	case string:
		e.u32(uint32(TypeString))
		e.str(v)
	case []string:
		e.u32(uint32(TypeArray))
		e.u32(uint32(TypeString))
		e.u64(uint64(len(v)))
		for _, s := range v {
			e.str(s)
		}
	case []float32:
		e.u32(uint32(TypeArray))
		e.u32(uint32(TypeFloat32))
		e.u64(uint64(len(v)))
		for _, f := range v {
			e.u32(math.Float32bits(f))
		}
	case []int32:
		e.u32(uint32(TypeArray))
		e.u32(uint32(TypeInt32))
		e.u64(uint64(len(v)))
		for _, i := range v {
			e.u32(uint32(i))
		}
	default:
		e.err = fmt.Errorf("unsupported metadata value type %T", v)
	}
}

// TinySHA256 is the SHA-256 of Generate(Tiny()) at GeneratorVersion.
const TinySHA256 = "c62ab4152d651e715401284f90cf0992dbfb6810e4c523859a9b393a8632f401"
