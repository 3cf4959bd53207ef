package quote

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	tdxverify "github.com/google/go-tdx-guest/verify"
)

//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

// IntelRoots returns a pool holding the Intel SGX Root CA (the same
// certificate go-tdx-guest embeds).
func IntelRoots() *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(intelRootPEM) {
		panic("quote: embedded Intel SGX Root CA does not parse")
	}
	return p
}

// TDATTRIBUTES.DEBUG is bit 0.
const tdAttrDebug = 1

// Policy says which quotes Verify accepts. The zero value (plus Now) is
// the strictest: no debug, TCB UpToDate only (so collateral is needed),
// all-zero MRCONFIGID, MROWNER and MROWNERCONFIG, any XFAM.
type Policy struct {
	// Now is the time at which every certificate, CRL, TCB info and QE
	// identity must be valid. Zero means time.Now().
	Now time.Time
	// TrustedRoots replaces the Intel SGX Root CA (tests with a generated
	// PCK hierarchy). Nil means Intel's root.
	TrustedRoots *x509.CertPool
	// Collateral fetches TCB info, QE identity and CRLs. Nil means
	// signature and PCK chain only: TCB status "Unknown", accepted only
	// with AllowUnknownTCB.
	Collateral CollateralSource
	// AllowUnknownTCB accepts a quote verified without collateral.
	AllowUnknownTCB bool
	// AllowedTCBStatuses lists the accepted TCB statuses for the platform,
	// the TDX module and the QE. Empty means UpToDate only.
	AllowedTCBStatuses []string
	// AllowDebug accepts TDATTRIBUTES with the DEBUG bit set.
	AllowDebug bool
	// ExpectedXFAM, when set, is the exact XFAM value.
	ExpectedXFAM *uint64
	// TDAttributesMask and ExpectedTDAttributes: TDATTRIBUTES & mask must
	// equal ExpectedTDAttributes (mask 0 skips the check; DEBUG is checked
	// separately).
	TDAttributesMask     uint64
	ExpectedTDAttributes uint64
	// MRConfigID, MROwner, MROwnerConfig are the expected values
	// (nil means all-zero).
	MRConfigID, MROwner, MROwnerConfig *[48]byte
}

func (p *Policy) now() time.Time {
	if p.Now.IsZero() {
		return time.Now()
	}
	return p.Now
}

func (p *Policy) roots() *x509.CertPool {
	if p.TrustedRoots != nil {
		return p.TrustedRoots
	}
	return IntelRoots()
}

func (p *Policy) statusAllowed(s string) bool {
	if len(p.AllowedTCBStatuses) == 0 {
		return s == string(pcs.TcbComponentStatusUpToDate)
	}
	return slices.Contains(p.AllowedTCBStatuses, s)
}

// Error is a verification failure: Field names what failed (e.g.
// "signature", "pck_chain", "collateral", "tcb_status", "REPORTDATA").
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string { return "quote: " + e.Field + ": " + e.Msg }

func fail(field, format string, a ...any) error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, a...)}
}

func mismatch(field string, want, got []byte) error {
	return fail(field, "expected %s, got %s", hex.EncodeToString(want), hex.EncodeToString(got))
}

// Verify checks a raw TDX quote against the policy and the REPORTDATA the
// caller computed (from the TLS key and claims), and returns its fields.
func Verify(raw []byte, reportData [64]byte, p Policy) (*Quote, error) {
	q, err := Parse(raw)
	if err != nil {
		return nil, &Error{Field: "structure", Msg: err.Error()}
	}
	if q.REPORTDATA != reportData {
		return nil, mismatch("REPORTDATA", reportData[:], q.REPORTDATA[:])
	}
	chain, err := verifySignatures(q, p.roots(), p.now())
	if err != nil {
		return nil, err
	}
	if q.Version == 4 {
		// Defence in depth: go-tdx-guest's own v4 verifier must agree.
		pq, err := abi.QuoteToProto(raw)
		if err != nil {
			return nil, fail("structure", "go-tdx-guest: %v", err)
		}
		if err := tdxverify.TdxQuote(pq, &tdxverify.Options{Now: p.now(), TrustedRoots: p.roots()}); err != nil {
			return nil, fail("signature", "go-tdx-guest: %v", err)
		}
	}
	ext, err := pcs.PckCertificateExtensions(chain.leaf)
	if err != nil {
		return nil, fail("pck_chain", "PCK certificate extensions: %v", err)
	}
	q.FMSPC = ext.FMSPC
	if p.Collateral == nil {
		q.TCBStatus, q.ModuleTCBStatus, q.QETCBStatus = StatusUnknown, StatusUnknown, StatusUnknown
		if !p.AllowUnknownTCB {
			return nil, fail("tcb_status", "no collateral source given, so the TCB status is unknown, and the policy does not allow that (AllowUnknownTCB)")
		}
	} else {
		if err := checkCollateral(q, chain, ext, p); err != nil {
			return nil, err
		}
	}
	if err := CheckFields(q, p); err != nil {
		return nil, err
	}
	return q, nil
}

type pckChain struct {
	leaf, intermediate, root *x509.Certificate
}

