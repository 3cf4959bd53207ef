package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Magic is "GGUF" read as a little-endian uint32.
const Magic = 0x46554747

// ValueType is a GGUF metadata value type.
type ValueType uint32

// The GGUF v3 metadata value types.
const (
	TypeUint8 ValueType = iota
	TypeInt8
	TypeUint16
	TypeInt16
	TypeUint32
	TypeInt32
	TypeFloat32
	TypeBool
	TypeString
	TypeArray
	TypeUint64
	TypeInt64
	TypeFloat64
)

// TensorType is a ggml tensor type.
type TensorType uint32

// TypeF32 is the only tensor type the generator writes.
const TypeF32 TensorType = 0

// Limits of Parse: a header beyond them is refused rather than read.
const (
	MaxStringLen = 1 << 20 // bytes of one string (key, value, tensor name)
	MaxArrayLen  = 1 << 24 // elements of one metadata array
	MaxKVs       = 1 << 16 // metadata pairs
	MaxTensors   = 1 << 20 // tensor infos
	MaxDims      = 4       // dimensions of one tensor (GGML_MAX_DIMS)
)

// File is a parsed GGUF header: metadata and tensor infos. Tensor data is
// not read.
type File struct {
	Version uint32
	KVs     []KV
	Tensors []TensorInfo
	// Alignment is general.alignment, or 32 when absent.
	Alignment uint64
	// DataOffset is the file offset of the tensor data: the end of the
	// header rounded up to Alignment.
	DataOffset int64
}

// KV is one metadata pair. Value holds uint8, int8, uint16, int16,
// uint32, int32, float32, bool, string, uint64, int64, float64 or, for
// arrays, an Array.
type KV struct {
	Key   string
	Value any
}

// Array is a metadata array: its element type and the elements, each of
// the Go type KV.Value would have for that type.
type Array struct {
	Type   ValueType
	Values []any
}

// TensorInfo describes one tensor.
type TensorInfo struct {
	Name   string
	Dims   []uint64 // ne[0] (innermost) first
	Type   TensorType
	Offset uint64 // relative to File.DataOffset
}

