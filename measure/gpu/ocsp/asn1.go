package ocsp

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	encasn1 "encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	xocsp "golang.org/x/crypto/ocsp"
)

// NonceSize is the length of the nonce Check sends: 32 random bytes, as
// NVIDIA's verifiers do and the most RFC 8954 allows.
const NonceSize = 32

// MaxNonceSize is the largest nonce RFC 8954 allows (Nonce ::= OCTET
// STRING (SIZE(1..32))); ParseRequest and ParseResponseData refuse larger.
const MaxNonceSize = 32

var (
	// OIDNonce is id-pkix-ocsp-nonce (RFC 8954).
	OIDNonce = encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	// OIDBasicResponse is id-pkix-ocsp-basic (RFC 6960 §4.2.1).
	OIDBasicResponse = encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
)

// hashOIDs are the CertID hash algorithms accepted (RFC 6960 §4.1.1 and
// the NIST OIDs used by NVIDIA's clients: SHA-1 in C++, SHA-384 in Python).
var hashOIDs = []struct {
	hash crypto.Hash
	oid  encasn1.ObjectIdentifier
}{
	{crypto.SHA1, encasn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}},
	{crypto.SHA256, encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}},
	{crypto.SHA384, encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}},
	{crypto.SHA512, encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}},
}

func hashOID(h crypto.Hash) encasn1.ObjectIdentifier {
	for _, e := range hashOIDs {
		if e.hash == h {
			return e.oid
		}
	}
	return nil
}

func hashFromOID(oid encasn1.ObjectIdentifier) crypto.Hash {
	for _, e := range hashOIDs {
		if e.oid.Equal(oid) {
			return e.hash
		}
	}
	return 0
}

// CertID names one certificate in an OCSP request or response
// (RFC 6960 §4.1.1): hashes of its issuer's name and public key, and its
// serial number.
type CertID struct {
	HashAlgorithm  crypto.Hash
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	SerialNumber   *big.Int
}

// NewCertID computes the CertID of cert issued by issuer with hash h
// (crypto.SHA1, SHA256, SHA384 or SHA512).
func NewCertID(cert, issuer *x509.Certificate, h crypto.Hash) (CertID, error) {
	if cert == nil || issuer == nil {
		return CertID{}, errors.New("ocsp: CertID needs a certificate and its issuer")
	}
	if hashOID(h) == nil || !h.Available() {
		return CertID{}, fmt.Errorf("ocsp: CertID hash %v is not supported", h)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey encasn1.BitString
	}
	if rest, err := encasn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil || len(rest) != 0 {
		return CertID{}, fmt.Errorf("ocsp: issuer %q: malformed subjectPublicKeyInfo", issuer.Subject.String())
	}
	kh := h.New()
	kh.Write(spki.PublicKey.RightAlign())
	nh := h.New()
	nh.Write(issuer.RawSubject)
	return CertID{
		HashAlgorithm:  h,
		IssuerNameHash: nh.Sum(nil),
		IssuerKeyHash:  kh.Sum(nil),
		SerialNumber:   new(big.Int).Set(cert.SerialNumber),
	}, nil
}

// Equal reports whether id and o name the same certificate with the same
// hash algorithm.
func (id CertID) Equal(o CertID) bool {
	return id.HashAlgorithm == o.HashAlgorithm &&
		bytes.Equal(id.IssuerNameHash, o.IssuerNameHash) &&
		bytes.Equal(id.IssuerKeyHash, o.IssuerKeyHash) &&
		id.SerialNumber != nil && o.SerialNumber != nil &&
		id.SerialNumber.Cmp(o.SerialNumber) == 0
}

// Marshal returns the DER CertID (hash AlgorithmIdentifier with NULL
// parameters, as x/crypto/ocsp writes it).
func (id CertID) Marshal() ([]byte, error) {
	if hashOID(id.HashAlgorithm) == nil || id.SerialNumber == nil {
		return nil, fmt.Errorf("ocsp: CertID with hash %v and serial %v cannot be encoded", id.HashAlgorithm, id.SerialNumber)
	}
	var b cryptobyte.Builder
	addCertID(&b, id)
	return b.Bytes()
}

func addCertID(b *cryptobyte.Builder, id CertID) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(hashOID(id.HashAlgorithm))
			b.AddASN1NULL()
		})
		b.AddASN1OctetString(id.IssuerNameHash)
		b.AddASN1OctetString(id.IssuerKeyHash)
		b.AddASN1BigInt(id.SerialNumber)
	})
}

