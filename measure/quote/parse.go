package quote

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Quote layout constants (research/measure.md §4).
const (
	headerSize      = 0x30
	bodySizeTDX10   = 584
	bodySizeTDX15   = 648
	qeReportSize    = 384
	sigSize         = 64
	keySize         = 64
	teeTypeTDX      = 0x81
	attestKeyECDSA  = 2
	certTypeQEData  = 6
	certTypePCKPEM  = 5
	maxQuoteSize    = 1 << 16
	maxPCKChainSize = 1 << 15
)

// Intel's QE vendor ID 939a7233-f79c-4ca9-940a-0db3957f0607.
var intelQEVendorID = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// Fields are a quote's header SVNs and its TD quote body, as signed.
type Fields struct {
	// Version is the quote version (4 or 5).
	Version uint16
	// BodyType is 2 (TDX 1.0 body) for v4 and v5 type 2, 3 for a v5 TDX 1.5 body.
	BodyType uint16
	// QESVN and PCESVN are the header SVNs.
	QESVN, PCESVN uint16

	TeeTcbSvn      [16]byte
	MRSEAM         [48]byte
	MRSIGNERSEAM   [48]byte
	SEAMATTRIBUTES [8]byte
	TDATTRIBUTES   [8]byte
	XFAM           [8]byte
	MRTD           [48]byte
	MRCONFIGID     [48]byte
	MROWNER        [48]byte
	MROWNERCONFIG  [48]byte
	RTMR           [4][48]byte
	REPORTDATA     [64]byte
	// TeeTcbSvn2 and MRSERVICETD exist in TDX 1.5 bodies only (zero otherwise).
	TeeTcbSvn2  [16]byte
	MRSERVICETD [48]byte
}

// Quote holds the fields of a TDX quote. Parse fills the structure;
// Verify also fills FMSPC, the TCB statuses and the advisory IDs.
type Quote struct {
	Fields

	// FMSPC is from the PCK certificate (hex, set by Verify).
	FMSPC string
	// TCBStatus is the platform TCB status from the TCB info, "Unknown"
	// when verified without collateral (set by Verify).
	TCBStatus string
	// ModuleTCBStatus is the TDX module's TCB status ("" when the TCB info
	// has no module identity to judge, "Unknown" without collateral).
	ModuleTCBStatus string
	// QETCBStatus is the quoting enclave's TCB status.
	QETCBStatus string
	// AdvisoryIDs lists Intel advisories of the matched TCB levels.
	AdvisoryIDs []string

	// ExtraBytes counts bytes after the signed data (ignored).
	ExtraBytes int

	// Raw parts, used by verification.
	signed     []byte // header and body descriptor: what the attestation key signs
	body       []byte // the TD quote body
	signature  []byte // r||s
	attestKey  []byte // x||y
	qeReport   []byte // 384-byte SGX report body
	qeReportSg []byte // r||s by the PCK leaf key
	qeAuthData []byte
	pckChain   []byte // PEM
}

// StatusUnknown is the TCB status when no collateral was consulted.
const StatusUnknown = "Unknown"

// Body returns the TD quote body bytes (584 or 648 bytes).
func (q *Quote) Body() []byte { return q.body }

