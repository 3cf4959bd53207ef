package manifest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// QuoteFields are the TD quote body fields that identify the code and the
// launch of a TD (ARCHITECTURE decision 3), as they appear in the quote:
// TDAttributes and XFAM are the quote's 8 bytes (a little-endian u64).
type QuoteFields struct {
	MRTD          tdxmr.Digest
	RTMR0         tdxmr.Digest
	RTMR1         tdxmr.Digest
	RTMR2         tdxmr.Digest
	TDAttributes  [8]byte
	XFAM          [8]byte
	MRConfigID    tdxmr.Digest
	MROwner       tdxmr.Digest
	MROwnerConfig tdxmr.Digest
}

// ImageHashInputSize is the size of QuoteFields.Bytes.
const ImageHashInputSize = 4*48 + 8 + 8 + 3*48

// Bytes is the image-hash preimage, 352 bytes, each field exactly as in
// the quote body, no separators, no prefix:
//
//	offset  size  field
//	     0    48  MRTD
//	    48    48  RTMR0
//	    96    48  RTMR1
//	   144    48  RTMR2
//	   192     8  TDATTRIBUTES (little-endian u64, as in the quote)
//	   200     8  XFAM (little-endian u64, as in the quote)
//	   208    48  MRCONFIGID
//	   256    48  MROWNER
//	   304    48  MROWNERCONFIG
func (f *QuoteFields) Bytes() []byte {
	b := make([]byte, 0, ImageHashInputSize)
	b = append(b, f.MRTD[:]...)
	b = append(b, f.RTMR0[:]...)
	b = append(b, f.RTMR1[:]...)
	b = append(b, f.RTMR2[:]...)
	b = append(b, f.TDAttributes[:]...)
	b = append(b, f.XFAM[:]...)
	b = append(b, f.MRConfigID[:]...)
	b = append(b, f.MROwner[:]...)
	b = append(b, f.MROwnerConfig[:]...)
	return b
}

// ImageHash is the release identity of ARCHITECTURE decision 3:
// SHA-256(QuoteFields.Bytes()). A proxy computes it from a verified quote
// (QuoteFieldsFromQuote) and looks it up in a signed manifest or the
// registry; RTMR3 is not in it (it is replayed from the event log).
func ImageHash(fields QuoteFields) [32]byte { return sha256.Sum256(fields.Bytes()) }

// TD quote body offsets (research/measure.md §4.1, body-relative).
const (
	bodyTDAttributes  = 0x78
	bodyXFAM          = 0x80
	bodyMRTD          = 0x88
	bodyMRConfigID    = 0xB8
	bodyMROwner       = 0xE8
	bodyMROwnerConfig = 0x118
	bodyRTMR0         = 0x148

	// BodySizeTDX10 is the TD quote body of quote v4 and of v5 body type 2.
	BodySizeTDX10 = 584
	// BodySizeTDX15 is the v5 body type 3 (TDX 1.5: + TEE_TCB_SVN_2, MRSERVICETD).
	BodySizeTDX15 = 648

	quoteHeaderSize = 0x30
	teeTypeTDX      = 0x81
)

// QuoteFieldsFromBody extracts the fields from a TD quote body (584 or
// 648 bytes).
func QuoteFieldsFromBody(body []byte) (QuoteFields, error) {
	var f QuoteFields
	if len(body) != BodySizeTDX10 && len(body) != BodySizeTDX15 {
		return f, fmt.Errorf("manifest: TD quote body is %d bytes, want %d or %d", len(body), BodySizeTDX10, BodySizeTDX15)
	}
	copy(f.TDAttributes[:], body[bodyTDAttributes:])
	copy(f.XFAM[:], body[bodyXFAM:])
	copy(f.MRTD[:], body[bodyMRTD:])
	copy(f.MRConfigID[:], body[bodyMRConfigID:])
	copy(f.MROwner[:], body[bodyMROwner:])
	copy(f.MROwnerConfig[:], body[bodyMROwnerConfig:])
	copy(f.RTMR0[:], body[bodyRTMR0:])
	copy(f.RTMR1[:], body[bodyRTMR0+48:])
	copy(f.RTMR2[:], body[bodyRTMR0+96:])
	return f, nil
}