// MarshalRequest encodes an unsigned OCSPRequest (RFC 6960 §4.1.1) for one
// certificate. With a nonce, requestExtensions carries id-pkix-ocsp-nonce
// (RFC 8954) marked critical, as NVIDIA's Python verifier sends it; the
// extension value is the DER OCTET STRING of the nonce. Without one the
// bytes equal golang.org/x/crypto/ocsp.CreateRequest's.
func MarshalRequest(id CertID, nonce []byte) ([]byte, error) {
	if hashOID(id.HashAlgorithm) == nil {
		return nil, fmt.Errorf("ocsp: request CertID hash %v is not supported", id.HashAlgorithm)
	}
	if id.SerialNumber == nil {
		return nil, errors.New("ocsp: request CertID has no serial number")
	}
	if nonce != nil && (len(nonce) < 1 || len(nonce) > MaxNonceSize) {
		return nil, fmt.Errorf("ocsp: request nonce is %d bytes, want 1..%d", len(nonce), MaxNonceSize)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // OCSPRequest
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // TBSRequest
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // requestList
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // Request
					addCertID(b, id)
				})
			})
			if nonce != nil {
				b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					addExtensions(b, []pkix.Extension{NonceExtension(nonce)})
				})
			}
		})
	})
	return b.Bytes()
}

// NonceExtension returns the critical id-pkix-ocsp-nonce extension
// carrying nonce as an OCTET STRING (RFC 8954).
func NonceExtension(nonce []byte) pkix.Extension {
	var b cryptobyte.Builder
	b.AddASN1OctetString(nonce)
	return pkix.Extension{Id: OIDNonce, Critical: true, Value: b.BytesOrPanic()}
}

// addExtensions appends a DER SEQUENCE OF Extension (RFC 5280 §4.1) to b;
// a critical flag is written only when true (DER omits the default).
func addExtensions(b *cryptobyte.Builder, exts []pkix.Extension) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, e := range exts {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(e.Id)
				if e.Critical {
					b.AddASN1Boolean(true)
				}
				b.AddASN1OctetString(e.Value)
			})
		}
	})
}

// MarshalExtensions encodes exts as a DER SEQUENCE OF Extension, the
// contents of requestExtensions and responseExtensions.
func MarshalExtensions(exts []pkix.Extension) ([]byte, error) {
	var b cryptobyte.Builder
	addExtensions(&b, exts)
	return b.Bytes()
}

// Request is a parsed OCSPRequest.
type Request struct {
	CertIDs    []CertID         // requestList, in order; at least one
	Extensions []pkix.Extension // requestExtensions
	Nonce      []byte           // the id-pkix-ocsp-nonce value; nil when absent
}

// ParseRequest parses a DER OCSPRequest (RFC 6960 §4.1.1): every CertID in
// requestList, and requestExtensions with the nonce. Signed requests,
// unknown CertID hash algorithms, duplicate extensions, a malformed or
// oversized nonce and trailing bytes are errors.
func ParseRequest(der []byte) (*Request, error) {
	in := cryptobyte.String(der)
	var req, tbs, list cryptobyte.String
	if !in.ReadASN1(&req, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("ocsp: request: not one DER SEQUENCE")
	}
	if !req.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, errors.New("ocsp: request: malformed tbsRequest")
	}
	if !req.Empty() {
		return nil, errors.New("ocsp: request: signed requests (optionalSignature) are not supported")
	}
	var version int64
	if !tbs.ReadOptionalASN1Integer(&version, cbasn1.Tag(0).Constructed().ContextSpecific(), int64(0)) {
		return nil, errors.New("ocsp: request: malformed version")
	}
	if version != 0 {
		return nil, fmt.Errorf("ocsp: request: version %d, want v1 (0)", version)
	}
	if !tbs.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) { // requestorName
		return nil, errors.New("ocsp: request: malformed requestorName")
	}
	if !tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		return nil, errors.New("ocsp: request: malformed requestList")
	}
	r := &Request{}
	for !list.Empty() {
		var one cryptobyte.String
		if !list.ReadASN1(&one, cbasn1.SEQUENCE) {
			return nil, fmt.Errorf("ocsp: request: malformed Request %d", len(r.CertIDs))
		}
		id, err := readCertID(&one)
		if err != nil {
			return nil, fmt.Errorf("ocsp: request: Request %d: %w", len(r.CertIDs), err)
		}
		if !one.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || !one.Empty() {
			return nil, fmt.Errorf("ocsp: request: Request %d: malformed singleRequestExtensions", len(r.CertIDs))
		}
		r.CertIDs = append(r.CertIDs, id)
	}
	if len(r.CertIDs) == 0 {
		return nil, errors.New("ocsp: request: empty requestList")
	}
	var exts cryptobyte.String
	var present bool
	if !tbs.ReadOptionalASN1(&exts, &present, cbasn1.Tag(2).Constructed().ContextSpecific()) {
		return nil, errors.New("ocsp: request: malformed requestExtensions")
	}
	if !tbs.Empty() {
		return nil, errors.New("ocsp: request: unexpected data after requestExtensions")
	}
	if present {
		var err error
		if r.Extensions, r.Nonce, err = readExtensions(&exts); err != nil {
			return nil, fmt.Errorf("ocsp: request: requestExtensions: %w", err)
		}
		if !exts.Empty() {
			return nil, errors.New("ocsp: request: requestExtensions: trailing data")
		}
	}
	return r, nil
}

