package quote

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/manifest"
	"github.com/google/go-tdx-guest/pcs"
	tdxverify "github.com/google/go-tdx-guest/verify"
)

var (
	at20230701 = time.Date(2023, 7, 1, 0, 0, 0, 0, time.UTC)
	at20260203 = time.Date(2026, 2, 3, 1, 0, 0, 0, time.UTC)
	at2053     = time.Date(2053, 1, 1, 0, 0, 0, 0, time.UTC)
)

func load(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parsed(t testing.TB, name string) (*Quote, []byte) {
	t.Helper()
	raw := load(t, name)
	q, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return q, raw
}

// samplePolicy accepts the samples' own field values (MRCONFIGID etc. are
// zero in both samples), no collateral.
func samplePolicy(now time.Time) Policy {
	return Policy{Now: now, AllowUnknownTCB: true}
}

func TestVerifySamples(t *testing.T) {
	for _, tc := range []struct {
		file    string
		version uint16
		body    uint16
		now     time.Time
		fmspc   string
	}{
		{"tdx_prod_quote_SPR_E4.dat", 4, 2, at20230701, "50806f000000"},
		{"quote_v5_sample.dat", 5, 3, at20260203, "90c06f000000"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			q0, raw := parsed(t, tc.file)
			q, err := Verify(raw, q0.REPORTDATA, samplePolicy(tc.now))
			if err != nil {
				t.Fatal(err)
			}
			if q.Version != tc.version || q.BodyType != tc.body || q.FMSPC != tc.fmspc || q.TCBStatus != StatusUnknown {
				t.Errorf("got version %d body %d fmspc %s status %s", q.Version, q.BodyType, q.FMSPC, q.TCBStatus)
			}
			// Without AllowUnknownTCB, no collateral means rejection.
			p := samplePolicy(tc.now)
			p.AllowUnknownTCB = false
			wantErr(t, "tcb_status", "unknown", func() error { _, err := Verify(raw, q0.REPORTDATA, p); return err }())
			// Expiry.
			wantErr(t, "pck_chain", "does not chain", func() error { _, err := Verify(raw, q0.REPORTDATA, samplePolicy(at2053)); return err }())
			// ImageFields equals the manifest package's preimage.
			f, err := manifest.QuoteFieldsFromQuote(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ImageFields(q), f.Bytes()) || len(ImageFields(q)) != ImageFieldsSize {
				t.Error("ImageFields differs from manifest.QuoteFields.Bytes")
			}
		})
	}
}

func wantErr(t *testing.T, field, substr string, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want a %s error containing %q, got %v", field, substr, err)
	}
	if e.Field != field || !strings.Contains(e.Error(), substr) {
		t.Fatalf("want a %s error containing %q, got %v", field, substr, err)
	}
}

func TestCollateralV4(t *testing.T) {
	q0, raw := parsed(t, "tdx_prod_quote_SPR_E4.dat")
	dir := DirSource{Dir: filepath.Join("testdata", "pcs")}

	// The sample collateral verifies at 2023-07-01, but the sample quote
	// matches no TCB level in it (by design of the go-tdx-guest samples).
	p := Policy{Now: at20230701, Collateral: dir}
	_, err := Verify(raw, q0.REPORTDATA, p)
	wantErr(t, "tcb_status", "no matching TCB level found", err)

	// go-tdx-guest's own verifier, fed from the same offline cache, agrees.
	gerr := tdxverify.RawTdxQuote(raw, &tdxverify.Options{Now: at20230701, GetCollateral: true, CheckRevocations: true, Getter: dir})
	if gerr == nil || !strings.Contains(gerr.Error(), "no matching TCB level found") {
		t.Errorf("go-tdx-guest: %v", gerr)
	}

	// In 2053 the PCK chain has expired; in 2023-08 the TCB info has.
	_, err = Verify(raw, q0.REPORTDATA, Policy{Now: at2053, Collateral: dir})
	wantErr(t, "pck_chain", "does not chain", err)
	_, err = Verify(raw, q0.REPORTDATA, Policy{Now: time.Date(2023, 8, 1, 0, 0, 0, 0, time.UTC), Collateral: dir})
	wantErr(t, "collateral", "expired", err)

	// A PCCS serving the same files.
	srv := httptest.NewServer(pccsHandler(t, dir.Dir))
	defer srv.Close()
	_, err = Verify(raw, q0.REPORTDATA, Policy{Now: at20230701, Collateral: PCSSource{BaseURL: srv.URL}})
	wantErr(t, "tcb_status", "no matching TCB level found", err)

	// A missing cache entry is a collateral error.
	_, err = Verify(raw, q0.REPORTDATA, Policy{Now: at20230701, Collateral: DirSource{Dir: t.TempDir()}})
	wantErr(t, "collateral", "TCB info", err)
}

