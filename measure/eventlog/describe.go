package eventlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// maxLabel bounds the length of text Describe copies from event data.
const maxLabel = 96

// printable returns b up to its first NUL as text, with bytes outside
// printable ASCII replaced by '.', cut at max bytes.
func printable(b []byte, max int) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	cut := false
	if len(b) > max {
		b, cut = b[:max], true
	}
	var s strings.Builder
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		s.WriteByte(c)
	}
	if cut {
		s.WriteString("...")
	}
	return s.String()
}

// utf16String decodes UTF-16LE up to its first NUL, bounded by max
// characters.
func utf16String(b []byte, max int) string {
	var u []uint16
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	s := string(utf16.Decode(u))
	return printable([]byte(s), max)
}

// FormatGUID formats a 16-byte EFI GUID (first three fields
// little-endian) in its canonical lower-case text form.
func FormatGUID(g []byte) string {
	if len(g) != 16 {
		return fmt.Sprintf("guid(%d bytes)", len(g))
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(g[0:4]), binary.LittleEndian.Uint16(g[4:6]), binary.LittleEndian.Uint16(g[6:8]), g[8:10], g[10:16])
}

var guidNames = map[string]string{
	GUIDGlobalVariable:  "global",
	GUIDImageSecurityDB: "image-security-db",
	GUIDShimLock:        "shim",
	GUIDTdxHandoffTdHob: "td-hob",
}

// VariableData is a decoded UEFI_VARIABLE_DATA (the event data of the
// EV_EFI_VARIABLE_* events).
type VariableData struct {
	// VendorGUID is the variable's vendor GUID in text form.
	VendorGUID string
	// Name is the variable name.
	Name string
	// Data is the variable's value.
	Data []byte
}

// ParseVariableData decodes UEFI_VARIABLE_DATA: GUID, u64 name length
// (characters, no NUL), u64 data length, UTF-16LE name, data. The
// lengths must account for every byte.
func ParseVariableData(b []byte) (*VariableData, error) {
	if len(b) < 32 {
		return nil, fmt.Errorf("UEFI_VARIABLE_DATA is %d bytes, want at least 32", len(b))
	}
	nameLen := binary.LittleEndian.Uint64(b[16:24])
	dataLen := binary.LittleEndian.Uint64(b[24:32])
	rest := uint64(len(b) - 32)
	if nameLen > rest/2 || dataLen != rest-2*nameLen {
		return nil, fmt.Errorf("UEFI_VARIABLE_DATA of %d bytes declares a %d-character name and %d data bytes", len(b), nameLen, dataLen)
	}
	name := b[32 : 32+2*nameLen]
	u := make([]uint16, nameLen)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(name[2*i:])
	}
	return &VariableData{
		VendorGUID: FormatGUID(b[0:16]),
		Name:       string(utf16.Decode(u)),
		Data:       b[32+2*nameLen:],
	}, nil
}

// ParseTaggedEvent decodes TCG_PCClientTaggedEvent: u32 id, u32 size,
// size bytes of data (exactly the rest).
func ParseTaggedEvent(b []byte) (id uint32, data []byte, err error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("tagged event is %d bytes, want at least 8", len(b))
	}
	id = binary.LittleEndian.Uint32(b[0:4])
	size := binary.LittleEndian.Uint32(b[4:8])
	if uint64(size) != uint64(len(b)-8) {
		return 0, nil, fmt.Errorf("tagged event %#x declares %d data bytes but has %d", id, size, len(b)-8)
	}
	return id, b[8:], nil
}

var errShort = errors.New("short")