// PCKChainPEM returns the PEM certificate chain carried in the quote.
func (q *Quote) PCKChainPEM() []byte { return q.pckChain }

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.err = fmt.Errorf("quote: truncated at offset %#x: %s needs %d bytes, %d left", r.off, what, n, len(r.b)-r.off)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) u16(what string) uint16 {
	if s := r.take(2, what); s != nil {
		return binary.LittleEndian.Uint16(s)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if s := r.take(4, what); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

// Parse decodes a raw v4 or v5 TDX quote. It checks structure only: use
// Verify before trusting any field.
func Parse(raw []byte) (*Quote, error) {
	if len(raw) > maxQuoteSize {
		return nil, fmt.Errorf("quote: %d bytes, more than the %d allowed", len(raw), maxQuoteSize)
	}
	r := &reader{b: raw}
	q := &Quote{}
	q.Version = r.u16("version")
	akType := r.u16("attestation key type")
	tee := r.u32("TEE type")
	q.QESVN = r.u16("QE SVN")
	q.PCESVN = r.u16("PCE SVN")
	vendor := r.take(16, "QE vendor ID")
	r.take(20, "user data")
	if r.err != nil {
		return nil, r.err
	}
	if q.Version != 4 && q.Version != 5 {
		return nil, fmt.Errorf("quote: version %d, want 4 or 5", q.Version)
	}
	if akType != attestKeyECDSA {
		return nil, fmt.Errorf("quote: attestation key type %d, want %d (ECDSA-256-with-P-256)", akType, attestKeyECDSA)
	}
	if tee != teeTypeTDX {
		return nil, fmt.Errorf("quote: TEE type %#x, want %#x (TDX)", tee, teeTypeTDX)
	}
	if [16]byte(vendor) != intelQEVendorID {
		return nil, fmt.Errorf("quote: QE vendor ID %x, want %x (Intel)", vendor, intelQEVendorID[:])
	}
	bodySize := bodySizeTDX10
	q.BodyType = 2
	if q.Version == 5 {
		q.BodyType = r.u16("v5 body type")
		n := r.u32("v5 body size")
		if r.err != nil {
			return nil, r.err
		}
		switch {
		case q.BodyType == 2 && n == bodySizeTDX10:
		case q.BodyType == 3 && n == bodySizeTDX15:
			bodySize = bodySizeTDX15
		default:
			return nil, fmt.Errorf("quote: v5 body type %d of %d bytes, want type 2 (%d bytes) or 3 (%d bytes)", q.BodyType, n, bodySizeTDX10, bodySizeTDX15)
		}
	}
	q.body = r.take(bodySize, "TD quote body")
	if r.err != nil {
		return nil, r.err
	}
	q.signed = raw[:r.off]
	fillBody(q, q.body)

	sigLen := r.u32("signed data size")
	if r.err != nil {
		return nil, r.err
	}
	if int64(sigLen) > int64(len(raw)-r.off) {
		return nil, fmt.Errorf("quote: signed data size %d, but only %d bytes follow", sigLen, len(raw)-r.off)
	}
	// Bytes after the signed data are neither signed nor used (quote
	// buffers are often padded); the parse continues within the signed data.
	q.ExtraBytes = len(raw) - r.off - int(sigLen)
	r.b = raw[:r.off+int(sigLen)]
	q.signature = r.take(sigSize, "quote signature")
	q.attestKey = r.take(keySize, "attestation key")
	if typ := r.u16("certification data type"); r.err == nil && typ != certTypeQEData {
		return nil, fmt.Errorf("quote: certification data type %d, want %d (QE report certification data)", typ, certTypeQEData)
	}
	cdLen := r.u32("certification data size")
	if r.err == nil && int64(cdLen) != int64(len(r.b)-r.off) {
		return nil, fmt.Errorf("quote: certification data size %d, but the signed data has %d bytes left", cdLen, len(r.b)-r.off)
	}
	q.qeReport = r.take(qeReportSize, "QE report")
	q.qeReportSg = r.take(sigSize, "QE report signature")
	authLen := r.u16("QE auth data size")
	q.qeAuthData = r.take(int(authLen), "QE auth data")
	if typ := r.u16("PCK certification data type"); r.err == nil && typ != certTypePCKPEM {
		return nil, fmt.Errorf("quote: PCK certification data type %d, want %d (PEM PCK chain)", typ, certTypePCKPEM)
	}
	chainLen := r.u32("PCK chain size")
	if r.err == nil && chainLen > maxPCKChainSize {
		return nil, fmt.Errorf("quote: PCK chain of %d bytes, more than %d", chainLen, maxPCKChainSize)
	}
	q.pckChain = r.take(int(chainLen), "PCK chain")
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(r.b) {
		return nil, fmt.Errorf("quote: %d bytes after the PCK chain inside the signed data", len(r.b)-r.off)
	}
	return q, nil
}

// fillBody copies the body fields (same order in every body type).
func fillBody(q *Quote, b []byte) {
	o := 0
	next := func(dst []byte) { o += copy(dst, b[o:o+len(dst)]) }
	next(q.TeeTcbSvn[:])
	next(q.MRSEAM[:])
	next(q.MRSIGNERSEAM[:])
	next(q.SEAMATTRIBUTES[:])
	next(q.TDATTRIBUTES[:])
	next(q.XFAM[:])
	next(q.MRTD[:])
	next(q.MRCONFIGID[:])
	next(q.MROWNER[:])
	next(q.MROWNERCONFIG[:])
	for i := range q.RTMR {
		next(q.RTMR[i][:])
	}
	next(q.REPORTDATA[:])
	if len(b) == bodySizeTDX15 {
		next(q.TeeTcbSvn2[:])
		next(q.MRSERVICETD[:])
	}
}

// TDAttributes is TDATTRIBUTES as a number (the quote stores it little-endian).
func (q *Quote) TDAttributes() uint64 { return binary.LittleEndian.Uint64(q.TDATTRIBUTES[:]) }

// XFAMValue is XFAM as a number.
func (q *Quote) XFAMValue() uint64 { return binary.LittleEndian.Uint64(q.XFAM[:]) }

// ImageFieldsSize is the length of ImageFields' result.
const ImageFieldsSize = 4*48 + 8 + 8 + 3*48

// ImageFields returns MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ TDATTRIBUTES ‖ XFAM ‖
// MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG, each as it appears in the quote
// (352 bytes): the image-hash preimage of ARCHITECTURE decision 3, equal
// to measure/manifest QuoteFields.Bytes(). Only meaningful for a quote
// that Verify accepted.
func ImageFields(q *Quote) []byte {
	b := make([]byte, 0, ImageFieldsSize)
	b = append(b, q.MRTD[:]...)
	b = append(b, q.RTMR[0][:]...)
	b = append(b, q.RTMR[1][:]...)
	b = append(b, q.RTMR[2][:]...)
	b = append(b, q.TDATTRIBUTES[:]...)
	b = append(b, q.XFAM[:]...)
	b = append(b, q.MRCONFIGID[:]...)
	b = append(b, q.MROWNER[:]...)
	b = append(b, q.MROWNERCONFIG[:]...)
	return b
}

var errNilQuote = errors.New("quote: nil quote")
