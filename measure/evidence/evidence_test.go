package evidence

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/event"
)

func devBundle(t testing.TB, spki []byte) *Bundle {
	t.Helper()
	var l event.Log
	e, err := event.New(event.NameConfig, 1, map[string]string{"instance": "dev"})
	if err != nil {
		t.Fatal(err)
	}
	l.Append(e)
	mr, _ := l.Replay()
	c := Claims{TLSKeySHA256: SPKIHash(spki), IssuedAt: 1700000000, Instance: "dev"}
	rd, err := ReportData(spki, c)
	if err != nil {
		t.Fatal(err)
	}
	return &Bundle{Version: Version, Type: TypeInsecureDev, ReportData: rd[:], Claims: c, EventLog: l, RTMR3: mr, RTMR3Source: RTMR3Software}
}

// TestReportDataIndependent recomputes REPORTDATA by hand from its
// definition in ARCHITECTURE decision 5.
func TestReportDataIndependent(t *testing.T) {
	spki := []byte("not really DER, any bytes are hashed")
	c := Claims{TLSKeySHA256: SPKIHash(spki), IssuedAt: 5, Instance: "i", Nonce: "ab"}
	got, err := ReportData(spki, c)
	if err != nil {
		t.Fatal(err)
	}
	k := sha256.Sum256(spki)
	claims := `{"instance":"i","issued_at":5,"nonce":"ab","tls_key_sha256":"` + hex.EncodeToString(k[:]) + `"}`
	ch := sha256.Sum256([]byte(claims))
	want := sha512.Sum512(append(append([]byte("chrysalis/ra-tls/v1\x00"), k[:]...), ch[:]...))
	if got != want {
		t.Fatalf("report data %x, want %x", got, want)
	}
}

func TestEncodeDecode(t *testing.T) {
	b := devBundle(t, []byte("spki"))
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := got.Encode()
	if string(again) != string(enc) {
		t.Fatal("decode/encode is not the identity")
	}
}

func TestReceiptKeyClaim(t *testing.T) {
	b := devBundle(t, []byte("spki"))
	rd0, _ := ReportData([]byte("spki"), b.Claims)
	b.Claims.ReceiptKey = strings.Repeat("ab", 32)
	rd1, _ := ReportData([]byte("spki"), b.Claims)
	if rd0 == rd1 {
		t.Error("receipt_key is not bound into REPORTDATA")
	}
	b.ReportData = rd1[:]
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(enc)
	if err != nil || got.Claims.ReceiptKey != b.Claims.ReceiptKey {
		t.Fatalf("decode: %v, %+v", err, got)
	}
}

func TestDecodeRejects(t *testing.T) {
	enc, _ := devBundle(t, []byte("spki")).Encode()
	s := string(enc)
	for _, tc := range []struct{ name, in, err string }{
		{"not canonical", " " + s, "not in canonical form"},
		{"unknown field", strings.Replace(s, `{"claims"`, `{"aaa":1,"claims"`, 1), "unknown field"},
		{"version", s[:strings.LastIndex(s, `"version":1}`)] + `"version":2}`, "version 2"},
		{"unknown type", strings.Replace(s, `"type":"insecure-dev"`, `"type":"sgx"`, 1), "unknown type"},
		{"dev claims hardware rtmr3", strings.Replace(s, `"rtmr3_source":"software"`, `"rtmr3_source":"quote"`, 1), "rtmr3_source"},
		{"tdx without quote", strings.Replace(strings.Replace(s, `"type":"insecure-dev"`, `"type":"tdx"`, 1), `"rtmr3_source":"software"`, `"rtmr3_source":"quote"`, 1), "no quote"},
		{"short report data", strings.Replace(s, `"report_data":"`, `"report_data":"00`, 1), "report_data"},
		{"oversize", strings.Repeat(" ", MaxBundleSize+1), "over the"},
		{"receipt key", strings.Replace(s, `"tls_key_sha256"`, `"receipt_key":"ABCD","tls_key_sha256"`, 1), "claims.receipt_key"},
	} {
		if _, err := Decode([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestCertificateCarriesCriticalBundle(t *testing.T) {
	k, _ := NewKey()
	der, err := NewCertificate(k, []byte(`{"x":1}`), "worker", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	b, err := BundleFromCertificate(c)
	if err != nil || string(b) != `{"x":1}` {
		t.Fatalf("bundle %q, %v", b, err)
	}
	if len(c.UnhandledCriticalExtensions) != 1 {
		t.Fatal("extension not critical: generic X.509 verifiers would ignore it")
	}
	if c.NotAfter.Sub(c.NotBefore) > CertLifetime+time.Minute {
		t.Fatal("lifetime too long")
	}
	for i := range c.Extensions {
		if c.Extensions[i].Id.Equal(OIDBundle) {
			c.Extensions[i].Critical = false
		}
	}
	if _, err := BundleFromCertificate(c); err == nil {
		t.Fatal("non-critical extension accepted")
	}
}

func FuzzDecode(f *testing.F) {
	enc, _ := devBundle(f, []byte("spki")).Encode()
	f.Add(enc)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Decode(b)
		if err != nil {
			return
		}
		again, err := got.Encode()
		if err != nil || string(again) != string(b) {
			t.Fatalf("accepted bundle does not re-encode to itself")
		}
	})
}
