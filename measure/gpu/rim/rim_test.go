package rim

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	fixtures   = "../testdata/nvidia/"
	sdk        = fixtures + "attestation-sdk/testdata/"
	nvtrust    = fixtures + "nvtrust/samples/"
	driver545  = nvtrust + "Driver_RIM_test_no_gpu.swidtag"
	vbiosTest  = nvtrust + "1010_0200_882_96005E0001_test_no_gpu.swidtag"
	vbiosProd  = nvtrust + "1010_0200_882_96005E0001_PROD.swidtag"
	driver550  = sdk + "NV_GPU_DRIVER_GH100_550.144.03.xml"
	badSig     = sdk + "incorrect_signature_driver_rim.xml"
	badChain   = sdk + "incorrect_cert_chain_driver_rim.xml"
	badDigest  = sdk + "sample_rims/NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml"
	vbiosIdx9  = sdk + "sample_rims/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml"
	rootSHA256 = "12977B5115ACB0381179279FFFEB5A8C4D264971EBB32298023A465FA41DF5D1"
)

// at is when every fixture RIM chain is valid (README of the vectors).
var at = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

var allFixtures = []string{driver545, vbiosTest, vbiosProd, driver550, badSig, badChain, badDigest, vbiosIdx9}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(read(t, path))
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// corimRoot is NVIDIA's CoRIM signing root, checked against its pinned
// fingerprint.
func corimRoot(t testing.TB) *x509.Certificate {
	t.Helper()
	c := loadCert(t, fixtures+"nvtrust/certs/verifier_RIM_root.pem")
	if got := sha256.Sum256(c.Raw); !strings.EqualFold(hex.EncodeToString(got[:]), rootSHA256) {
		t.Fatalf("CoRIM root SHA-256 %x, want %s", got, rootSHA256)
	}
	return c
}