func readCertID(s *cryptobyte.String) (CertID, error) {
	var seq, alg cryptobyte.String
	var oid encasn1.ObjectIdentifier
	var id CertID
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) ||
		!seq.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&oid) {
		return id, errors.New("malformed CertID")
	}
	if !alg.Empty() && (!alg.SkipASN1(cbasn1.NULL) || !alg.Empty()) {
		return id, errors.New("CertID hashAlgorithm parameters are not NULL")
	}
	if id.HashAlgorithm = hashFromOID(oid); id.HashAlgorithm == 0 {
		return id, fmt.Errorf("CertID hash algorithm %v is not supported", oid)
	}
	id.SerialNumber = new(big.Int)
	if !seq.ReadASN1Bytes(&id.IssuerNameHash, cbasn1.OCTET_STRING) ||
		!seq.ReadASN1Bytes(&id.IssuerKeyHash, cbasn1.OCTET_STRING) ||
		!seq.ReadASN1Integer(id.SerialNumber) || !seq.Empty() {
		return id, errors.New("malformed CertID")
	}
	if n := id.HashAlgorithm.Size(); len(id.IssuerNameHash) != n || len(id.IssuerKeyHash) != n {
		return id, fmt.Errorf("CertID hashes are %d and %d bytes, want %d for %v",
			len(id.IssuerNameHash), len(id.IssuerKeyHash), n, id.HashAlgorithm)
	}
	return id, nil
}

// readExtensions reads one DER SEQUENCE OF Extension from s and returns
// the extensions and the nonce value (nil when there is none).
func readExtensions(s *cryptobyte.String) ([]pkix.Extension, []byte, error) {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil, nil, errors.New("not a SEQUENCE OF Extension")
	}
	var exts []pkix.Extension
	var nonce []byte
	for !seq.Empty() {
		var e cryptobyte.String
		var ext pkix.Extension
		if !seq.ReadASN1(&e, cbasn1.SEQUENCE) ||
			!e.ReadASN1ObjectIdentifier(&ext.Id) ||
			(e.PeekASN1Tag(cbasn1.BOOLEAN) && !e.ReadASN1Boolean(&ext.Critical)) ||
			!e.ReadASN1Bytes(&ext.Value, cbasn1.OCTET_STRING) || !e.Empty() {
			return nil, nil, fmt.Errorf("malformed Extension %d", len(exts))
		}
		for _, prev := range exts {
			if prev.Id.Equal(ext.Id) {
				return nil, nil, fmt.Errorf("extension %v appears twice", ext.Id)
			}
		}
		if ext.Id.Equal(OIDNonce) {
			v := cryptobyte.String(ext.Value)
			if !v.ReadASN1Bytes(&nonce, cbasn1.OCTET_STRING) || !v.Empty() {
				return nil, nil, errors.New("nonce extension value is not one OCTET STRING")
			}
			if len(nonce) < 1 || len(nonce) > MaxNonceSize {
				return nil, nil, fmt.Errorf("nonce is %d bytes, want 1..%d", len(nonce), MaxNonceSize)
			}
		}
		exts = append(exts, ext)
	}
	return exts, nonce, nil
}

