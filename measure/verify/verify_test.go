package verify

import (
	"crypto/sha256"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/evidence"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/manifest"
	"github.com/chrysalis-cc/chrysalis/measure/quote"
)

var now = time.Unix(1800000000, 0)

// issue builds a certificate the way the agent does, after letting mut
// change the bundle before it is encoded.
func issue(t testing.TB, mut func(*evidence.Bundle, []byte)) *x509.Certificate {
	t.Helper()
	key, _ := evidence.NewKey()
	spki, _ := evidence.SPKI(key.Public())
	cfg := guest.MeasuredConfig{Instance: "w1", Model: "m"}
	var l event.Log
	ce, err := event.New(event.NameConfig, 1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.Append(ce)
	re, _ := event.New(event.NameReady, 1, struct{}{})
	l.Append(re)
	mr, _ := l.Replay()
	c := evidence.Claims{TLSKeySHA256: evidence.SPKIHash(spki), IssuedAt: now.Unix(), Instance: "w1", Model: "m"}
	rd, _ := evidence.ReportData(spki, c)
	b := &evidence.Bundle{Version: evidence.Version, Type: evidence.TypeInsecureDev, ReportData: rd[:], Claims: c, EventLog: l, RTMR3: mr, RTMR3Source: evidence.RTMR3Software}
	if mut != nil {
		mut(b, spki)
	}
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	der, err := evidence.NewCertificate(key, enc, "w1", now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// rebind recomputes REPORTDATA after a claims change, as an attacker
// controlling the software (but not a TEE) could.
func rebind(b *evidence.Bundle, spki []byte) {
	rd, _ := evidence.ReportData(spki, b.Claims)
	b.ReportData = rd[:]
}

// sampleQuote is go-tdx-guest's production v4 quote (measure/quote/testdata).
func sampleQuote(t testing.TB) []byte {
	b, err := os.ReadFile("../quote/testdata/tdx_prod_quote_SPR_E4.dat")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCertificate(t *testing.T) {
	sq := sampleQuote(t)
	toTDX := func(b *evidence.Bundle, _ []byte) {
		b.Type, b.Quote, b.RTMR3Source = evidence.TypeTDX, sq, evidence.RTMR3FromQuote
	}
	// A real, validly signed quote: it fails only because its REPORTDATA
	// does not bind our key and claims.
	tdxPol := Policy{Name: "tdx", Quote: &quote.Policy{Now: time.Date(2023, 7, 1, 0, 0, 0, 0, time.UTC), AllowUnknownTCB: true},
		Images: map[manifest.Hash]string{{1}: "some image"}}
	dev, _ := PolicyByName(PolicyInsecureDev)
	strict := Policy{Name: "strict"}
	for _, tc := range []struct {
		name   string
		mut    func(*evidence.Bundle, []byte)
		pol    Policy
		opts   Options
		err    string
		reason Reason
	}{
		{name: "valid", pol: dev},
		{name: "insecure-dev needs opt-in", pol: strict, err: "does not accept it", reason: ReasonInsecureDev},
		{name: "tdx without quote policy", pol: dev, mut: toTDX, err: "no quote verification settings", reason: ReasonPolicy},
		{name: "tdx with empty allowlist", pol: Policy{Name: "tdx", Quote: &quote.Policy{}}, mut: toTDX, err: "empty image allowlist", reason: ReasonPolicy},
		{name: "tdx quote over other report data", pol: tdxPol, mut: toTDX, err: "REPORTDATA", reason: ReasonReportDataBinding},
		{name: "claims bind another key", pol: dev, mut: func(b *evidence.Bundle, _ []byte) {
			b.Claims.TLSKeySHA256 = strings.Repeat("0", 64)
		}, err: "peer presented", reason: ReasonReportDataBinding},
		{name: "claims changed after binding", pol: dev, mut: func(b *evidence.Bundle, _ []byte) {
			b.Claims.Model = "other"
		}, err: "report_data", reason: ReasonReportDataBinding},
		{name: "claims disagree with config", pol: dev, mut: func(b *evidence.Bundle, spki []byte) {
			b.Claims.Model = "other"
			rebind(b, spki)
		}, err: "differ from the measured config", reason: ReasonEventPolicy},
		{name: "rtmr3 does not match log", pol: dev, mut: func(b *evidence.Bundle, _ []byte) {
			b.RTMR3[0] ^= 1
		}, err: "does not equal the replayed", reason: ReasonEventLog},
		{name: "config not first", pol: dev, mut: func(b *evidence.Bundle, _ []byte) {
			b.EventLog.Events = b.EventLog.Events[1:]
			b.RTMR3, _ = b.EventLog.Replay()
		}, err: "first event must be the measured config", reason: ReasonEventPolicy},
		{name: "event after ready", pol: dev, mut: func(b *evidence.Bundle, _ []byte) {
			e, _ := event.New(event.NameReady, 1, struct{}{})
			b.EventLog.Append(e)
			b.RTMR3, _ = b.EventLog.Replay()
		}, err: "follows the ready event", reason: ReasonEventPolicy},
		{name: "unknown event", pol: dev, mut: func(b *evidence.Bundle, _ []byte) {
			e, _ := event.New("mystery", 1, struct{}{})
			b.EventLog.Events = b.EventLog.Events[:1]
			b.EventLog.Append(e)
			b.RTMR3, _ = b.EventLog.Replay()
		}, err: "not known to this verifier", reason: ReasonEventPolicy},
		{name: "debug refused", pol: Policy{Name: "dev-nodebug", AllowInsecureDev: true}, mut: func(b *evidence.Bundle, _ []byte) {
			e, _ := event.New(event.NameConfig, 1, guest.MeasuredConfig{Instance: "w1", Model: "m", Debug: true})
			b.EventLog.Events = nil
			b.EventLog.Append(e)
			b.RTMR3, _ = b.EventLog.Replay()
		}, err: "refuses debug", reason: ReasonEventPolicy},
		{name: "wrong instance", pol: Policy{Name: "pin", AllowInsecureDev: true, Instance: "w2"}, err: "not the expected", reason: ReasonEventPolicy},
		{name: "nonce required", pol: dev, opts: Options{Nonce: "aa"}, err: "does not equal the nonce", reason: ReasonNonce},
		{name: "expired", pol: dev, opts: Options{Now: now.Add(evidence.CertLifetime + time.Hour)}, err: "not at", reason: ReasonCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := issue(t, tc.mut)
			opts := tc.opts
			if opts.Now.IsZero() {
				opts.Now = now
			}
			res, err := Certificate(cert, tc.pol, opts)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if res.Config.Instance != "w1" || res.RTMR3Source != evidence.RTMR3Software {
					t.Fatalf("result %+v", res)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			if got := ReasonOf(err); got != tc.reason {
				t.Fatalf("reason %q, want %q (%v)", got, tc.reason, err)
			}
		})
	}
}

func TestCheckImage(t *testing.T) {
	q, err := quote.Parse(sampleQuote(t))
	if err != nil {
		t.Fatal(err)
	}
	pol := Policy{Name: "p", Images: map[manifest.Hash]string{{1}: "other"}}
	img, _, err := checkImage(q, pol)
	if err == nil || !strings.Contains(err.Error(), "not in policy") {
		t.Fatalf("unlisted image accepted: %v", err)
	}
	// The image hash is SHA-256 over the quote's identity fields.
	if want := manifest.Hash(sha256.Sum256(quote.ImageFields(q))); img != want {
		t.Fatalf("image hash %s, want %s", img, want)
	}
	pol.Images[img] = "release x, shape y"
	if _, label, err := checkImage(q, pol); err != nil || label != "release x, shape y" {
		t.Fatalf("listed image: %q, %v", label, err)
	}
}

func TestAllowManifestNeedsSignature(t *testing.T) {
	var p Policy
	if err := p.AllowManifest(&manifest.Signed{Manifest: &manifest.Manifest{}}); err == nil {
		t.Fatal("manifest without verified signatures added to the allowlist")
	}
	m := &manifest.Manifest{Shapes: []manifest.Shape{{Name: "s", ImageHash: manifest.Hash{7}}}}
	if err := p.AllowManifest(&manifest.Signed{Manifest: m, KeyIDs: []string{"k"}}); err != nil || len(p.Images) != 1 {
		t.Fatalf("%v, %d images", err, len(p.Images))
	}
}

func TestPolicyByName(t *testing.T) {
	for _, n := range []string{"", "tdx", "INSECURE-DEV"} {
		if _, err := PolicyByName(n); err == nil {
			t.Errorf("policy %q accepted", n)
		}
	}
	p, err := PolicyByName("insecure-dev")
	if err != nil || !p.AllowInsecureDev {
		t.Fatal("insecure-dev policy missing")
	}
}