// Describe returns a short label of the event from its data where the
// format is known (variable names, blob descriptions, action strings,
// tagged events, image paths), else its size. It never fails.
func (e *Event) Describe() string {
	d := e.Data
	switch e.Type {
	case EvNoAction:
		if bytes.HasPrefix(d, []byte(startupLocality)) && len(d) == len(startupLocality)+1 {
			return fmt.Sprintf("StartupLocality %d", d[len(d)-1])
		}
		return fmt.Sprintf("%q (%d bytes)", printable(d, 32), len(d))
	case EvSeparator:
		if len(d) == 4 {
			switch v := binary.LittleEndian.Uint32(d); v {
			case 0:
				return "separator"
			case 0xFFFFFFFF:
				return "separator (error)"
			default:
				return fmt.Sprintf("separator %#08x", v)
			}
		}
	case EvEFIAction, EvAction, EvIPL, EvPostCode, EvPlatformConfigFlags, EvSCRTMContents, EvCompactHash:
		if bytes.HasPrefix(d, []byte("QEMU FW CFG\x00")) {
			return "QEMU FW CFG " + printable(d[12:], maxLabel)
		}
		if len(d) > 0 && isText(d) {
			return fmt.Sprintf("%q", printable(d, maxLabel))
		}
	case EvSCRTMVersion:
		return fmt.Sprintf("%q", utf16String(d, maxLabel))
	case EvEventTag:
		id, data, err := ParseTaggedEvent(d)
		if err != nil {
			break
		}
		if n := TagName(id); n != "" {
			return n
		}
		return fmt.Sprintf("tag %#08x %q", id, printable(data, maxLabel))
	case EvEFIVariableDriverCfg, EvEFIVariableBoot, EvEFIVariableBoot2, EvEFIVariableAuthority:
		v, err := ParseVariableData(d)
		if err != nil {
			break
		}
		vendor := guidNames[v.VendorGUID]
		if vendor == "" {
			vendor = v.VendorGUID
		}
		return fmt.Sprintf("%s:%s (%s)", vendor, printable([]byte(v.Name), maxLabel), plural(len(v.Data), "byte"))
	case EvEFIPlatformFwBlob2, EvEFIHandoffTables2:
		if len(d) >= 1 && int(d[0])+1 <= len(d) {
			return fmt.Sprintf("%q", printable(d[1:1+int(d[0])], maxLabel))
		}
	case EvEFIPlatformFwBlob:
		if len(d) == 16 {
			return fmt.Sprintf("blob %#x bytes at %#x", binary.LittleEndian.Uint64(d[8:]), binary.LittleEndian.Uint64(d[:8]))
		}
	case EvEFIHandoffTables:
		if len(d) >= 8 {
			return fmt.Sprintf("%d configuration tables", binary.LittleEndian.Uint64(d))
		}
	case EvEFIBootServicesApp, EvEFIBootServicesDriver, EvEFIRuntimeServicesDrv:
		if s, err := describeImageLoad(d); err == nil {
			return s
		}
	}
	return plural(len(d), "byte")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func isText(b []byte) bool {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		for _, c := range b[i:] {
			if c != 0 {
				return false
			}
		}
		b = b[:i]
	}
	for _, c := range b {
		if (c < 0x20 && c != '\n' && c != '\t') || c > 0x7e {
			return false
		}
	}
	return true
}

// describeImageLoad decodes UEFI_IMAGE_LOAD_EVENT: u64 location, u64
// length, u64 link-time address, u64 device-path length, device path.
func describeImageLoad(d []byte) (string, error) {
	if len(d) < 32 {
		return "", errShort
	}
	length := binary.LittleEndian.Uint64(d[8:16])
	dpLen := binary.LittleEndian.Uint64(d[24:32])
	if dpLen != uint64(len(d)-32) {
		return "", errShort
	}
	return fmt.Sprintf("image of %d bytes, %s", length, devicePath(d[32:])), nil
}

// devicePath renders the nodes of an EFI device path Describe knows.
func devicePath(b []byte) string {
	var parts []string
	for len(b) >= 4 && len(parts) < 16 {
		typ, sub := b[0], b[1]
		n := int(binary.LittleEndian.Uint16(b[2:4]))
		if n < 4 || n > len(b) {
			parts = append(parts, "?")
			break
		}
		body := b[4:n]
		b = b[n:]
		switch {
		case typ == 0x7f:
			b = nil
		case typ == 4 && sub == 4:
			parts = append(parts, utf16String(body, maxLabel))
		case typ == 4 && sub == 6 && len(body) == 16:
			parts = append(parts, "FvFile("+FormatGUID(body)+")")
		case typ == 4 && sub == 7 && len(body) == 16:
			parts = append(parts, "Fv("+FormatGUID(body)+")")
		case typ == 4 && sub == 3 && len(body) >= 16:
			parts = append(parts, "VenMedia("+FormatGUID(body[:16])+")")
		default:
			parts = append(parts, fmt.Sprintf("node(%d,%d)", typ, sub))
		}
	}
	if len(parts) == 0 {
		return "no device path"
	}
	return strings.Join(parts, "/")
}
