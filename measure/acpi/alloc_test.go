package acpi

import (
	"strings"
	"testing"
)

// rootPort is a QEMU pcie-root-port as probed: a 4 KiB MSI-X BAR, 64-bit
// prefetchable decoding, a hot-plug slot, QEMU's reservation capability
// with every field at "firmware default".
func rootPort(dev int, children ...*pciFunc) *pciFunc {
	for _, c := range children {
		c.bus = 1
	}
	return &pciFunc{dev: dev, bars: []barReq{{0, Mem32, 0x1000}}, bridge: &bridgeInfo{
		secondary: 1, subordinate: 1, pmem32: true, pmem64: true, hotplug: true,
		hint:     &reserveHint{bus: ^uint32(0), io: ^uint64(0), mem32: ^uint32(0), pref32: ^uint32(0), pref64: ^uint64(0)},
		children: children,
	}}
}

func virtio(dev int) *pciFunc {
	return &pciFunc{dev: dev, bars: []barReq{{1, Mem32, 0x1000}, {4, PMem64, 0x4000}}}
}

func h100() *pciFunc {
	return &pciFunc{bars: []barReq{{0, Mem32, 16 << 20}, {1, PMem64, 128 << 30}, {3, PMem64, 32 << 20}}}
}

func placements(a *allocation) string {
	var lines []string
	for _, b := range a.bridges {
		lines = append(lines, b.String())
	}
	for _, b := range a.bars {
		lines = append(lines, b.String())
	}
	return strings.Join(lines, "\n")
}

