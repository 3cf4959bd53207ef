package tdvf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
)

// Layout constants (research/measure.md §1.1, QEMU hw/i386/tdvf.c and
// pc_sysfw_ovmf.c).
const (
	// PageSize is the TDX page and TDVF alignment unit.
	PageSize = 4096
	// Signature is the descriptor's Signature field, "TDVF" little-endian.
	Signature = 0x46564454
	// Version is the only descriptor version defined.
	Version = 1
	// DescriptorSize is the size of the descriptor header.
	DescriptorSize = 16
	// SectionEntrySize is the size of one section entry.
	SectionEntrySize = 32
	// FirmwareAlignment: QEMU refuses a -bios image whose size is not a
	// non-zero multiple of 64 KiB.
	FirmwareAlignment = 64 << 10

	// tableFooterGap is the distance from the end of the GUIDed table
	// (the end of its footer GUID) to the end of the image.
	tableFooterGap = 0x20
	// tableEntryTrailer is the u16 length plus the GUID that end every
	// table entry, the footer included.
	tableEntryTrailer = 2 + 16
	// minSections is QEMU's minimum number of section entries.
	minSections = 2
	// MaxRAMSectionBytes bounds the total MemoryDataSize of the TD_HOB
	// and TEMP_MEM sections (OVMF uses about 128 KiB). Larger values are
	// refused rather than measured page by page without bound.
	MaxRAMSectionBytes = 256 << 20
)

// SectionType is a TDVF section's Type field.
type SectionType uint32

// Section types. OVMF and QEMU know 0-3; td-shim defines 4-8, which QEMU
// rejects and Parse does too.
const (
	SectionBFV          SectionType = 0 // boot firmware volume (code)
	SectionCFV          SectionType = 1 // configuration firmware volume (variables)
	SectionTDHOB        SectionType = 2 // TD hand-off block, built by the VMM
	SectionTempMem      SectionType = 3 // temporary memory, zero pages
	SectionPermMem      SectionType = 4 // td-shim only
	SectionPayload      SectionType = 5 // td-shim only
	SectionPayloadParam SectionType = 6 // td-shim only
	SectionTDInfo       SectionType = 7 // td-shim only
	SectionTDParams     SectionType = 8 // td-shim only
)

var sectionTypeNames = map[SectionType]string{
	SectionBFV:          "BFV",
	SectionCFV:          "CFV",
	SectionTDHOB:        "TD_HOB",
	SectionTempMem:      "TEMP_MEM",
	SectionPermMem:      "PERM_MEM",
	SectionPayload:      "PAYLOAD",
	SectionPayloadParam: "PAYLOAD_PARAM",
	SectionTDInfo:       "TD_INFO",
	SectionTDParams:     "TD_PARAMS",
}

// String returns the TDVF name of the type ("BFV", "TD_HOB", ...).
func (t SectionType) String() string {
	if n, ok := sectionTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type-%d", uint32(t))
}

// Attributes is a TDVF section's Attributes field.
type Attributes uint32

// Section attributes.
const (
	// AttrMRExtend: the VMM measures the section's contents with
	// TDH.MR.EXTEND.
	AttrMRExtend Attributes = 1 << 0
	// AttrPageAug: the section is added with TDH.MEM.PAGE.AUG after
	// launch (td-shim). QEMU ignores it and page-adds anyway, so Parse
	// rejects it as ambiguous.
	AttrPageAug Attributes = 1 << 1
)

// String lists the set attributes, e.g. "MR.EXTEND" or "0".
func (a Attributes) String() string {
	s := ""
	add := func(n string) {
		if s != "" {
			s += "|"
		}
		s += n
	}
	if a&AttrMRExtend != 0 {
		add("MR.EXTEND")
	}
	if a&AttrPageAug != 0 {
		add("PAGE.AUG")
	}
	if rest := a &^ (AttrMRExtend | AttrPageAug); rest != 0 {
		add(fmt.Sprintf("%#x", uint32(rest)))
	}
	if s == "" {
		return "0"
	}
	return s
}

