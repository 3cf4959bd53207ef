package ocsp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	xocsp "golang.org/x/crypto/ocsp"
)

const (
	// DefaultURL is NVIDIA's OCSP responder for the device and RIM chains.
	DefaultURL = "https://ocsp.ndis.nvidia.com/"
	// DefaultTimeout bounds one request when Checker.Timeout is zero
	// (NVIDIA's verifiers use 10 s network timeouts).
	DefaultTimeout = 10 * time.Second
	// MaxClockSkew is how far in the future ThisUpdate may lie.
	MaxClockSkew = 5 * time.Minute
	// MaxResponseSize bounds the response body read from the responder.
	MaxResponseSize = 1 << 20
)

// Result.Status values.
const (
	StatusGood    = "good"    // verified, fresh, signed "good"
	StatusRevoked = "revoked" // verified, fresh, signed "revoked" (Reason, RevokedAt)
	StatusUnknown = "unknown" // signed "unknown", or no answer (Err says why)
	StatusSkipped = "skipped" // not asked: the firmware-minted leaf, or Policy Off
	StatusError   = "error"   // an answer that failed verification (Err says why)
)

// Result is the outcome of one OCSP check, kept as evidence whatever the
// policy decides.
type Result struct {
	Subject      string    // the checked certificate's subject
	Status       string    // one of the Status* constants
	NonceMatched bool      // the response echoed our nonce (false when it carried none)
	Cached       bool      // reused from Cache; NonceMatched is as when fetched
	ThisUpdate   time.Time // from the response, zero when there was none
	NextUpdate   time.Time // zero when absent or when there was no response
	RevokedAt    time.Time // for a revoked status
	Reason       int       // CRLReason for a revoked status (6 = certificateHold)
	Err          error     // why Status is "error", or "unknown" without an answer
}

// Checker queries an OCSP responder for certificates of a chain that ends
// in a pinned root. The zero value (apart from the Policy, whose zero value
// means Require) queries DefaultURL with http.DefaultClient, the system
// clock, crypto/rand and no cache.
type Checker struct {
	URL       string           // responder URL; DefaultURL when empty
	Client    *http.Client     // http.DefaultClient when nil
	Policy    Policy           // Require when empty
	Now       func() time.Time // time.Now when nil
	Token     string           // sent as "Authorization: Bearer <Token>" when set
	Timeout   time.Duration    // per request; DefaultTimeout when zero
	AllowHold bool             // a certificate_hold revocation does not fail
	Cache     *Cache           // reuse verified responses; nil: always ask
	Rand      io.Reader        // nonce source; crypto/rand when nil
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func subjectOf(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	return cert.Subject.String()
}

// Check asks the responder about cert, issued by issuer, and verifies the
// answer: the response is signed by issuer itself, or by a delegated
// responder certificate that issuer signed directly, that carries
// id-kp-OCSPSigning and that chains to root through issuer (and the
// optional intermediates between issuer and root) at Now; its one
// SingleResponse names exactly cert's CertID; the nonce (NonceSize random
// bytes, sent in a critical id-pkix-ocsp-nonce request extension) comes
// back unchanged; ThisUpdate ≤ Now+MaxClockSkew and Now < NextUpdate.
//
// The request uses a SHA-384 CertID; a response whose CertID uses another
// supported hash is compared under that hash. With Policy Off nothing is
// sent and the Result is "skipped". Check never returns an error of its
// own: the Result carries it, and Judge applies the policy.
func (c *Checker) Check(ctx context.Context, cert, issuer, root *x509.Certificate, intermediates ...*x509.Certificate) Result {
	r := Result{Subject: subjectOf(cert)}
	p, err := c.Policy.effective()
	if err != nil {
		r.Status, r.Err = StatusError, err
		return r
	}
	if p == Off {
		r.Status = StatusSkipped
		return r
	}
	if cert == nil || issuer == nil || root == nil {
		r.Status, r.Err = StatusError, errors.New("ocsp: Check needs the certificate, its issuer and the root")
		return r
	}
	id, err := NewCertID(cert, issuer, crypto.SHA384)
	if err != nil {
		r.Status, r.Err = StatusError, err
		return r
	}
	now := c.now()
	key := newCacheKey(id, root)
	if c.Cache != nil {
		if cr, ok := c.Cache.get(key, now); ok {
			cr.Subject, cr.Cached = r.Subject, true
			return cr
		}
	}
	nonce := make([]byte, NonceSize)
	rnd := c.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		r.Status, r.Err = StatusError, fmt.Errorf("ocsp: reading nonce: %w", err)
		return r
	}
	req, err := MarshalRequest(id, nonce)
	if err != nil {
		r.Status, r.Err = StatusError, err
		return r
	}
	body, err := c.post(ctx, req)
	if err != nil {
		r.Status, r.Err = StatusUnknown, err
		return r
	}
	r = verifyResponse(body, id, cert, issuer, root, intermediates, nonce, now)
	r.Subject = subjectOf(cert)
	if c.Cache != nil {
		c.Cache.put(key, r)
	}
	return r
}

