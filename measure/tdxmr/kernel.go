package tdxmr

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// KernelSource says which kernel bytes OVMF measures: QEMU serves the
// kernel over fw_cfg as its setup blob plus the rest of the file, and
// before QEMU 10.2 it rewrites setup-header bytes of the blob for every
// guest but an AMD SEV one (research/measure.md §2.5).
type KernelSource int

const (
	// KernelPatched: QEMU <= 10.1 (TDX guests included) patches the setup
	// header (PatchKernel).
	KernelPatched KernelSource = iota + 1
	// KernelUnpatched: QEMU >= 10.2 leaves the header of a confidential
	// guest's kernel alone (commit a7542a38f399), so OVMF measures the
	// file as given.
	KernelUnpatched
)

// KernelSources lists both.
var KernelSources = []KernelSource{KernelPatched, KernelUnpatched}

// KernelSourceFor maps a QEMU profile's "patches kernel header" flag.
func KernelSourceFor(qemuPatchesHeader bool) KernelSource {
	if qemuPatchesHeader {
		return KernelPatched
	}
	return KernelUnpatched
}

// String returns "patched" or "unpatched".
func (k KernelSource) String() string {
	switch k {
	case KernelPatched:
		return "patched"
	case KernelUnpatched:
		return "unpatched"
	}
	return fmt.Sprintf("KernelSource(%d)", int(k))
}

// QEMU q35 constants (hw/i386/pc_q35.c, x86-common.c).
const (
	// Q35ACPIDataSize is q35's acpi_data_size (0x20000 + 0x8000): the top
	// of low memory QEMU keeps free of the initrd.
	Q35ACPIDataSize = 0x28000
	// q35LowMemSplit: from this RAM size on, q35 puts only 2 GiB below
	// 4 GiB (the rest goes above 4 GiB).
	q35LowMemSplit = 0xB0000000
	q35LowMem      = 0x80000000
)

// BelowFourG is the RAM q35 maps below 4 GiB for a guest with memory
// bytes of RAM: all of it below 2.75 GiB (0xB0000000), else 2 GiB.
func BelowFourG(memory uint64) uint64 {
	if memory >= q35LowMemSplit {
		return q35LowMem
	}
	return memory
}

// KernelLoad is what QEMU's x86_load_linux needs besides the kernel.
type KernelLoad struct {
	// MemorySize is the guest RAM in bytes (-m).
	MemorySize uint64
	// Cmdline is the -append string.
	Cmdline string
	// Initrd says whether -initrd is given; InitrdSize is its size.
	Initrd     bool
	InitrdSize uint64
	// ACPIDataSize is the machine's acpi_data_size; 0 means
	// Q35ACPIDataSize.
	ACPIDataSize uint64
}

// Setup-header fields (Documentation/arch/x86/boot.rst).
const (
	hdrSetupSects   = 0x1f1
	hdrVidMode      = 0x1fa
	hdrMagic        = 0x202
	hdrVersion      = 0x206
	hdrTypeOfLoader = 0x210
	hdrLoadflags    = 0x211
	hdrRamdiskImage = 0x218
	hdrRamdiskSize  = 0x21c
	hdrHeapEndPtr   = 0x224
	hdrCmdLinePtr   = 0x228
	hdrInitrdMax    = 0x22c
	hdrXLoadflags   = 0x236
	hdrCLMagic      = 0x20 // legacy command-line protocol (< 2.02)
	hdrCLOffset     = 0x22

	loadedHigh            = 0x01 // loadflags
	canUseHeap            = 0x80 // loadflags
	xlfCanBeLoadedAbove4G = 1 << 1
	qemuLoaderType        = 0xB0
)

// PatchedField is one header field QEMU rewrites.
type PatchedField struct {
	Name     string
	Offset   int
	Size     int // bytes
	Old, New uint64
}

