package gpu

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Report layout (research/gpu.md §2). All integers are little-endian.
const (
	// SPDMVersion is the only SPDM version Hopper speaks (1.1).
	SPDMVersion = 0x11
	// RequestSize is the size of the GET_MEASUREMENTS request that opens a report.
	RequestSize = 37
	// SignatureSize is the size of the raw ECDSA P-384 r‖s signature that ends a report.
	SignatureSize = 96
	// DigestSize is the size of a SHA-384 measurement digest.
	DigestSize = 48
	// MaxReportSize is the largest report NVML can return
	// (CC_GPU_ATTESTATION_REPORT_SIZE); larger input is refused.
	MaxReportSize = 8192

	codeGetMeasurements = 0xE0
	codeMeasurements    = 0x60
	reqParam1SigWanted  = 0x01
	reqParam2AllBlocks  = 0xFF
	maxSlotID           = 7
	respHeaderSize      = 8 // version, code, param1, param2, NumberOfBlocks, u24 record length
	blockHeaderSize     = 4 // index, spec, u16 size
	dmtfHeaderSize      = 3 // value type, u16 value size
	measSpecDMTF        = 1
	dmtfRawBitStream    = 0x80 // bit 7 of the DMTF value type: raw bit stream, not a digest
)

// Opaque data field types that this package interprets (research/gpu.md
// §2). Other types are kept as raw bytes (Report.Opaque).
const (
	OpaqueDriverVersion       = 3
	OpaqueVBIOSVersion        = 6
	OpaqueNVDEC0Status        = 11
	OpaqueChipSKU             = 15
	OpaqueProject             = 17
	OpaqueProjectSKU          = 18
	OpaqueFWID                = 20
	OpaqueProtectedPCIeStatus = 21
	OpaqueFeatureFlag         = 36
)

// Values of the one-byte status fields (NVDEC0, protected PCIe).
const (
	StatusEnabled  = 0xAA
	StatusDisabled = 0x55
)

// MeasurementBlock is one SPDM measurement block in DMTF format.
type MeasurementBlock struct {
	// Index is the SPDM block index, 1..255 (RIM index Index−1).
	Index int
	// ValueType is the DMTF measurement value type; bit 7 set means a raw
	// bit stream, clear means a digest.
	ValueType uint8
	// Value is the measurement: a SHA-384 digest when bit 7 of ValueType is clear.
	Value []byte
}

// OpaqueField is one type-length-value entry of the response's opaque data.
type OpaqueField struct {
	Type  uint16
	Value []byte
}

// Report is a parsed Hopper attestation report: the GET_MEASUREMENTS
// request followed by the signed MEASUREMENTS response.
type Report struct {
	// Nonce is the requester nonce, report bytes 4..36: the nonce the
	// collector passed to the GPU.
	Nonce [32]byte
	// SlotID is the certificate slot the request named.
	SlotID uint8
	// Param1 and Param2 are the response's SPDM parameters.
	Param1, Param2 uint8
	// Blocks are the measurement blocks in report order.
	Blocks []MeasurementBlock
	// Measurements maps the SPDM block index (1-based) to the block's value.
	// SPDM index i corresponds to NVIDIA RIM index i−1 (RIMs count from 0).
	Measurements map[int][]byte
	// ResponderNonce is the GPU's random nonce (not checked by anyone).
	ResponderNonce [32]byte
	// Opaque holds every opaque data field in report order, unknown types included.
	Opaque []OpaqueField
	// Signature is the raw big-endian r‖s ECDSA P-384 signature.
	Signature [SignatureSize]byte

	raw    []byte
	opaque map[uint16][]byte
}

// reader is a bounds-checked little-endian cursor over a report.
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
		r.err = fmt.Errorf("gpu: report truncated at offset %d: %s needs %d bytes, %d left", r.off, what, n, len(r.b)-r.off)
		return nil
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s
}

