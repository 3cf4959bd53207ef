package smbios

import (
	"encoding/binary"
	"fmt"
)

// BIOSInfo are the strings of the type 0 (BIOS information) structure
// OVMF adds when QEMU supplies none.
type BIOSInfo struct {
	// Vendor is PcdFirmwareVendor ("EDK II" unless the build sets it).
	Vendor string
	// Version is PcdFirmwareVersionString, the build's FIRMWARE_VER
	// (Debian: the package version, e.g. "2026.08+ds-2"; the same string
	// is the TPM S-CRTM version event).
	Version string
	// ReleaseDate is PcdFirmwareReleaseDateString ("" in edk2 and Debian).
	ReleaseDate string
}

// DefaultVendor is edk2's PcdFirmwareVendor, which OvmfPkgX64 keeps.
const DefaultVendor = "EDK II"

// OVMFBIOSInfo is the BIOS information of an OvmfPkgX64 build whose
// FIRMWARE_VER is version.
func OVMFBIOSInfo(version string) BIOSInfo {
	return BIOSInfo{Vendor: DefaultVendor, Version: version}
}

// type0Length is sizeof (SMBIOS_TABLE_TYPE0): header, three string
// indexes, BIOS segment, size, 8 characteristic bytes, 2 extension bytes,
// 4 release bytes and the 2-byte extended ROM size.
const type0Length = 26

// Type0 encodes OVMF's default type 0 structure (SmbiosPlatformDxe.c
// mOvmfDefaultType0) with the given strings and handle: a string shorter
// than 3 characters is replaced ("unknown"; the date by "02/02/2022").
func (bi BIOSInfo) Type0(handle uint16) []byte {
	pick := func(s, dflt string) string {
		if len(s) < 3 {
			return dflt
		}
		return s
	}
	b := make([]byte, type0Length)
	b[0], b[1] = 0, type0Length
	binary.LittleEndian.PutUint16(b[2:], handle)
	b[4], b[5] = 1, 2                            // Vendor, BiosVersion
	binary.LittleEndian.PutUint16(b[6:], 0xE800) // BiosSegment
	b[8] = 3                                     // BiosReleaseDate
	b[10] = 0x08                                 // BiosCharacteristicsNotSupported (bit 3)
	b[19] = 0x1C                                 // VM, UEFI, target content distribution
	b[22], b[23] = 0xFF, 0xFF                    // no embedded controller firmware
	for _, s := range []string{pick(bi.Vendor, "unknown"), pick(bi.Version, "unknown"), pick(bi.ReleaseDate, "02/02/2022")} {
		b = append(b, s...)
		b = append(b, 0)
	}
	return append(b, 0)
}

// Options are what OVMFTable needs besides QEMU's fw_cfg files.
type Options struct {
	// BIOS are the type 0 strings, used when QEMU gives no type 0.
	BIOS BIOSInfo
	// ProcessorID, when set, replaces the ProcessorId field (CPUID leaf 1
	// EAX then EDX, little-endian) of every type 4 structure: a TD's QEMU
	// fills it from the host CPU, which the capture does not run.
	ProcessorID *[8]byte
}

// Table is the SMBIOS structure table OVMF publishes.
type Table struct {
	Anchor Anchor
	// Structures are in table order, OVMF's end structure last.
	Structures []Structure
	// Bytes is the table as SmbiosDxe lays it out.
	Bytes []byte
	// AddedType0 reports that OVMF added its own type 0.
	AddedType0 bool
	// PatchedProcessorIDs counts the type 4 structures whose ProcessorId
	// Options.ProcessorID replaced.
	PatchedProcessorIDs int
}

// Handle limits of edk2's SmbiosDxe (GetMaxSmbiosHandle).
const (
	maxHandle20 = 0xFFFE
	maxHandle   = 0xFEFF
)

// type 4 ProcessorId field.
const (
	typeProcessor     = 4
	processorIDOffset = 8
)

