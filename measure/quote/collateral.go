package quote

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/verify/trust"
)

// CollateralSource fetches Intel PCS collateral by its Intel PCS URL and
// returns the response header and body. It is go-tdx-guest's
// trust.HTTPSGetter, so a source also serves go-tdx-guest's verifier.
type CollateralSource = trust.HTTPSGetter

// Issuer-chain response headers (Intel PCS API v4).
const (
	headerTCBInfoChain    = "Tcb-Info-Issuer-Chain"
	headerQEIdentityChain = "Sgx-Enclave-Identity-Issuer-Chain"
	headerPCKCRLChain     = "Sgx-Pck-Crl-Issuer-Chain"
)

// maxCollateralSize bounds one collateral response.
const maxCollateralSize = 4 << 20

var (
	reFMSPC = regexp.MustCompile(`^[0-9a-fA-F]{12}$`)
	reCA    = regexp.MustCompile(`^(platform|processor)$`)
)

// CacheName maps an Intel PCS collateral URL to its file name in a
// DirSource directory, and names the issuer-chain header it carries ("" for
// the root CA CRL, which has none):
//
//	.../tdx/certification/v4/tcb?fmspc=F           tcb-F          (TDX TCB info JSON, F lower-case hex)
//	.../tdx/certification/v4/qe/identity           qe-identity    (TD QE identity JSON)
//	.../sgx/certification/v4/pckcrl?ca=C&...       pckcrl-C       (PCK CRL, DER; C = platform|processor)
//	any URL ending in .der or .crl (root CA CRL)   rootcrl        (root CA CRL, DER)
func CacheName(rawURL string) (name, chainHeader string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", err
	}
	qv := u.Query()
	switch {
	case strings.HasSuffix(u.Path, "/tdx/certification/v4/tcb"):
		f := qv.Get("fmspc")
		if !reFMSPC.MatchString(f) {
			return "", "", fmt.Errorf("collateral: bad fmspc %q", f)
		}
		return "tcb-" + strings.ToLower(f), headerTCBInfoChain, nil
	case strings.HasSuffix(u.Path, "/tdx/certification/v4/qe/identity"):
		return "qe-identity", headerQEIdentityChain, nil
	case strings.HasSuffix(u.Path, "/sgx/certification/v4/pckcrl"):
		ca := qv.Get("ca")
		if !reCA.MatchString(ca) {
			return "", "", fmt.Errorf("collateral: bad ca %q", ca)
		}
		return "pckcrl-" + ca, headerPCKCRLChain, nil
	case strings.HasSuffix(u.Path, ".der") || strings.HasSuffix(u.Path, ".crl") || strings.HasSuffix(u.Path, "/rootcacrl"):
		return "rootcrl", "", nil
	}
	return "", "", fmt.Errorf("collateral: no cache entry for URL %q", rawURL)
}

// DirSource serves collateral from an offline cache directory. For each
// request (see CacheName) the file NAME holds the HTTP response body
// byte for byte, and NAME.issuer-chain holds the value of the issuer-chain
// response header exactly as Intel PCS sends it (URL-escaped PEM: signing
// certificate then root). The root CA CRL has no sidecar. WriteCache
// writes an entry in this layout.
type DirSource struct {
	Dir string
}

// Get implements trust.HTTPSGetter.
func (d DirSource) Get(rawURL string) (map[string][]string, []byte, error) {
	name, hdr, err := CacheName(rawURL)
	if err != nil {
		return nil, nil, err
	}
	body, err := readLimited(filepath.Join(d.Dir, name))
	if err != nil {
		return nil, nil, fmt.Errorf("collateral cache: %w", err)
	}
	if hdr == "" {
		return nil, body, nil
	}
	chain, err := readLimited(filepath.Join(d.Dir, name+".issuer-chain"))
	if err != nil {
		return nil, nil, fmt.Errorf("collateral cache: %w", err)
	}
	return map[string][]string{hdr: {strings.TrimSpace(string(chain))}}, body, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCollateralSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCollateralSize {
		return nil, fmt.Errorf("%s: more than %d bytes", path, maxCollateralSize)
	}
	return b, nil
}

// WriteCache stores one response in dir in DirSource's layout.
func WriteCache(dir, rawURL string, header map[string][]string, body []byte) error {
	name, hdr, err := CacheName(rawURL)
	if err != nil {
		return err
	}
	if hdr != "" {
		v := http.Header(header).Get(hdr)
		if v == "" {
			v = firstValue(header, hdr)
		}
		if v == "" {
			return fmt.Errorf("collateral: response for %s has no %s header", rawURL, hdr)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".issuer-chain"), []byte(v), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, name), body, 0o644)
}

// PCSSource fetches collateral from a PCCS or Intel PCS: the Intel PCS
// URL's scheme and host are replaced by BaseURL (e.g.
// "https://pccs.example:8081"), keeping the path and query. The root CA
// CRL is fetched from BaseURL + "/sgx/certification/v4/rootcacrl" (PCCS
// serves it hex-encoded; both hex and DER bodies are accepted).
type PCSSource struct {
	BaseURL string
	// Client is the HTTP client; nil means one with a 20 s timeout.
	Client *http.Client
}