func (r *reader) u8(what string) uint8 {
	s := r.take(1, what)
	if s == nil {
		return 0
	}
	return s[0]
}

func (r *reader) u16(what string) int {
	s := r.take(2, what)
	if s == nil {
		return 0
	}
	return int(binary.LittleEndian.Uint16(s))
}

func (r *reader) u24(what string) int {
	s := r.take(3, what)
	if s == nil {
		return 0
	}
	return int(s[0]) | int(s[1])<<8 | int(s[2])<<16
}

// ParseReport parses a binary Hopper attestation report strictly: fixed
// request fields, SPDM 1.1 request and response codes, every measurement
// block (index 1..255 and unique, DMTF specification, value size
// consistent with the block size, digests 48 bytes), block count equal to
// NumberOfBlocks, the record length consumed exactly, opaque TLVs without
// duplicates or overruns, and exactly a 96-byte signature after them.
// The input is copied.
func ParseReport(b []byte) (*Report, error) {
	if len(b) > MaxReportSize {
		return nil, fmt.Errorf("gpu: report of %d bytes, more than the %d NVML can return", len(b), MaxReportSize)
	}
	raw := append([]byte(nil), b...)
	rep := &Report{raw: raw, Measurements: map[int][]byte{}, opaque: map[uint16][]byte{}}
	r := &reader{b: raw}

	// Request.
	reqVer, reqCode := r.u8("request SPDM version"), r.u8("request code")
	p1, p2 := r.u8("request param1"), r.u8("request param2")
	copy(rep.Nonce[:], r.take(32, "request nonce"))
	rep.SlotID = r.u8("request slot ID")
	if r.err != nil {
		return nil, r.err
	}
	switch {
	case reqVer != SPDMVersion:
		return nil, fmt.Errorf("gpu: request SPDM version %#02x at offset 0, want %#02x", reqVer, SPDMVersion)
	case reqCode != codeGetMeasurements:
		return nil, fmt.Errorf("gpu: request code %#02x at offset 1, want %#02x (GET_MEASUREMENTS)", reqCode, codeGetMeasurements)
	case p1 != reqParam1SigWanted:
		return nil, fmt.Errorf("gpu: request param1 %#02x at offset 2, want %#02x (signature requested)", p1, reqParam1SigWanted)
	case p2 != reqParam2AllBlocks:
		return nil, fmt.Errorf("gpu: request param2 %#02x at offset 3, want %#02x (all blocks)", p2, reqParam2AllBlocks)
	case rep.SlotID > maxSlotID:
		return nil, fmt.Errorf("gpu: request slot ID %d at offset 36, want 0..%d", rep.SlotID, maxSlotID)
	}

	// Response header.
	respVer, respCode := r.u8("response SPDM version"), r.u8("response code")
	rep.Param1, rep.Param2 = r.u8("response param1"), r.u8("response param2")
	nBlocks := int(r.u8("NumberOfBlocks"))
	recLen := r.u24("MeasurementRecordLength")
	if r.err != nil {
		return nil, r.err
	}
	switch {
	case respVer != SPDMVersion:
		return nil, fmt.Errorf("gpu: response SPDM version %#02x at offset %d, want %#02x", respVer, RequestSize, SPDMVersion)
	case respCode != codeMeasurements:
		return nil, fmt.Errorf("gpu: response code %#02x at offset %d, want %#02x (MEASUREMENTS)", respCode, RequestSize+1, codeMeasurements)
	case nBlocks == 0:
		return nil, fmt.Errorf("gpu: response NumberOfBlocks is 0 at offset %d, but all blocks were requested", RequestSize+4)
	}
	recStart := r.off
	record := r.take(recLen, "measurement record")
	if r.err != nil {
		return nil, fmt.Errorf("gpu: MeasurementRecordLength %d at offset %d runs past the report: %w", recLen, RequestSize+5, r.err)
	}
	if err := rep.parseRecord(record, recStart, nBlocks); err != nil {
		return nil, err
	}

	copy(rep.ResponderNonce[:], r.take(32, "responder nonce"))
	opaqueOff := r.off
	opaqueLen := r.u16("opaque data length")
	opaque := r.take(opaqueLen, "opaque data")
	if r.err != nil {
		return nil, r.err
	}
	if err := rep.parseOpaque(opaque, opaqueOff+2); err != nil {
		return nil, err
	}
	sig := r.take(SignatureSize, "signature")
	if r.err != nil {
		return nil, r.err
	}
	copy(rep.Signature[:], sig)
	if r.off != len(raw) {
		return nil, fmt.Errorf("gpu: %d trailing bytes after the signature at offset %d", len(raw)-r.off, r.off)
	}
	return rep, nil
}

// parseRecord parses the measurement record; base is its offset in the report.
func (rep *Report) parseRecord(record []byte, base, nBlocks int) error {
	r := &reader{b: record}
	for r.off < len(record) {
		at := base + r.off
		idx := int(r.u8("block index"))
		spec := r.u8("block measurement specification")
		size := r.u16("block size")
		body := r.take(size, "block measurement")
		if r.err != nil {
			return fmt.Errorf("gpu: measurement block at offset %d overruns the measurement record: %w", at, r.err)
		}
		if idx == 0 {
			return fmt.Errorf("gpu: measurement block at offset %d has index 0, want 1..255", at)
		}
		if _, dup := rep.Measurements[idx]; dup {
			return fmt.Errorf("gpu: measurement block at offset %d repeats index %d", at, idx)
		}
		if spec != measSpecDMTF {
			return fmt.Errorf("gpu: measurement block %d at offset %d has specification %#02x, want %#02x (DMTF)", idx, at, spec, measSpecDMTF)
		}
		if size < dmtfHeaderSize {
			return fmt.Errorf("gpu: measurement block %d at offset %d has size %d, less than the %d-byte DMTF header", idx, at, size, dmtfHeaderSize)
		}
		vtype := body[0]
		vsize := int(binary.LittleEndian.Uint16(body[1:3]))
		if dmtfHeaderSize+vsize != size {
			return fmt.Errorf("gpu: measurement block %d at offset %d: DMTF value size %d does not fill the block size %d", idx, at, vsize, size)
		}
		if vtype&dmtfRawBitStream == 0 && vsize != DigestSize {
			return fmt.Errorf("gpu: measurement block %d at offset %d: digest of %d bytes, want %d (SHA-384)", idx, at, vsize, DigestSize)
		}
		val := body[dmtfHeaderSize:]
		rep.Blocks = append(rep.Blocks, MeasurementBlock{Index: idx, ValueType: vtype, Value: val})
		rep.Measurements[idx] = val
	}
	if len(rep.Blocks) != nBlocks {
		return fmt.Errorf("gpu: measurement record at offset %d holds %d blocks, but NumberOfBlocks says %d", base, len(rep.Blocks), nBlocks)
	}
	return nil
}

// parseOpaque parses the opaque TLVs; base is their offset in the report.
func (rep *Report) parseOpaque(data []byte, base int) error {
	r := &reader{b: data}
	for r.off < len(data) {
		at := base + r.off
		typ := uint16(r.u16("opaque field type"))
		n := r.u16("opaque field length")
		val := r.take(n, "opaque field value")
		if r.err != nil {
			return fmt.Errorf("gpu: opaque field at offset %d overruns the opaque data: %w", at, r.err)
		}
		if _, dup := rep.opaque[typ]; dup {
			return fmt.Errorf("gpu: opaque field at offset %d repeats type %d", at, typ)
		}
		rep.opaque[typ] = val
		rep.Opaque = append(rep.Opaque, OpaqueField{Type: typ, Value: val})
	}
	return nil
}

// SignedBytes returns a copy of the signed part of the report: everything
// but the final 96-byte signature.
func (r *Report) SignedBytes() []byte {
	return append([]byte(nil), r.signed()...)
}

func (r *Report) signed() []byte { return r.raw[:len(r.raw)-SignatureSize] }

// Raw returns a copy of the whole report as parsed.
func (r *Report) Raw() []byte { return append([]byte(nil), r.raw...) }

// OpaqueField returns the value of opaque field typ, if present.
func (r *Report) OpaqueField(typ uint16) ([]byte, bool) {
	v, ok := r.opaque[typ]
	return v, ok
}

func (r *Report) field(typ uint16, name string) ([]byte, error) {
	v, ok := r.opaque[typ]
	if !ok {
		return nil, fmt.Errorf("gpu: report has no %s (opaque field %d)", name, typ)
	}
	return v, nil
}

// asciiField returns the text before the first NUL of a NUL-terminated or
// NUL-padded field; everything after it must be NUL and the text must be
// non-empty printable ASCII.
func (r *Report) asciiField(typ uint16, name string) (string, error) {
	v, err := r.field(typ, name)
	if err != nil {
		return "", err
	}
	end := len(v)
	for i, c := range v {
		if c == 0 {
			end = i
			break
		}
	}
	for i, c := range v[end:] {
		if c != 0 {
			return "", fmt.Errorf("gpu: %s (opaque field %d) has byte %#02x after its NUL terminator at position %d", name, typ, c, end+i)
		}
	}
	if end == 0 {
		return "", fmt.Errorf("gpu: %s (opaque field %d) is empty", name, typ)
	}
	for i, c := range v[:end] {
		if c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("gpu: %s (opaque field %d) has non-printable byte %#02x at position %d", name, typ, c, i)
		}
	}
	return string(v[:end]), nil
}

func (r *Report) byteField(typ uint16, name string) (byte, error) {
	v, err := r.field(typ, name)
	if err != nil {
		return 0, err
	}
	if len(v) != 1 {
		return 0, fmt.Errorf("gpu: %s (opaque field %d) has %d bytes, want 1", name, typ, len(v))
	}
	return v[0], nil
}

// DriverVersion returns the driver version (opaque field 3), e.g. "550.90.07".
func (r *Report) DriverVersion() (string, error) {
	return r.asciiField(OpaqueDriverVersion, "driver version")
}

// VBIOSVersion returns the VBIOS version (opaque field 6) formatted as
// NVML prints it, e.g. "96.00.9F.00.01" (see FormatVBIOS).
func (r *Report) VBIOSVersion() (string, error) {
	v, err := r.field(OpaqueVBIOSVersion, "VBIOS version")
	if err != nil {
		return "", err
	}
	if len(v) != 8 {
		return "", fmt.Errorf("gpu: VBIOS version (opaque field %d) has %d bytes, want 8", OpaqueVBIOSVersion, len(v))
	}
	return FormatVBIOS([8]byte(v)), nil
}

// FormatVBIOS formats the 8-byte VBIOS version field the way both NVIDIA
// verifiers do: reverse the bytes, hex-encode them to 16 digits H, and join
// H[8:16]+H[6:8] as five dot-separated upper-case byte pairs
// (00 9f 00 96 01 00 00 00 → "96.00.9F.00.01").
func FormatVBIOS(v [8]byte) string {
	var rev [8]byte
	for i := range v {
		rev[i] = v[7-i]
	}
	h := strings.ToUpper(hex.EncodeToString(rev[:]))
	s := h[8:16] + h[6:8]
	return s[0:2] + "." + s[2:4] + "." + s[4:6] + "." + s[6:8] + "." + s[8:10]
}

// NVDEC0Status returns opaque field 11: StatusEnabled (0xAA) or
// StatusDisabled (0x55, RIM index 35 is then not compared).
func (r *Report) NVDEC0Status() (byte, error) {
	return r.byteField(OpaqueNVDEC0Status, "NVDEC0 status")
}

// ChipSKU returns opaque field 15 without its NUL padding, e.g. "882".
func (r *Report) ChipSKU() (string, error) {
	return r.asciiField(OpaqueChipSKU, "chip SKU")
}

// Project returns opaque field 17 without its NUL padding, e.g. "1010".
func (r *Report) Project() (string, error) {
	return r.asciiField(OpaqueProject, "project")
}

// ProjectSKU returns opaque field 18 without its NUL padding, e.g. "0200".
func (r *Report) ProjectSKU() (string, error) {
	return r.asciiField(OpaqueProjectSKU, "project SKU")
}

// FWID returns opaque field 20, the 48-byte firmware ID. Older firmware
// does not report it: then present is false and err nil.
func (r *Report) FWID() (fwid []byte, present bool, err error) {
	v, ok := r.opaque[OpaqueFWID]
	if !ok {
		return nil, false, nil
	}
	if len(v) != DigestSize {
		return nil, true, fmt.Errorf("gpu: FWID (opaque field %d) has %d bytes, want %d", OpaqueFWID, len(v), DigestSize)
	}
	return v, true, nil
}

// ProtectedPCIeStatus returns opaque field 21: StatusEnabled (0xAA) or
// StatusDisabled (0x55).
func (r *Report) ProtectedPCIeStatus() (byte, error) {
	return r.byteField(OpaqueProtectedPCIeStatus, "protected PCIe status")
}

// FeatureFlag returns opaque field 36 as a little-endian integer of 1 to 8
// bytes (0 single-GPU passthrough, 1 multi-GPU passthrough, 2 protected
// PCIe). Reports from older firmware lack it: present is then false.
func (r *Report) FeatureFlag() (flag uint64, present bool, err error) {
	v, ok := r.opaque[OpaqueFeatureFlag]
	if !ok {
		return 0, false, nil
	}
	if len(v) == 0 || len(v) > 8 {
		return 0, true, fmt.Errorf("gpu: feature flag (opaque field %d) has %d bytes, want 1 to 8", OpaqueFeatureFlag, len(v))
	}
	var b [8]byte
	copy(b[:], v)
	return binary.LittleEndian.Uint64(b[:]), true, nil
}

// DriverRIMID names the reference-value document of a Hopper driver:
// "NV_GPU_DRIVER_GH100_" + driverVersion.
func DriverRIMID(driverVersion string) string {
	return "NV_GPU_DRIVER_GH100_" + driverVersion
}

// VBIOSRIMID names the reference-value document of the report's VBIOS:
// NV_GPU_VBIOS_<PROJECT>_<PROJECT_SKU>_<CHIP_SKU>_<VBIOS without dots,
// upper case>, e.g. NV_GPU_VBIOS_1010_0200_882_96009F0001. Each part must
// be present and consist of [0-9A-Za-z] only.
func (r *Report) VBIOSRIMID() (string, error) {
	project, err := r.Project()
	if err != nil {
		return "", err
	}
	sku, err := r.ProjectSKU()
	if err != nil {
		return "", err
	}
	chip, err := r.ChipSKU()
	if err != nil {
		return "", err
	}
	vbios, err := r.VBIOSVersion()
	if err != nil {
		return "", err
	}
	vbios = strings.ReplaceAll(vbios, ".", "")
	for _, p := range []struct{ name, v string }{{"project", project}, {"project SKU", sku}, {"chip SKU", chip}, {"VBIOS version", vbios}} {
		if !alnum(p.v) {
			return "", fmt.Errorf("gpu: VBIOS RIM ID: %s %q is not [0-9A-Za-z]+", p.name, p.v)
		}
	}
	return "NV_GPU_VBIOS_" + project + "_" + sku + "_" + chip + "_" + strings.ToUpper(vbios), nil
}

func alnum(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

var errNoReport = errors.New("gpu: nil report")