// HeaderPatch describes QEMU's rewrite of a kernel's setup header.
type HeaderPatch struct {
	// Protocol is the boot protocol version (u16 at 0x206).
	Protocol uint16
	// SetupSize is the size of the setup blob QEMU serves separately.
	SetupSize int
	// BelowFourG is the guest RAM below 4 GiB.
	BelowFourG uint64
	// InitrdMax is the highest initrd address after clamping to low RAM;
	// InitrdAddr the address QEMU chose (when an initrd is loaded).
	InitrdMax, InitrdAddr uint32
	// Fields lists the writes in QEMU's order.
	Fields []PatchedField
}

// PatchKernel returns a copy of kernel with the setup-header bytes QEMU
// (<= 10.1) rewrites before serving it to the firmware, following
// hw/i386/x86-common.c x86_load_linux for a bzImage (no -dtb). The
// original is not modified. Errors are the cases where QEMU refuses to
// start (not a bzImage, initrd too large, malformed vga=).
func PatchKernel(kernel []byte, load KernelLoad) ([]byte, *HeaderPatch, error) {
	if len(kernel) < hdrXLoadflags+2 {
		return nil, nil, fmt.Errorf("tdxmr: kernel of %d bytes is too small for a bzImage setup header", len(kernel))
	}
	if string(kernel[hdrMagic:hdrMagic+4]) != "HdrS" {
		return nil, nil, fmt.Errorf("tdxmr: kernel has no \"HdrS\" setup header at %#x: not a bzImage (multiboot/ELF kernels are not modelled)", hdrMagic)
	}
	p := &HeaderPatch{Protocol: binary.LittleEndian.Uint16(kernel[hdrVersion:])}
	sects := int(kernel[hdrSetupSects])
	if sects == 0 {
		sects = 4
	}
	p.SetupSize = (sects + 1) * 512
	if p.SetupSize > len(kernel) {
		return nil, nil, fmt.Errorf("tdxmr: kernel setup size %#x (setup_sects %d at %#x) exceeds the %#x-byte file; QEMU rejects it", p.SetupSize, kernel[hdrSetupSects], hdrSetupSects, len(kernel))
	}
	acpi := load.ACPIDataSize
	if acpi == 0 {
		acpi = Q35ACPIDataSize
	}
	p.BelowFourG = BelowFourG(load.MemorySize)
	if p.BelowFourG <= acpi {
		return nil, nil, fmt.Errorf("tdxmr: %d bytes of guest memory leave nothing below the ACPI data (%#x bytes)", load.MemorySize, acpi)
	}

	out := append([]byte(nil), kernel...)
	put := func(name string, off, size int, v uint64) {
		f := PatchedField{Name: name, Offset: off, Size: size, New: v}
		switch size {
		case 1:
			f.Old = uint64(out[off])
			out[off] = byte(v)
		case 2:
			f.Old = uint64(binary.LittleEndian.Uint16(out[off:]))
			binary.LittleEndian.PutUint16(out[off:], uint16(v))
		case 4:
			f.Old = uint64(binary.LittleEndian.Uint32(out[off:]))
			binary.LittleEndian.PutUint32(out[off:], uint32(v))
		}
		p.Fields = append(p.Fields, f)
	}

	proto := p.Protocol
	cmdlineSize := uint64(len(load.Cmdline)+16) &^ 15
	var realAddr, cmdlineAddr uint64
	if proto < 0x202 || kernel[hdrLoadflags]&loadedHigh == 0 {
		// Low or ancient kernel.
		realAddr, cmdlineAddr = 0x90000, 0x9a000-cmdlineSize
	} else {
		realAddr, cmdlineAddr = 0x10000, 0x20000
	}

	var initrdMax uint64
	switch {
	case proto >= 0x20c && binary.LittleEndian.Uint16(kernel[hdrXLoadflags:])&xlfCanBeLoadedAbove4G != 0:
		initrdMax = 0xffffffff
	case proto >= 0x203:
		initrdMax = uint64(binary.LittleEndian.Uint32(kernel[hdrInitrdMax:]))
	default:
		initrdMax = 0x37ffffff
	}
	if initrdMax >= p.BelowFourG-acpi {
		initrdMax = p.BelowFourG - acpi - 1
	}
	p.InitrdMax = uint32(initrdMax)

	if proto >= 0x202 {
		put("cmd_line_ptr", hdrCmdLinePtr, 4, cmdlineAddr)
	} else {
		put("cl_magic", hdrCLMagic, 2, 0xA33F)
		put("cl_offset", hdrCLOffset, 2, cmdlineAddr-realAddr)
	}
	if i := strings.Index(load.Cmdline, "vga="); i >= 0 {
		mode, err := vgaMode(load.Cmdline[i+4:])
		if err != nil {
			return nil, nil, err
		}
		put("vid_mode", hdrVidMode, 2, uint64(mode))
	}
	if proto >= 0x200 {
		put("type_of_loader", hdrTypeOfLoader, 1, qemuLoaderType)
	}
	if proto >= 0x201 {
		put("loadflags", hdrLoadflags, 1, uint64(out[hdrLoadflags]|canUseHeap))
		put("heap_end_ptr", hdrHeapEndPtr, 2, cmdlineAddr-realAddr-0x200)
	}
	if load.Initrd {
		if proto < 0x200 {
			return nil, nil, fmt.Errorf("tdxmr: kernel boot protocol %#x is too old to load an initrd", proto)
		}
		if load.InitrdSize >= initrdMax {
			return nil, nil, fmt.Errorf("tdxmr: initrd of %d bytes is too large for %d bytes of guest memory (QEMU's limit is %d)", load.InitrdSize, load.MemorySize, initrdMax)
		}
		p.InitrdAddr = uint32((initrdMax - load.InitrdSize) &^ 4095)
		put("ramdisk_image", hdrRamdiskImage, 4, uint64(p.InitrdAddr))
		put("ramdisk_size", hdrRamdiskSize, 4, load.InitrdSize)
	}
	return out, p, nil
}