func (c *Checker) url() string {
	if c.URL != "" {
		return c.URL
	}
	return DefaultURL
}

// post sends the DER request and returns the body of a 200 answer.
func (c *Checker) post(ctx context.Context, der []byte) ([]byte, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(), bytes.NewReader(der))
	if err != nil {
		return nil, fmt.Errorf("ocsp: responder URL %q: %w", c.url(), err)
	}
	req.Header.Set("Content-Type", "application/ocsp-request")
	req.Header.Set("Accept", "application/ocsp-response")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ocsp: responder unreachable: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ocsp: responder %s answered HTTP %s", c.url(), resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("ocsp: reading response from %s: %w", c.url(), err)
	}
	if len(body) > MaxResponseSize {
		return nil, fmt.Errorf("ocsp: response from %s exceeds %d bytes", c.url(), MaxResponseSize)
	}
	return body, nil
}

// verifyResponse checks one DER response against the request it answers.
func verifyResponse(der []byte, want CertID, cert, issuer, root *x509.Certificate, intermediates []*x509.Certificate, nonce []byte, now time.Time) Result {
	var r Result
	fail := func(format string, args ...any) Result {
		r.Status, r.Err = StatusError, fmt.Errorf("ocsp: "+format, args...)
		return r
	}
	d, err := ParseResponseData(der)
	if err != nil {
		var re xocsp.ResponseError
		if errors.As(err, &re) {
			r.Status, r.Err = StatusUnknown, fmt.Errorf("ocsp: responder gave no status: %w", err)
			return r
		}
		r.Status, r.Err = StatusError, err
		return r
	}
	if len(d.CertIDs) != 1 {
		return fail("response carries %d SingleResponses, want 1", len(d.CertIDs))
	}
	got := d.CertIDs[0]
	if got.HashAlgorithm != want.HashAlgorithm {
		if want, err = NewCertID(cert, issuer, got.HashAlgorithm); err != nil {
			return fail("response CertID: %v", err)
		}
	}
	if !got.Equal(want) {
		return fail("response is about serial %x of issuer key hash %x, not serial %x of %q",
			got.SerialNumber, got.IssuerKeyHash, want.SerialNumber, subjectOf(issuer))
	}
	for _, e := range d.Extensions {
		if e.Critical && !e.Id.Equal(OIDNonce) {
			return fail("response carries unsupported critical extension %v", e.Id)
		}
	}
	resp, err := xocsp.ParseResponse(der, nil)
	if err != nil {
		return fail("response: %v", err)
	}
	if err := verifySigner(resp, issuer, root, intermediates, now); err != nil {
		r.Status, r.Err = StatusError, err
		return r
	}
	r.ThisUpdate, r.NextUpdate = resp.ThisUpdate, resp.NextUpdate
	switch resp.Status {
	case xocsp.Good:
		r.Status = StatusGood
	case xocsp.Revoked:
		r.Status, r.RevokedAt, r.Reason = StatusRevoked, resp.RevokedAt, resp.RevocationReason
	case xocsp.Unknown:
		r.Status = StatusUnknown
	default:
		return fail("response status %d is not good, revoked or unknown", resp.Status)
	}
	signed := r.Status
	if d.Nonce != nil {
		if subtle.ConstantTimeCompare(d.Nonce, nonce) != 1 {
			return fail("response nonce %x does not match request nonce %x (signed status %s)", d.Nonce, nonce, signed)
		}
		r.NonceMatched = true
	}
	if resp.ThisUpdate.After(now.Add(MaxClockSkew)) {
		return fail("response ThisUpdate %s is after now %s (signed status %s)",
			resp.ThisUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), signed)
	}
	if !resp.NextUpdate.IsZero() && !now.Before(resp.NextUpdate) {
		return fail("response expired: NextUpdate %s is not after now %s (signed status %s)",
			resp.NextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), signed)
	}
	return r
}