// Section is one validated TDVF section entry.
type Section struct {
	// Index is the entry's position in the descriptor; sections are
	// measured in this order.
	Index int
	// DataOffset and RawDataSize locate the section's bytes in the image
	// (BFV and CFV only; zero-sized for TD_HOB and TEMP_MEM).
	DataOffset  uint32
	RawDataSize uint32
	// MemoryAddress and MemoryDataSize are the guest-physical range the
	// section occupies (4 KiB aligned).
	MemoryAddress  uint64
	MemoryDataSize uint64
	Type           SectionType
	Attributes     Attributes
}

// Pages is the number of 4 KiB pages the section occupies.
func (s Section) Pages() uint64 { return s.MemoryDataSize / PageSize }

// End is the first guest-physical address after the section.
func (s Section) End() uint64 { return s.MemoryAddress + s.MemoryDataSize }

// ExtendsMR reports whether the section's contents enter MRTD.
func (s Section) ExtendsMR() bool { return s.Attributes&AttrMRExtend != 0 }

// String describes the section for logs and errors.
func (s Section) String() string {
	return fmt.Sprintf("section %d (%s): image [%#x,+%#x) gpa [%#x,+%#x) attr %s",
		s.Index, s.Type, s.DataOffset, s.RawDataSize, s.MemoryAddress, s.MemoryDataSize, s.Attributes)
}

// TableEntry is one entry of OVMF's GUIDed table.
type TableEntry struct {
	GUID GUID
	// Offset is the file offset of Data.
	Offset int
	Data   []byte
}

// Firmware is a parsed, validated TDVF image.
type Firmware struct {
	image []byte
	// Table is OVMF's GUIDed table, in file order.
	Table []TableEntry
	// DescriptorOffset is the file offset of the TDVF descriptor.
	DescriptorOffset int
	// Sections are the validated section entries in descriptor order.
	Sections []Section
}

// Errors that classify a FormatError; test with errors.Is.
var (
	// ErrNoGUIDTable: the image has no OVMF GUIDed table (not OVMF, or
	// truncated).
	ErrNoGUIDTable = errors.New("no OVMF GUIDed table")
	// ErrNoTDXMetadata: the image is OVMF but has no TDX metadata offset
	// entry (an OVMF built without TDX support).
	ErrNoTDXMetadata = errors.New("no TDX metadata offset entry")
)

// FormatError reports why an image is not valid TDVF firmware.
type FormatError struct {
	// Offset is the file offset where the problem was found, or -1.
	Offset int64
	// Section is the index of the offending section entry, or -1.
	Section int
	// Type is the offending section's type (when Section >= 0).
	Type SectionType
	// Problem says what is wrong.
	Problem string
	// Kind is ErrNoGUIDTable, ErrNoTDXMetadata or nil.
	Kind error
}

func (e *FormatError) Error() string {
	s := "tdvf: "
	if e.Section >= 0 {
		s += fmt.Sprintf("section %d (%s)", e.Section, e.Type)
		if e.Offset >= 0 {
			s += fmt.Sprintf(", entry at offset %#x", e.Offset)
		}
		s += ": "
	} else if e.Offset >= 0 {
		s += fmt.Sprintf("offset %#x: ", e.Offset)
	}
	return s + e.Problem
}

// Unwrap returns Kind.
func (e *FormatError) Unwrap() error { return e.Kind }

func errAt(off int64, kind error, format string, args ...any) error {
	return &FormatError{Offset: off, Section: -1, Problem: fmt.Sprintf(format, args...), Kind: kind}
}

