package tdxmr

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
)

// pinnedSections are the TDVF sections of the pinned OVMF (Debian trixie
// 2025.02-8+deb13u1), in descriptor order.
var pinnedSections = []tdvf.Section{
	{Index: 0, DataOffset: 0x84000, RawDataSize: 0x37c000, MemoryAddress: 0xffc84000, MemoryDataSize: 0x37c000, Type: tdvf.SectionBFV, Attributes: tdvf.AttrMRExtend},
	{Index: 1, DataOffset: 0, RawDataSize: 0x84000, MemoryAddress: 0xffc00000, MemoryDataSize: 0x84000, Type: tdvf.SectionCFV},
	{Index: 2, MemoryAddress: 0x811000, MemoryDataSize: 0xf000, Type: tdvf.SectionTempMem},
	{Index: 3, MemoryAddress: 0x80b000, MemoryDataSize: 0x2000, Type: tdvf.SectionTempMem},
	{Index: 4, MemoryAddress: 0x809000, MemoryDataSize: 0x2000, Type: tdvf.SectionTDHOB},
	{Index: 5, MemoryAddress: 0x800000, MemoryDataSize: 0x6000, Type: tdvf.SectionTempMem},
}

func TestBuildTDHOB(t *testing.T) {
	const g = uint64(1) << 30
	low := []RAMEntry{
		{0, 0x800000, false},
		{0x800000, 0x6000, true},
		{0x806000, 0x3000, false},
		{0x809000, 0x2000, true},
		{0x80b000, 0x2000, true},
		{0x80d000, 0x4000, false},
		{0x811000, 0xf000, true},
	}
	for _, tc := range []struct {
		name string
		mem  uint64
		want []RAMEntry
	}{
		{"1 GiB", g, append(append([]RAMEntry{}, low...), RAMEntry{0x820000, g - 0x820000, false})},
		{"2.5 GiB", 0xA0000000, append(append([]RAMEntry{}, low...), RAMEntry{0x820000, 0xA0000000 - 0x820000, false})},
		{"3 GiB", 3 * g, append(append([]RAMEntry{}, low...), RAMEntry{0x820000, 2*g - 0x820000, false}, RAMEntry{4 * g, g, false})},
		{"100 GiB", 100 * g, append(append([]RAMEntry{}, low...), RAMEntry{0x820000, 2*g - 0x820000, false}, RAMEntry{4 * g, 98 * g, false})},
	} {
		h, err := BuildTDHOB(pinnedSections, tc.mem)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(h.RAM, tc.want) {
			t.Errorf("%s: RAM\n%+v\nwant\n%+v", tc.name, h.RAM, tc.want)
		}
		n := len(tc.want)
		b := h.Bytes
		if h.Address != 0x809000 || len(b) != 56+48*n+8 || len(h.Measured()) != 56+48*n {
			t.Fatalf("%s: %d bytes", tc.name, len(b))
		}
		// PHIT: type 1, length 56, version 9, boot mode 0, zero memory
		// bounds, EfiEndOfHobList just past the end HOB.
		if binary.LittleEndian.Uint16(b) != 1 || binary.LittleEndian.Uint16(b[2:]) != 56 || binary.LittleEndian.Uint32(b[8:]) != 9 ||
			binary.LittleEndian.Uint32(b[12:]) != 0 || string(b[16:48]) != string(make([]byte, 32)) ||
			binary.LittleEndian.Uint64(b[48:]) != 0x809000+uint64(len(b)) {
			t.Errorf("%s: PHIT % x", tc.name, b[:56])
		}
		for i, e := range tc.want {
			r := b[56+48*i:]
			typ := uint32(7)
			if e.Accepted {
				typ = 0
			}
			if binary.LittleEndian.Uint16(r) != 3 || binary.LittleEndian.Uint16(r[2:]) != 48 || string(r[8:24]) != string(make([]byte, 16)) ||
				binary.LittleEndian.Uint32(r[24:]) != typ || binary.LittleEndian.Uint32(r[28:]) != 7 ||
				binary.LittleEndian.Uint64(r[32:]) != e.Address || binary.LittleEndian.Uint64(r[40:]) != e.Length {
				t.Errorf("%s: resource %d % x", tc.name, i, r[:48])
			}
		}
		if end := b[len(b)-8:]; binary.LittleEndian.Uint16(end) != 0xffff || binary.LittleEndian.Uint16(end[2:]) != 8 {
			t.Errorf("%s: end HOB % x", tc.name, end)
		}
	}
}

func TestBuildTDHOBEdges(t *testing.T) {
	// A section outside RAM is ignored (QEMU ignores the error), as is one
	// straddling two entries or accepted twice.
	secs := []tdvf.Section{
		{Index: 0, MemoryAddress: 0x10000, MemoryDataSize: 0x1000, Type: tdvf.SectionTDHOB},
		{Index: 1, MemoryAddress: 0x40000000, MemoryDataSize: 0x1000, Type: tdvf.SectionTempMem},
		{Index: 2, MemoryAddress: 0x10000, MemoryDataSize: 0x1000, Type: tdvf.SectionTempMem},
		{Index: 3, MemoryAddress: 0xf000, MemoryDataSize: 0x2000, Type: tdvf.SectionTempMem},
	}
	h, err := BuildTDHOB(secs, 512<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := []RAMEntry{{0, 0x10000, false}, {0x10000, 0x1000, true}, {0x11000, 512<<20 - 0x11000, false}}
	if !reflect.DeepEqual(h.RAM, want) {
		t.Errorf("RAM %+v", h.RAM)
	}
	for _, tc := range []struct {
		secs []tdvf.Section
		mem  uint64
		want string
	}{
		{secs[1:2], 1 << 30, "no TD_HOB section"},
		{[]tdvf.Section{secs[0], {Index: 1, MemoryAddress: 0x20000, MemoryDataSize: 0x1000, Type: tdvf.SectionTDHOB}}, 1 << 30, "two TD_HOB sections (0 and 1)"},
		{secs[:1], 0, "guest memory size is 0"},
		{[]tdvf.Section{{MemoryAddress: 0x10000, MemoryDataSize: 0x60, Type: tdvf.SectionTDHOB}}, 1 << 30, "more than the 96-byte TD_HOB section"},
	} {
		if _, err := BuildTDHOB(tc.secs, tc.mem); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}
