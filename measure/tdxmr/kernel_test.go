package tdxmr

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/authenticode"
)

// bzImage builds a small kernel with a Linux setup header that is also a
// PE32+ image (like an EFI-stub bzImage): DOS header, PE header at 0x40,
// section table before the setup header at 0x1f1, SizeOfHeaders 0x1000.
type bzImage struct {
	protocol   uint16
	setupSects byte
	loadflags  byte
	initrdMax  uint32 // initrd_addr_max (0x22c)
	xloadflags uint16 // 0x236
	noHdrS     bool
	size       int
}

func defaultBz() *bzImage {
	return &bzImage{protocol: 0x20f, setupSects: 7, loadflags: 0x01, initrdMax: 0x7fffffff, xloadflags: 0x7f, size: 0x6000}
}

func (z *bzImage) build() []byte {
	b := make([]byte, z.size)
	x := uint32(99)
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	// Zero the setup header region QEMU reads and patches, like a real
	// kernel file (the boot loader fills these fields).
	for i := 0x1f1; i < 0x268; i++ {
		b[i] = 0
	}
	// PE/COFF: MZ, e_lfanew, PE32+ with 16 data directories, 3 sections.
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x44:], 0x8664)
	binary.LittleEndian.PutUint16(b[0x46:], 3)
	binary.LittleEndian.PutUint16(b[0x54:], 112+16*8)
	opt := 0x58
	binary.LittleEndian.PutUint16(b[opt:], authenticode.MagicPE32Plus)
	binary.LittleEndian.PutUint32(b[opt+60:], 0x1000) // SizeOfHeaders
	binary.LittleEndian.PutUint32(b[opt+108:], 16)
	binary.LittleEndian.PutUint64(b[opt+112+4*8:], 0) // no certificate table
	st := opt + 112 + 16*8
	for i, s := range []struct {
		name      string
		ptr, size uint32
	}{{".setup", 0x1000, 0x1000}, {".text", 0x2000, 0x3000}, {".data", 0x5000, 0x800}} {
		h := b[st+40*i:]
		copy(h, append([]byte(s.name), 0, 0, 0)[:8])
		binary.LittleEndian.PutUint32(h[8:], s.size)
		binary.LittleEndian.PutUint32(h[12:], s.ptr)
		binary.LittleEndian.PutUint32(h[16:], s.size)
		binary.LittleEndian.PutUint32(h[20:], s.ptr)
	}
	if st+3*40 > 0x1f1 {
		panic("section table overlaps the setup header")
	}
	// Linux setup header.
	b[0x1f1] = z.setupSects
	binary.LittleEndian.PutUint16(b[0x1fe:], 0xAA55)
	if !z.noHdrS {
		copy(b[0x202:], "HdrS")
	}
	binary.LittleEndian.PutUint16(b[0x206:], z.protocol)
	b[0x211] = z.loadflags
	binary.LittleEndian.PutUint32(b[0x22c:], z.initrdMax)
	binary.LittleEndian.PutUint16(b[0x236:], z.xloadflags)
	return b
}