// QuoteBody locates the TD quote body in a raw TDX quote, v4 (body at
// 0x30) or v5 (u16 body type and u32 body size at 0x30, body at 0x36;
// type 2 = TDX 1.0, 3 = TDX 1.5). It checks the structure only: verify
// the quote's signature chain (go-tdx-guest verify) before trusting it.
func QuoteBody(quote []byte) ([]byte, error) {
	if len(quote) < quoteHeaderSize+6 {
		return nil, fmt.Errorf("manifest: quote is %d bytes, too short for a TDX quote", len(quote))
	}
	version := binary.LittleEndian.Uint16(quote[0:2])
	if tee := binary.LittleEndian.Uint32(quote[4:8]); tee != teeTypeTDX {
		return nil, fmt.Errorf("manifest: quote TEE type %#x, want %#x (TDX)", tee, teeTypeTDX)
	}
	var start, size int
	switch version {
	case 4:
		start, size = quoteHeaderSize, BodySizeTDX10
	case 5:
		typ := binary.LittleEndian.Uint16(quote[quoteHeaderSize:])
		n := binary.LittleEndian.Uint32(quote[quoteHeaderSize+2:])
		switch {
		case typ == 2 && n == BodySizeTDX10:
		case typ == 3 && n == BodySizeTDX15:
		default:
			return nil, fmt.Errorf("manifest: v5 quote body type %d of %d bytes, want type 2 (%d bytes) or 3 (%d bytes)", typ, n, BodySizeTDX10, BodySizeTDX15)
		}
		start, size = quoteHeaderSize+6, int(n)
	default:
		return nil, fmt.Errorf("manifest: quote version %d, want 4 or 5", version)
	}
	// The body is followed by at least the u32 signed-data size.
	if len(quote) < start+size+4 {
		return nil, fmt.Errorf("manifest: v%d quote is %d bytes, too short for its %d-byte body", version, len(quote), size)
	}
	return quote[start : start+size], nil
}

// QuoteFieldsFromQuote extracts the image-hash fields from a raw v4 or v5
// TDX quote (structure only; see QuoteBody).
func QuoteFieldsFromQuote(quote []byte) (QuoteFields, error) {
	body, err := QuoteBody(quote)
	if err != nil {
		return QuoteFields{}, err
	}
	return QuoteFieldsFromBody(body)
}

// Hash is a SHA-256 value, hex in JSON.
type Hash [32]byte

// String is lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes lower-case hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes 64 lower-case hex digits.
func (h *Hash) UnmarshalText(b []byte) error { return decodeHex(h[:], b, "sha256") }

// Bytes8 is an 8-byte quote field (TDATTRIBUTES, XFAM) in quote byte
// order, hex in JSON (16 digits, e.g. "0000001000000000" for
// SEPT_VE_DISABLE).
type Bytes8 [8]byte

// Uint64 is the field's value (the quote stores it little-endian).
func (b Bytes8) Uint64() uint64 { return binary.LittleEndian.Uint64(b[:]) }

// Bytes8Of returns the quote bytes of a u64 field.
func Bytes8Of(v uint64) Bytes8 {
	var b Bytes8
	binary.LittleEndian.PutUint64(b[:], v)
	return b
}

// String is lower-case hex of the quote bytes.
func (b Bytes8) String() string { return hex.EncodeToString(b[:]) }

// MarshalText encodes lower-case hex.
func (b Bytes8) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText decodes 16 lower-case hex digits.
func (b *Bytes8) UnmarshalText(t []byte) error { return decodeHex(b[:], t, "8-byte field") }

func decodeHex(dst, src []byte, what string) error {
	if len(src) != 2*len(dst) {
		return fmt.Errorf("%s %q: want %d hex digits", what, src, 2*len(dst))
	}
	for _, c := range src {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%s %q: want lower-case hex digits", what, src)
		}
	}
	_, err := hex.Decode(dst, src)
	return err
}
