package eventlog

import (
	"encoding/binary"
	"fmt"
)

// CCEL ACPI table layout (ACPI 6.5 §5.2.34): the standard 36-byte table
// header, then u8 CC type @36, u8 CC subtype @37, u16 reserved @38,
// u64 LAML (log area minimum length) @40, u64 LASA (log area start
// address) @48.
const (
	CCELSignature = "CCEL"
	CCELTableSize = 56
)

// CCType is the confidential-computing technology of a CCEL.
type CCType uint8

// CC types of the CCEL table.
const (
	CCTypeNone CCType = 0
	CCTypeSEV  CCType = 1
	CCTypeTDX  CCType = 2
)

// String returns "TDX", "SEV", "none" or the number.
func (t CCType) String() string {
	switch t {
	case CCTypeNone:
		return "none"
	case CCTypeSEV:
		return "SEV"
	case CCTypeTDX:
		return "TDX"
	}
	return fmt.Sprintf("cc-type-%d", uint8(t))
}

// CCELTable is a parsed CCEL ACPI table.
type CCELTable struct {
	// Revision, OEMID, OEMTableID, OEMRevision, CreatorID and
	// CreatorRevision are the ACPI header fields (Length and Checksum are
	// checked and recomputed by Marshal).
	Revision        uint8
	OEMID           [6]byte
	OEMTableID      [8]byte
	OEMRevision     uint32
	CreatorID       [4]byte
	CreatorRevision uint32
	// CCType is the technology: CCTypeTDX for a TD.
	CCType CCType
	// CCSubtype is 0 for TDX.
	CCSubtype uint8
	// Reserved is the u16 after the subtype (zero).
	Reserved uint16
	// LAML is the length of the log area.
	LAML uint64
	// LASA is the guest-physical start of the log area.
	LASA uint64
}

// ParseCCELTable parses the CCEL ACPI table (as read from
// /sys/firmware/acpi/tables/CCEL): signature, length (exactly the buffer,
// at least 56), checksum (bytes sum to 0 mod 256).
func ParseCCELTable(b []byte) (*CCELTable, error) {
	if len(b) < CCELTableSize {
		return nil, errAt(len(b), "CCEL table is %d bytes, want %d", len(b), CCELTableSize)
	}
	if string(b[0:4]) != CCELSignature {
		return nil, errAt(0, "ACPI table signature %q, want %q", printable(b[0:4], 4), CCELSignature)
	}
	length := binary.LittleEndian.Uint32(b[4:8])
	if length != CCELTableSize || len(b) != CCELTableSize {
		return nil, errAt(4, "CCEL table length field is %d and the table has %d bytes, want %d", length, len(b), CCELTableSize)
	}
	var sum byte
	for _, c := range b {
		sum += c
	}
	if sum != 0 {
		return nil, errAt(9, "CCEL table checksum is wrong: the bytes sum to %#02x mod 256, want 0", sum)
	}
	t := &CCELTable{
		Revision:        b[8],
		OEMRevision:     binary.LittleEndian.Uint32(b[24:28]),
		CreatorRevision: binary.LittleEndian.Uint32(b[32:36]),
		CCType:          CCType(b[36]),
		CCSubtype:       b[37],
		Reserved:        binary.LittleEndian.Uint16(b[38:40]),
		LAML:            binary.LittleEndian.Uint64(b[40:48]),
		LASA:            binary.LittleEndian.Uint64(b[48:56]),
	}
	copy(t.OEMID[:], b[10:16])
	copy(t.OEMTableID[:], b[16:24])
	copy(t.CreatorID[:], b[28:32])
	return t, nil
}

// Marshal encodes the table with its length and checksum.
func (t *CCELTable) Marshal() []byte {
	b := make([]byte, CCELTableSize)
	copy(b[0:4], CCELSignature)
	binary.LittleEndian.PutUint32(b[4:8], CCELTableSize)
	b[8] = t.Revision
	copy(b[10:16], t.OEMID[:])
	copy(b[16:24], t.OEMTableID[:])
	binary.LittleEndian.PutUint32(b[24:28], t.OEMRevision)
	copy(b[28:32], t.CreatorID[:])
	binary.LittleEndian.PutUint32(b[32:36], t.CreatorRevision)
	b[36] = byte(t.CCType)
	b[37] = t.CCSubtype
	binary.LittleEndian.PutUint16(b[38:40], t.Reserved)
	binary.LittleEndian.PutUint64(b[40:48], t.LAML)
	binary.LittleEndian.PutUint64(b[48:56], t.LASA)
	var sum byte
	for _, c := range b {
		sum += c
	}
	b[9] = -sum
	return b
}

// String summarises the table.
func (t *CCELTable) String() string {
	return fmt.Sprintf("CCEL rev %d, OEM %q/%q, CC type %s subtype %d, log area %d bytes at %#x",
		t.Revision, printable(t.OEMID[:], 6), printable(t.OEMTableID[:], 8), t.CCType, t.CCSubtype, t.LAML, t.LASA)
}

// ParseCCEL parses a TD's CCEL table and its log area (as read from
// /sys/firmware/acpi/tables/data/CCEL): the table must say TDX and the
// log area may not be longer than LAML (it may be shorter: a log copied
// without its padding).
func ParseCCEL(table, data []byte) (*CCELTable, *Log, error) {
	t, err := ParseCCELTable(table)
	if err != nil {
		return nil, nil, err
	}
	if t.CCType != CCTypeTDX {
		return nil, nil, fmt.Errorf("eventlog: CCEL table has CC type %d (%s), want %d (TDX)", uint8(t.CCType), t.CCType, uint8(CCTypeTDX))
	}
	if uint64(len(data)) > t.LAML {
		return nil, nil, fmt.Errorf("eventlog: CCEL log area is %d bytes but the table's LAML says %d", len(data), t.LAML)
	}
	l, err := Parse(data)
	if err != nil {
		return nil, nil, err
	}
	return t, l, nil
}
