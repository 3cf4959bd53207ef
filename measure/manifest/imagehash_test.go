package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

func patterned() QuoteFields {
	var f QuoteFields
	fill := func(b []byte, v byte) {
		for i := range b {
			b[i] = v
		}
	}
	fill(f.MRTD[:], 1)
	fill(f.RTMR0[:], 2)
	fill(f.RTMR1[:], 3)
	fill(f.RTMR2[:], 4)
	fill(f.TDAttributes[:], 5)
	fill(f.XFAM[:], 6)
	fill(f.MRConfigID[:], 7)
	fill(f.MROwner[:], 8)
	fill(f.MROwnerConfig[:], 9)
	return f
}

// TestImageHashLayout pins the preimage layout and a known answer.
func TestImageHashLayout(t *testing.T) {
	f := patterned()
	b := f.Bytes()
	if len(b) != ImageHashInputSize || ImageHashInputSize != 352 {
		t.Fatalf("preimage is %d bytes", len(b))
	}
	for _, r := range []struct {
		off, n int
		v      byte
	}{{0, 48, 1}, {48, 48, 2}, {96, 48, 3}, {144, 48, 4}, {192, 8, 5}, {200, 8, 6}, {208, 48, 7}, {256, 48, 8}, {304, 48, 9}} {
		if !bytes.Equal(b[r.off:r.off+r.n], bytes.Repeat([]byte{r.v}, r.n)) {
			t.Errorf("field %d not at [%d,%d)", r.v, r.off, r.off+r.n)
		}
	}
	got := ImageHash(f)
	if want := sha256.Sum256(b); got != want {
		t.Error("ImageHash is not SHA-256 of Bytes")
	}
	// Known answer: SHA-256 of 01*48 02*48 03*48 04*48 05*8 06*8 07*48 08*48 09*48.
	if h := hex.EncodeToString(got[:]); h != knownImageHash {
		t.Errorf("ImageHash = %s, want %s", h, knownImageHash)
	}
}

const knownImageHash = "187fa4721fca01693251108d990299014aead05e79283d79833428ac2ceeea72"

func readQuote(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQuoteFieldsV4 compares our body offsets with go-tdx-guest's parser
// on a real v4 quote (go-tdx-guest testdata, in ../eventlog/testdata).
func TestQuoteFieldsV4(t *testing.T) {
	raw := readQuote(t, filepath.Join("..", "eventlog", "testdata", "cos-113-tdx-quote.dat"))
	f, err := QuoteFieldsFromQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	q, err := abi.QuoteToProto(raw)
	if err != nil {
		t.Fatal(err)
	}
	body := q.(*pb.QuoteV4).GetTdQuoteBody()
	for _, c := range []struct {
		name      string
		got, want []byte
	}{
		{"MRTD", f.MRTD[:], body.GetMrTd()},
		{"RTMR0", f.RTMR0[:], body.GetRtmrs()[0]},
		{"RTMR1", f.RTMR1[:], body.GetRtmrs()[1]},
		{"RTMR2", f.RTMR2[:], body.GetRtmrs()[2]},
		{"TDATTRIBUTES", f.TDAttributes[:], body.GetTdAttributes()},
		{"XFAM", f.XFAM[:], body.GetXfam()},
		{"MRCONFIGID", f.MRConfigID[:], body.GetMrConfigId()},
		{"MROWNER", f.MROwner[:], body.GetMrOwner()},
		{"MROWNERCONFIG", f.MROwnerConfig[:], body.GetMrOwnerConfig()},
	} {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s = %x, go-tdx-guest says %x", c.name, c.got, c.want)
		}
	}
	// The GCE TD: SEPT_VE_DISABLE only, XFAM without PKRU.
	if Bytes8(f.TDAttributes).String() != "0000001000000000" || Bytes8(f.XFAM).String() != "e700060000000000" {
		t.Errorf("GCE quote attributes %x xfam %x", f.TDAttributes, f.XFAM)
	}
}

// TestQuoteFieldsV5 reads go-tdx-guest's v5 sample (TDX 1.5 body).
func TestQuoteFieldsV5(t *testing.T) {
	raw := readQuote(t, filepath.Join("testdata", "quote_v5_sample.dat"))
	body, err := QuoteBody(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) != BodySizeTDX15 || &body[0] != &raw[0x36] {
		t.Fatalf("v5 body of %d bytes", len(body))
	}
	f, err := QuoteFieldsFromQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	// This TD shows exactly the default TD fields of a QEMU TD.
	def := DefaultTDFields()
	if Bytes8(f.TDAttributes) != def.TDAttributes || Bytes8(f.XFAM) != def.XFAM {
		t.Errorf("attributes %x xfam %x, want the defaults %s %s", f.TDAttributes, f.XFAM, def.TDAttributes, def.XFAM)
	}
	if !bytes.Equal(f.MRTD[:], raw[0x36+0x88:0x36+0x88+48]) || !bytes.Equal(f.RTMR2[:], raw[0x36+0x148+96:0x36+0x148+144]) {
		t.Error("v5 field offsets")
	}
}

func TestQuoteBodyErrors(t *testing.T) {
	v4 := readQuote(t, filepath.Join("..", "eventlog", "testdata", "cos-113-tdx-quote.dat"))
	v5 := readQuote(t, filepath.Join("testdata", "quote_v5_sample.dat"))
	mod := func(b []byte, f func([]byte)) []byte { c := bytes.Clone(b); f(c); return c }
	for _, tc := range []struct {
		name string
		in   []byte
		err  string
	}{
		{"empty", nil, "too short"},
		{"v3", mod(v4, func(b []byte) { b[0] = 3 }), "quote version 3"},
		{"sgx", mod(v4, func(b []byte) { b[4] = 0 }), "TEE type 0x0"},
		{"truncated v4", v4[:0x278], "too short for its 584-byte body"},
		{"v5 body type", mod(v5, func(b []byte) { b[0x30] = 4 }), "body type 4"},
		{"v5 body size", mod(v5, func(b []byte) { binary.LittleEndian.PutUint32(b[0x32:], 584) }), "type 3 of 584 bytes"},
		{"truncated v5", v5[:0x36+600], "too short"},
	} {
		if _, err := QuoteFieldsFromQuote(tc.in); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
	if _, err := QuoteFieldsFromBody(make([]byte, 100)); err == nil {
		t.Error("short body accepted")
	}
}

// TestManifestImageHashFromQuote: a proxy's path. A quote whose fields
// equal a shape's expected ones gives that shape's image hash.
func TestManifestImageHashFromQuote(t *testing.T) {
	m := testManifest(t)
	s := m.Shapes[1]
	raw := bytes.Clone(readQuote(t, filepath.Join("testdata", "quote_v5_sample.dat")))
	body := raw[0x36 : 0x36+BodySizeTDX15]
	put := func(off int, b []byte) { copy(body[off:], b) }
	put(bodyMRTD, s.MRTD[:])
	for i, r := range []tdxmr.Digest{s.RTMR0, s.RTMR1, s.RTMR2} {
		put(bodyRTMR0+48*i, r[:])
	}
	put(bodyTDAttributes, s.TD.TDAttributes[:])
	put(bodyXFAM, s.TD.XFAM[:])
	put(bodyMRConfigID, s.TD.MRConfigID[:])
	put(bodyMROwner, s.TD.MROwner[:])
	put(bodyMROwnerConfig, s.TD.MROwnerConfig[:])
	f, err := QuoteFieldsFromQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	if Hash(ImageHash(f)) != s.ImageHash {
		t.Errorf("image hash from quote %x, manifest %s", ImageHash(f), s.ImageHash)
	}
}