// vgaMode parses what follows "vga=" as QEMU does: normal, ext, ask, or
// an unsigned number (decimal, 0x hex, 0 octal) ending the string or
// followed by a space.
func vgaMode(s string) (uint16, error) {
	switch {
	case strings.HasPrefix(s, "normal"):
		return 0xffff, nil
	case strings.HasPrefix(s, "ext"):
		return 0xfffe, nil
	case strings.HasPrefix(s, "ask"):
		return 0xfffd, nil
	}
	end := strings.IndexByte(s, ' ')
	if end < 0 {
		end = len(s)
	}
	num, base, digits := s[:end], 10, "0123456789"
	switch {
	case len(num) > 2 && (num[:2] == "0x" || num[:2] == "0X"):
		num, base, digits = num[2:], 16, "0123456789abcdefABCDEF"
	case len(num) > 1 && num[0] == '0':
		num, base, digits = num[1:], 8, "01234567"
	}
	// strconv would also take signs, underscores and 0b/0o prefixes,
	// which strtoul does not.
	bad := num == ""
	for _, c := range num {
		bad = bad || !strings.ContainsRune(digits, c)
	}
	v, err := strconv.ParseUint(num, base, 32)
	if bad || err != nil {
		return 0, fmt.Errorf("tdxmr: cmdline vga=%q is not a value QEMU accepts (normal, ext, ask or an unsigned 32-bit number)", s[:end])
	}
	return uint16(v), nil
}

// KernelAsServed returns the kernel bytes OVMF receives and measures:
// PatchKernel's output for KernelPatched, the file itself for
// KernelUnpatched.
func KernelAsServed(kernel []byte, load KernelLoad, src KernelSource) ([]byte, *HeaderPatch, error) {
	switch src {
	case KernelPatched:
		return PatchKernel(kernel, load)
	case KernelUnpatched:
		return kernel, nil, nil
	}
	return nil, nil, fmt.Errorf("tdxmr: unknown kernel source %d", int(src))
}