// ResponseData is what golang.org/x/crypto/ocsp does not expose of a
// BasicOCSPResponse: the CertID of every SingleResponse and
// tbsResponseData.responseExtensions with the nonce.
type ResponseData struct {
	CertIDs    []CertID         // one per SingleResponse, in order
	Extensions []pkix.Extension // responseExtensions
	Nonce      []byte           // the id-pkix-ocsp-nonce value; nil when absent
}

// ParseResponseData parses a DER OCSPResponse (RFC 6960 §4.2.1) down to
// tbsResponseData and returns its CertIDs and responseExtensions. It does
// not check the signature (x/crypto/ocsp.ParseResponse does). A
// responseStatus other than successful is returned as an
// x/crypto/ocsp.ResponseError; a response type other than
// id-pkix-ocsp-basic, malformed DER and trailing bytes are errors.
func ParseResponseData(der []byte) (*ResponseData, error) {
	in := cryptobyte.String(der)
	var resp cryptobyte.String
	if !in.ReadASN1(&resp, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("ocsp: response: not one DER SEQUENCE")
	}
	var status int
	if !resp.ReadASN1Enum(&status) {
		return nil, errors.New("ocsp: response: malformed responseStatus")
	}
	if status != int(xocsp.Success) {
		return nil, xocsp.ResponseError{Status: xocsp.ResponseStatus(status)}
	}
	var explicit, rb, basicDER cryptobyte.String
	var typ encasn1.ObjectIdentifier
	if !resp.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) || !resp.Empty() ||
		!explicit.ReadASN1(&rb, cbasn1.SEQUENCE) || !explicit.Empty() ||
		!rb.ReadASN1ObjectIdentifier(&typ) ||
		!rb.ReadASN1(&basicDER, cbasn1.OCTET_STRING) || !rb.Empty() {
		return nil, errors.New("ocsp: response: malformed responseBytes")
	}
	if !typ.Equal(OIDBasicResponse) {
		return nil, fmt.Errorf("ocsp: response: type %v, want id-pkix-ocsp-basic", typ)
	}
	var basic, tbs, list cryptobyte.String
	if !basicDER.ReadASN1(&basic, cbasn1.SEQUENCE) || !basicDER.Empty() ||
		!basic.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!basic.SkipASN1(cbasn1.SEQUENCE) || // signatureAlgorithm
		!basic.SkipASN1(cbasn1.BIT_STRING) || // signature
		!basic.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || // certs
		!basic.Empty() {
		return nil, errors.New("ocsp: response: malformed BasicOCSPResponse")
	}
	var version int64
	if !tbs.ReadOptionalASN1Integer(&version, cbasn1.Tag(0).Constructed().ContextSpecific(), int64(0)) || version != 0 {
		return nil, errors.New("ocsp: response: tbsResponseData version is not v1")
	}
	var rid cryptobyte.String
	var ridTag cbasn1.Tag
	if !tbs.ReadAnyASN1(&rid, &ridTag) ||
		(ridTag != cbasn1.Tag(1).Constructed().ContextSpecific() && ridTag != cbasn1.Tag(2).Constructed().ContextSpecific()) {
		return nil, errors.New("ocsp: response: malformed responderID")
	}
	if !tbs.SkipASN1(cbasn1.GeneralizedTime) || !tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		return nil, errors.New("ocsp: response: malformed producedAt or responses")
	}
	d := &ResponseData{}
	for !list.Empty() {
		var single cryptobyte.String
		if !list.ReadASN1(&single, cbasn1.SEQUENCE) {
			return nil, fmt.Errorf("ocsp: response: malformed SingleResponse %d", len(d.CertIDs))
		}
		id, err := readCertID(&single)
		if err != nil {
			return nil, fmt.Errorf("ocsp: response: SingleResponse %d: %w", len(d.CertIDs), err)
		}
		d.CertIDs = append(d.CertIDs, id)
	}
	if len(d.CertIDs) == 0 {
		return nil, errors.New("ocsp: response: no SingleResponse")
	}
	var exts cryptobyte.String
	var present bool
	if !tbs.ReadOptionalASN1(&exts, &present, cbasn1.Tag(1).Constructed().ContextSpecific()) || !tbs.Empty() {
		return nil, errors.New("ocsp: response: malformed responseExtensions")
	}
	if present {
		var err error
		if d.Extensions, d.Nonce, err = readExtensions(&exts); err != nil {
			return nil, fmt.Errorf("ocsp: response: responseExtensions: %w", err)
		}
		if !exts.Empty() {
			return nil, errors.New("ocsp: response: responseExtensions: trailing data")
		}
	}
	return d, nil
}
