package ocsptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	encasn1 "encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	xocsp "golang.org/x/crypto/ocsp"

	"github.com/chrysalis-cc/chrysalis/measure/gpu/ocsp"
)

// Authority is a certificate with its ECDSA P-384 private key.
type Authority struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

var (
	notBefore = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) // as NVIDIA's device chain
)

// NewRoot returns a self-signed root CA named cn.
func NewRoot(cn string) (*Authority, error) {
	return issue(nil, cn, func(t *x509.Certificate) {
		t.IsCA, t.BasicConstraintsValid = true, true
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	})
}

// NewCA returns an intermediate CA named cn issued by a.
func (a *Authority) NewCA(cn string) (*Authority, error) {
	return issue(a, cn, func(t *x509.Certificate) {
		t.IsCA, t.BasicConstraintsValid = true, true
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	})
}

// NewLeaf returns an end-entity certificate named cn issued by a.
func (a *Authority) NewLeaf(cn string) (*Authority, error) {
	return issue(a, cn, func(t *x509.Certificate) {
		t.BasicConstraintsValid = true
		t.KeyUsage = x509.KeyUsageDigitalSignature
	})
}

// NewResponder returns a delegated OCSP responder certificate named cn
// issued by a, with extended key usage id-kp-OCSPSigning.
func (a *Authority) NewResponder(cn string) (*Authority, error) {
	return issue(a, cn, func(t *x509.Certificate) {
		t.BasicConstraintsValid = true
		t.KeyUsage = x509.KeyUsageDigitalSignature
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	})
}