func u32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
func u16(b []byte, off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

func TestBelowFourG(t *testing.T) {
	for _, tc := range []struct{ mem, want uint64 }{
		{512 * mib, 512 * mib},
		{1 * gib, 1 * gib},
		{2 * gib, 2 * gib},
		{0xB0000000 - 4*kib, 0xB0000000 - 4*kib},
		{0xB0000000, 2 * gib},
		{3 * gib, 2 * gib},
		{100 * gib, 2 * gib},
	} {
		if got := BelowFourG(tc.mem); got != tc.want {
			t.Errorf("BelowFourG(%#x) = %#x, want %#x", tc.mem, got, tc.want)
		}
	}
}

// TestRamdiskImage is the memory-size dependence of the initrd address
// QEMU writes to ramdisk_image (0x218).
func TestRamdiskImage(t *testing.T) {
	const initrd = 0xA962C0 // dstack #1185's initrd
	tests := []struct {
		name       string
		mutate     func(z *bzImage)
		mem        uint64
		initrdSize uint64
		wantMax    uint32
		wantAddr   uint32
	}{
		// dstack #1185 (mem >= 2.75 GiB): ramdisk_image 0x7F541000.
		{name: "dstack-1185", mem: 3 * gib, initrdSize: initrd, wantMax: 0x7FFD7FFF, wantAddr: 0x7F541000},
		{name: "2 GiB same as >= 2.75 GiB", mem: 2 * gib, initrdSize: initrd, wantMax: 0x7FFD7FFF, wantAddr: 0x7F541000},
		{name: "16 GiB", mem: 16 * gib, initrdSize: initrd, wantMax: 0x7FFD7FFF, wantAddr: 0x7F541000},
		{name: "split exactly", mem: 0xB0000000, initrdSize: initrd, wantMax: 0x7FFD7FFF, wantAddr: 0x7F541000},
		{name: "just below split", mem: 0xB0000000 - 4*kib, initrdSize: initrd, wantMax: 0xAFFD6FFF, wantAddr: 0xAF540000},
		{name: "1 GiB (env.md swtpm run)", mem: 1 * gib, initrdSize: initrd, wantMax: 0x3FFD7FFF, wantAddr: 0x3F541000},
		{name: "page-sized initrd", mem: 1 * gib, initrdSize: 4 * kib, wantMax: 0x3FFD7FFF, wantAddr: 0x3FFD6000},
		{name: "empty initrd", mem: 1 * gib, initrdSize: 0, wantMax: 0x3FFD7FFF, wantAddr: 0x3FFD7000},
		{name: "no XLF_CAN_BE_LOADED_ABOVE_4G: initrd_addr_max clamps",
			mutate: func(z *bzImage) { z.xloadflags = 0; z.initrdMax = 0x37ffffff }, mem: 4 * gib, initrdSize: initrd, wantMax: 0x37ffffff, wantAddr: 0x37569000},
		{name: "initrd_addr_max above low memory",
			mutate: func(z *bzImage) { z.xloadflags = 0 }, mem: 4 * gib, initrdSize: initrd, wantMax: 0x7FFD7FFF, wantAddr: 0x7F541000},
		{name: "protocol 2.11 ignores xloadflags",
			mutate: func(z *bzImage) { z.protocol = 0x20b; z.initrdMax = 0x37ffffff }, mem: 4 * gib, initrdSize: initrd, wantMax: 0x37ffffff, wantAddr: 0x37569000},
		{name: "protocol 2.02 has no initrd_addr_max",
			mutate: func(z *bzImage) { z.protocol = 0x202; z.initrdMax = 0x7fffffff }, mem: 4 * gib, initrdSize: initrd, wantMax: 0x37ffffff, wantAddr: 0x37569000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			z := defaultBz()
			if tc.mutate != nil {
				tc.mutate(z)
			}
			k := z.build()
			out, p, err := PatchKernel(k, KernelLoad{MemorySize: tc.mem, Cmdline: "console=ttyS0", Initrd: true, InitrdSize: tc.initrdSize})
			if err != nil {
				t.Fatal(err)
			}
			if p.InitrdMax != tc.wantMax || p.InitrdAddr != tc.wantAddr {
				t.Fatalf("initrd max %#x addr %#x, want %#x %#x", p.InitrdMax, p.InitrdAddr, tc.wantMax, tc.wantAddr)
			}
			if got := u32(out, 0x218); got != tc.wantAddr {
				t.Fatalf("ramdisk_image %#x, want %#x", got, tc.wantAddr)
			}
			if got := u32(out, 0x21c); uint64(got) != tc.initrdSize {
				t.Fatalf("ramdisk_size %#x, want %#x", got, tc.initrdSize)
			}
		})
	}
}

