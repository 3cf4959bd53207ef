package smbios

import (
	"crypto/sha512"
	"fmt"
)

// filterField is one entry of SmbiosMeasurementDxe's filter table: a
// field at Offset of Size bytes, a string index when String.
type filterField struct {
	Offset, Size int
	String       bool
}

// filters is mSmbiosFilterStandardTableBlackList (edk2
// MdeModulePkg/Universal/SmbiosMeasurementDxe, unchanged from 2022 to
// stable202605): per type, the fields blanked before measuring; a nil
// list blanks everything after the header.
var filters = map[uint8][]filterField{
	1: {{7, 1, true}, {8, 16, false}, {24, 1, false}}, // SerialNumber, Uuid, WakeUpType
	2: {{7, 1, true}, {10, 1, true}},                  // SerialNumber, LocationInChassis
	3: {{7, 1, true}, {8, 1, true}},                   // SerialNumber, AssetTag
	4: {
		{32, 1, true}, {33, 1, true}, {34, 1, true}, // SerialNumber, AssetTag, PartNumber
		{35, 1, false}, {36, 1, false}, {37, 1, false}, // CoreCount, EnabledCoreCount, ThreadCount
		{42, 2, false}, {44, 2, false}, {46, 2, false}, // CoreCount2, EnabledCoreCount2, ThreadCount2
		{17, 1, false}, {22, 2, false}, // Voltage, CurrentSpeed
	},
	11: nil,                                            // OEM strings
	15: nil,                                            // system event log
	17: {{24, 1, true}, {25, 1, true}, {26, 1, true}},  // SerialNumber, AssetTag, PartNumber
	18: nil,                                            // 32-bit memory error information
	22: {{7, 1, true}, {16, 2, false}, {18, 2, false}}, // SerialNumber, SBDSSerialNumber, SBDSManufactureDate
	23: {{5, 2, false}},                                // ResetCount
	27: {{12, 2, false}},                               // NominalSpeed
	31: nil,                                            // boot integrity services entry point
	33: nil,                                            // 64-bit memory error information
	39: {{8, 1, true}, {9, 1, true}, {10, 1, true}},    // SerialNumber, AssetTagNumber, ModelPartNumber
}

// typeOEMBegin is the first OEM structure type; OEM structures are
// blanked after the header.
const typeOEMBegin = 128

// Filter returns a copy of an SMBIOS structure table with
// SmbiosMeasurementDxe's filter applied to every structure (see the
// package comment). The table must parse with ParseStructures; bytes after
// the end structure are dropped, as GetSmbiosTableLength stops there.
func Filter(table []byte) ([]byte, error) {
	ss, err := ParseStructures(table)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, s := range ss {
		raw := append([]byte(nil), s.Raw...)
		if err := filterStructure(s, raw); err != nil {
			return nil, err
		}
		out = append(out, raw...)
	}
	return out, nil
}

func filterStructure(s Structure, raw []byte) error {
	fields, listed := filters[s.Type]
	switch {
	case s.Type >= typeOEMBegin || listed && fields == nil:
		clear(raw[headerSize:])
		return nil
	case !listed:
		return nil
	}
	strs := s.Strings()
	for _, f := range fields {
		if s.Length() < f.Offset+f.Size {
			continue // the structure is too short to have the field
		}
		if f.String {
			if id := int(raw[f.Offset]); id != 0 {
				// GetSmbiosStringById stops at the id-th string, or at
				// the last one when there are fewer.
				if len(strs) == 0 {
					return fmt.Errorf("smbios: structure at offset %d (type %d) names string %d at field offset %d but has no strings (edk2 asserts)", s.Offset, s.Type, id, f.Offset)
				}
				r := strs[min(id, len(strs))-1]
				for i := range r.Len {
					raw[r.Offset+i] = ' '
				}
			}
		}
		clear(raw[f.Offset : f.Offset+f.Size])
	}
	return nil
}

// Digest is SHA-384 of the filtered table: the digest of OVMF's SMBIOS
// handoff event.
func Digest(table []byte) ([48]byte, error) {
	f, err := Filter(table)
	if err != nil {
		return [48]byte{}, err
	}
	return sha512.Sum384(f), nil
}

// EventTypeHandoffTables is EV_EFI_HANDOFF_TABLES, the type OVMF logs the
// event with (EV_EFI_HANDOFF_TABLES2 "SmbiosTable" only with
// PcdTcgPfpMeasurementRevision >= 105, which OVMF does not set).
const EventTypeHandoffTables uint32 = 0x80000009

// Configuration table GUIDs of the event data's EFI_CONFIGURATION_TABLE
// entry (mixed-endian bytes as they appear in memory).
var (
	// SMBIOSTableGUID is gEfiSmbiosTableGuid
	// eb9d2d31-2d88-11d3-9a16-0090273fc14d (2.x entry point).
	SMBIOSTableGUID = [16]byte{0x31, 0x2d, 0x9d, 0xeb, 0x88, 0x2d, 0xd3, 0x11, 0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d}
	// SMBIOS3TableGUID is gEfiSmbios3TableGuid
	// f2fd1544-9794-4a2c-992e-e5bbcf20e394 (3.x entry point).
	SMBIOS3TableGUID = [16]byte{0x44, 0x15, 0xfd, 0xf2, 0x94, 0x97, 0x2c, 0x4a, 0x99, 0x2e, 0xe5, 0xbb, 0xcf, 0x20, 0xe3, 0x94}
)

// EventDataPrefix is the part of the event data (EFI_HANDOFF_TABLE_POINTERS:
// u64 NumberOfTables = 1, the vendor GUID, u64 table address) that does
// not depend on where the firmware put the table: everything but the
// last 8 bytes.
func (t *Table) EventDataPrefix() []byte {
	b := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	if t.Anchor.V3() {
		return append(b, SMBIOS3TableGUID[:]...)
	}
	return append(b, SMBIOSTableGUID[:]...)
}

// Digest is the handoff event's digest for this table.
func (t *Table) Digest() ([48]byte, error) { return Digest(t.Bytes) }

// OVMFDigest rebuilds OVMF's table from QEMU's fw_cfg files and returns
// it with the event digest.
func OVMFDigest(anchor, tables []byte, o Options) (*Table, [48]byte, error) {
	t, err := OVMFTable(anchor, tables, o)
	if err != nil {
		return nil, [48]byte{}, err
	}
	d, err := t.Digest()
	return t, d, err
}