func issue(parent *Authority, cn string, shape func(*x509.Certificate)) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Chrysalis test"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}
	shape(t)
	signer, signerCert := key, t
	if parent != nil {
		signer, signerCert = parent.Key, parent.Cert
	}
	der, err := x509.CreateCertificate(rand.Reader, t, signerCert, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("ocsptest: issuing %q: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Authority{Cert: cert, Key: key}, nil
}

// Fault is a deliberate defect in the Responder's answer for one serial.
type Fault string

// Faults the Responder can inject.
const (
	NoFault          Fault = ""
	NonceMissing     Fault = "nonce-missing"      // no responseExtensions
	NonceWrong       Fault = "nonce-wrong"        // the request nonce with its bits flipped
	BadSignature     Fault = "bad-signature"      // one signature byte changed
	Expired          Fault = "expired"            // NextUpdate one minute in the past
	FutureThisUpdate Fault = "future-this-update" // ThisUpdate one hour in the future
	ForeignSigner    Fault = "foreign-signer"     // signed by a responder of an unrelated root
	NoOCSPSigningEKU Fault = "no-ocsp-signing"    // delegated certificate without id-kp-OCSPSigning
	WrongSerial      Fault = "wrong-serial"       // the SingleResponse names serial+1
	HTTP500          Fault = "http-500"           // HTTP 500, no body
	TryLater         Fault = "try-later"          // OCSP responseStatus tryLater
)

// Answer is what the Responder says about one serial number.
type Answer struct {
	Status    int // xocsp.Good, xocsp.Revoked or xocsp.Unknown
	RevokedAt time.Time
	Reason    int // CRLReason when revoked
	Fault     Fault
}

type issuerEntry struct {
	issuer   *Authority
	delegate *Authority // nil: the issuer signs
	noEKU    *Authority // a delegate-shaped certificate without the EKU
}

// Responder is an http.Handler answering OCSP POST requests.
type Responder struct {
	Now      func() time.Time // time.Now when nil
	Token    string           // when set, requests without "Bearer <Token>" get HTTP 401
	Validity time.Duration    // NextUpdate − ThisUpdate; 24h when zero

	foreign  *Authority
	requests atomic.Int64

	mu        sync.Mutex
	issuers   []issuerEntry
	answers   map[string]Answer
	lastReq   []byte
	lastResp  []byte
	lastNonce []byte
}

// NewResponder returns a Responder that knows no issuer yet.
func NewResponder() (*Responder, error) {
	root, err := NewRoot("Foreign OCSP Root")
	if err != nil {
		return nil, err
	}
	foreign, err := root.NewResponder("Foreign OCSP Responder")
	if err != nil {
		return nil, err
	}
	return &Responder{foreign: foreign, answers: map[string]Answer{}}, nil
}

// AddIssuer makes the Responder answer for certificates of issuer, signed
// by delegate (a certificate from issuer.NewResponder, embedded in the
// response) or, when delegate is nil, by the issuer's own key with no
// certificate embedded.
func (r *Responder) AddIssuer(issuer, delegate *Authority) error {
	noEKU, err := issuer.NewLeaf(issuer.Cert.Subject.CommonName + " OCSP (no EKU)")
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.issuers = append(r.issuers, issuerEntry{issuer: issuer, delegate: delegate, noEKU: noEKU})
	return nil
}

// Set records the answer for serial (under whichever issuer asks).
func (r *Responder) Set(serial *big.Int, a Answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers[serial.String()] = a
}

// Requests returns how many HTTP requests the Responder has received.
func (r *Responder) Requests() int64 { return r.requests.Load() }

// Last returns the last well-formed request, the response sent to it and
// the nonce it carried.
func (r *Responder) Last() (request, response, nonce []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastReq, r.lastResp, r.lastNonce
}

func (r *Responder) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func writeDER(w http.ResponseWriter, der []byte) {
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(der)
}

// ServeHTTP answers one OCSP request.
func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	if r.Token != "" && req.Header.Get("Authorization") != "Bearer "+r.Token {
		http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
		return
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/ocsp-request" {
		http.Error(w, "want POST application/ocsp-request", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	parsed, err := ocsp.ParseRequest(body)
	if err != nil || len(parsed.CertIDs) != 1 {
		writeDER(w, xocsp.MalformedRequestErrorResponse)
		return
	}
	id := parsed.CertIDs[0]
	r.mu.Lock()
	defer r.mu.Unlock()
	var entry *issuerEntry
	for i := range r.issuers {
		e := &r.issuers[i]
		want, err := ocsp.NewCertID(&x509.Certificate{SerialNumber: id.SerialNumber}, e.issuer.Cert, id.HashAlgorithm)
		if err == nil && want.Equal(id) {
			entry = e
			break
		}
	}
	if entry == nil {
		writeDER(w, xocsp.UnauthorizedErrorResponse)
		return
	}
	a, ok := r.answers[id.SerialNumber.String()]
	if !ok {
		a = Answer{Status: xocsp.Unknown}
	}
	switch a.Fault {
	case HTTP500:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	case TryLater:
		writeDER(w, xocsp.TryLaterErrorResponse)
		return
	}
	validity := r.Validity
	if validity <= 0 {
		validity = 24 * time.Hour
	}
	now := r.now()
	this, next := now.Add(-time.Minute), now.Add(validity)
	nonce := parsed.Nonce
	signer, embed := entry.issuer, false
	if entry.delegate != nil {
		signer, embed = entry.delegate, true
	}
	switch a.Fault {
	case NonceMissing:
		nonce = nil
	case NonceWrong:
		nonce = make([]byte, max(len(parsed.Nonce), 1))
		for i := range nonce {
			nonce[i] = ^parsed.Nonce[i%max(len(parsed.Nonce), 1)]
		}
		if len(parsed.Nonce) == 0 {
			nonce[0] = 1
		}
	case Expired:
		this, next = now.Add(-2*validity), now.Add(-time.Minute)
	case FutureThisUpdate:
		this = now.Add(time.Hour)
		next = this.Add(validity)
	case ForeignSigner:
		signer, embed = r.foreign, true
	case NoOCSPSigningEKU:
		signer, embed = entry.noEKU, true
	case WrongSerial:
		id.SerialNumber = new(big.Int).Add(id.SerialNumber, big.NewInt(1))
	}
	der, err := CreateResponse(id, a, this, next, nonce, signer, embed, a.Fault == BadSignature)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	r.lastReq, r.lastResp, r.lastNonce = body, der, parsed.Nonce
	writeDER(w, der)
}

var oidECDSAWithSHA384 = encasn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}

// CreateResponse builds a successful BasicOCSPResponse (RFC 6960 §4.2.1)
// with one SingleResponse for id, the nonce (when not nil) in
// responseExtensions, signed with ECDSA-SHA384 by signer (responderID
// byName); with embed, signer's certificate is included. corrupt flips one
// signature byte.
func CreateResponse(id ocsp.CertID, a Answer, thisUpdate, nextUpdate time.Time, nonce []byte, signer *Authority, embed, corrupt bool) ([]byte, error) {
	if signer == nil || signer.Key == nil || signer.Cert == nil {
		return nil, errors.New("ocsptest: CreateResponse needs a signer with certificate and key")
	}
	cid, err := id.Marshal()
	if err != nil {
		return nil, err
	}
	var exts []byte
	if nonce != nil {
		ext := ocsp.NonceExtension(nonce)
		ext.Critical = false // as responders usually answer
		if exts, err = ocsp.MarshalExtensions([]pkix.Extension{ext}); err != nil {
			return nil, err
		}
	}
	var tb cryptobyte.Builder
	tb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ResponseData
		b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddBytes(signer.Cert.RawSubject)
		})
		b.AddASN1GeneralizedTime(thisUpdate.UTC().Truncate(time.Second))
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // responses
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SingleResponse
				b.AddBytes(cid)
				switch a.Status {
				case xocsp.Good:
					b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(*cryptobyte.Builder) {})
				case xocsp.Revoked:
					b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1GeneralizedTime(a.RevokedAt.UTC().Truncate(time.Second))
						b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
							b.AddASN1Enum(int64(a.Reason))
						})
					})
				default:
					b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(*cryptobyte.Builder) {})
				}
				b.AddASN1GeneralizedTime(thisUpdate.UTC().Truncate(time.Second))
				if !nextUpdate.IsZero() {
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1GeneralizedTime(nextUpdate.UTC().Truncate(time.Second))
					})
				}
			})
		})
		if exts != nil {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddBytes(exts)
			})
		}
	})
	tbs, err := tb.Bytes()
	if err != nil {
		return nil, err
	}
	digest := sha512.Sum384(tbs)
	sig, err := signer.Key.Sign(rand.Reader, digest[:], crypto.SHA384)
	if err != nil {
		return nil, err
	}
	if corrupt {
		sig[len(sig)-3] ^= 0x01
	}
	var bb cryptobyte.Builder
	bb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // BasicOCSPResponse
		b.AddBytes(tbs)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidECDSAWithSHA384)
		})
		b.AddASN1BitString(sig)
		if embed {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddBytes(signer.Cert.Raw)
				})
			})
		}
	})
	basic, err := bb.Bytes()
	if err != nil {
		return nil, err
	}
	var ob cryptobyte.Builder
	ob.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // OCSPResponse
		b.AddASN1Enum(int64(xocsp.Success))
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(ocsp.OIDBasicResponse)
				b.AddASN1OctetString(basic)
			})
		})
	})
	return ob.Bytes()
}
