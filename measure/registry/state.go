package registry

import (
	"bytes"
	"fmt"
	"math/bits"
	"slices"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// MaxEntries bounds each dictionary ParseData and ParseEntries accept.
const MaxEntries = 1 << 16

// dataBits is the storage root's size: addr_std (2+1+8+256) ‖ seqno:uint32
// ‖ two Maybe ^Cell bits.
const dataBits = 267 + 32 + 1 + 1

// Entry is the value stored for a listed hash: block time of the add and
// the seqno the add produced.
type Entry struct {
	AddedAt    uint32
	AddedSeqno uint32
}

// State is a decoded registry account data cell.
type State struct {
	Governance *address.Address
	Seqno      uint32
	Images     map[[32]byte]Entry
	Models     map[[32]byte]Entry
}

// ImageAllowed reports whether h is a listed image hash.
func (s *State) ImageAllowed(h [32]byte) bool {
	_, ok := s.Images[h]
	return ok
}

// ModelAllowed reports whether h is a listed model hash.
func (s *State) ModelAllowed(h [32]byte) bool {
	_, ok := s.Models[h]
	return ok
}

// ImageHashes returns the listed image hashes in ascending order.
func (s *State) ImageHashes() [][32]byte { return sortedKeys(s.Images) }

// ModelHashes returns the listed model hashes in ascending order.
func (s *State) ModelHashes() [][32]byte { return sortedKeys(s.Models) }

func sortedKeys(m map[[32]byte]Entry) [][32]byte {
	out := make([][32]byte, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// ParseDataBOC decodes a bag of cells holding exactly one root, the
// registry's account data, with ParseData.
func ParseDataBOC(boc []byte) (*State, error) {
	roots, err := cell.FromBOCMultiRoot(boc)
	if err != nil {
		return nil, fmt.Errorf("registry data BOC (%d bytes): %w", len(boc), err)
	}
	if len(roots) != 1 {
		return nil, fmt.Errorf("registry data BOC: %d roots, want 1", len(roots))
	}
	return ParseData(roots[0])
}

// ParseData decodes the registry's account data: governance (addr_std,
// no anycast), seqno:uint32, images and models (each HashmapE 256 Entry).
// It is strict: ordinary cells only, no bits or references beyond the
// layout, every value exactly 64 bits, at most MaxEntries per dictionary.
func ParseData(data *cell.Cell) (*State, error) {
	if data == nil {
		return nil, fmt.Errorf("registry data: %w", errNilCell)
	}
	if data.IsSpecial() {
		return nil, fmt.Errorf("registry data: exotic cell")
	}
	if data.BitsSize() != dataBits {
		return nil, fmt.Errorf("registry data: %d bits, want %d", data.BitsSize(), dataBits)
	}
	s, err := data.BeginParse()
	if err != nil {
		return nil, fmt.Errorf("registry data: %w", err)
	}
	gov, err := loadStdAddr(s)
	if err != nil {
		return nil, fmt.Errorf("registry data: governance: %w", err)
	}
	seqno := uint32(s.MustLoadUInt(32))
	hasImages := s.MustLoadBoolBit()
	hasModels := s.MustLoadBoolBit()
	wantRefs := 0
	if hasImages {
		wantRefs++
	}
	if hasModels {
		wantRefs++
	}
	if int(data.RefsNum()) != wantRefs {
		return nil, fmt.Errorf("registry data: %d references, want %d", data.RefsNum(), wantRefs)
	}
	st := &State{Governance: gov, Seqno: seqno}
	ref := 0
	for _, d := range []struct {
		name    string
		present bool
		dst     *map[[32]byte]Entry
	}{{"images", hasImages, &st.Images}, {"models", hasModels, &st.Models}} {
		var root *cell.Cell
		if d.present {
			root, err = data.PeekRef(ref)
			if err != nil {
				return nil, fmt.Errorf("registry data: %s: %w", d.name, err)
			}
			ref++
		}
		m, err := ParseEntries(root)
		if err != nil {
			return nil, fmt.Errorf("registry data: %s: %w", d.name, err)
		}
		*d.dst = m
	}
	return st, nil
}

// loadStdAddr reads addr_std$10 anycast:(Maybe Anycast)=0 workchain_id:int8
// address:bits256 and requires workchain 0 or -1.
func loadStdAddr(s *cell.Slice) (*address.Address, error) {
	if s.BitsLeft() < 267 {
		return nil, fmt.Errorf("%d bits left, addr_std needs 267", s.BitsLeft())
	}
	tag := s.MustLoadUInt(2)
	if tag != 0b10 {
		return nil, fmt.Errorf("address tag %02b, want 10 (addr_std)", tag)
	}
	if s.MustLoadBoolBit() {
		return nil, fmt.Errorf("anycast address")
	}
	wc := int8(s.MustLoadUInt(8))
	if wc != 0 && wc != -1 {
		return nil, fmt.Errorf("workchain %d is neither 0 nor -1", wc)
	}
	h := s.MustLoadSlice(256)
	return address.NewAddress(0, byte(wc), h), nil
}

// ParseEntries decodes a HashmapE 256 Entry root, the dictionary the
// get_images and get_models get-methods return; nil is the empty
// dictionary. Same strictness as ParseData.
func ParseEntries(root *cell.Cell) (map[[32]byte]Entry, error) {
	out := map[[32]byte]Entry{}
	if root == nil {
		return out, nil
	}
	var key [32]byte
	if err := walk(root, 256, &key, out); err != nil {
		return nil, err
	}
	return out, nil
}

// walk reads one Hashmap node with m key bits left (the first 256-m bits
// of key are already set) into out; recursion depth is bounded by the key
// size.
func walk(c *cell.Cell, m uint, key *[32]byte, out map[[32]byte]Entry) error {
	if c.IsSpecial() {
		return fmt.Errorf("dictionary node at key bit %d: exotic cell", 256-m)
	}
	s, err := c.BeginParse()
	if err != nil {
		return fmt.Errorf("dictionary node at key bit %d: %w", 256-m, err)
	}
	n, err := loadLabel(s, m, key, 256-m)
	if err != nil {
		return fmt.Errorf("dictionary label at key bit %d: %w", 256-m, err)
	}
	if n == m { // leaf
		if s.BitsLeft() != 64 || s.RefsNum() != 0 {
			return fmt.Errorf("dictionary entry %x: value has %d bits and %d references, want 64 and 0", key[:], s.BitsLeft(), s.RefsNum())
		}
		if len(out) >= MaxEntries {
			return fmt.Errorf("dictionary has more than %d entries", MaxEntries)
		}
		out[*key] = Entry{AddedAt: uint32(s.MustLoadUInt(32)), AddedSeqno: uint32(s.MustLoadUInt(32))}
		return nil
	}
	if s.BitsLeft() != 0 || s.RefsNum() != 2 {
		return fmt.Errorf("dictionary fork at key bit %d: %d bits and %d references after the label, want 0 and 2", 256-m+n, s.BitsLeft(), s.RefsNum())
	}
	pos := 256 - m + n
	for bit := range 2 {
		child, err := c.PeekRef(bit)
		if err != nil {
			return fmt.Errorf("dictionary fork at key bit %d: %w", pos, err)
		}
		setBit(key, pos, bit == 1)
		if err := walk(child, m-n-1, key, out); err != nil {
			return err
		}
	}
	return nil
}

// loadLabel reads HmLabel ~n m into key at bit offset pos and returns n:
// hml_short$0 (Unary n) bits, hml_long$10 n:(#<= m) bits, hml_same$11 v n:(#<= m).
func loadLabel(s *cell.Slice, m uint, key *[32]byte, pos uint) (uint, error) {
	lenBits := uint(bits.Len(m)) // #<= m
	first, err := s.LoadBoolBit()
	if err != nil {
		return 0, err
	}
	var n uint
	switch {
	case !first: // hml_short: unary length
		for {
			b, err := s.LoadBoolBit()
			if err != nil {
				return 0, err
			}
			if !b {
				break
			}
			n++
			if n > m {
				return 0, fmt.Errorf("short label longer than %d bits", m)
			}
		}
		if err := loadKeyBits(s, n, key, pos); err != nil {
			return 0, err
		}
	default:
		same, err := s.LoadBoolBit()
		if err != nil {
			return 0, err
		}
		if !same { // hml_long
			v, err := s.LoadUInt(lenBits)
			if err != nil {
				return 0, err
			}
			n = uint(v)
			if n > m {
				return 0, fmt.Errorf("long label of %d bits, at most %d left", n, m)
			}
			if err := loadKeyBits(s, n, key, pos); err != nil {
				return 0, err
			}
		} else { // hml_same
			v, err := s.LoadBoolBit()
			if err != nil {
				return 0, err
			}
			l, err := s.LoadUInt(lenBits)
			if err != nil {
				return 0, err
			}
			n = uint(l)
			if n > m {
				return 0, fmt.Errorf("same label of %d bits, at most %d left", n, m)
			}
			for i := range n {
				setBit(key, pos+i, v)
			}
		}
	}
	return n, nil
}

func loadKeyBits(s *cell.Slice, n uint, key *[32]byte, pos uint) error {
	for i := range n {
		b, err := s.LoadBoolBit()
		if err != nil {
			return err
		}
		setBit(key, pos+i, b)
	}
	return nil
}

func setBit(key *[32]byte, pos uint, v bool) {
	mask := byte(0x80 >> (pos % 8))
	if v {
		key[pos/8] |= mask
	} else {
		key[pos/8] &^= mask
	}
}