// pccsHandler serves a DirSource directory the way a PCCS does (root CRL
// hex-encoded at /sgx/certification/v4/rootcacrl).
func pccsHandler(t *testing.T, dir string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := "https://api.trustedservices.intel.com" + r.URL.RequestURI()
		if r.URL.Path == "/sgx/certification/v4/rootcacrl" {
			u = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
		}
		h, body, err := DirSource{Dir: dir}.Get(u)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		for k, v := range h {
			w.Header()[k] = v
		}
		if r.URL.Path == "/sgx/certification/v4/rootcacrl" {
			body = []byte(strings.ToUpper(hexString(body)))
		}
		w.Write(body)
	})
}

func TestCacheRoundTrip(t *testing.T) {
	src := DirSource{Dir: filepath.Join("testdata", "pcs")}
	out := t.TempDir()
	for _, u := range []string{
		"https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=50806f000000",
		"https://api.trustedservices.intel.com/tdx/certification/v4/qe/identity",
		"https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
		"https://certificates.trustedservices.intel.com/IntelSGXRootCA.der",
	} {
		h, b, err := src.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteCache(out, u, h, b); err != nil {
			t.Fatal(err)
		}
		h2, b2, err := DirSource{Dir: out}.Get(u)
		if err != nil || !bytes.Equal(b, b2) || len(h) != len(h2) {
			t.Fatalf("%s: round trip differs (%v)", u, err)
		}
	}
	for _, bad := range []string{"https://x/tdx/certification/v4/tcb?fmspc=../../etc", "https://x/other", "https://x/sgx/certification/v4/pckcrl?ca=x"} {
		if _, _, err := CacheName(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestTamper(t *testing.T) {
	q0, raw := parsed(t, "tdx_prod_quote_SPR_E4.dat")
	flip := func(off int) []byte {
		b := bytes.Clone(raw)
		b[off] ^= 1
		return b
	}
	rd := q0.REPORTDATA
	otherRD := rd
	otherRD[0] ^= 0xff
	for _, tc := range []struct {
		name   string
		raw    []byte
		rd     [64]byte
		field  string
		substr string
	}{
		{"body byte flipped (MRTD)", flip(0xB8), rd, "signature", "does not verify"},
		{"header byte flipped (user data)", flip(0x1C), rd, "signature", "does not verify"},
		{"quote signature flipped", flip(0x27C), rd, "signature", "does not verify"},
		{"QE report flipped", flip(0x27C + 4 + 128 + 6 + 100), rd, "qe_report", "signature"},
		{"REPORTDATA mismatch", raw, otherRD, "REPORTDATA", "expected " + hexString(otherRD[:4])},
		{"truncated to 0", raw[:0], rd, "structure", "truncated"},
		{"truncated header", raw[:40], rd, "structure", "truncated"},
		{"truncated body", raw[:0x200], rd, "structure", "truncated"},
		{"truncated signed data", raw[:0x400], rd, "structure", "signed data size"},
		{"version 3", func() []byte { b := bytes.Clone(raw); b[0] = 3; return b }(), rd, "structure", "version 3"},
		{"not TDX", func() []byte { b := bytes.Clone(raw); b[4] = 0; return b }(), rd, "structure", "TEE type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.raw, tc.rd, samplePolicy(at20230701))
			wantErr(t, tc.field, tc.substr, err)
		})
	}
}

func TestCheckFields(t *testing.T) {
	q0, _ := parsed(t, "tdx_prod_quote_SPR_E4.dat")
	xfam := q0.XFAMValue()
	otherXFAM := xfam ^ 0x4
	var cfg [48]byte
	cfg[0] = 0xaa
	for _, tc := range []struct {
		name   string
		edit   func(*Quote)
		pol    Policy
		field  string
		substr string
	}{
		{"sample passes", nil, Policy{}, "", ""},
		{"sample with expected XFAM", nil, Policy{ExpectedXFAM: &xfam}, "", ""},
		{"debug bit", func(q *Quote) { q.TDATTRIBUTES[0] |= 1 }, Policy{}, "TDATTRIBUTES", "DEBUG"},
		{"debug bit allowed", func(q *Quote) { q.TDATTRIBUTES[0] |= 1 }, Policy{AllowDebug: true}, "", ""},
		{"TDATTRIBUTES mask", nil, Policy{TDAttributesMask: 1 << 28, ExpectedTDAttributes: 1 << 28}, "TDATTRIBUTES", "under mask"},
		{"unexpected XFAM", nil, Policy{ExpectedXFAM: &otherXFAM}, "XFAM", "expected e31a060000000000, got e71a060000000000"},
		{"wrong MRCONFIGID", func(q *Quote) { q.MRCONFIGID[0] = 1 }, Policy{}, "MRCONFIGID", "expected 0000"},
		{"expected MRCONFIGID absent", nil, Policy{MRConfigID: &cfg}, "MRCONFIGID", "expected aa00"},
		{"expected MRCONFIGID present", func(q *Quote) { q.MRCONFIGID = cfg }, Policy{MRConfigID: &cfg}, "", ""},
		{"MROWNER set", func(q *Quote) { q.MROWNER[47] = 1 }, Policy{}, "MROWNER", "01"},
		{"MROWNERCONFIG set", func(q *Quote) { q.MROWNERCONFIG[3] = 1 }, Policy{}, "MROWNERCONFIG", "expected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := *q0
			if tc.edit != nil {
				tc.edit(&q)
			}
			err := CheckFields(&q, tc.pol)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, tc.field, tc.substr, err)
		})
	}
	if CheckFields(nil, Policy{}) == nil {
		t.Error("nil quote accepted")
	}
}