// Get returns the value of key.
func (f *File) Get(key string) (any, bool) {
	for _, kv := range f.KVs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// Elements returns the number of elements of t.
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// typeSizes are the block size (elements) and block bytes of the ggml
// tensor types whose size Parse can check.
var typeSizes = map[TensorType][2]uint64{
	0: {1, 4}, 1: {1, 2}, 2: {32, 18}, 3: {32, 20}, 6: {32, 22}, 7: {32, 24},
	8: {32, 34}, 9: {32, 36}, 10: {256, 84}, 11: {256, 110}, 12: {256, 144},
	13: {256, 176}, 14: {256, 210}, 15: {256, 292}, 24: {1, 1}, 25: {1, 2},
	26: {1, 4}, 27: {1, 8}, 28: {1, 8}, 30: {1, 2},
}

// Size returns the data bytes of t, or false for a tensor type whose
// layout this package does not know.
func (t TensorInfo) Size() (uint64, bool) {
	s, ok := typeSizes[t.Type]
	if !ok {
		return 0, false
	}
	return t.Elements() / s[0] * s[1], true
}

// Parse reads a GGUF (version 2 or 3, little endian) header from r: the
// metadata and the tensor infos, with every count and length checked
// against the limits above and every tensor's dimensions, type block size
// and alignment checked. It reads nothing past the header, so r may be a
// multi-GiB model file.
func Parse(r io.Reader) (*File, error) {
	d := &dec{r: bufio.NewReaderSize(r, 1<<16)}
	f, err := d.file()
	if err != nil {
		return nil, fmt.Errorf("gguf: at byte %d: %w", d.n, err)
	}
	return f, nil
}

type dec struct {
	r   *bufio.Reader
	n   int64
	buf [8]byte
}

func (d *dec) read(n int) ([]byte, error) {
	if _, err := io.ReadFull(d.r, d.buf[:n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	d.n += int64(n)
	return d.buf[:n], nil
}

func (d *dec) u8() (uint8, error) {
	b, err := d.read(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (d *dec) u16() (uint16, error) {
	b, err := d.read(2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (d *dec) u32() (uint32, error) {
	b, err := d.read(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *dec) u64() (uint64, error) {
	b, err := d.read(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (d *dec) str() (string, error) {
	n, err := d.u64()
	if err != nil {
		return "", err
	}
	if n > MaxStringLen {
		return "", fmt.Errorf("string length %d exceeds %d", n, MaxStringLen)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(d.r, b); err != nil {
		return "", io.ErrUnexpectedEOF
	}
	d.n += int64(n)
	return string(b), nil
}

func (d *dec) file() (*File, error) {
	magic, err := d.u32()
	if err != nil {
		return nil, err
	}
	if magic != Magic {
		return nil, fmt.Errorf("bad magic %#08x, want %#08x (\"GGUF\")", magic, Magic)
	}
	f := &File{Alignment: Alignment}
	if f.Version, err = d.u32(); err != nil {
		return nil, err
	}
	if f.Version != 2 && f.Version != 3 {
		return nil, fmt.Errorf("unsupported GGUF version %d (want 2 or 3)", f.Version)
	}
	nt, err := d.u64()
	if err != nil {
		return nil, err
	}
	nkv, err := d.u64()
	if err != nil {
		return nil, err
	}
	if nt > MaxTensors {
		return nil, fmt.Errorf("tensor count %d exceeds %d", nt, MaxTensors)
	}
	if nkv > MaxKVs {
		return nil, fmt.Errorf("metadata count %d exceeds %d", nkv, MaxKVs)
	}
	seen := map[string]bool{}
	for i := range nkv {
		key, err := d.str()
		if err != nil {
			return nil, fmt.Errorf("metadata %d key: %w", i, err)
		}
		if key == "" {
			return nil, fmt.Errorf("metadata %d: empty key", i)
		}
		if seen[key] {
			return nil, fmt.Errorf("metadata %d: duplicate key %q", i, key)
		}
		seen[key] = true
		t, err := d.u32()
		if err != nil {
			return nil, fmt.Errorf("metadata %q type: %w", key, err)
		}
		v, err := d.value(ValueType(t), 0)
		if err != nil {
			return nil, fmt.Errorf("metadata %q: %w", key, err)
		}
		f.KVs = append(f.KVs, KV{key, v})
	}
	if v, ok := f.Get("general.alignment"); ok {
		a, ok := v.(uint32)
		if !ok || a == 0 || a&(a-1) != 0 {
			return nil, fmt.Errorf("general.alignment %v is not a power-of-two uint32", v)
		}
		f.Alignment = uint64(a)
	}
	names := map[string]bool{}
	for i := range nt {
		t, err := d.tensor()
		if err != nil {
			return nil, fmt.Errorf("tensor %d: %w", i, err)
		}
		if names[t.Name] {
			return nil, fmt.Errorf("tensor %d: duplicate name %q", i, t.Name)
		}
		names[t.Name] = true
		if t.Offset%f.Alignment != 0 {
			return nil, fmt.Errorf("tensor %q: offset %d is not a multiple of the alignment %d", t.Name, t.Offset, f.Alignment)
		}
		f.Tensors = append(f.Tensors, t)
	}
	f.DataOffset = int64(alignUp(uint64(d.n), f.Alignment))
	return f, nil
}

func (d *dec) tensor() (TensorInfo, error) {
	var t TensorInfo
	var err error
	if t.Name, err = d.str(); err != nil {
		return t, fmt.Errorf("name: %w", err)
	}
	nd, err := d.u32()
	if err != nil {
		return t, fmt.Errorf("%q dimensions: %w", t.Name, err)
	}
	if nd < 1 || nd > MaxDims {
		return t, fmt.Errorf("%q has %d dimensions (want 1..%d)", t.Name, nd, MaxDims)
	}
	elems := uint64(1)
	for range nd {
		n, err := d.u64()
		if err != nil {
			return t, fmt.Errorf("%q shape: %w", t.Name, err)
		}
		if n == 0 || n > math.MaxInt64/elems {
			return t, fmt.Errorf("%q: dimension %d is zero or overflows", t.Name, n)
		}
		elems *= n
		t.Dims = append(t.Dims, n)
	}
	typ, err := d.u32()
	if err != nil {
		return t, fmt.Errorf("%q type: %w", t.Name, err)
	}
	t.Type = TensorType(typ)
	if s, ok := typeSizes[t.Type]; ok && t.Dims[0]%s[0] != 0 {
		return t, fmt.Errorf("%q: row of %d elements is not a multiple of type %d's block of %d", t.Name, t.Dims[0], typ, s[0])
	}
	if t.Offset, err = d.u64(); err != nil {
		return t, fmt.Errorf("%q offset: %w", t.Name, err)
	}
	return t, nil
}

func (d *dec) value(t ValueType, depth int) (any, error) {
	switch t {
	case TypeUint8:
		return d.u8()
	case TypeInt8:
		v, err := d.u8()
		return int8(v), err
	case TypeUint16:
		return d.u16()
	case TypeInt16:
		v, err := d.u16()
		return int16(v), err
	case TypeUint32:
		return d.u32()
	case TypeInt32:
		v, err := d.u32()
		return int32(v), err
	case TypeFloat32:
		v, err := d.u32()
		return math.Float32frombits(v), err
	case TypeBool:
		v, err := d.u8()
		if err == nil && v > 1 {
			return nil, fmt.Errorf("bool value %d is neither 0 nor 1", v)
		}
		return v == 1, err
	case TypeString:
		return d.str()
	case TypeUint64:
		return d.u64()
	case TypeInt64:
		v, err := d.u64()
		return int64(v), err
	case TypeFloat64:
		v, err := d.u64()
		return math.Float64frombits(v), err
	case TypeArray:
		if depth > 0 {
			return nil, errors.New("nested arrays are not supported")
		}
		et, err := d.u32()
		if err != nil {
			return nil, err
		}
		n, err := d.u64()
		if err != nil {
			return nil, err
		}
		if n > MaxArrayLen {
			return nil, fmt.Errorf("array length %d exceeds %d", n, MaxArrayLen)
		}
		a := Array{Type: ValueType(et)}
		// Grow with the input actually read, never by the claimed length.
		for i := range n {
			v, err := d.value(ValueType(et), depth+1)
			if err != nil {
				return nil, fmt.Errorf("array element %d: %w", i, err)
			}
			a.Values = append(a.Values, v)
		}
		return a, nil
	}
	return nil, fmt.Errorf("unknown value type %d", t)
}