// verifySignatures checks the PCK chain, the QE report signature and
// binding, and the quote signature (same code for v4 and v5).
func verifySignatures(q *Quote, roots *x509.CertPool, now time.Time) (*pckChain, error) {
	var certs []*x509.Certificate
	rest := bytes.TrimRight(q.pckChain, "\x00")
	for len(bytes.TrimSpace(rest)) > 0 {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, fail("pck_chain", "PCK chain is not a sequence of PEM certificates")
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fail("pck_chain", "certificate %d: %v", len(certs), err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 3 {
		return nil, fail("pck_chain", "%d certificates, want 3 (PCK leaf, intermediate CA, root CA)", len(certs))
	}
	ch := &pckChain{leaf: certs[0], intermediate: certs[1], root: certs[2]}
	inter := x509.NewCertPool()
	inter.AddCert(ch.intermediate)
	chains, err := ch.leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, fail("pck_chain", "PCK certificate does not chain to a trusted root at %s: %v", now.UTC().Format(time.RFC3339), err)
	}
	// The chain must go through the quote's own intermediate and root.
	okPath := false
	for _, c := range chains {
		if len(c) == 3 && c[1].Equal(ch.intermediate) && bytes.Equal(c[2].RawSubjectPublicKeyInfo, ch.root.RawSubjectPublicKeyInfo) {
			okPath = true
		}
	}
	if !okPath {
		return nil, fail("pck_chain", "the quote's root CA certificate is not the trusted root")
	}
	leafKey, ok := ch.leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || leafKey.Curve != elliptic.P256() {
		return nil, fail("pck_chain", "PCK leaf key is not ECDSA P-256")
	}
	qeHash := sha256.Sum256(q.qeReport)
	if !verifyRS(leafKey, qeHash[:], q.qeReportSg) {
		return nil, fail("qe_report", "QE report signature does not verify with the PCK leaf key")
	}
	bind := sha256.Sum256(append(slices.Clip(q.attestKey), q.qeAuthData...))
	var want [64]byte
	copy(want[:], bind[:])
	if got := q.qeReport[320:384]; !bytes.Equal(got, want[:]) {
		return nil, mismatch("qe_report.REPORTDATA", want[:], got)
	}
	ak, err := attestationKey(q.attestKey)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(q.signed)
	if !verifyRS(ak, h[:], q.signature) {
		return nil, fail("signature", "quote signature over header and body does not verify with the attestation key")
	}
	return ch, nil
}

func attestationKey(xy []byte) (*ecdsa.PublicKey, error) {
	pt := append([]byte{4}, xy...)
	k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
	if err != nil {
		return nil, fail("signature", "attestation key is not a P-256 point: %v", err)
	}
	return k, nil
}

func verifyRS(k *ecdsa.PublicKey, digest, rs []byte) bool {
	if len(rs) != 64 {
		return false
	}
	r := new(big.Int).SetBytes(rs[:32])
	s := new(big.Int).SetBytes(rs[32:])
	return ecdsa.Verify(k, digest, r, s)
}

// CheckFields applies the policy's field checks (REPORTDATA excepted:
// Verify compares it) to parsed quote fields. It is separate so it can be
// tested on synthetic values; it does not verify any signature.
func CheckFields(q *Quote, p Policy) error {
	if q == nil {
		return errNilQuote
	}
	attr := q.TDAttributes()
	if attr&tdAttrDebug != 0 && !p.AllowDebug {
		return fail("TDATTRIBUTES", "DEBUG bit (bit 0) is set: %s; the host can read and change this TD", hex.EncodeToString(q.TDATTRIBUTES[:]))
	}
	if p.TDAttributesMask != 0 && attr&p.TDAttributesMask != p.ExpectedTDAttributes&p.TDAttributesMask {
		return fail("TDATTRIBUTES", "under mask %#016x expected %#016x, got %#016x", p.TDAttributesMask, p.ExpectedTDAttributes&p.TDAttributesMask, attr&p.TDAttributesMask)
	}
	if p.ExpectedXFAM != nil && q.XFAMValue() != *p.ExpectedXFAM {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], *p.ExpectedXFAM)
		return mismatch("XFAM", w[:], q.XFAM[:])
	}
	for _, f := range []struct {
		name string
		want *[48]byte
		got  [48]byte
	}{
		{"MRCONFIGID", p.MRConfigID, q.MRCONFIGID},
		{"MROWNER", p.MROwner, q.MROWNER},
		{"MROWNERCONFIG", p.MROwnerConfig, q.MROWNERCONFIG},
	} {
		var want [48]byte
		if f.want != nil {
			want = *f.want
		}
		if want != f.got {
			return mismatch(f.name, want[:], f.got[:])
		}
	}
	return nil
}

// caFromIssuer maps the PCK leaf issuer to the PCS "ca" parameter.
func caFromIssuer(c *x509.Certificate) (string, error) {
	switch {
	case strings.Contains(c.Issuer.CommonName, "Platform"):
		return "platform", nil
	case strings.Contains(c.Issuer.CommonName, "Processor"):
		return "processor", nil
	}
	return "", fail("pck_chain", "PCK issuer %q is neither the platform nor the processor CA", c.Issuer.CommonName)
}
