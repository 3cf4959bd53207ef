package acpi

import (
	"encoding/binary"
	"strings"
	"testing"
)

func e820Bytes(entries ...E820Entry) []byte {
	var b []byte
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint64(b, e.Base)
		b = binary.LittleEndian.AppendUint64(b, e.Length)
		b = binary.LittleEndian.AppendUint32(b, e.Type)
	}
	return b
}

func TestParseE820(t *testing.T) {
	want := []E820Entry{{0, 1 << 30, E820RAM}, {0xfd00000000, 0x300000000, E820Reserved}}
	got, err := ParseE820(e820Bytes(want...))
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := ParseE820(make([]byte, 21)); err == nil || !strings.Contains(err.Error(), "21 bytes is not a whole number of 20-byte entries") {
		t.Errorf("odd size: %v", err)
	}
	if _, err := ParseE820(e820Bytes(E820Entry{^uint64(0), 2, E820RAM})); err == nil || !strings.Contains(err.Error(), "overflows") {
		t.Errorf("overflow: %v", err)
	}
}

// TestOVMFMmio64Window checks the window against values observed in OVMF
// boots (the TCG case: /proc/iomem of a guest booted with the release
// firmware under QEMU 7.2 -cpu max, 1 GiB) and worked through edk2's
// MemDetect.c.
func TestOVMFMmio64Window(t *testing.T) {
	const g = uint64(1) << 30
	ramOnly := func(mem uint64) map[string][]byte {
		below := min(mem, 2*g)
		if mem < 0xB0000000 {
			below = mem
		}
		es := []E820Entry{{0, below, E820RAM}}
		if mem > below {
			es = append(es, E820Entry{4 * g, mem - below, E820RAM})
		}
		return map[string][]byte{"etc/e820": e820Bytes(es...)}
	}
	htHole := ramOnly(g)
	htHole["etc/e820"] = append(htHole["etc/e820"], e820Bytes(E820Entry{0xfd00000000, 0x300000000, E820Reserved})...)
	withMb := ramOnly(g)
	withMb["opt/ovmf/X-PciMmio64Mb"] = []byte("65536")
	withEnd := ramOnly(8 * g)
	withEnd["etc/reserved-memory-end"] = binary.LittleEndian.AppendUint64(nil, 0x300000000+0x80000000)
	for _, tc := range []struct {
		name  string
		cpu   CPU
		files map[string][]byte
		want  Window
	}{
		// 1 TiB address space, 128 GiB window at 896 GiB, moved below the
		// AMD HyperTransport hole QEMU reserves at 1012 GiB.
		{"tcg max", CPUTCGMax, htHole, Window{Base: 0xC000000000, Size: 128 * g, Dynamic: true}},
		{"tcg max no hole", CPUTCGMax, ramOnly(g), Window{Base: 0xE000000000, Size: 128 * g, Dynamic: true}},
		// Widths above 46 are capped: 64 TiB space, 8 TiB window.
		{"tdx 8G", CPUTDX, ramOnly(8 * g), Window{Base: 0x380000000000, Size: 0x80000000000, Dynamic: true}},
		{"tdx 100G", CPUTDX, ramOnly(100 * g), Window{Base: 0x380000000000, Size: 0x80000000000, Dynamic: true}},
		{"intel 39", CPU{"GenuineIntel", 39, true}, ramOnly(g), Window{Base: 0x7000000000, Size: 64 * g, Dynamic: true}},
		{"no 1G pages", CPU{"GenuineIntel", 48, false}, ramOnly(g), Window{Base: 0xE000000000, Size: 128 * g, Dynamic: true}},
		// Widths QEMU's defaults make untrustworthy: the classic 32 GiB
		// window above RAM, naturally aligned.
		{"intel 40 invalid", CPU{"GenuineIntel", 40, true}, ramOnly(g), Window{Base: 32 * g, Size: 32 * g}},
		{"classic above 4G RAM", CPU{"GenuineIntel", 40, true}, ramOnly(40 * g), Window{Base: 64 * g, Size: 32 * g}},
		{"classic X-PciMmio64Mb", CPU{"GenuineIntel", 40, true}, withMb, Window{Base: 64 * g, Size: 64 * g}},
		{"classic reserved end", CPU{"GenuineIntel", 40, true}, withEnd, Window{Base: 32 * g, Size: 32 * g}},
		// A 64 GiB window is not smaller than 2^(39-3): stays classic.
		{"big window not dynamic", CPU{"GenuineIntel", 39, true}, withMb, Window{Base: 64 * g, Size: 64 * g}},
	} {
		got, err := OVMFMmio64Window(tc.cpu, tc.files)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v", tc.name, got, err, tc.want)
		}
	}
	if _, err := OVMFMmio64Window(CPUTDX, map[string][]byte{}); err == nil || !strings.Contains(err.Error(), `no "etc/e820"`) {
		t.Errorf("no e820: %v", err)
	}
	hw := ramOnly(g)
	hw["etc/hardware-info"] = []byte{1}
	if _, err := OVMFMmio64Window(CPUTDX, hw); err == nil || !strings.Contains(err.Error(), "etc/hardware-info") {
		t.Errorf("hardware-info: %v", err)
	}
	zero := ramOnly(g)
	zero["opt/ovmf/X-PciMmio64Mb"] = []byte("0")
	if _, err := OVMFMmio64Window(CPUTDX, zero); err == nil || !strings.Contains(err.Error(), "disables") {
		t.Errorf("zero window: %v", err)
	}
}

func FuzzParseE820(f *testing.F) {
	f.Add(e820Bytes(E820Entry{0, 1 << 30, E820RAM}))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := ParseE820(b)
		if err != nil {
			return
		}
		if len(es)*20 != len(b) {
			t.Fatalf("%d entries from %d bytes", len(es), len(b))
		}
		_, _ = OVMFMmio64Window(CPUTDX, map[string][]byte{"etc/e820": b})
		_, _ = OVMFMmio64Window(CPUTCGMax, map[string][]byte{"etc/e820": b})
	})
}
