package smbios

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// fw_cfg files QEMU serves the SMBIOS tables in.
const (
	FileAnchor = "etc/smbios/smbios-anchor"
	FileTables = "etc/smbios/smbios-tables"
)

// Entry point sizes (SMBIOS_TABLE_ENTRY_POINT, SMBIOS_TABLE_3_0_ENTRY_POINT).
const (
	anchor2Size = 31
	anchor3Size = 24
)

// MaxTablesBytes bounds the structure table ParseStructures accepts: the
// SMBIOS 3.x limit is 4 GiB, QEMU's tables are a few hundred bytes, and
// measure/acpi reads no fw_cfg file above 4 MiB.
const MaxTablesBytes = 4 << 20

// Anchor is QEMU's SMBIOS entry point ("etc/smbios/smbios-anchor").
type Anchor struct {
	// Major and Minor are the SMBIOS version; DocRev the 3.x docrev.
	Major, Minor, DocRev uint8
	// TableLength is the structure table's length (2.x TableLength, 3.x
	// TableMaximumSize).
	TableLength uint32
}

// V3 reports whether the anchor is a 64-bit (SMBIOS 3.x) entry point.
func (a Anchor) V3() bool { return a.Major >= 3 }

// ParseAnchor decodes an SMBIOS 2.x or 3.x entry point with the checks
// OVMF's DetectSmbiosVersion makes (size, anchor strings, major version);
// checksums are not checked, as OVMF does not.
func ParseAnchor(b []byte) (*Anchor, error) {
	switch len(b) {
	case anchor2Size:
		if string(b[0:4]) != "_SM_" || string(b[0x10:0x15]) != "_DMI_" {
			return nil, fmt.Errorf("smbios: %d-byte anchor starts %q / has intermediate anchor %q, want \"_SM_\" and \"_DMI_\"", len(b), b[0:4], b[0x10:0x15])
		}
		a := &Anchor{Major: b[6], Minor: b[7], TableLength: uint32(binary.LittleEndian.Uint16(b[0x16:]))}
		if a.Major != 2 {
			return nil, fmt.Errorf("smbios: 2.x anchor has major version %d", a.Major)
		}
		return a, nil
	case anchor3Size:
		if string(b[0:5]) != "_SM3_" {
			return nil, fmt.Errorf("smbios: %d-byte anchor starts %q, want \"_SM3_\"", len(b), b[0:5])
		}
		a := &Anchor{Major: b[7], Minor: b[8], DocRev: b[9], TableLength: binary.LittleEndian.Uint32(b[12:])}
		if a.Major != 3 {
			return nil, fmt.Errorf("smbios: 3.x anchor has major version %d", a.Major)
		}
		return a, nil
	}
	return nil, fmt.Errorf("smbios: anchor has %d bytes; an SMBIOS entry point has %d (2.x) or %d (3.x)", len(b), anchor2Size, anchor3Size)
}

// Structure is one SMBIOS structure: the formatted area and its strings.
type Structure struct {
	Type   uint8
	Handle uint16
	// Offset is where the structure starts in the parsed table.
	Offset int
	// Raw is the whole structure: formatted area, strings, and the
	// terminating double NUL.
	Raw []byte
}

// Length is the formatted area's length (header included).
func (s Structure) Length() int { return int(s.Raw[1]) }

// Strings returns the structure's strings in index order (string 1
// first), the way edk2's SmbiosMeasurementDxe numbers them: the text
// between the formatted area and the double NUL, split at NULs, a NUL
// right after the formatted area skipped.
func (s Structure) Strings() []StringRef {
	var out []StringRef
	end := len(s.Raw) - 2
	p := s.Length()
	if p < end && s.Raw[p] == 0 {
		p++
	}
	for p < end {
		n := bytes.IndexByte(s.Raw[p:end], 0)
		if n < 0 {
			n = end - p
		}
		out = append(out, StringRef{Offset: p, Len: n})
		p += n + 1
	}
	return out
}

// StringRef locates one string inside Structure.Raw.
type StringRef struct{ Offset, Len int }

// Size of the structure header: type, length, handle.
const headerSize = 4

// TypeEnd is the end-of-table structure type.
const TypeEnd = 127

// ParseStructures splits an SMBIOS structure table into structures, up to
// and including the first end-of-table (type 127) structure, which must
// exist. Each structure must have a formatted area of at least 4 bytes
// inside the table and end with a double NUL.
func ParseStructures(b []byte) ([]Structure, error) {
	if len(b) > MaxTablesBytes {
		return nil, fmt.Errorf("smbios: structure table has %d bytes, more than %d", len(b), MaxTablesBytes)
	}
	var out []Structure
	for off := 0; ; {
		if off == len(b) {
			return nil, fmt.Errorf("smbios: structure table (%d bytes, %d structures) has no end-of-table structure (type %d)", len(b), len(out), TypeEnd)
		}
		if len(b)-off < headerSize {
			return nil, fmt.Errorf("smbios: structure at offset %d: %d bytes left, a header has %d", off, len(b)-off, headerSize)
		}
		typ, l := b[off], int(b[off+1])
		if l < headerSize {
			return nil, fmt.Errorf("smbios: structure at offset %d (type %d) has length %d, less than its %d-byte header", off, typ, l, headerSize)
		}
		if off+l > len(b) {
			return nil, fmt.Errorf("smbios: structure at offset %d (type %d) has length %d, past the table's end (%d bytes)", off, typ, l, len(b))
		}
		i := off + l
		for ; i+1 < len(b) && (b[i] != 0 || b[i+1] != 0); i++ {
		}
		if i+1 >= len(b) {
			return nil, fmt.Errorf("smbios: structure at offset %d (type %d): no double NUL ends its strings before the table's end", off, typ)
		}
		s := Structure{Type: typ, Handle: binary.LittleEndian.Uint16(b[off+2:]), Offset: off, Raw: b[off : i+2]}
		out = append(out, s)
		off = i + 2
		if typ == TypeEnd {
			return out, nil
		}
	}
}