// verifySigner checks who signed resp (x/crypto/ocsp.ParseResponse has
// already checked the signature against the embedded certificate, if any).
func verifySigner(resp *xocsp.Response, issuer, root *x509.Certificate, intermediates []*x509.Certificate, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	inter.AddCert(issuer)
	for _, c := range intermediates {
		if c != nil {
			inter.AddCert(c)
		}
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now}
	rc := resp.Certificate
	if rc != nil && !rc.Equal(issuer) {
		// Delegated responder (RFC 6960 §4.2.2.2): issued directly by the
		// certificate's issuer, with id-kp-OCSPSigning, chained to root.
		if err := rc.CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("ocsp: responder certificate %q is not issued by %q: %v",
				subjectOf(rc), subjectOf(issuer), err)
		}
		if !slices.Contains(rc.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return fmt.Errorf("ocsp: responder certificate %q lacks extended key usage id-kp-OCSPSigning", subjectOf(rc))
		}
		opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
		if _, err := rc.Verify(opts); err != nil {
			return fmt.Errorf("ocsp: responder certificate %q does not chain to root %q through %q: %v",
				subjectOf(rc), subjectOf(root), subjectOf(issuer), err)
		}
		return nil
	}
	if rc == nil {
		if err := resp.CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("ocsp: response signature does not verify with the key of issuer %q: %v", subjectOf(issuer), err)
		}
	}
	if issuer.Equal(root) {
		return nil
	}
	opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	if _, err := issuer.Verify(opts); err != nil {
		return fmt.Errorf("ocsp: issuer %q, which signed the response, does not chain to root %q: %v",
			subjectOf(issuer), subjectOf(root), err)
	}
	return nil
}

var reasonNames = map[int]string{
	0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged",
	4: "superseded", 5: "cessationOfOperation", 6: "certificateHold", 8: "removeFromCRL",
	9: "privilegeWithdrawn", 10: "aACompromise",
}

// ReasonString names a CRLReason (RFC 5280 §5.3.1).
func ReasonString(reason int) string {
	if s, ok := reasonNames[reason]; ok {
		return s
	}
	return "reason " + strconv.Itoa(reason)
}

// Judge applies the Checker's policy to one Result and returns why it
// fails, naming the certificate subject, or nil.
func (c *Checker) Judge(r Result) error {
	p, err := c.Policy.effective()
	if err != nil {
		return err
	}
	if p == Off {
		return nil
	}
	if r.Status == StatusRevoked {
		if r.Reason == xocsp.CertificateHold && c.AllowHold {
			if p == Require && !r.NonceMatched {
				return fmt.Errorf("ocsp: %q: response carries no nonce (policy %s)", r.Subject, p)
			}
			return nil
		}
		return fmt.Errorf("ocsp: %q is revoked since %s (%s)", r.Subject,
			r.RevokedAt.UTC().Format(time.RFC3339), ReasonString(r.Reason))
	}
	if p == SoftFail {
		return nil
	}
	switch {
	case r.Err != nil:
		return fmt.Errorf("ocsp: %q: status %s (policy %s): %w", r.Subject, r.Status, p, r.Err)
	case r.Status != StatusGood:
		return fmt.Errorf("ocsp: %q: status %s (policy %s)", r.Subject, r.Status, p)
	case !r.NonceMatched:
		return fmt.Errorf("ocsp: %q: response carries no nonce (policy %s)", r.Subject, p)
	}
	return nil
}

// CheckChain checks a device certificate chain, leaf first, without the
// device-supplied root (the caller has verified the chain to the pinned
// root and passes that root). The leaf is minted by the GPU firmware and
// never known to the responder: its Result is "skipped". Every other
// certificate is checked against the next one, the last against root.
// The returned Results, one per certificate in chain order, are complete
// whatever the policy decides; the error joins Judge's verdicts (Policy
// Off: every Result "skipped", no request, nil error).
func (c *Checker) CheckChain(ctx context.Context, chain []*x509.Certificate, root *x509.Certificate) ([]Result, error) {
	p, err := c.Policy.effective()
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		return nil, errors.New("ocsp: empty certificate chain")
	}
	for i, cert := range chain {
		if cert == nil {
			return nil, fmt.Errorf("ocsp: chain certificate %d is nil", i)
		}
	}
	results := make([]Result, len(chain))
	for i, cert := range chain {
		results[i] = Result{Subject: subjectOf(cert), Status: StatusSkipped}
	}
	if p == Off {
		return results, nil
	}
	if root == nil {
		return nil, errors.New("ocsp: CheckChain needs the pinned root")
	}
	var errs []error
	for i := 1; i < len(chain); i++ {
		issuer := root
		if i+1 < len(chain) {
			issuer = chain[i+1]
		}
		results[i] = c.Check(ctx, chain[i], issuer, root, chain[i+1:]...)
		if err := c.Judge(results[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return results, errors.Join(errs...)
}