func mustParse(t testing.TB, path string) *RIM {
	t.Helper()
	r, err := Parse(read(t, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

func activeIndices(r *RIM) []int {
	var out []int
	for _, m := range r.Measurements() {
		if m.Active {
			out = append(out, m.Index)
		}
	}
	return out
}

func span(lo, hi int) []int {
	var out []int
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

func TestParseFixtures(t *testing.T) {
	driverActive := append([]int{7}, span(21, 40)...) // gpu.md says 21–41; the RIMs say 21–40
	vbiosActive := append(span(0, 6), span(8, 12)...)
	for _, tc := range []struct {
		path, version string
		active        []int
		alts          map[int]int // index -> number of alternatives
	}{
		{driver545, "545.00", driverActive, map[int]int{7: 1, 23: 2, 24: 2, 35: 2}},
		{driver550, "550.144.03", driverActive, map[int]int{7: 1, 32: 2, 35: 4, 36: 3}},
		{vbiosTest, "96.00.5E.00.01", vbiosActive, map[int]int{9: 1, 12: 4}},
		{vbiosProd, "96.00.5E.00.01", vbiosActive, map[int]int{9: 1, 12: 4}},
		{vbiosIdx9, "96.00.5E.00.01", vbiosActive, map[int]int{12: 4}},
	} {
		t.Run(tc.path[strings.LastIndex(tc.path, "/")+1:], func(t *testing.T) {
			r := mustParse(t, tc.path)
			if r.Name != "GH100" || r.Version != "1.0" || len(r.TagID) != 96 || r.FirmwareManufacturerID != "5703" {
				t.Errorf("identity = %q %q %q %q", r.Name, r.Version, r.TagID, r.FirmwareManufacturerID)
			}
			if r.ColloquialVersion != tc.version {
				t.Errorf("colloquialVersion %q, want %q", r.ColloquialVersion, tc.version)
			}
			ms := r.Measurements()
			if len(ms) != 64 {
				t.Fatalf("%d measurements, want 64", len(ms))
			}
			for i, m := range ms {
				if m.Index != i || m.Size != 48 || m.Name == "" {
					t.Errorf("measurement %d = index %d size %d name %q", i, m.Index, m.Size, m.Name)
				}
				for _, a := range m.Alternatives {
					if len(a) != 48 {
						t.Errorf("index %d: alternative of %d bytes", i, len(a))
					}
				}
			}
			if got := activeIndices(r); !reflect.DeepEqual(got, tc.active) {
				t.Errorf("active %v, want %v", got, tc.active)
			}
			for i, n := range tc.alts {
				if got := len(ms[i].Alternatives); got != n {
					t.Errorf("index %d has %d alternatives, want %d", i, got, n)
				}
			}
		})
	}
}

func TestMeasurementsIsACopy(t *testing.T) {
	r := mustParse(t, driver550)
	ms := r.Measurements()
	ms[7].Alternatives[0][0] ^= 0xff
	ms[7].Active = false
	if again := r.Measurements(); again[7].Alternatives[0][0] == ms[7].Alternatives[0][0] || !again[7].Active {
		t.Fatal("Measurements exposes the RIM's own slices")
	}
}

func TestCheckVersion(t *testing.T) {
	r := mustParse(t, vbiosProd)
	for _, v := range []string{"96.00.5E.00.01", "96.00.5e.00.01"} {
		if err := r.CheckVersion(v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	for _, v := range []string{"96.00.5E.00.02", "96.00.5E.00.01 ", ""} {
		err := r.CheckVersion(v)
		if err == nil || !strings.Contains(err.Error(), "colloquialVersion") {
			t.Errorf("%q: err = %v", v, err)
		}
	}
}

// TestVBIOSMismatchOnlyIndex9: NVIDIA's re-signed "measurement_mismatch"
// VBIOS RIM differs from the PROD RIM at index 9 and nowhere else.
func TestVBIOSMismatchOnlyIndex9(t *testing.T) {
	prod, mm := mustParse(t, vbiosProd), mustParse(t, vbiosIdx9)
	a, b := prod.Measurements(), mm.Measurements()
	var diff []int
	for i := range a {
		if !reflect.DeepEqual(a[i], b[i]) {
			diff = append(diff, a[i].Index)
		}
	}
	if !reflect.DeepEqual(diff, []int{9}) {
		t.Fatalf("differences at %v, want [9]", diff)
	}
}

// rimXML builds a small synthetic RIM around the given Payload content.
func rimXML(payload string) string {
	return `<SoftwareIdentity xmlns="http://standards.iso.org/iso/19770/-2/2015/schema.xsd" xmlns:h="http://www.w3.org/2001/04/xmlenc#sha384" name="GH100" tagId="t" version="1.0">` +
		`<Meta colloquialVersion="1.2.3"/><Payload>` + payload + `</Payload></SoftwareIdentity>`
}

var h48 = strings.Repeat("ab", 48)

func res(attrs string) string { return `<Resource type="Measurement" ` + attrs + `/>` }

func TestParseSynthetic(t *testing.T) {
	r, err := Parse([]byte(rimXML(
		res(`index="3" active="True" alternatives="2" name="m3" size="48" h:Hash1="`+strings.Repeat("cd", 48)+`" h:Hash0="`+h48+`"`) +
			res(`index="1" active="False" alternatives="1" name="m1" size="4" h:Hash0="0a0B0c0D"`))))
	if err != nil {
		t.Fatal(err)
	}
	ms := r.Measurements()
	want := []Measurement{
		{Index: 1, Name: "m1", Size: 4, Alternatives: [][]byte{{10, 11, 12, 13}}},
		{Index: 3, Name: "m3", Size: 48, Active: true, Alternatives: [][]byte{bytes.Repeat([]byte{0xab}, 48), bytes.Repeat([]byte{0xcd}, 48)}},
	}
	if !reflect.DeepEqual(ms, want) || r.FirmwareManufacturerID != "" || r.ColloquialVersion != "1.2.3" {
		t.Fatalf("got %+v %+v", r, ms)
	}
}

func TestParseRejects(t *testing.T) {
	ok := `index="0" active="True" alternatives="1" name="m" size="48" h:Hash0="` + h48 + `"`
	deep := strings.Repeat("<a>", 20) + strings.Repeat("</a>", 20)
	for _, tc := range []struct{ name, xml, want string }{
		{"empty", "", "empty document"},
		{"not xml", "hello", "text outside"},
		{"only a comment", "<!-- x -->", "no root element"},
		{"truncated", rimXML(res(ok))[:200], "malformed XML"},
		{"doctype", `<!DOCTYPE x [<!ENTITY e "x">]>` + rimXML(res(ok)), "DTD"},
		{"entity", strings.Replace(rimXML(res(ok)), `name="m"`, `name="&e;"`, 1), "malformed XML"},
		{"pi", `<?foo bar?>` + rimXML(res(ok)), "processing instruction"},
		{"two roots", rimXML(res(ok)) + "<x/>", "second root"},
		{"text after root", rimXML(res(ok)) + "junk", "text outside"},
		{"too deep", rimXML(res(ok) + deep), "deeper than"},
		{"too big", rimXML(res(ok) + strings.Repeat(" ", MaxSize)), "limit"},
		{"duplicate attribute", rimXML(res(ok + ` index="1"`)), "repeats attribute"},
		{"duplicate hash via other prefix", strings.Replace(rimXML(res(ok+` g:Hash0="`+h48+`"`)), `<Payload>`, `<Payload xmlns:g="http://www.w3.org/2001/04/xmlenc#sha384">`, 1), "repeats attribute"},
		{"wrong root", `<SoftwareIdentity name="a" tagId="b" version="c"/>`, "root element"},
		{"no tagId", strings.Replace(rimXML(res(ok)), `tagId="t"`, ``, 1), "no tagId"},
		{"no meta", strings.Replace(rimXML(res(ok)), `<Meta colloquialVersion="1.2.3"/>`, ``, 1), "no Meta"},
		{"two metas", strings.Replace(rimXML(res(ok)), `<Meta`, `<Meta colloquialVersion="x"/><Meta`, 1), "more than one Meta"},
		{"no colloquialVersion", strings.Replace(rimXML(res(ok)), `colloquialVersion="1.2.3"`, ``, 1), "no colloquialVersion"},
		{"no payload", strings.Replace(strings.Replace(rimXML(""), "<Payload>", "", 1), "</Payload>", "", 1), "no Payload"},
		{"empty payload", rimXML(""), "no measurements"},
		{"foreign element", rimXML(res(ok) + "<Link/>"), "unexpected element"},
		{"duplicate index", rimXML(res(ok) + res(ok)), "duplicate measurement index 0"},
		{"wrong type", rimXML(strings.Replace(res(ok), "Measurement", "Other", 1)), "type"},
		{"negative index", rimXML(res(strings.Replace(ok, `index="0"`, `index="-1"`, 1))), "index"},
		{"padded index", rimXML(res(strings.Replace(ok, `index="0"`, `index="07"`, 1))), "index"},
		{"huge index", rimXML(res(strings.Replace(ok, `index="0"`, `index="99999"`, 1))), "index"},
		{"lowercase active", rimXML(res(strings.Replace(ok, `"True"`, `"true"`, 1))), "active"},
		{"no name", rimXML(res(strings.Replace(ok, `name="m" `, ``, 1))), "no name"},
		{"zero alternatives", rimXML(res(strings.Replace(ok, `alternatives="1"`, `alternatives="0"`, 1))), "alternatives"},
		{"missing Hash1", rimXML(res(strings.Replace(ok, `alternatives="1"`, `alternatives="2"`, 1))), "1 of 2 Hash"},
		{"extra Hash1", rimXML(res(ok + ` h:Hash1="` + h48 + `"`)), "unexpected hash attribute Hash1"},
		{"Hash01", rimXML(res(strings.Replace(ok, "Hash0", "Hash00", 1))), "unexpected hash attribute"},
		{"short hash", rimXML(res(strings.Replace(ok, h48, h48[2:], 1))), "hex digits"},
		{"size mismatch", rimXML(res(strings.Replace(ok, `size="48"`, `size="32"`, 1))), "hex digits"},
		{"not hex", rimXML(res(strings.Replace(ok, h48, "zz"+h48[2:], 1))), "not hex"},
		{"zero size", rimXML(res(strings.Replace(ok, `size="48"`, `size="0"`, 1))), "size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.xml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