// Load reads and parses the firmware file at path; errors name the path.
func Load(path string) (*Firmware, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tdvf: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Parse validates image as TDVF firmware and returns its sections. The
// returned Firmware keeps a reference to image (MRTD and SectionData read
// it); do not modify image afterwards.
func Parse(image []byte) (*Firmware, error) {
	n := len(image)
	if n == 0 || n%FirmwareAlignment != 0 {
		return nil, errAt(-1, nil, "image size %#x is not a non-zero multiple of 64 KiB (QEMU refuses it as -bios)", n)
	}
	table, err := ParseGUIDTable(image)
	if err != nil {
		return nil, err
	}
	var metaEntry *TableEntry
	for i := range table {
		if table[i].GUID == MetadataOffsetGUID {
			metaEntry = &table[i]
		}
	}
	if metaEntry == nil {
		return nil, errAt(-1, ErrNoTDXMetadata, "OVMF GUIDed table has no TDX metadata offset entry %s (firmware built without TDX support?)", MetadataOffsetGUID)
	}
	if len(metaEntry.Data) != 4 {
		return nil, errAt(int64(metaEntry.Offset), nil, "TDX metadata offset entry has %d data bytes, want 4", len(metaEntry.Data))
	}
	metaOff := binary.LittleEndian.Uint32(metaEntry.Data)
	if uint64(metaOff) > uint64(n) || metaOff < DescriptorSize || uint64(metaOff)+16 > uint64(n) {
		return nil, errAt(int64(metaEntry.Offset), nil, "TDX metadata offset %#x does not leave room for the metadata GUID and descriptor in a %#x-byte image", metaOff, n)
	}
	desc := n - int(metaOff)
	if g := GUID(image[desc-16 : desc]); g != MetadataGUID {
		return nil, errAt(int64(desc-16), nil, "GUID %s before the TDVF descriptor, want %s", g, MetadataGUID)
	}
	sig := binary.LittleEndian.Uint32(image[desc:])
	length := binary.LittleEndian.Uint32(image[desc+4:])
	version := binary.LittleEndian.Uint32(image[desc+8:])
	count := binary.LittleEndian.Uint32(image[desc+12:])
	if sig != Signature {
		return nil, errAt(int64(desc), nil, "descriptor signature %#08x, want %#08x (\"TDVF\")", sig, uint32(Signature))
	}
	if version != Version {
		return nil, errAt(int64(desc+8), nil, "descriptor version %d, want %d", version, Version)
	}
	if count < minSections {
		return nil, errAt(int64(desc+12), nil, "descriptor has %d section entries, QEMU requires at least %d", count, minSections)
	}
	want := uint64(DescriptorSize) + uint64(SectionEntrySize)*uint64(count)
	if uint64(length) != want {
		return nil, errAt(int64(desc+4), nil, "descriptor length %#x, want %#x for %d section entries", length, want, count)
	}
	if uint64(desc)+want > uint64(n) {
		return nil, errAt(int64(desc), nil, "descriptor with %d section entries (%#x bytes) runs past the end of the %#x-byte image", count, want, n)
	}
	f := &Firmware{image: image, Table: table, DescriptorOffset: desc}
	for i := 0; i < int(count); i++ {
		at := desc + DescriptorSize + i*SectionEntrySize
		e := image[at : at+SectionEntrySize]
		f.Sections = append(f.Sections, Section{
			Index:          i,
			DataOffset:     binary.LittleEndian.Uint32(e[0:]),
			RawDataSize:    binary.LittleEndian.Uint32(e[4:]),
			MemoryAddress:  binary.LittleEndian.Uint64(e[8:]),
			MemoryDataSize: binary.LittleEndian.Uint64(e[16:]),
			Type:           SectionType(binary.LittleEndian.Uint32(e[24:])),
			Attributes:     Attributes(binary.LittleEndian.Uint32(e[28:])),
		})
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// entryOffset is the file offset of section entry i.
func (f *Firmware) entryOffset(i int) int64 {
	return int64(f.DescriptorOffset + DescriptorSize + i*SectionEntrySize)
}

func (f *Firmware) sectionErr(s Section, format string, args ...any) error {
	return &FormatError{Offset: f.entryOffset(s.Index), Section: s.Index, Type: s.Type, Problem: fmt.Sprintf(format, args...)}
}

// validate applies QEMU's per-section checks (hw/i386/tdvf.c) and
// gce-tcb-verifier's whole-image checks (ovmf/tdx_data.go), plus the
// checks that make the MRTD model unambiguous.
func (f *Firmware) validate() error {
	n := uint64(len(f.image))
	var hobs, bfvs int
	var fvTotal, ramTotal uint64
	for _, s := range f.Sections {
		switch s.Type {
		case SectionBFV, SectionCFV, SectionTDHOB, SectionTempMem:
		case SectionPermMem, SectionPayload, SectionPayloadParam, SectionTDInfo, SectionTDParams:
			return f.sectionErr(s, "section type %d (%s) is td-shim only; QEMU's TDVF loader rejects it", uint32(s.Type), s.Type)
		default:
			return f.sectionErr(s, "unknown section type %d", uint32(s.Type))
		}
		if unknown := s.Attributes &^ (AttrMRExtend | AttrPageAug); unknown != 0 {
			return f.sectionErr(s, "unknown attribute bits %#x", uint32(unknown))
		}
		if s.Attributes&AttrPageAug != 0 {
			return f.sectionErr(s, "attribute PAGE.AUG is not supported: QEMU ignores it and page-adds the section, so the intended measurement is ambiguous")
		}
		if s.MemoryAddress%PageSize != 0 {
			return f.sectionErr(s, "MemoryAddress %#x is not 4 KiB aligned", s.MemoryAddress)
		}
		if s.MemoryDataSize%PageSize != 0 {
			return f.sectionErr(s, "MemoryDataSize %#x is not 4 KiB aligned", s.MemoryDataSize)
		}
		if s.MemoryDataSize == 0 {
			return f.sectionErr(s, "MemoryDataSize is 0")
		}
		if s.MemoryAddress+s.MemoryDataSize < s.MemoryAddress {
			return f.sectionErr(s, "guest-physical range %#x+%#x overflows 64 bits", s.MemoryAddress, s.MemoryDataSize)
		}
		if uint64(s.RawDataSize) > s.MemoryDataSize {
			return f.sectionErr(s, "RawDataSize %#x exceeds MemoryDataSize %#x", s.RawDataSize, s.MemoryDataSize)
		}
		switch s.Type {
		case SectionBFV, SectionCFV:
			if s.RawDataSize == 0 {
				return f.sectionErr(s, "RawDataSize is 0; a firmware volume must carry image bytes")
			}
			if uint64(s.DataOffset)+uint64(s.RawDataSize) > n {
				return f.sectionErr(s, "image bytes [%#x,+%#x) run past the end of the %#x-byte image", s.DataOffset, s.RawDataSize, n)
			}
			// QEMU copies MemoryDataSize bytes from DataOffset, not
			// RawDataSize bytes padded with zeros: only equal sizes
			// have one meaning (gce-tcb-verifier requires it too).
			if uint64(s.RawDataSize) != s.MemoryDataSize {
				return f.sectionErr(s, "MemoryDataSize %#x differs from RawDataSize %#x; QEMU would copy image bytes past the section", s.MemoryDataSize, s.RawDataSize)
			}
			fvTotal += uint64(s.RawDataSize)
			if s.Type == SectionBFV {
				bfvs++
			}
		case SectionTDHOB, SectionTempMem:
			if s.MemoryDataSize > MaxRAMSectionBytes-ramTotal {
				return f.sectionErr(s, "MemoryDataSize %#x brings TD_HOB and TEMP_MEM sections past %#x bytes; refusing such firmware", s.MemoryDataSize, MaxRAMSectionBytes)
			}
			ramTotal += s.MemoryDataSize
			if s.RawDataSize != 0 {
				return f.sectionErr(s, "RawDataSize %#x, want 0: %s is not loaded from the image", s.RawDataSize, s.Type)
			}
			if s.Type == SectionTDHOB {
				hobs++
				if s.ExtendsMR() {
					return f.sectionErr(s, "MR.EXTEND on the TD HOB is not supported: its contents are built by the VMM")
				}
			}
		}
	}
	byAddr := slices.Clone(f.Sections)
	slices.SortStableFunc(byAddr, func(a, b Section) int {
		switch {
		case a.MemoryAddress < b.MemoryAddress:
			return -1
		case a.MemoryAddress > b.MemoryAddress:
			return 1
		}
		return 0
	})
	for i := 1; i < len(byAddr); i++ {
		a, b := byAddr[i-1], byAddr[i]
		if b.MemoryAddress < a.End() {
			if b.Index < a.Index {
				a, b = b, a
			}
			return f.sectionErr(b, "guest-physical range [%#x,%#x) overlaps section %d (%s) [%#x,%#x)",
				b.MemoryAddress, b.End(), a.Index, a.Type, a.MemoryAddress, a.End())
		}
	}
	if hobs != 1 {
		return errAt(int64(f.DescriptorOffset), nil, "descriptor has %d TD_HOB sections, want exactly 1", hobs)
	}
	if bfvs == 0 {
		return errAt(int64(f.DescriptorOffset), nil, "descriptor has no BFV section")
	}
	if fvTotal != n {
		return errAt(int64(f.DescriptorOffset), nil, "firmware volumes cover %#x bytes but the image is %#x bytes (image size mismatch)", fvTotal, n)
	}
	return nil
}

// ParseGUIDTable returns the entries of OVMF's GUIDed table in file order.
// The table ends 0x20 bytes before the end of the image with a footer
// entry (u16 total length, TableFooterGUID); each entry ends with its u16
// length (data + 18) and its GUID, so the table is walked backwards.
func ParseGUIDTable(image []byte) ([]TableEntry, error) {
	n := len(image)
	if n < tableFooterGap+tableEntryTrailer {
		return nil, errAt(-1, ErrNoGUIDTable, "image of %d bytes is too small to hold an OVMF GUIDed table", n)
	}
	footerEnd := n - tableFooterGap
	if g := GUID(image[footerEnd-16 : footerEnd]); g != TableFooterGUID {
		return nil, errAt(int64(footerEnd-16), ErrNoGUIDTable, "no OVMF GUIDed table footer (found %s, want %s): not OVMF firmware", g, TableFooterGUID)
	}
	total := int(binary.LittleEndian.Uint16(image[footerEnd-18:]))
	if total < tableEntryTrailer || total > footerEnd {
		return nil, errAt(int64(footerEnd-18), ErrNoGUIDTable, "GUIDed table length %#x is out of range [%#x,%#x]", total, tableEntryTrailer, footerEnd)
	}
	start := footerEnd - total
	var rev []TableEntry
	seen := map[GUID]bool{}
	for p := footerEnd - tableEntryTrailer; p > start; {
		if p-start < tableEntryTrailer {
			return nil, errAt(int64(start), nil, "GUIDed table has %d stray bytes before its first entry", p-start)
		}
		g := GUID(image[p-16 : p])
		l := int(binary.LittleEndian.Uint16(image[p-18:]))
		if l < tableEntryTrailer {
			return nil, errAt(int64(p-18), nil, "GUIDed table entry %s has length %d, less than %d", g, l, tableEntryTrailer)
		}
		if l > p-start {
			return nil, errAt(int64(p-18), nil, "GUIDed table entry %s has length %d, more than the %d table bytes before it", g, l, p-start)
		}
		if seen[g] {
			return nil, errAt(int64(p-16), nil, "GUIDed table has entry %s twice", g)
		}
		seen[g] = true
		rev = append(rev, TableEntry{GUID: g, Offset: p - l, Data: image[p-l : p-tableEntryTrailer]})
		p -= l
	}
	slices.Reverse(rev)
	return rev, nil
}

// Image returns the firmware image Parse was given.
func (f *Firmware) Image() []byte { return f.image }

// SectionsOf returns the sections of type t in descriptor order.
func (f *Firmware) SectionsOf(t SectionType) []Section {
	var out []Section
	for _, s := range f.Sections {
		if s.Type == t {
			out = append(out, s)
		}
	}
	return out
}

// TDHOB returns the TD HOB section (Parse guarantees exactly one).
func (f *Firmware) TDHOB() Section { return f.SectionsOf(SectionTDHOB)[0] }

// SectionData returns the image bytes of a BFV or CFV section (nil for
// TD_HOB and TEMP_MEM). The CFV's bytes are what RTMR0's CFV event hashes.
func (f *Firmware) SectionData(s Section) []byte {
	if s.RawDataSize == 0 {
		return nil
	}
	return f.image[s.DataOffset : s.DataOffset+s.RawDataSize]
}