// Get implements trust.HTTPSGetter.
func (s PCSSource) Get(rawURL string) (map[string][]string, []byte, error) {
	name, _, err := CacheName(rawURL)
	if err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	target := strings.TrimRight(s.BaseURL, "/") + u.RequestURI()
	if name == "rootcrl" {
		target = strings.TrimRight(s.BaseURL, "/") + "/sgx/certification/v4/rootcacrl"
	}
	c := s.Client
	if c == nil {
		c = &http.Client{Timeout: 20 * time.Second}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("collateral: GET %s: %s", target, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCollateralSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(body) > maxCollateralSize {
		return nil, nil, fmt.Errorf("collateral: GET %s: more than %d bytes", target, maxCollateralSize)
	}
	if name == "rootcrl" {
		if d, err := hex.DecodeString(strings.TrimSpace(string(body))); err == nil {
			body = d
		}
	}
	return resp.Header, body, nil
}

func firstValue(h map[string][]string, key string) string {
	for k, v := range h {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// issuerChain decodes an issuer-chain header: signing cert, then root,
// and checks the signing cert chains to a trusted root at now.
func issuerChain(h map[string][]string, key string, roots *x509.CertPool, now time.Time) (signer, root *x509.Certificate, err error) {
	v := firstValue(h, key)
	if v == "" {
		return nil, nil, fmt.Errorf("no %s header", key)
	}
	s, err := url.QueryUnescape(v)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %v", key, err)
	}
	var certs []*x509.Certificate
	rest := []byte(s)
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %v", key, err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 {
		return nil, nil, fmt.Errorf("%s: %d certificates, want 2 (signing, root)", key, len(certs))
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: signing certificate %q does not chain to a trusted root at %s: %v", key, certs[0].Subject.CommonName, now.UTC().Format(time.RFC3339), err)
	}
	return certs[0], chains[0][len(chains[0])-1], nil
}

// signedJSON verifies a PCS JSON response {"<field>": {...}, "signature": hex}
// and returns the raw signed object.
func signedJSON(body []byte, field string, signer *x509.Certificate) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	obj, ok := m[field]
	if !ok {
		return nil, fmt.Errorf("no %q object", field)
	}
	var sigHex string
	if err := json.Unmarshal(m["signature"], &sigHex); err != nil {
		return nil, fmt.Errorf("signature: %v", err)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != 64 {
		return nil, errors.New("signature is not 64 bytes of hex")
	}
	pub, err := ecdsaKey(signer)
	if err != nil {
		return nil, err
	}
	h := sha256Sum(obj)
	if !verifyRS(pub, h[:], sig) {
		return nil, fmt.Errorf("signature over %q does not verify with %q", field, signer.Subject.CommonName)
	}
	return obj, nil
}

func checkWindow(what string, issue, next, now time.Time) error {
	if now.Before(issue) {
		return fmt.Errorf("%s is issued %s, after the verification time %s", what, issue.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(next) {
		return fmt.Errorf("%s expired: next update was due %s, verification time is %s", what, next.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

func getCRL(src CollateralSource, u, what string, issuer *x509.Certificate, now time.Time) (*x509.RevocationList, error) {
	_, body, err := src.Get(u)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	crl, err := x509.ParseRevocationList(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("%s: not signed by %q: %v", what, issuer.Subject.CommonName, err)
	}
	if err := checkWindow(what, crl.ThisUpdate, crl.NextUpdate, now); err != nil {
		return nil, err
	}
	return crl, nil
}

func revoked(crl *x509.RevocationList, c *x509.Certificate) bool {
	for _, r := range crl.RevokedCertificateEntries {
		if r.SerialNumber.Cmp(c.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

// checkCollateral fetches and verifies the collateral, then judges the
// TCB statuses (filling q.TCBStatus, ModuleTCBStatus, QETCBStatus).
func checkCollateral(q *Quote, ch *pckChain, ext *pcs.PckExtensions, p Policy) error {
	src, roots, now := p.Collateral, p.roots(), p.now()
	cerr := func(format string, a ...any) error { return fail("collateral", format, a...) }

	// TCB info.
	h, body, err := src.Get(pcs.TcbInfoURL(ext.FMSPC))
	if err != nil {
		return cerr("TCB info for FMSPC %s: %v", ext.FMSPC, err)
	}
	tcbSigner, _, err := issuerChain(h, headerTCBInfoChain, roots, now)
	if err != nil {
		return cerr("TCB info: %v", err)
	}
	if _, err := signedJSON(body, "tcbInfo", tcbSigner); err != nil {
		return cerr("TCB info: %v", err)
	}
	var ti pcs.TdxTcbInfo
	if err := json.Unmarshal(body, &ti); err != nil {
		return cerr("TCB info: %v", err)
	}
	info := ti.TcbInfo
	if info.ID != "TDX" || info.Version != 3 {
		return cerr("TCB info id %q version %d, want TDX version 3", info.ID, info.Version)
	}
	if err := checkWindow("TCB info", info.IssueDate, info.NextUpdate, now); err != nil {
		return cerr("%v", err)
	}
	if !strings.EqualFold(info.Fmspc, ext.FMSPC) {
		return cerr("TCB info FMSPC %s, PCK certificate FMSPC %s", info.Fmspc, ext.FMSPC)
	}
	if !strings.EqualFold(info.PceID, ext.PCEID) {
		return cerr("TCB info PCEID %s, PCK certificate PCEID %s", info.PceID, ext.PCEID)
	}

	// QE identity.
	h, body, err = src.Get(pcs.QeIdentityURL())
	if err != nil {
		return cerr("QE identity: %v", err)
	}
	qeSigner, qeRoot, err := issuerChain(h, headerQEIdentityChain, roots, now)
	if err != nil {
		return cerr("QE identity: %v", err)
	}
	if _, err := signedJSON(body, "enclaveIdentity", qeSigner); err != nil {
		return cerr("QE identity: %v", err)
	}
	var qi pcs.QeIdentity
	if err := json.Unmarshal(body, &qi); err != nil {
		return cerr("QE identity: %v", err)
	}
	eid := qi.EnclaveIdentity
	if eid.ID != "TD_QE" || eid.Version != 2 {
		return cerr("QE identity id %q version %d, want TD_QE version 2", eid.ID, eid.Version)
	}
	if err := checkWindow("QE identity", eid.IssueDate, eid.NextUpdate, now); err != nil {
		return cerr("%v", err)
	}

	// CRLs: the root CA CRL (URL from the trusted root, as go-tdx-guest
	// does) and the PCK CRL.
	if len(qeRoot.CRLDistributionPoints) == 0 {
		return cerr("trusted root names no CRL distribution point")
	}
	rootCRL, err := getCRL(src, qeRoot.CRLDistributionPoints[0], "root CA CRL", qeRoot, now)
	if err != nil {
		return cerr("%v", err)
	}
	ca, err := caFromIssuer(ch.leaf)
	if err != nil {
		return err
	}
	pckH, pckBody, err := src.Get(pcs.PckCrlURL(ca))
	if err != nil {
		return cerr("PCK CRL: %v", err)
	}
	if _, _, err := issuerChain(pckH, headerPCKCRLChain, roots, now); err != nil {
		return cerr("PCK CRL: %v", err)
	}
	pckCRL, err := x509.ParseRevocationList(pckBody)
	if err != nil {
		return cerr("PCK CRL: %v", err)
	}
	if err := pckCRL.CheckSignatureFrom(ch.intermediate); err != nil {
		return cerr("PCK CRL is not signed by the quote's PCK CA %q: %v", ch.intermediate.Subject.CommonName, err)
	}
	if err := checkWindow("PCK CRL", pckCRL.ThisUpdate, pckCRL.NextUpdate, now); err != nil {
		return cerr("%v", err)
	}
	for _, c := range []*x509.Certificate{ch.intermediate, tcbSigner, qeSigner} {
		if revoked(rootCRL, c) {
			return cerr("certificate %q (serial %s) is revoked by the root CA CRL", c.Subject.CommonName, c.SerialNumber)
		}
	}
	if revoked(pckCRL, ch.leaf) {
		return cerr("PCK certificate (serial %s) is revoked by the PCK CRL", ch.leaf.SerialNumber)
	}

	// TD quote body against the TCB info (TDX module identity).
	if err := checkModule(q, info); err != nil {
		return err
	}
	if q.ModuleTCBStatus != "" && !p.statusAllowed(q.ModuleTCBStatus) {
		return fail("tcb_status", "TDX module TCB status is %q, not in the allowed list %v", q.ModuleTCBStatus, allowedList(p))
	}
	// QE report against the QE identity.
	if err := checkQE(q, eid, p); err != nil {
		return err
	}
	// Platform TCB level.
	lvl, err := matchTCBLevel(info.TcbLevels, q.TeeTcbSvn, ext)
	if err != nil {
		return fail("tcb_status", "%v", err)
	}
	q.TCBStatus = string(lvl.TcbStatus)
	q.AdvisoryIDs = append(q.AdvisoryIDs, lvl.AdvisoryIDs...)
	if !p.statusAllowed(q.TCBStatus) {
		return fail("tcb_status", "platform TCB status is %q (tcbDate %s, advisories %v), not in the allowed list %v", q.TCBStatus, lvl.TcbDate, lvl.AdvisoryIDs, allowedList(p))
	}
	return nil
}

func allowedList(p Policy) []string {
	if len(p.AllowedTCBStatuses) == 0 {
		return []string{string(pcs.TcbComponentStatusUpToDate)}
	}
	return p.AllowedTCBStatuses
}
