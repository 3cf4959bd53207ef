package acpi

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// CPU is what OVMF reads from CPUID to size its 64-bit PCI MMIO window
// (OvmfPkg/Library/PlatformInitLib/MemDetect.c,
// PlatformAddressWidthFromCpuid): the vendor, the physical address width
// (CPUID 0x80000008 EAX[7:0]) and 1 GiB page support.
type CPU struct {
	// Vendor is the CPUID vendor string, e.g. "GenuineIntel".
	Vendor string
	// PhysBits is the physical address width the vCPU reports.
	PhysBits int
	// Page1G reports 1 GiB page support (CPUID 0x80000001 EDX bit 26).
	Page1G bool
}

// Well-known vCPUs.
var (
	// CPUTCGMax is QEMU's "-cpu max" under TCG: the AMD vendor of qemu64,
	// QEMU's default 40 physical address bits, 1 GiB pages.
	CPUTCGMax = CPU{Vendor: "AuthenticAMD", PhysBits: 40, Page1G: true}
	// CPUTDX is a TD's vCPU on an Intel TDX host: the TDX module reports
	// a physical address width of 48 or 52 (from GPAW), and OVMF caps
	// every width above 46 to 46, so all TDX hosts give the same window.
	CPUTDX = CPU{Vendor: "GenuineIntel", PhysBits: 52, Page1G: true}
)

// E820 entry types.
const (
	E820RAM      = 1
	E820Reserved = 2
)

// E820Entry is one entry of QEMU's "etc/e820" fw_cfg file.
type E820Entry struct {
	Base, Length uint64
	Type         uint32
}

// ParseE820 parses "etc/e820": 20-byte little-endian entries {u64 base,
// u64 length, u32 type}. Like edk2 it requires a whole number of entries.
func ParseE820(b []byte) ([]E820Entry, error) {
	const size = 20
	if len(b)%size != 0 {
		return nil, fmt.Errorf("acpi: etc/e820 of %d bytes is not a whole number of %d-byte entries", len(b), size)
	}
	out := make([]E820Entry, 0, len(b)/size)
	for i := 0; i < len(b); i += size {
		e := E820Entry{
			Base:   binary.LittleEndian.Uint64(b[i:]),
			Length: binary.LittleEndian.Uint64(b[i+8:]),
			Type:   binary.LittleEndian.Uint32(b[i+16:]),
		}
		if e.Base+e.Length < e.Base {
			return nil, fmt.Errorf("acpi: etc/e820 entry %d [%#x,+%#x) overflows 64 bits", i/size, e.Base, e.Length)
		}
		out = append(out, e)
	}
	return out, nil
}

// Window is OVMF's 64-bit PCI MMIO aperture.
type Window struct {
	Base, Size uint64
	// Dynamic says OVMF sized it from the physical address width (a
	// window of 1/8 of the address space at its top) rather than the
	// classic 32 GiB above RAM.
	Dynamic bool
}

const (
	gib              = 1 << 30
	defaultMmio64    = 32 * gib // PcdPciMmio64Size in OvmfPkgX64.dsc
	maxPhysBitsOVMF  = 46
	fileE820         = "etc/e820"
	fileMmio64Mb     = "opt/ovmf/X-PciMmio64Mb"
	fileReservedEnd  = "etc/reserved-memory-end"
	fileHardwareInfo = "etc/hardware-info"
)

// OVMFMmio64Window computes where OVMF (edk2-stable202502 and later, Q35)
// puts its 64-bit PCI MMIO aperture: PlatformGetFirstNonAddress (the
// classic 32 GiB window above RAM and the memory-hotplug area, resized by
// opt/ovmf/X-PciMmio64Mb), then PlatformAddressWidthFromCpuid and
// PlatformDynamicMmioWindow (1/8 of the address space at its top, moved
// below any e820 reservation it overlaps). files are the fw_cfg files of
// the VM (Tables.Files).
func OVMFMmio64Window(cpu CPU, files map[string][]byte) (Window, error) {
	if _, ok := files[fileHardwareInfo]; ok {
		return Window{}, fmt.Errorf("acpi: QEMU serves %q; OVMF's use of host-provided PCI apertures is not modelled", fileHardwareInfo)
	}
	e820b, ok := files[fileE820]
	if !ok {
		return Window{}, fmt.Errorf("acpi: QEMU serves no %q; OVMF's CMOS fallback is not modelled", fileE820)
	}
	e820, err := ParseE820(e820b)
	if err != nil {
		return Window{}, err
	}
	// PlatformGetFirstNonAddress.
	first := uint64(4 * gib)
	for _, e := range e820 {
		if e.Type == E820RAM && e.Base+e.Length > first {
			first = e.Base + e.Length
		}
	}
	size := uint64(defaultMmio64)
	if b, ok := files[fileMmio64Mb]; ok {
		if mb, ok := parseFwCfgUint32(b); ok && mb <= 0x1000000 {
			size = uint64(mb) << 20
		}
	}
	if size == 0 {
		return Window{}, fmt.Errorf("acpi: %s disables OVMF's 64-bit PCI aperture; not modelled", fileMmio64Mb)
	}
	if b, ok := files[fileReservedEnd]; ok && len(b) == 8 {
		if end := binary.LittleEndian.Uint64(b); end > first {
			first = end
		}
	}
	w := Window{Base: alignUp(first, gib), Size: alignUp(size, gib)}
	w.Base = alignUp(w.Base, uint64(1)<<(63-bits.LeadingZeros64(w.Size)))

	// PlatformAddressWidthFromCpuid with QemuQuirk.
	phys := cpu.PhysBits
	valid := phys >= 41 ||
		cpu.Vendor == "GenuineIntel" && (phys == 36 || phys == 39) ||
		cpu.Vendor == "AuthenticAMD" && phys == 40
	if !valid {
		return w, nil // width guessed from memory; the classic window stays
	}
	if phys > maxPhysBitsOVMF {
		phys = maxPhysBitsOVMF
	}
	if !cpu.Page1G && phys > 40 {
		phys = 40
	}
	// PlatformDynamicMmioWindow.
	addrSpace := uint64(1) << phys
	mmioSpace := uint64(1) << (phys - 3)
	if w.Size < mmioSpace && w.Base+mmioSpace < addrSpace {
		w = Window{Base: addrSpace - mmioSpace, Size: mmioSpace, Dynamic: true}
		for _, e := range e820 {
			lo, hi := max(e.Base, w.Base), min(e.Base+e.Length, w.Base+w.Size)
			if lo < hi {
				w.Base = (e.Base - w.Size) &^ (w.Size - 1)
			}
		}
	}
	return w, nil
}

// parseFwCfgUint32 parses a fw_cfg text number as QemuFwCfgParseUint32
// does (decimal or 0x hex, optionally followed by a newline).
func parseFwCfgUint32(b []byte) (uint32, bool) {
	s := strings.TrimSuffix(string(b), "\n")
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil || strings.HasPrefix(s, "+") || strings.HasPrefix(s, "0o") || strings.HasPrefix(s, "0b") {
		return 0, false
	}
	return uint32(v), true
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }
