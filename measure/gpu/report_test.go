package gpu

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"
)

const nv = "testdata/nvidia/"

// vector is one of the report + chain sets of testdata/nvidia/README.md.
type vector struct {
	name, report, chain string
	nonce               string
	driver, vbios       string
	vbiosRIM            string
	fwid                bool
	sigOK               bool
}

var vectors = []vector{
	{"A", nv + "nvtrust/samples/attestationReport.txt", nv + "nvtrust/samples/gpuAkCertChain.txt",
		"4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e",
		"545.00", "96.00.5E.00.01", "NV_GPU_VBIOS_1010_0200_882_96005E0001", false, true},
	{"B", nv + "nvtrust/samples/hopperAttestationReport.txt", nv + "nvtrust/samples/hopperCertChain.txt",
		"931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb",
		"550.90.07", "96.00.9F.00.01", "NV_GPU_VBIOS_1010_0200_882_96009F0001", true, true},
	{"D", nv + "attestation-sdk/testdata/gpu/hopperAttestationReport.txt", nv + "attestation-sdk/testdata/gpu/hopperCertChain.txt",
		"27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66",
		"535.86.09", "96.00.5E.00.01", "NV_GPU_VBIOS_1010_0200_882_96005E0001", false, true},
	{"E", nv + "attestation-sdk/testdata/gpu/hopperAttestationReportInvalidSignature.txt", nv + "attestation-sdk/testdata/gpu/hopperCertChain.txt",
		"931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb",
		"560.00", "96.00.A5.00.01", "NV_GPU_VBIOS_G520_0200_885_9600A50001", true, false},
}

// verifyAt is a fixed verification time inside every device chain's validity.
var verifyAt = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

func readReport(t testing.TB, path string) []byte {
	t.Helper()
	txt, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeHex(txt)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

func readChain(t testing.TB, path string) []*x509.Certificate {
	t.Helper()
	txt, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ParseChainPEM(txt)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return certs
}

func mustParse(t testing.TB, b []byte) *Report {
	t.Helper()
	r, err := ParseReport(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func vec(name string) vector {
	for _, v := range vectors {
		if v.name == name {
			return v
		}
	}
	panic("no vector " + name)
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			raw := readReport(t, v.report)
			r := mustParse(t, raw)
			if len(r.Blocks) != 64 || len(r.Measurements) != 64 {
				t.Errorf("%d blocks, %d measurements, want 64", len(r.Blocks), len(r.Measurements))
			}
			for i := 1; i <= 64; i++ {
				if len(r.Measurements[i]) != DigestSize {
					t.Errorf("measurement %d has %d bytes", i, len(r.Measurements[i]))
				}
			}
			want, _ := hex.DecodeString(v.nonce)
			if err := r.CheckNonce([32]byte(want)); err != nil {
				t.Error(err)
			}
			if got, err := r.DriverVersion(); err != nil || got != v.driver {
				t.Errorf("DriverVersion = %q, %v; want %q", got, err, v.driver)
			}
			if got, err := r.VBIOSVersion(); err != nil || got != v.vbios {
				t.Errorf("VBIOSVersion = %q, %v; want %q", got, err, v.vbios)
			}
			if got, err := r.VBIOSRIMID(); err != nil || got != v.vbiosRIM {
				t.Errorf("VBIOSRIMID = %q, %v; want %q", got, err, v.vbiosRIM)
			}
			if got, err := r.NVDEC0Status(); err != nil || got != StatusDisabled {
				t.Errorf("NVDEC0Status = %#x, %v; want 0x55", got, err)
			}
			if _, present, err := r.FeatureFlag(); present || err != nil {
				t.Errorf("FeatureFlag present=%v err=%v; no vector has one", present, err)
			}
			if !bytes.Equal(r.SignedBytes(), raw[:len(raw)-SignatureSize]) || !bytes.Equal(r.Signature[:], raw[len(raw)-SignatureSize:]) {
				t.Error("SignedBytes/Signature do not split the report")
			}
			if !bytes.Equal(r.Raw(), raw) {
				t.Error("Raw differs from the input")
			}

			chain := readChain(t, v.chain)
			res, err := VerifyDeviceChain(chain, DeviceRoot(), verifyAt)
			if err != nil {
				t.Fatal(err)
			}
			if res.HWModel != "GH100 A01 GSP BROM" || res.UEID != chain[0].SerialNumber.String() || !res.SuppliedRootMatches ||
				res.NotAfter.Year() != 9999 || len(res.Chain) != 5 || res.Chain[4] != DeviceRoot() {
				t.Errorf("chain result %+v", res)
			}

			present, err := CheckFWID(chain[0], r)
			if present != v.fwid {
				t.Errorf("FWID present = %v, want %v", present, v.fwid)
			}
			if v.name != "E" && err != nil {
				t.Errorf("CheckFWID: %v", err)
			}
			if v.name == "E" && err == nil {
				t.Error("CheckFWID accepted set E's FWID with the SDK chain")
			}

			err = r.VerifySignature(chain[0])
			if v.sigOK && err != nil {
				t.Errorf("VerifySignature: %v", err)
			}
			if !v.sigOK {
				if err == nil {
					t.Error("VerifySignature accepted the invalid signature")
				}
				for _, o := range vectors {
					if err := r.VerifySignature(readChain(t, o.chain)[0]); err == nil {
						t.Errorf("invalid signature verified with chain %s", o.name)
					}
				}
			}
		})
	}
}

// TestUEID pins the leaf serials as decimal (openssl x509 -serial, converted).
func TestUEID(t *testing.T) {
	for _, tc := range []struct{ chain, ueid string }{
		{vec("A").chain, "460032006552296075780760406069494258829212062021"},
		{vec("B").chain, "478176379286082186618948445787393647364802107249"},
		{vec("D").chain, "395803620356496203949105887342232667833655422354"},
	} {
		res, err := VerifyDeviceChain(readChain(t, tc.chain), DeviceRoot(), verifyAt)
		if err != nil {
			t.Fatal(err)
		}
		if res.UEID != tc.ueid {
			t.Errorf("%s: UEID %s, want %s", tc.chain, res.UEID, tc.ueid)
		}
	}
}

func TestSignatureWrongLeaf(t *testing.T) {
	// Set B's report with set A's leaf: a valid signature by another GPU.
	r := mustParse(t, readReport(t, vec("B").report))
	if err := r.VerifySignature(readChain(t, vec("A").chain)[0]); err == nil {
		t.Error("set B report verified with set A's leaf")
	}
}

func TestDecodeHex(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"", "", ""},
		{"11e0 01ff\n\t4c\r\n", "11e001ff4c", ""},
		{"ABcd", "abcd", ""},
		{" a b ", "ab", ""},
		{"abc", "", "offset 2"},
		{"ab\n c", "", "offset 4"},
		{"abxz", "", "'x' at offset 2"},
		{"0x11", "", "'x' at offset 1"},
		{"ab\x00cd", "", "offset 2"},
	} {
		got, err := DecodeHex([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("DecodeHex(%q) error %v, want one naming %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || hex.EncodeToString(got) != tc.want {
			t.Errorf("DecodeHex(%q) = %x, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

// Offsets in set B's report (research/gpu.md §2).
const (
	offRespVer    = RequestSize
	offRespCode   = RequestSize + 1
	offNumBlocks  = RequestSize + 4
	offRecLen     = RequestSize + 5
	offRecord     = RequestSize + 8
	blockLen      = 4 + 3 + DigestSize
	offOpaqueLen  = offRecord + 64*blockLen + 32
	offFirstTLV   = offOpaqueLen + 2
	offSecondTLV  = offFirstTLV + 4 + 8 // after VBIOS_VERSION (type 6, 8 bytes)
	recordLenSetB = 64 * blockLen
)

func TestReportMutations(t *testing.T) {
	base := readReport(t, vec("B").report)
	if got := int(base[offRecLen]) | int(base[offRecLen+1])<<8 | int(base[offRecLen+2])<<16; got != recordLenSetB {
		t.Fatalf("set B record length %d, want %d", got, recordLenSetB)
	}
	if binary.LittleEndian.Uint16(base[offFirstTLV:]) != OpaqueVBIOSVersion {
		t.Fatal("set B opaque data does not start with the VBIOS version")
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), base...)) }
	set := func(off int, v ...byte) []byte {
		return mut(func(b []byte) []byte { copy(b[off:], v); return b })
	}
	u24 := func(n int) []byte { return []byte{byte(n), byte(n >> 8), byte(n >> 16)} }
	for _, tc := range []struct {
		name string
		b    []byte
		err  string
	}{
		{"empty", nil, "truncated at offset 0"},
		{"truncated in request", base[:20], "truncated at offset 4"},
		{"request only", base[:RequestSize], "truncated at offset 37"},
		{"truncated in header", base[:offRecLen+1], "truncated at offset 42"},
		{"truncated in record", base[:offRecord+100], "runs past the report"},
		{"truncated in opaque", base[:offFirstTLV+6], "truncated"},
		{"truncated signature", base[:len(base)-1], "signature needs 96 bytes, 95 left"},
		{"no signature", base[:len(base)-SignatureSize], "signature needs 96 bytes, 0 left"},
		{"trailing byte", append(append([]byte(nil), base...), 0), "1 trailing bytes"},
		{"too large", make([]byte, MaxReportSize+1), "more than the 8192"},
		{"request version", set(0, 0x12), "request SPDM version 0x12"},
		{"request code", set(1, 0x60), "request code 0x60"},
		{"request param1", set(2, 0), "param1"},
		{"request param2", set(3, 1), "param2"},
		{"slot ID", set(36, 8), "slot ID 8"},
		{"response version", set(offRespVer, 0x10), "response SPDM version 0x10"},
		{"response code", set(offRespCode, 0xE0), "response code 0xe0"},
		{"zero blocks", set(offNumBlocks, 0), "NumberOfBlocks is 0"},
		{"block count", set(offNumBlocks, 63), "holds 64 blocks, but NumberOfBlocks says 63"},
		{"record overflow", set(offRecLen, u24(0xFFFFFF)...), "MeasurementRecordLength 16777215"},
		{"record one byte long", set(offRecLen, u24(recordLenSetB+1)...), "overruns the measurement record"},
		{"record one byte short", set(offRecLen, u24(recordLenSetB-1)...), "overruns the measurement record"},
		{"spec not DMTF", set(offRecord+1, 2), "specification 0x02"},
		{"index 0", set(offRecord, 0), "index 0"},
		{"duplicate index", set(offRecord+blockLen, 1), "repeats index 1"},
		{"DMTF size", set(offRecord+5, 47, 0), "does not fill"},
		{"digest size", mut(func(b []byte) []byte {
			// Block 1 shrunk to a consistent 3+47-byte DMTF value: a
			// SHA-384 digest cannot have 47 bytes.
			b[offRecord+2] = 3 + 47
			b[offRecord+5] = 47
			return b
		}), "digest of 47 bytes, want 48"},
		{"block size below header", set(offRecord+2, 2, 0), "less than the 3-byte DMTF header"},
		{"opaque length overrun", set(offOpaqueLen, 0xFF, 0xFF), "opaque data needs 65535 bytes"},
		{"opaque TLV overrun", set(offFirstTLV+2, 0xFF, 0xFF), "overruns the opaque data"},
		{"opaque duplicate", set(offSecondTLV, OpaqueVBIOSVersion, 0), "repeats type 6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseReport(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

// TestRawBitStreamBlock: a block whose DMTF type has bit 7 set may carry a
// value of any size; the size must still fill the block.
func TestRawBitStreamBlock(t *testing.T) {
	b := readReport(t, vec("B").report)
	b[offRecord+4] = 0x81 // raw bit stream, 48 bytes
	r := mustParse(t, b)
	if r.Blocks[0].ValueType != 0x81 || len(r.Measurements[1]) != DigestSize {
		t.Errorf("block 1 = %+v", r.Blocks[0])
	}
	b[offRecord+4] = 0x01
	b[offRecord+5] = 47 // digest of 47 bytes in a 51-byte block
	if _, err := ParseReport(b); err == nil || !strings.Contains(err.Error(), "does not fill") {
		t.Errorf("error %v", err)
	}
}

func TestTamperedMeasurement(t *testing.T) {
	b := readReport(t, vec("B").report)
	b[offRecord+7+10] ^= 1 // a byte of block 1's digest
	r := mustParse(t, b)
	if err := r.VerifySignature(readChain(t, vec("B").chain)[0]); err == nil {
		t.Error("signature verified over a tampered measurement")
	}
}

func TestNonceMismatch(t *testing.T) {
	r := mustParse(t, readReport(t, vec("A").report))
	want := r.Nonce
	want[31] ^= 0x80
	if err := r.CheckNonce(want); err == nil || !strings.Contains(err.Error(), "nonce") {
		t.Errorf("CheckNonce with a wrong nonce: %v", err)
	}
	if err := r.CheckNonce([32]byte{}); err == nil {
		t.Error("CheckNonce accepted zeros")
	}
}

func TestNonceDerivation(t *testing.T) {
	var spki [32]byte
	for i := range spki {
		spki[i] = byte(i)
	}
	// Expected values computed independently (Python hashlib.sha256 over
	// the concatenated preimage).
	n := Nonce(spki, []byte("challenge"))
	if got := hex.EncodeToString(n[:]); got != "0fd72d3e37ea8cf1219c33079c281f7595301496bb1f2aad1c87d9e2c7674b72" {
		t.Errorf("Nonce(0..31, challenge) = %s", got)
	}
	z := Nonce([32]byte{}, nil)
	if got := hex.EncodeToString(z[:]); got != "98de80dc8a5e65a25ed1beb52492e64a5f77541983ab4ba033e69360230a7e17" {
		t.Errorf("Nonce(zero, nil) = %s", got)
	}
	spki2 := spki
	spki2[0] ^= 1
	for _, other := range [][32]byte{Nonce(spki2, []byte("challenge")), Nonce(spki, []byte("challengE")), Nonce(spki, nil)} {
		if other == n {
			t.Error("different inputs gave the same nonce")
		}
	}
}

func TestFormatVBIOS(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"009f009604000000", "96.00.9F.00.04"},
		{"009f009601000000", "96.00.9F.00.01"},
		{"005e009601000000", "96.00.5E.00.01"},
		{"00a5009601000000", "96.00.A5.00.01"},
		{"0000000000000000", "00.00.00.00.00"},
		{"0102030405060708", "04.03.02.01.05"},
		{"ffffffffffffffff", "FF.FF.FF.FF.FF"},
	} {
		b, _ := hex.DecodeString(tc.in)
		if got := FormatVBIOS([8]byte(b)); got != tc.want {
			t.Errorf("FormatVBIOS(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestRIMIDs(t *testing.T) {
	for _, tc := range []struct{ ver, want string }{
		{"550.90.07", "NV_GPU_DRIVER_GH100_550.90.07"},
		{"545.00", "NV_GPU_DRIVER_GH100_545.00"},
		{"535.86.09", "NV_GPU_DRIVER_GH100_535.86.09"},
	} {
		if got := DriverRIMID(tc.ver); got != tc.want {
			t.Errorf("DriverRIMID(%q) = %q, want %q", tc.ver, got, tc.want)
		}
	}

	base := readReport(t, vec("B").report)
	r := mustParse(t, base)
	// Locate the PROJECT TLV ("1010\0") in set B.
	off := offFirstTLV
	for binary.LittleEndian.Uint16(base[off:]) != OpaqueProject {
		off += 4 + int(binary.LittleEndian.Uint16(base[off+2:]))
	}
	if !bytes.Equal(base[off+4:off+9], []byte("1010\x00")) {
		t.Fatalf("PROJECT field %q", base[off+4:off+9])
	}
	for _, tc := range []struct {
		name, err string
		edit      func(b []byte)
	}{
		{"unchanged", "", func([]byte) {}},
		{"dash", `project "10-0" is not`, func(b []byte) { b[off+6] = '-' }},
		{"control byte", "non-printable byte 0x01", func(b []byte) { b[off+6] = 1 }},
		{"empty", "project (opaque field 17) is empty", func(b []byte) { copy(b[off+4:], "\x00\x00\x00\x00") }},
		{"byte after NUL", "after its NUL terminator", func(b []byte) { copy(b[off+4:], "10\x000\x00") }},
		{"missing", "no project (opaque field 17)", func(b []byte) { b[off] = 99 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := append([]byte(nil), base...)
			tc.edit(b)
			id, err := mustParse(t, b).VBIOSRIMID()
			if tc.err == "" {
				if err != nil || id != "NV_GPU_VBIOS_1010_0200_882_96009F0001" {
					t.Errorf("VBIOSRIMID = %q, %v", id, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("VBIOSRIMID = %q, %v; want error containing %q", id, err, tc.err)
			}
		})
	}
	if _, err := r.ChipSKU(); err != nil {
		t.Error(err)
	}
}

func TestOpaqueAccessors(t *testing.T) {
	rb := mustParse(t, readReport(t, vec("B").report))
	fwid, present, err := rb.FWID()
	if err != nil || !present || hex.EncodeToString(fwid) != "f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d" {
		t.Errorf("FWID = %x, %v, %v", fwid, present, err)
	}
	if s, err := rb.ProtectedPCIeStatus(); err != nil || s != StatusDisabled {
		t.Errorf("ProtectedPCIeStatus = %#x, %v", s, err)
	}
	for _, f := range []struct {
		get  func() (string, error)
		want string
	}{{rb.ChipSKU, "882"}, {rb.Project, "1010"}, {rb.ProjectSKU, "0200"}} {
		if got, err := f.get(); err != nil || got != f.want {
			t.Errorf("got %q, %v; want %q", got, err, f.want)
		}
	}
	// Unknown types are kept raw (type 12, MSRSCNT, 256 bytes).
	if v, ok := rb.OpaqueField(12); !ok || len(v) != 256 {
		t.Errorf("opaque field 12: %d bytes, %v", len(v), ok)
	}

	re := mustParse(t, readReport(t, vec("E").report))
	if s, err := re.ProtectedPCIeStatus(); err != nil || s != StatusEnabled {
		t.Errorf("set E ProtectedPCIeStatus = %#x, %v", s, err)
	}
	ra := mustParse(t, readReport(t, vec("A").report))
	if _, err := ra.ProtectedPCIeStatus(); err == nil {
		t.Error("set A has no protected-PCIe field")
	}
	if _, present, err := ra.FWID(); present || err != nil {
		t.Errorf("set A FWID present=%v err=%v", present, err)
	}
}

// TestRetypedFields re-labels set B's opaque fields to reach the typed
// accessors' size checks (the report still parses; its signature would not
// verify).
func TestRetypedFields(t *testing.T) {
	base := readReport(t, vec("B").report)
	at := func(typ uint16) int {
		for off := offFirstTLV; off < len(base)-SignatureSize; off += 4 + int(binary.LittleEndian.Uint16(base[off+2:])) {
			if binary.LittleEndian.Uint16(base[off:]) == typ {
				return off
			}
		}
		t.Fatalf("set B has no opaque field %d", typ)
		return 0
	}
	retype := func(pairs ...uint16) *Report {
		b := append([]byte(nil), base...)
		for i := 0; i < len(pairs); i += 2 {
			binary.LittleEndian.PutUint16(b[at(pairs[i]):], pairs[i+1])
		}
		return mustParse(t, b)
	}
	// PROTECTED_PCIE_STATUS (1 byte 0x55) as FEATURE_FLAG.
	if v, present, err := retype(OpaqueProtectedPCIeStatus, OpaqueFeatureFlag).FeatureFlag(); v != 0x55 || !present || err != nil {
		t.Errorf("1-byte feature flag = %#x, %v, %v", v, present, err)
	}
	// BOARD_ID (14, 4 bytes b1 03 00 00) as FEATURE_FLAG: little-endian.
	if v, present, err := retype(14, OpaqueFeatureFlag).FeatureFlag(); v != 0x3b1 || !present || err != nil {
		t.Errorf("4-byte feature flag = %#x, %v, %v", v, present, err)
	}
	// FWID (48 bytes) as FEATURE_FLAG: too long.
	if _, present, err := retype(OpaqueFWID, OpaqueFeatureFlag).FeatureFlag(); !present || err == nil || !strings.Contains(err.Error(), "has 48 bytes, want 1 to 8") {
		t.Errorf("48-byte feature flag: %v, %v", present, err)
	}
	// BOARD_ID as VBIOS_VERSION: 4 bytes, not 8.
	if _, err := retype(OpaqueVBIOSVersion, 99, 14, OpaqueVBIOSVersion).VBIOSVersion(); err == nil || !strings.Contains(err.Error(), "has 4 bytes, want 8") {
		t.Errorf("4-byte VBIOS: %v", err)
	}
	// PROTECTED_PCIE_STATUS as FWID: 1 byte, not 48.
	r := retype(OpaqueFWID, 99, OpaqueProtectedPCIeStatus, OpaqueFWID)
	if _, present, err := r.FWID(); !present || err == nil {
		t.Errorf("1-byte FWID: %v, %v", present, err)
	}
	if _, err := CheckFWID(readChain(t, vec("B").chain)[0], r); err == nil {
		t.Error("CheckFWID accepted a 1-byte FWID")
	}
	// BOARD_ID as NVDEC0_STATUS: 4 bytes, not 1.
	if _, err := retype(OpaqueNVDEC0Status, 99, 14, OpaqueNVDEC0Status).NVDEC0Status(); err == nil || !strings.Contains(err.Error(), "has 4 bytes, want 1") {
		t.Errorf("4-byte NVDEC0 status: %v", err)
	}
}
