package quotetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/quote"
)

// Names go-tdx-guest's v4 verifier requires of the chain.
const (
	RootName         = "Intel SGX Root CA"
	IntermediateName = "Intel SGX PCK Platform CA"
	PCKName          = "Intel SGX PCK Certificate"
	// TCBSigningName is the subject of the certificate that signs TCB
	// info and QE identity (Intel's name; go-tdx-guest insists on it).
	TCBSigningName = "Intel SGX TCB Signing"
)

// RootCRLURL is the root CA's CRL distribution point, as in Intel's root:
// the verifier fetches the root CA CRL from it.
const RootCRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

// Validity of every certificate of the hierarchy.
var (
	NotBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	NotAfter  = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
)

// The PCK certificate's TCB (SGX TCB components = CPUSVN, PCESVN) and the
// QE report's identity; the generated collateral matches them.
const (
	pckPCESVN      = 13
	qeMRSIGNERByte = 0xdc
	qeISVProdID    = 2
	qeISVSVN       = 4
)

// qeAttributes are the QE report's ATTRIBUTES (INIT|MODE64BIT, XFRM x87|SSE|AVX...).
var qeAttributes = [16]byte{0x11, 0, 0, 0, 0, 0, 0, 0, 0xe7}

func pckCPUSVN() []byte {
	c := make([]byte, 16)
	for i := range c {
		c[i] = byte((i + 1) % 4)
	}
	return c
}

// SGX extension OIDs (Intel PCK certificate profile; the same values as
// go-tdx-guest's pcs package).
var (
	oidSGX    = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	oidPPID   = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 1}
	oidTCB    = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2}
	oidPCEID  = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 3}
	oidFMSPC  = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 4}
	oidPCESVN = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2, 17}
	oidCPUSVN = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2, 18}
)

// FMSPC is the FMSPC the generated PCK certificate carries.
var FMSPC = [6]byte{0x00, 0x80, 0x6f, 0x05, 0x00, 0x00}

// Intel's QE vendor ID, which the quote header must carry.
var qeVendorID = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// Hierarchy is a generated PCK certificate hierarchy and QE attestation key.
type Hierarchy struct {
	Root, Intermediate, PCK *x509.Certificate
	// TCBSigning signs the generated TCB info and QE identity (see
	// Hierarchy.Collateral); it is issued by Root.
	TCBSigning *x509.Certificate
	// ChainPEM is leaf, intermediate, root as the quote carries them.
	ChainPEM []byte

	t         testing.TB
	rootKey   *ecdsa.PrivateKey
	interKey  *ecdsa.PrivateKey
	tcbKey    *ecdsa.PrivateKey
	pckKey    *ecdsa.PrivateKey
	attestKey *ecdsa.PrivateKey
}

// NewHierarchy generates a root CA, an intermediate CA, a PCK leaf with
// SGX extensions, and an attestation key. It fails t on any error.
func NewHierarchy(t testing.TB) *Hierarchy {
	t.Helper()
	h, err := newHierarchy()
	if err != nil {
		t.Fatalf("quotetest: %v", err)
	}
	h.t = t
	return h
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func newHierarchy() (*Hierarchy, error) {
	rootKey, err := newKey()
	if err != nil {
		return nil, err
	}
	interKey, err := newKey()
	if err != nil {
		return nil, err
	}
	pckKey, err := newKey()
	if err != nil {
		return nil, err
	}
	attestKey, err := newKey()
	if err != nil {
		return nil, err
	}
	tcbKey, err := newKey()
	if err != nil {
		return nil, err
	}
	name := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{"Intel Corporation"}, Locality: []string{"Santa Clara"},
			Province: []string{"CA"}, Country: []string{"US"}}
	}
	rootT := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: name(RootName), NotBefore: NotBefore, NotAfter: NotAfter,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true, MaxPathLen: 1,
		CRLDistributionPoints: []string{RootCRLURL},
	}
	root, err := create(rootT, rootT, rootKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	interT := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: name(IntermediateName), NotBefore: NotBefore, NotAfter: NotAfter,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
		MaxPathLen: 0, MaxPathLenZero: true,
	}
	inter, err := create(interT, root, interKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("intermediate: %w", err)
	}
	tcbT := &x509.Certificate{
		SerialNumber: big.NewInt(4), Subject: name(TCBSigningName), NotBefore: NotBefore, NotAfter: NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true, CRLDistributionPoints: []string{RootCRLURL},
	}
	tcbSigning, err := create(tcbT, root, tcbKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("TCB signing: %w", err)
	}
	sgx, err := sgxExtension()
	if err != nil {
		return nil, err
	}
	pckPub, err := pckKey.PublicKey.Bytes()
	if err != nil {
		return nil, err
	}
	skid := sha256.Sum256(pckPub)
	// Exactly six extensions, as go-tdx-guest requires: authority and
	// subject key IDs, key usage, basic constraints, CRL distribution
	// points, SGX extensions.
	leafT := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: name(PCKName), NotBefore: NotBefore, NotAfter: NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true, SubjectKeyId: skid[:20],
		CRLDistributionPoints: []string{"https://pcs.invalid/sgx/certification/v4/pckcrl?ca=platform&encoding=der"},
		ExtraExtensions:       []pkix.Extension{{Id: oidSGX, Value: sgx}},
	}
	leaf, err := create(leafT, inter, pckKey, interKey)
	if err != nil {
		return nil, fmt.Errorf("PCK leaf: %w", err)
	}
	var chain []byte
	for _, c := range []*x509.Certificate{leaf, inter, root} {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return &Hierarchy{Root: root, Intermediate: inter, PCK: leaf, TCBSigning: tcbSigning, ChainPEM: chain,
		rootKey: rootKey, interKey: interKey, tcbKey: tcbKey, pckKey: pckKey, attestKey: attestKey}, nil
}

