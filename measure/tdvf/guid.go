package tdvf

import (
	"encoding/hex"
	"fmt"
)

// GUID is an EFI GUID in its on-disk byte order: the first three fields
// (4, 2 and 2 bytes) little-endian, the last 8 bytes as written.
type GUID [16]byte

// ParseGUID parses the canonical text form
// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into on-disk byte order.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("tdvf: GUID %q: want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	raw, err := hex.DecodeString(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36])
	if err != nil {
		return g, fmt.Errorf("tdvf: GUID %q: %v", s, err)
	}
	// Mixed endian: swap the first three fields.
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g, nil
}

// MustParseGUID is ParseGUID for constants; it panics on a malformed string.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// String returns the canonical lower-case text form.
func (g GUID) String() string {
	return fmt.Sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6],
		g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15])
}

// GUIDs of OVMF's reset-vector GUIDed table and the TDX metadata
// (research/measure.md §1.1).
var (
	// TableFooterGUID ends OVMF's GUIDed table, 0x20 bytes before the end
	// of the image.
	TableFooterGUID = MustParseGUID("96b582de-1fb2-45f7-baea-a366c55a082d")
	// MetadataOffsetGUID names the table entry whose 4-byte data is the
	// distance from the end of the image to the TDVF descriptor.
	MetadataOffsetGUID = MustParseGUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
	// MetadataGUID precedes the TDVF descriptor in the image.
	MetadataGUID = MustParseGUID("e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae")
)
