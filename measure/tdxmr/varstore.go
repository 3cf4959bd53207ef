package tdxmr

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"

	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
)

// Variable store GUIDs (edk2 MdeModulePkg/Include/Guid/VariableFormat.h).
var (
	// AuthVariableStoreGUID marks a store of authenticated variables
	// (what OVMF's CFV holds).
	AuthVariableStoreGUID = tdvf.MustParseGUID("aaf32c78-947b-439a-a180-2e144ec37792")
	// VariableStoreGUID marks a store of plain variables.
	VariableStoreGUID = tdvf.MustParseGUID("ddcf3616-3275-4164-98b6-fe85707ffe7d")
)

// Variable store layout.
const (
	fvHeaderMinSize     = 0x40 // EFI_FIRMWARE_VOLUME_HEADER with one block map entry
	fvSignatureOffset   = 40   // "_FVH"
	fvHeaderLenOffset   = 48
	fvExtHeaderOffset   = 52
	fvExtHeaderSize     = 20 // FvName GUID + ExtHeaderSize
	varStoreHeaderSize  = 28
	varStoreFormatted   = 0x5a
	varStoreHealthy     = 0xfe
	varStartID          = 0x55aa
	authVarHeaderSize   = 60
	plainVarHeaderSize  = 32
	varAdded            = 0x3f
	varInDeletedTransit = 0x3e // VAR_ADDED & VAR_IN_DELETED_TRANSITION
)

// Variable is one live UEFI variable of a firmware variable store.
type Variable struct {
	Name       string
	Vendor     tdvf.GUID
	Attributes uint32
	Data       []byte
}

// ParseVariableStore returns the live variables of the variable store in
// a configuration firmware volume (OVMF's CFV: a firmware volume header,
// then a VARIABLE_STORE_HEADER and the variables). A variable in
// "deleted transition" counts only when no added copy exists, as in edk2.
// Errors name the offset and the problem.
func ParseVariableStore(cfv []byte) ([]Variable, error) {
	if len(cfv) < fvHeaderMinSize {
		return nil, fmt.Errorf("tdxmr: CFV of %d bytes is too small for a firmware volume header", len(cfv))
	}
	if string(cfv[fvSignatureOffset:fvSignatureOffset+4]) != "_FVH" {
		return nil, fmt.Errorf("tdxmr: CFV has no firmware volume signature \"_FVH\" at %#x", fvSignatureOffset)
	}
	hl := int(binary.LittleEndian.Uint16(cfv[fvHeaderLenOffset:]))
	if hl < fvHeaderMinSize || hl+varStoreHeaderSize > len(cfv) {
		return nil, fmt.Errorf("tdxmr: CFV header length %#x leaves no variable store header in %#x bytes", hl, len(cfv))
	}
	st := cfv[hl:]
	sig := tdvf.GUID(st[:16])
	var hdrSize int
	switch sig {
	case AuthVariableStoreGUID:
		hdrSize = authVarHeaderSize
	case VariableStoreGUID:
		hdrSize = plainVarHeaderSize
	default:
		return nil, fmt.Errorf("tdxmr: CFV variable store at %#x has signature %s, not a known variable store GUID", hl, sig)
	}
	size := binary.LittleEndian.Uint32(st[16:])
	if st[20] != varStoreFormatted || st[21] != varStoreHealthy {
		return nil, fmt.Errorf("tdxmr: CFV variable store at %#x is not formatted and healthy (format %#x, state %#x)", hl, st[20], st[21])
	}
	if size < varStoreHeaderSize || uint64(size) > uint64(len(st)) {
		return nil, fmt.Errorf("tdxmr: CFV variable store at %#x claims %#x bytes; %#x are there", hl, size, len(st))
	}
	st = st[:size]
	type found struct {
		v     Variable
		state byte
	}
	var all []found
	for p := align4(varStoreHeaderSize); p+hdrSize <= len(st); {
		h := st[p:]
		if binary.LittleEndian.Uint16(h) != varStartID {
			break
		}
		state, attrs := h[2], binary.LittleEndian.Uint32(h[4:])
		var nameSize, dataSize uint32
		var vendor tdvf.GUID
		if hdrSize == authVarHeaderSize {
			nameSize, dataSize = binary.LittleEndian.Uint32(h[36:]), binary.LittleEndian.Uint32(h[40:])
			copy(vendor[:], h[44:60])
		} else {
			nameSize, dataSize = binary.LittleEndian.Uint32(h[8:]), binary.LittleEndian.Uint32(h[12:])
			copy(vendor[:], h[16:32])
		}
		nameAt := p + hdrSize
		dataAt := uint64(nameAt) + uint64(nameSize) + uint64(pad4(nameSize))
		end := dataAt + uint64(dataSize)
		if end > uint64(len(st)) {
			return nil, fmt.Errorf("tdxmr: CFV variable at store offset %#x (name %d bytes, data %d bytes) runs past the %#x-byte store", p, nameSize, dataSize, len(st))
		}
		if state == varAdded || state == varInDeletedTransit {
			name, err := ucs2Name(st[nameAt : nameAt+int(nameSize)])
			if err != nil {
				return nil, fmt.Errorf("tdxmr: CFV variable at store offset %#x: %w", p, err)
			}
			all = append(all, found{Variable{Name: name, Vendor: vendor, Attributes: attrs, Data: st[dataAt:end]}, state})
		}
		p = align4(int(end))
	}
	type key struct {
		name   string
		vendor tdvf.GUID
	}
	added := map[key]bool{}
	for _, f := range all {
		if f.state == varAdded {
			added[key{f.v.Name, f.v.Vendor}] = true
		}
	}
	var out []Variable
	for _, f := range all {
		if f.state == varInDeletedTransit && added[key{f.v.Name, f.v.Vendor}] {
			continue
		}
		out = append(out, f.v)
	}
	return out, nil
}

// FvName returns the name GUID of a firmware volume's extended header, as
// edk2's GetFvName does, and false when the volume has none.
func FvName(fv []byte) (tdvf.GUID, bool) {
	if len(fv) < fvHeaderMinSize {
		return tdvf.GUID{}, false
	}
	off := int(binary.LittleEndian.Uint16(fv[fvExtHeaderOffset:]))
	if off < fvHeaderMinSize || off+fvExtHeaderSize > len(fv) {
		return tdvf.GUID{}, false
	}
	return tdvf.GUID(fv[off : off+16]), true
}

// ucs2Name decodes a NUL-terminated UTF-16LE variable name.
func ucs2Name(b []byte) (string, error) {
	if len(b) < 2 || len(b)%2 != 0 {
		return "", fmt.Errorf("name of %d bytes is not a NUL-terminated UTF-16 string", len(b))
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	if u[len(u)-1] != 0 {
		return "", fmt.Errorf("name is not NUL-terminated")
	}
	return string(utf16.Decode(u[:len(u)-1])), nil
}

func align4(n int) int { return (n + 3) &^ 3 }

func pad4(n uint32) uint32 { return (4 - n%4) % 4 }