func TestAllocate(t *testing.T) {
	tdx := Window{Base: 0x380000000000, Size: 0x80000000000, Dynamic: true}
	w32 := Range{0x80000000, 0x60000000}
	for _, tc := range []struct {
		name  string
		funcs []*pciFunc
		w64   Window
		want  string
	}{
		{
			// Equal 16 KiB BARs: edk2's insertion puts each new node first,
			// the root's merge of prefetchable into memory reverses again.
			name:  "virtio on bus 0",
			funcs: []*pciFunc{virtio(1), virtio(2), virtio(3)},
			w64:   Window{Base: 0xC000000000, Size: 128 << 30},
			want: `00:01.0 BAR1 32-bit 0x1000 bytes at 0x80002000
00:01.0 BAR4 64-bit prefetchable 0x4000 bytes at 0xc000000000
00:02.0 BAR1 32-bit 0x1000 bytes at 0x80001000
00:02.0 BAR4 64-bit prefetchable 0x4000 bytes at 0xc000004000
00:03.0 BAR1 32-bit 0x1000 bytes at 0x80000000
00:03.0 BAR4 64-bit prefetchable 0x4000 bytes at 0xc000008000`,
		},
		{
			// The GPU's window (128 GiB + 32 MiB) beats OVMF's 32 GiB
			// padding and goes first; the virtio BARs follow it.
			name:  "h100 behind a root port, TDX window",
			funcs: []*pciFunc{virtio(1), rootPort(2, h100())},
			w64:   tdx,
			want: `00:02.0 bus 1-1 mem [0x80000000,+0x1000000) pmem64 [0x380000000000,+0x2002000000)
00:01.0 BAR1 32-bit 0x1000 bytes at 0x81001000
00:01.0 BAR4 64-bit prefetchable 0x4000 bytes at 0x382002000000
00:02.0 BAR0 32-bit 0x1000 bytes at 0x81000000
01:00.0 BAR0 32-bit 0x1000000 bytes at 0x80000000
01:00.0 BAR1 64-bit prefetchable 0x2000000000 bytes at 0x380000000000
01:00.0 BAR3 64-bit prefetchable 0x2000000 bytes at 0x382000000000`,
		},
		{
			// An empty hot-plug root port gets OVMF's padding only: 2 MiB
			// of memory and 1/256 of the 8 TiB aperture (32 GiB).
			name:  "empty root port",
			funcs: []*pciFunc{rootPort(1)},
			w64:   tdx,
			want: `00:01.0 bus 1-1 mem [0x80000000,+0x200000) pmem64 [0x380000000000,+0x800000000)
00:01.0 BAR0 32-bit 0x1000 bytes at 0x80200000`,
		},
		{
			// With a 32 GiB aperture there is no prefetchable padding.
			name:  "empty root port, small aperture",
			funcs: []*pciFunc{rootPort(1)},
			w64:   Window{Base: 0x800000000, Size: 32 << 30},
			want: `00:01.0 bus 1-1 mem [0x80000000,+0x200000) pmem [0x0,+0x0)
00:01.0 BAR0 32-bit 0x1000 bytes at 0x80200000`,
		},
		{
			// A 64-bit non-prefetchable BAR behind a bridge is placed in
			// the 32-bit window (P2P bridges have no 64-bit memory window).
			name:  "64-bit memory BAR behind a bridge",
			funcs: []*pciFunc{rootPort(1, &pciFunc{bars: []barReq{{0, Mem64, 0x4000}}})},
			w64:   Window{Base: 0x800000000, Size: 32 << 30},
			want: `00:01.0 bus 1-1 mem [0x80000000,+0x200000) pmem [0x0,+0x0)
00:01.0 BAR0 32-bit 0x1000 bytes at 0x80200000
01:00.0 BAR0 64-bit 0x4000 bytes at 0x80000000`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := allocate(tc.funcs, w32, tc.w64)
			if err != nil {
				t.Fatal(err)
			}
			if got := placements(a); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestAllocateErrors(t *testing.T) {
	w32 := Range{0x80000000, 0x60000000}
	small := Window{Base: 0x4000000000, Size: 128 << 30}
	nested := rootPort(1, rootPort(0))
	rom := virtio(1)
	rom.rom = 0x40000
	for _, tc := range []struct {
		funcs []*pciFunc
		want  string
	}{
		{[]*pciFunc{rootPort(1, h100())}, "64-bit PCI resources need 0x2002000000 bytes aligned to 0x2000000000; OVMF's aperture [0x4000000000,+0x2000000000) is too small"},
		{[]*pciFunc{nested}, "PCI bridge 01:00.0 is behind the bridge 00:01.0: nested bridges are not modelled"},
		{[]*pciFunc{rom}, "PCI function 00:01.0 has an option ROM and a 64-bit BAR"},
		{[]*pciFunc{{bars: []barReq{{0, Mem32, 1 << 31}}}}, "32-bit PCI resources need 0x80000000 bytes"},
	} {
		_, err := allocate(tc.funcs, w32, small)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.funcs, err, tc.want)
		}
	}
}

func TestOVMFMmio32Window(t *testing.T) {
	for _, tc := range []struct {
		low  uint64
		want Range
	}{
		{1 << 30, Range{0x80000000, 0x60000000}},
		{2 << 30, Range{0x80000000, 0x60000000}},
		{0xB0000000, Range{0xC0000000, 0x20000000}},
	} {
		got, err := OVMFMmio32Window([]E820Entry{{Base: 0, Length: tc.low, Type: E820RAM}, {Base: 4 << 30, Length: 8 << 30, Type: E820RAM}})
		if err != nil || got != tc.want {
			t.Errorf("low %#x: %+v %v, want %+v", tc.low, got, err, tc.want)
		}
	}
	if _, err := OVMFMmio32Window(nil); err == nil {
		t.Error("no RAM: no error")
	}
}

func TestRoundUpPow2(t *testing.T) {
	for in, want := range map[uint64]uint64{0: 1, 1: 1, 2: 2, 3: 4, 1 << 35: 1 << 35, 1<<35 + 1: 1 << 36, 1<<63 + 1: 0} {
		if got := roundUpPow2(in); got != want {
			t.Errorf("roundUpPow2(%#x) = %#x, want %#x", in, got, want)
		}
	}
}
