package verify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/evidence"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/manifest"
	"github.com/chrysalis-cc/chrysalis/measure/manifest/dsse"
	"github.com/chrysalis-cc/chrysalis/measure/quote"
	"github.com/chrysalis-cc/chrysalis/measure/quote/quotetest"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// tdxEnv is a generated PCK hierarchy, a signed manifest with one shape,
// and a policy that trusts both (the hierarchy only as injected roots).
type tdxEnv struct {
	h     *quotetest.Hierarchy
	shape manifest.Shape
	pol   Policy
}

func fakeDigest(s string) tdxmr.Digest { return tdxmr.Sum384([]byte(s)) }

func hexSHA(s string) string {
	sum := sha256.Sum256([]byte(s))
	return manifest.Hash(sum).String()
}

// signedManifest builds a one-shape manifest, signs it with a test
// ed25519 key, and verifies it against that pinned key.
func signedManifest(t testing.TB) *manifest.Signed { return signedManifestFor(t, "") }

// signedManifestFor is signedManifest for another image: a non-empty
// image name changes MRTD, so the image hash differs.
func signedManifestFor(t testing.TB, image string) *manifest.Signed {
	t.Helper()
	s := &shape.VMShape{Name: "test-small", VCPUs: 1, MemoryMiB: 1024, NICs: 1,
		Disks: []shape.DiskSlot{{Kind: shape.DiskConfig}},
		QEMU: shape.QEMUProfile{Name: "qemu-10.1", QEMUVersion: "10.1", MRTDPageOrder: shape.MRTDSinglePass,
			PatchesKernelHeader: true, MemoryBackend: shape.MemoryBackendRAM, IOMMUFD: true},
		OVMF: shape.OVMFProfile{Name: "edk2-2025.02", EventLayout: shape.OVMFLayoutPre202505, InitrdOption: shape.InitrdSuffix}}
	rel := manifest.Release{
		SourceCommit: "81a31db715277f489d9e0d06cf3182fc532533ed", KernelVersion: "7.3.4+deb13-cloud-amd64",
		Cmdline: "console=ttyS0", ReleaseJSONSHA256: hexSHA("release.json"),
		Files: []manifest.File{{Name: "release.json", Size: 12, SHA256: hexSHA("release.json")}},
	}
	inputs := []manifest.Input{{Role: "kernel", Package: "linux-image-cloud-amd64", Version: "7.3.4-1", Arch: "amd64",
		Filename: "linux.deb", Size: 100, SHA256: hexSHA("kernel deb")}}
	kv := manifest.KernelVariant(s)
	m, err := manifest.New(rel, inputs, []manifest.ShapeValues{{
		Shape: s,
		MRTD:  manifest.Variant{Name: shape.MRTDSinglePass, Value: fakeDigest(image + "mrtd")},
		RTMR0: fakeDigest("rtmr0"),
		RTMR1: manifest.Variant{Name: kv, Value: fakeDigest("rtmr1")},
		RTMR2: manifest.Variant{Name: shape.InitrdSuffix, Value: fakeDigest("rtmr2")},
		TD:    manifest.DefaultTDFields(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	seed := sha256.Sum256([]byte("chrysalis verify test manifest key"))
	key, err := dsse.NewPrivateKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	_, env, err := manifest.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := manifest.Verify(env, []*dsse.PublicKey{key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func newTDXEnv(t testing.TB) *tdxEnv {
	t.Helper()
	signed := signedManifest(t)
	e := &tdxEnv{h: quotetest.NewHierarchy(t), shape: signed.Manifest.Shapes[0]}
	e.pol = Policy{Name: "tdx-test", Quote: &quote.Policy{TrustedRoots: e.h.Roots(), AllowUnknownTCB: true, Now: now}}
	if err := e.pol.AllowManifest(signed); err != nil {
		t.Fatal(err)
	}
	return e
}

// newCollateralEnv is a policy named name that admits only the image
// signedManifestFor(image) describes, running on hierarchy h's platforms
// with TCB status UpToDate, judged with collateral from the offline
// cache directory dir (as `chrysalis verify --collateral DIR` does).
func newCollateralEnv(t testing.TB, h *quotetest.Hierarchy, dir, image, name string) *tdxEnv {
	t.Helper()
	signed := signedManifestFor(t, image)
	e := &tdxEnv{h: h, shape: signed.Manifest.Shapes[0]}
	e.pol = Policy{Name: name, Quote: &quote.Policy{TrustedRoots: h.Roots(), Collateral: quote.DirSource{Dir: dir}, Now: now}}
	if err := e.pol.AllowManifest(signed); err != nil {
		t.Fatal(err)
	}
	return e
}

// body is the quote body of a TD running the manifest's shape.
func (e *tdxEnv) body(rtmr3 event.Digest, rd [64]byte) quotetest.Body {
	s := e.shape
	return quotetest.Body{Fields: quote.Fields{
		TeeTcbSvn: quotetest.TeeTcbSvnUpToDate,
		MRTD:      s.MRTD, RTMR: [4][48]byte{s.RTMR0, s.RTMR1, s.RTMR2, rtmr3},
		TDATTRIBUTES: s.TD.TDAttributes, XFAM: s.TD.XFAM,
		MRCONFIGID: s.TD.MRConfigID, MROWNER: s.TD.MROwner, MROWNERCONFIG: s.TD.MROwnerConfig,
		REPORTDATA: rd,
	}}
}

type tdxIssue struct {
	instance string // measured instance name (default "w1")
	nonce    string
	body     func(*quotetest.Body)          // before the quote is signed
	bundle   func(*evidence.Bundle, []byte) // after: what an attacker without the TEE can do
	h        *quotetest.Hierarchy           // signer (default: the trusted one)
}

// bundle issues a TDX bundle the way the agent does, for key.
func (e *tdxEnv) bundle(t testing.TB, key *ecdsa.PrivateKey, o tdxIssue) *evidence.Bundle {
	t.Helper()
	spki, err := evidence.SPKI(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	inst := o.instance
	if inst == "" {
		inst = "w1"
	}
	var l event.Log
	ce, err := event.New(event.NameConfig, 1, guest.MeasuredConfig{Instance: inst, Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	l.Append(ce)
	re, _ := event.New(event.NameReady, 1, struct{}{})
	l.Append(re)
	mr, _ := l.Replay()
	c := evidence.Claims{TLSKeySHA256: evidence.SPKIHash(spki), IssuedAt: now.Unix(), Nonce: o.nonce, Instance: inst, Model: "m"}
	rd, err := evidence.ReportData(spki, c)
	if err != nil {
		t.Fatal(err)
	}
	qb := e.body(mr, rd)
	if o.body != nil {
		o.body(&qb)
	}
	h := e.h
	if o.h != nil {
		h = o.h
	}
	b := &evidence.Bundle{Version: evidence.Version, Type: evidence.TypeTDX, Quote: h.Quote(qb), ReportData: rd[:],
		Claims: c, EventLog: l, RTMR3: mr, RTMR3Source: evidence.RTMR3FromQuote}
	if o.bundle != nil {
		o.bundle(b, spki)
	}
	return b
}

// cert wraps a bundle in an RA-TLS certificate for key (with evidence.NewCertificate).
func certFor(t testing.TB, key *ecdsa.PrivateKey, b *evidence.Bundle) *x509.Certificate {
	t.Helper()
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	der, err := evidence.NewCertificate(key, enc, b.Claims.Instance, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// identity is a TDX RA-TLS identity (fresh key, certificate) as the agent
// presents it in a TLS handshake.
func (e *tdxEnv) identity(t testing.TB, o tdxIssue) tls.Certificate {
	t.Helper()
	k := mustKey(t)
	cert := certFor(t, k, e.bundle(t, k, o))
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: k, Leaf: cert}
}

// certWithExtra is evidence.NewCertificate plus extra extensions.
func certWithExtra(t testing.TB, key *ecdsa.PrivateKey, b *evidence.Bundle, extra ...pkix.Extension) *x509.Certificate {
	t.Helper()
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	val, _ := asn1.Marshal(enc)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "w1"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(evidence.CertLifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
		ExtraExtensions: append([]pkix.Extension{{Id: evidence.OIDBundle, Critical: true, Value: val}}, extra...),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := evidence.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func wantReason(t *testing.T, err error, want Reason, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want rejection %q", want)
	}
	var ve *Error
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *verify.Error", err)
	}
	if ve.Reason != want {
		t.Fatalf("reason %q, want %q (%v)", ve.Reason, want, err)
	}
	if substr != "" && !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q lacks %q", err, substr)
	}
}

func TestTDXValid(t *testing.T) {
	e := newTDXEnv(t)
	for _, v := range []uint16{4, 5} {
		key := mustKey(t)
		b := e.bundle(t, key, tdxIssue{body: func(qb *quotetest.Body) { qb.Version = v }})
		res, err := Certificate(certFor(t, key, b), e.pol, Options{Now: now})
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if res.Type != evidence.TypeTDX || res.RTMR3Source != evidence.RTMR3FromQuote || res.Config.Instance != "w1" {
			t.Fatalf("v%d: result %+v", v, res)
		}
		m := res.Measurements
		if m["MRTD"] != e.shape.MRTD.String() || m["RTMR0"] != e.shape.RTMR0.String() || m["TCB status"] != quote.StatusUnknown {
			t.Fatalf("v%d: measurements %v", v, m)
		}
		if !strings.HasPrefix(m["image hash"], e.shape.ImageHash.String()) || !strings.Contains(m["image hash"], "shape test-small") {
			t.Fatalf("v%d: image hash %q", v, m["image hash"])
		}
	}
}

// TestTDXNegativeMatrix is issue 4's negative matrix: each case is
// rejected with the reason that names the failed check.
func TestTDXNegativeMatrix(t *testing.T) {
	e := newTDXEnv(t)
	other := quotetest.NewHierarchy(t)
	dev, _ := PolicyByName(PolicyInsecureDev)
	strictTCB := e.pol
	sq := *e.pol.Quote
	sq.AllowUnknownTCB = false
	strictTCB.Quote = &sq

	for _, tc := range []struct {
		name   string
		cert   func(t *testing.T) *x509.Certificate
		pol    *Policy
		opts   Options
		reason Reason
		substr string
	}{
		{name: "debug bit set", reason: ReasonDebug, substr: "DEBUG", cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certFor(t, k, e.bundle(t, k, tdxIssue{body: func(qb *quotetest.Body) { qb.TDATTRIBUTES[0] |= 1 }}))
		}},
		{name: "MROWNER set", reason: ReasonTDFields, substr: "MROWNER", cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certFor(t, k, e.bundle(t, k, tdxIssue{body: func(qb *quotetest.Body) { qb.MROWNER[0] = 1 }}))
		}},
		{name: "wrong MRTD", reason: ReasonImageNotAllowed, substr: "not in policy", cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certFor(t, k, e.bundle(t, k, tdxIssue{body: func(qb *quotetest.Body) { qb.MRTD[0] ^= 0xff }}))
		}},
		{name: "wrong RTMR1", reason: ReasonImageNotAllowed, substr: "not in policy", cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certFor(t, k, e.bundle(t, k, tdxIssue{body: func(qb *quotetest.Body) { qb.RTMR[1][5] ^= 1 }}))
		}},
		{name: "quote RTMR3 differs from event log", reason: ReasonEventLog, substr: "quote RTMR3", cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certFor(t, k, e.bundle(t, k, tdxIssue{body: func(qb *quotetest.Body) { qb.RTMR[3][0] ^= 1 }}))
		}},
		{name: "valid quote replayed under another TLS key", reason: ReasonReportDataBinding, substr: "peer presented", cert: func(t *testing.T) *x509.Certificate {
			b := e.bundle(t, mustKey(t), tdxIssue{})
			return certFor(t, mustKey(t), b)
		}},
		{name: "valid quote replayed with claims rebound to another key", reason: ReasonReportDataBinding, substr: "REPORTDATA", cert: func(t *testing.T) *x509.Certificate {
			k2 := mustKey(t)
			b := e.bundle(t, mustKey(t), tdxIssue{})
			spki2, _ := evidence.SPKI(k2.Public())
			b.Claims.TLSKeySHA256 = evidence.SPKIHash(spki2)
			rebind(b, spki2)
			return certFor(t, k2, b)
		}},
		{name: "tampered event log", reason: ReasonEventLog, substr: "quote RTMR3", cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certFor(t, k, e.bundle(t, k, tdxIssue{bundle: func(b *evidence.Bundle, _ []byte) {
				ce, _ := event.New(event.NameConfig, 1, guest.MeasuredConfig{Instance: "w1", Model: "m", Debug: true})
				rest := b.EventLog.Events[1:]
				b.EventLog.Events = nil
				b.EventLog.Append(ce)
				for _, en := range rest {
					b.EventLog.Append(en.Event)
				}
				b.RTMR3, _ = b.EventLog.Replay()
			}}))
		}},
		{name: "tampered event log, register not recomputed", reason: ReasonEventLog, substr: "replayed event log", cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certFor(t, k, e.bundle(t, k, tdxIssue{bundle: func(b *evidence.Bundle, _ []byte) {
				ev, _ := event.New(event.NameReady, 1, struct{}{})
				b.EventLog.Append(ev)
			}}))
		}},
		{name: "expired certificate", reason: ReasonCertificate, substr: "not at", opts: Options{Now: now.Add(evidence.CertLifetime + time.Minute)}, cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certFor(t, k, e.bundle(t, k, tdxIssue{}))
		}},
		{name: "unknown critical extension", reason: ReasonCertificate, substr: "unknown critical extension", cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certWithExtra(t, k, e.bundle(t, k, tdxIssue{}),
				pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 7, 1, 99}, Critical: true, Value: []byte{5, 0}})
		}},
		{name: "insecure-dev evidence without opt-in", reason: ReasonInsecureDev, substr: "does not accept it", cert: func(t *testing.T) *x509.Certificate {
			return issue(t, nil)
		}},
		{name: "stale nonce", reason: ReasonNonce, substr: "stale", opts: Options{Now: now, Nonce: "bb"}, cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certFor(t, k, e.bundle(t, k, tdxIssue{nonce: "aa"}))
		}},
		{name: "quote signed by an untrusted PCK hierarchy", reason: ReasonQuoteSignature, substr: "pck_chain", cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certFor(t, k, e.bundle(t, k, tdxIssue{h: other}))
		}},
		{name: "unknown TCB status not allowed", reason: ReasonTCBStatus, pol: &strictTCB, cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certFor(t, k, e.bundle(t, k, tdxIssue{}))
		}},
		{name: "tdx evidence under the insecure-dev policy", reason: ReasonPolicy, pol: &dev, cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certFor(t, k, e.bundle(t, k, tdxIssue{}))
		}},
		{name: "quote truncated", reason: ReasonFormat, cert: func(t *testing.T) *x509.Certificate {
			k := mustKey(t)
			return certFor(t, k, e.bundle(t, k, tdxIssue{bundle: func(b *evidence.Bundle, _ []byte) { b.Quote = b.Quote[:100] }}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol := e.pol
			if tc.pol != nil {
				pol = *tc.pol
			}
			opts := tc.opts
			if opts.Now.IsZero() {
				opts.Now = now
			}
			_, err := Certificate(tc.cert(t), pol, opts)
			wantReason(t, err, tc.reason, tc.substr)
		})
	}
}

func TestNonceMatches(t *testing.T) {
	e := newTDXEnv(t)
	k := mustKey(t)
	cert := certFor(t, k, e.bundle(t, k, tdxIssue{nonce: "aa"}))
	if _, err := Certificate(cert, e.pol, Options{Now: now, Nonce: "aa"}); err != nil {
		t.Fatal(err)
	}
}