func create(tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

type oidOctets struct {
	ID  asn1.ObjectIdentifier
	Val []byte
}

type oidInt struct {
	ID  asn1.ObjectIdentifier
	Val int
}

type oidSeq struct {
	ID  asn1.ObjectIdentifier
	Val []asn1.RawValue
}

func raw(v any) (asn1.RawValue, error) {
	b, err := asn1.Marshal(v)
	return asn1.RawValue{FullBytes: b}, err
}

// sgxExtension encodes the SGX extension: PPID, TCB (16 SGX TCB
// components, PCESVN, CPUSVN), PCEID, FMSPC.
func sgxExtension() ([]byte, error) {
	var tcb []asn1.RawValue
	cpusvn := pckCPUSVN()
	for i := 1; i <= 16; i++ {
		r, err := raw(oidInt{append(append(asn1.ObjectIdentifier{}, oidTCB...), i), int(cpusvn[i-1])})
		if err != nil {
			return nil, err
		}
		tcb = append(tcb, r)
	}
	for _, v := range []any{oidInt{oidPCESVN, pckPCESVN}, oidOctets{oidCPUSVN, cpusvn}} {
		r, err := raw(v)
		if err != nil {
			return nil, err
		}
		tcb = append(tcb, r)
	}
	ppid := make([]byte, 16)
	for i := range ppid {
		ppid[i] = byte(0xa0 + i)
	}
	var items []asn1.RawValue
	for _, v := range []any{oidOctets{oidPPID, ppid}, oidSeq{oidTCB, tcb}, oidOctets{oidPCEID, []byte{0, 0}}, oidOctets{oidFMSPC, FMSPC[:]}} {
		r, err := raw(v)
		if err != nil {
			return nil, err
		}
		items = append(items, r)
	}
	return asn1.Marshal(items)
}

// Roots returns a pool holding only the generated root CA: pass it as
// quote.Policy.TrustedRoots in a test.
func (h *Hierarchy) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(h.Root)
	return p
}

// Body holds the header choice and TD quote body fields of a quote to
// sign: the fields quote.Parse returns. Version 0 means 4; BodyType 0
// means 2 (TDX 1.0); 3 (TDX 1.5, with TeeTcbSvn2 and MRSERVICETD) needs
// version 5.
type Body struct {
	quote.Fields
}

// Bytes returns the TD quote body (584 bytes, or 648 for a v5 type 3 body).
func (b *Body) Bytes() []byte {
	var out []byte
	for _, f := range [][]byte{b.TeeTcbSvn[:], b.MRSEAM[:], b.MRSIGNERSEAM[:], b.SEAMATTRIBUTES[:], b.TDATTRIBUTES[:],
		b.XFAM[:], b.MRTD[:], b.MRCONFIGID[:], b.MROWNER[:], b.MROWNERCONFIG[:],
		b.RTMR[0][:], b.RTMR[1][:], b.RTMR[2][:], b.RTMR[3][:], b.REPORTDATA[:]} {
		out = append(out, f...)
	}
	if b.Version == 5 && b.BodyType == 3 {
		out = append(out, b.TeeTcbSvn2[:]...)
		out = append(out, b.MRSERVICETD[:]...)
	}
	return out
}