// OVMFTable rebuilds the SMBIOS table OVMF installs from QEMU's anchor and
// structure table (see the package comment).
func OVMFTable(anchor, tables []byte, o Options) (*Table, error) {
	a, err := ParseAnchor(anchor)
	if err != nil {
		return nil, err
	}
	if len(tables) == 0 {
		return nil, fmt.Errorf("smbios: QEMU serves an empty %s: OVMF would install no SMBIOS tables (unsupported)", FileTables)
	}
	if int64(a.TableLength) != int64(len(tables)) {
		return nil, fmt.Errorf("smbios: the anchor's table length %d differs from the %d bytes of %s: OVMF would reject QEMU's tables (unsupported)", a.TableLength, len(tables), FileTables)
	}
	in, err := ParseStructures(tables)
	if err != nil {
		return nil, err
	}
	lim := maxStringLen(*a)
	maxH := uint16(maxHandle)
	if a.Major == 2 && a.Minor == 0 {
		maxH = maxHandle20
	}
	t := &Table{Anchor: *a}
	used := map[uint16]bool{}
	var recs [][]byte
	for _, s := range in[:len(in)-1] { // QEMU's end structure is not added
		if used[s.Handle] {
			return nil, fmt.Errorf("smbios: structure at offset %d (type %d) reuses handle %#x: SmbiosDxe refuses it", s.Offset, s.Type, s.Handle)
		}
		if s.Handle > maxH {
			return nil, fmt.Errorf("smbios: structure at offset %d (type %d) has handle %#x, above SmbiosDxe's limit %#x", s.Offset, s.Type, s.Handle, maxH)
		}
		for _, str := range s.Strings() {
			if str.Len >= lim {
				return nil, fmt.Errorf("smbios: structure at offset %d (type %d) has a %d-byte string; SMBIOS %d.%d allows less than %d (unsupported)", s.Offset, s.Type, str.Len, a.Major, a.Minor, lim)
			}
		}
		used[s.Handle] = true
		raw := append([]byte(nil), s.Raw...)
		if s.Type == typeProcessor && o.ProcessorID != nil && s.Length() >= processorIDOffset+8 {
			copy(raw[processorIDOffset:], o.ProcessorID[:])
			t.PatchedProcessorIDs++
		}
		recs = append(recs, raw)
	}
	hasType0 := false
	for _, s := range in {
		if s.Type == 0 {
			hasType0 = true
		}
	}
	if !hasType0 {
		h := uint16(0)
		for used[h] {
			h++
		}
		used[h] = true
		recs = append(recs, o.BIOS.Type0(h))
		t.AddedType0 = true
	}
	end := []byte{TypeEnd, headerSize, 0, 0, 0, 0}
	binary.LittleEndian.PutUint16(end[2:], maxH)
	recs = append(recs, end)
	if !a.V3() {
		n := 0
		for _, r := range recs {
			n += len(r)
		}
		if n > 0xFFFF {
			return nil, fmt.Errorf("smbios: the SMBIOS %d.%d table would have %d bytes, more than a 2.x entry point describes", a.Major, a.Minor, n)
		}
	}
	for _, r := range recs {
		t.Bytes = append(t.Bytes, r...)
	}
	if t.Structures, err = ParseStructures(t.Bytes); err != nil {
		return nil, fmt.Errorf("smbios: rebuilt table: %w", err)
	}
	return t, nil
}

// maxStringLen is SmbiosMeasurementDxe's mMaxLen: a string must be
// shorter.
func maxStringLen(a Anchor) int {
	switch {
	case a.Major < 2 || a.Major == 2 && a.Minor < 7:
		return 64 // SMBIOS_STRING_MAX_LENGTH
	case a.Major < 3:
		return 0xFFFF // SMBIOS_TABLE_MAX_LENGTH
	}
	return MaxTablesBytes // SMBIOS_3_0_TABLE_MAX_LENGTH is larger than any table accepted here
}