// TestPatchModern checks every byte QEMU writes for a modern EFI-stub
// kernel (the env.md §5 swtpm list and dstack #1185 bytes) and that
// nothing else changes.
func TestPatchModern(t *testing.T) {
	k := defaultBz().build()
	orig := bytes.Clone(k)
	out, p, err := PatchKernel(k, KernelLoad{MemorySize: 3 * gib, Cmdline: "console=ttyS0 panic=-1", Initrd: true, InitrdSize: 0xA962C0})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k, orig) {
		t.Fatal("PatchKernel modified its input")
	}
	if p.Protocol != 0x20f || p.SetupSize != 8*512 || p.BelowFourG != 2*gib {
		t.Fatalf("patch %+v", p)
	}
	want := map[int]byte{
		0x228: 0x00, 0x229: 0x00, 0x22a: 0x02, 0x22b: 0x00, // cmd_line_ptr 0x20000
		0x210: 0xb0,              // type_of_loader
		0x211: 0x81,              // loadflags LOADED_HIGH | CAN_USE_HEAP
		0x224: 0x00, 0x225: 0xfe, // heap_end_ptr 0xfe00
		0x218: 0x00, 0x219: 0x10, 0x21a: 0x54, 0x21b: 0x7f, // ramdisk_image 0x7F541000
		0x21c: 0xc0, 0x21d: 0x62, 0x21e: 0xa9, 0x21f: 0x00, // ramdisk_size 0xA962C0
	}
	for i := range out {
		w, ok := want[i]
		if !ok {
			w = orig[i]
		}
		if out[i] != w {
			t.Errorf("byte %#x = %#02x, want %#02x", i, out[i], w)
		}
	}
	var names []string
	for _, f := range p.Fields {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ","); got != "cmd_line_ptr,type_of_loader,loadflags,heap_end_ptr,ramdisk_image,ramdisk_size" {
		t.Errorf("fields %s", got)
	}
	// Without an initrd the ramdisk fields stay.
	out, p, err = PatchKernel(k, KernelLoad{MemorySize: 3 * gib, Cmdline: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if u32(out, 0x218) != 0 || u32(out, 0x21c) != 0 || len(p.Fields) != 4 || p.InitrdAddr != 0 {
		t.Errorf("no-initrd patch wrote ramdisk fields: %+v", p.Fields)
	}
}

func TestPatchOldProtocols(t *testing.T) {
	// Protocol 2.01: legacy command line protocol, low real-mode address.
	z := defaultBz()
	z.protocol = 0x201
	cmdline := "console=ttyS0" // 13 bytes -> cmdline_size 0x10 -> cmdline_addr 0x99ff0
	out, p, err := PatchKernel(z.build(), KernelLoad{MemorySize: 1 * gib, Cmdline: cmdline, Initrd: true, InitrdSize: 0x1000})
	if err != nil {
		t.Fatal(err)
	}
	if u16(out, 0x20) != 0xA33F || u16(out, 0x22) != 0x99ff0-0x90000 || u32(out, 0x228) != 0 {
		t.Errorf("legacy cmdline fields %#x %#x cmd_line_ptr %#x", u16(out, 0x20), u16(out, 0x22), u32(out, 0x228))
	}
	if out[0x210] != 0xb0 || out[0x211] != 0x81 || u16(out, 0x224) != 0x99ff0-0x90000-0x200 {
		t.Errorf("loader %#x loadflags %#x heap_end %#x", out[0x210], out[0x211], u16(out, 0x224))
	}
	if p.InitrdMax != 0x37ffffff {
		t.Errorf("initrd max %#x", p.InitrdMax)
	}
	// Protocol 2.00: no heap fields.
	z.protocol = 0x200
	out, p, _ = PatchKernel(z.build(), KernelLoad{MemorySize: 1 * gib, Cmdline: cmdline})
	if out[0x210] != 0xb0 || out[0x211] != 0x01 || u16(out, 0x224) != 0 || len(p.Fields) != 3 {
		t.Errorf("protocol 2.00: %+v", p.Fields)
	}
	// A modern protocol but loaded low (loadflags bit 0 clear): the
	// command line moves below 0x9a000, cmd_line_ptr points there.
	z = defaultBz()
	z.loadflags = 0
	long := strings.Repeat("a", 40) // cmdline_size 0x30
	out, _, _ = PatchKernel(z.build(), KernelLoad{MemorySize: 1 * gib, Cmdline: long})
	if u32(out, 0x228) != 0x9a000-0x30 || u16(out, 0x224) != 0x9a000-0x30-0x90000-0x200 || out[0x211] != 0x80 {
		t.Errorf("low kernel: cmd_line_ptr %#x heap_end %#x loadflags %#x", u32(out, 0x228), u16(out, 0x224), out[0x211])
	}
}

func TestPatchVGA(t *testing.T) {
	k := defaultBz().build()
	for _, tc := range []struct {
		cmdline string
		want    uint16
		err     bool
	}{
		{"console=ttyS0 vga=normal", 0xffff, false},
		{"vga=ext quiet", 0xfffe, false},
		{"vga=ask", 0xfffd, false},
		{"vga=791 quiet", 791, false},
		{"vga=0x317", 0x317, false},
		{"vga=010", 8, false},
		{"vga=0", 0, false},
		{"novga=1", 1, false}, // QEMU matches "vga=" anywhere
		{"vga=abc", 0, true},
		{"vga=", 0, true},
		{"vga=12x", 0, true},
		{"vga=-1", 0, true},
		{"vga=0b1", 0, true},
		{"vga=1_0", 0, true},
		{"vga=0x", 0, true},
		{"vga=09", 0, true},
		{"vga=4294967296", 0, true},
	} {
		out, p, err := PatchKernel(k, KernelLoad{MemorySize: gib, Cmdline: tc.cmdline})
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "vga=") {
				t.Errorf("%q: err %v", tc.cmdline, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.cmdline, err)
			continue
		}
		if u16(out, 0x1fa) != tc.want || p.Fields[1].Name != "vid_mode" {
			t.Errorf("%q: vid_mode %#x, want %#x", tc.cmdline, u16(out, 0x1fa), tc.want)
		}
	}
}

func TestPatchErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kernel func() []byte
		load   KernelLoad
		want   string
	}{
		{"tiny", func() []byte { return make([]byte, 0x100) }, KernelLoad{MemorySize: gib}, "too small for a bzImage setup header"},
		{"no HdrS", func() []byte { z := defaultBz(); z.noHdrS = true; return z.build() }, KernelLoad{MemorySize: gib}, `no "HdrS" setup header`},
		{"setup larger than file", func() []byte { z := defaultBz(); z.setupSects = 60; return z.build() }, KernelLoad{MemorySize: gib}, "setup size 0x7a00 (setup_sects 60 at 0x1f1) exceeds the 0x6000-byte file"},
		{"initrd too large", defaultBz().build, KernelLoad{MemorySize: gib, Initrd: true, InitrdSize: 0x3FFD7FFF}, "initrd of 1073577983 bytes is too large"},
		{"old protocol initrd", func() []byte { z := defaultBz(); z.protocol = 0x104; return z.build() }, KernelLoad{MemorySize: gib, Initrd: true, InitrdSize: 1}, "too old to load an initrd"},
		{"no memory", defaultBz().build, KernelLoad{MemorySize: 0x20000}, "leave nothing below the ACPI data"},
	} {
		if _, _, err := PatchKernel(tc.kernel(), tc.load); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	// setup_sects 0 means 4.
	z := defaultBz()
	z.setupSects = 0
	if _, p, err := PatchKernel(z.build(), KernelLoad{MemorySize: gib}); err != nil || p.SetupSize != 5*512 {
		t.Errorf("setup_sects 0: %v %+v", err, p)
	}
}

func TestKernelAsServed(t *testing.T) {
	k := defaultBz().build()
	load := KernelLoad{MemorySize: gib, Cmdline: "x", Initrd: true, InitrdSize: 100}
	un, p, err := KernelAsServed(k, load, KernelUnpatched)
	if err != nil || p != nil || !bytes.Equal(un, k) {
		t.Fatalf("unpatched: %v %+v", err, p)
	}
	pa, p, err := KernelAsServed(k, load, KernelPatched)
	if err != nil || p == nil || bytes.Equal(pa, k) {
		t.Fatalf("patched: %v", err)
	}
	if _, _, err := KernelAsServed(k, load, 0); err == nil {
		t.Fatal("unknown source accepted")
	}
	if KernelSourceFor(true) != KernelPatched || KernelSourceFor(false) != KernelUnpatched ||
		KernelPatched.String() != "patched" || KernelUnpatched.String() != "unpatched" {
		t.Fatal("KernelSource names")
	}
}