func TestTCBStatusPolicy(t *testing.T) {
	p := Policy{}
	if !p.statusAllowed("UpToDate") || p.statusAllowed("SWHardeningNeeded") {
		t.Error("default policy must allow UpToDate only")
	}
	p.AllowedTCBStatuses = []string{"UpToDate", "SWHardeningNeeded"}
	if !p.statusAllowed("SWHardeningNeeded") || p.statusAllowed("OutOfDate") {
		t.Error("opt-in list not honoured")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(load(f, "tdx_prod_quote_SPR_E4.dat"))
	f.Add(load(f, "quote_v5_sample.dat"))
	f.Add([]byte{4, 0, 2, 0, 0x81, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := Parse(raw)
		if err != nil {
			return
		}
		_ = ImageFields(q)
		_ = CheckFields(q, Policy{})
		if q.Version != 4 && q.Version != 5 || len(q.body) != bodySizeTDX10 && len(q.body) != bodySizeTDX15 {
			t.Fatalf("accepted version %d with a %d-byte body", q.Version, len(q.body))
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	q0, raw := parsed(b, "tdx_prod_quote_SPR_E4.dat")
	p := samplePolicy(at20230701)
	p.TrustedRoots = IntelRoots()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(raw, q0.REPORTDATA, p); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCollateralV5(t *testing.T) {
	// go-tdx-guest ships the v5 TCB info (issued 2026-02-01) with the same
	// 2023 issuer chain as the v4 sample, whose TCB signing certificate
	// expired on 2025-05-21: at 2026-02-03 the collateral is rejected
	// rather than trusted on an expired signer.
	q0, raw := parsed(t, "quote_v5_sample.dat")
	_, err := Verify(raw, q0.REPORTDATA, Policy{Now: at20260203, Collateral: DirSource{Dir: filepath.Join("testdata", "pcs")}})
	wantErr(t, "collateral", `"Intel SGX TCB Signing" does not chain to a trusted root at 2026-02-03`, err)
}

func TestMatchTCBLevel(t *testing.T) {
	comps := func(v byte) []pcs.TcbComponent {
		c := make([]pcs.TcbComponent, 16)
		for i := range c {
			c[i].Svn = v
		}
		return c
	}
	levels := []pcs.TcbLevel{
		{Tcb: pcs.Tcb{SgxTcbcomponents: comps(5), Pcesvn: 11, TdxTcbcomponents: comps(5)}, TcbStatus: "UpToDate"},
		{Tcb: pcs.Tcb{SgxTcbcomponents: comps(3), Pcesvn: 10, TdxTcbcomponents: comps(3)}, TcbStatus: "SWHardeningNeeded", AdvisoryIDs: []string{"INTEL-SA-00000"}},
		{Tcb: pcs.Tcb{SgxTcbcomponents: comps(1), Pcesvn: 1, TdxTcbcomponents: comps(1)}, TcbStatus: "OutOfDate"},
	}
	svn := func(v byte) [16]byte {
		var s [16]byte
		for i := range s {
			s[i] = v
		}
		return s
	}
	ext := func(cpu byte, pce uint16) *pcs.PckExtensions {
		e := &pcs.PckExtensions{}
		e.TCB.CPUSvnComponents = bytes.Repeat([]byte{cpu}, 16)
		e.TCB.PCESvn = pce
		return e
	}
	for _, tc := range []struct {
		name string
		tee  [16]byte
		ext  *pcs.PckExtensions
		want string
	}{
		{"newest", svn(5), ext(5, 11), "UpToDate"},
		{"old PCE", svn(5), ext(5, 10), "SWHardeningNeeded"},
		{"old TEE SVN", svn(4), ext(9, 20), "SWHardeningNeeded"},
		{"old CPU SVN", svn(9), ext(2, 20), "OutOfDate"},
		{"below all", svn(0), ext(9, 20), ""},
		{"module version set: TEE_TCB_SVN[0:2] ignored", [16]byte{0, 1, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5}, ext(5, 11), "UpToDate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := matchTCBLevel(levels, tc.tee, tc.ext)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), "no matching TCB level found") {
					t.Fatalf("got %v, %v", l, err)
				}
				return
			}
			if err != nil || string(l.TcbStatus) != tc.want {
				t.Fatalf("got %v, %v; want %s", l, err, tc.want)
			}
		})
	}
}