// QEAuthData is the QE authentication data every quote carries.
var QEAuthData = func() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// Quote returns a validly signed quote with the given body. It fails the
// hierarchy's test on any error.
func (h *Hierarchy) Quote(body Body) []byte {
	h.t.Helper()
	q, err := h.quote(body)
	if err != nil {
		h.t.Fatalf("quotetest: %v", err)
	}
	return q
}

func (h *Hierarchy) quote(body Body) ([]byte, error) {
	le16 := func(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
	le32 := func(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
	version := body.Version
	if version == 0 {
		version = 4
	}
	if version != 4 && version != 5 {
		return nil, fmt.Errorf("quote version %d, want 4 or 5", version)
	}
	body.Version = version
	bt := body.BodyType
	if bt == 0 {
		bt = 2
	}
	if bt != 2 && (bt != 3 || version != 5) {
		return nil, fmt.Errorf("body type %d with quote version %d", bt, version)
	}
	body.BodyType = bt

	// Header.
	var signed []byte
	signed = le16(signed, version)
	signed = le16(signed, 2)           // ECDSA-256-with-P-256
	signed = le32(signed, 0x81)        // TDX
	signed = le16(signed, body.QESVN)  // QE SVN
	signed = le16(signed, body.PCESVN) // PCE SVN
	signed = append(signed, qeVendorID[:]...)
	signed = append(signed, make([]byte, 20)...) // user data
	bb := body.Bytes()
	if version == 5 {
		signed = le16(signed, bt)
		signed = le32(signed, uint32(len(bb)))
	}
	signed = append(signed, bb...)

	sig, err := signRS(h.attestKey, signed)
	if err != nil {
		return nil, err
	}
	pub, err := h.attestKey.PublicKey.Bytes() // 0x04 ‖ x ‖ y
	if err != nil {
		return nil, err
	}
	ak := pub[1:]

	// QE report: an SGX report body whose REPORTDATA binds the attestation
	// key and the QE auth data.
	rep := make([]byte, 384)
	copy(rep[0:16], []byte{3, 3, 2, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // CPUSVN
	copy(rep[48:64], qeAttributes[:])
	for i := 64; i < 96; i++ {
		rep[i] = 0x5e // MRENCLAVE
	}
	for i := 128; i < 160; i++ {
		rep[i] = qeMRSIGNERByte // MRSIGNER
	}
	binary.LittleEndian.PutUint16(rep[256:], qeISVProdID) // ISVPRODID: TD QE
	binary.LittleEndian.PutUint16(rep[258:], qeISVSVN)    // ISVSVN
	bind := sha256.Sum256(append(append([]byte{}, ak...), QEAuthData...))
	copy(rep[320:], bind[:])
	repSig, err := signRS(h.pckKey, rep)
	if err != nil {
		return nil, err
	}

	var cd []byte // QE report certification data
	cd = append(cd, rep...)
	cd = append(cd, repSig...)
	cd = le16(cd, uint16(len(QEAuthData)))
	cd = append(cd, QEAuthData...)
	cd = le16(cd, 5) // PCK chain, PEM
	cd = le32(cd, uint32(len(h.ChainPEM)))
	cd = append(cd, h.ChainPEM...)

	var sd []byte // signed data
	sd = append(sd, sig...)
	sd = append(sd, ak...)
	sd = le16(sd, 6) // QE report certification data
	sd = le32(sd, uint32(len(cd)))
	sd = append(sd, cd...)

	out := append([]byte{}, signed...)
	out = le32(out, uint32(len(sd)))
	return append(out, sd...), nil
}

// signRS signs SHA-256(msg) and returns r‖s, 32 bytes each.
func signRS(k *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	der, err := k.Sign(rand.Reader, d[:], nil)
	if err != nil {
		return nil, err
	}
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("ECDSA signature does not parse: %v", err)
	}
	return append(pad32(rs.R), pad32(rs.S)...), nil
}

func pad32(v *big.Int) []byte {
	b := make([]byte, 32)
	return v.FillBytes(b)
}
