package quotetest

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/quote"
	"github.com/google/go-tdx-guest/pcs"
)

// TCB levels of the generated TCB info. A quote whose TEE_TCB_SVN is
// TeeTcbSvnUpToDate is UpToDate (platform, TDX module "TDX_01" and QE);
// TeeTcbSvnOutOfDate has an older microcode component (index 2), so the
// platform TCB is OutOfDate with advisory OutOfDateAdvisory while the
// module stays UpToDate; TeeTcbSvnModuleOutOfDate has an older TDX module
// SVN (index 0), so the module TCB is OutOfDate. A zero TEE_TCB_SVN
// matches no level.
var (
	TeeTcbSvnUpToDate        = [16]byte{5, 1, 3}
	TeeTcbSvnOutOfDate       = [16]byte{5, 1, 2}
	TeeTcbSvnModuleOutOfDate = [16]byte{2, 1, 3}
)

// OutOfDateAdvisory is the advisory ID of the generated OutOfDate levels.
const OutOfDateAdvisory = "INTEL-SA-00000"

// CollateralIssueDate is when generated collateral is issued unless
// CollateralOptions say otherwise; it is valid for CollateralValidity
// (Intel's cadence), so a test verifying at 2027-01-15 sees fresh
// collateral.
var CollateralIssueDate = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

// CollateralValidity is the default span from issue date to next update.
const CollateralValidity = 30 * 24 * time.Hour

// TCBComponent is one SGX or TDX TCB component of a TCB level.
type TCBComponent struct {
	SVN      byte   `json:"svn"`
	Category string `json:"category,omitempty"`
	Type     string `json:"type,omitempty"`
}

// PlatformTCB is the "tcb" object of a platform TCB level.
type PlatformTCB struct {
	SGXTCBComponents []TCBComponent `json:"sgxtcbcomponents"`
	PCESVN           uint16         `json:"pcesvn"`
	TDXTCBComponents []TCBComponent `json:"tdxtcbcomponents"`
}

// TCBLevel is a platform TCB level of the TCB info.
type TCBLevel struct {
	TCB         PlatformTCB `json:"tcb"`
	TCBDate     string      `json:"tcbDate"`
	TCBStatus   string      `json:"tcbStatus"`
	AdvisoryIDs []string    `json:"advisoryIDs,omitempty"`
}

// ISVSVN is the "tcb" object of a QE identity or TDX module TCB level.
type ISVSVN struct {
	ISVSVN uint16 `json:"isvsvn"`
}

// ISVTCBLevel is a TCB level of the QE identity or of a TDX module identity.
type ISVTCBLevel struct {
	TCB         ISVSVN   `json:"tcb"`
	TCBDate     string   `json:"tcbDate"`
	TCBStatus   string   `json:"tcbStatus"`
	AdvisoryIDs []string `json:"advisoryIDs,omitempty"`
}

// TDXModule is the TCB info's "tdxModule" object (hex fields upper-case,
// as Intel writes them).
type TDXModule struct {
	MRSIGNER       string `json:"mrsigner"`
	Attributes     string `json:"attributes"`
	AttributesMask string `json:"attributesMask"`
}

// TDXModuleIdentity is one entry of "tdxModuleIdentities".
type TDXModuleIdentity struct {
	ID             string        `json:"id"`
	MRSIGNER       string        `json:"mrsigner"`
	Attributes     string        `json:"attributes"`
	AttributesMask string        `json:"attributesMask"`
	TCBLevels      []ISVTCBLevel `json:"tcbLevels"`
}

// TCBInfo is Intel's TDX TCB info, version 3 (the "tcbInfo" object of
// GET /tdx/certification/v4/tcb), with Intel's field names.
type TCBInfo struct {
	ID                      string              `json:"id"`
	Version                 int                 `json:"version"`
	IssueDate               time.Time           `json:"issueDate"`
	NextUpdate              time.Time           `json:"nextUpdate"`
	FMSPC                   string              `json:"fmspc"`
	PCEID                   string              `json:"pceId"`
	TCBType                 int                 `json:"tcbType"`
	TCBEvaluationDataNumber int                 `json:"tcbEvaluationDataNumber"`
	TDXModule               TDXModule           `json:"tdxModule"`
	TDXModuleIdentities     []TDXModuleIdentity `json:"tdxModuleIdentities"`
	TCBLevels               []TCBLevel          `json:"tcbLevels"`
}

// QEIdentity is Intel's TD QE identity, version 2 (the "enclaveIdentity"
// object of GET /tdx/certification/v4/qe/identity).
type QEIdentity struct {
	ID                      string        `json:"id"`
	Version                 int           `json:"version"`
	IssueDate               time.Time     `json:"issueDate"`
	NextUpdate              time.Time     `json:"nextUpdate"`
	TCBEvaluationDataNumber int           `json:"tcbEvaluationDataNumber"`
	MiscSelect              string        `json:"miscselect"`
	MiscSelectMask          string        `json:"miscselectMask"`
	Attributes              string        `json:"attributes"`
	AttributesMask          string        `json:"attributesMask"`
	MRSIGNER                string        `json:"mrsigner"`
	ISVProdID               uint16        `json:"isvprodid"`
	TCBLevels               []ISVTCBLevel `json:"tcbLevels"`
}

// CollateralOptions choose what Hierarchy.Collateral generates. The zero
// value is valid collateral for the hierarchy's quotes.
type CollateralOptions struct {
	// IssueDate and NextUpdate bound the TCB info, the QE identity and
	// both CRLs. Zero means CollateralIssueDate and IssueDate +
	// CollateralValidity.
	IssueDate, NextUpdate time.Time
	// TCBInfo and QEIdentity, when set, edit the objects before they are
	// signed (the signature stays valid).
	TCBInfo    func(*TCBInfo)
	QEIdentity func(*QEIdentity)
	// ForgeTCBInfo signs the TCB info with a throw-away key instead of
	// the TCB signing certificate's.
	ForgeTCBInfo bool
	// RevokePCK lists the PCK certificate in the PCK CRL;
	// RevokeTCBSigning lists the TCB signing certificate in the root CA CRL.
	RevokePCK, RevokeTCBSigning bool
}

// Collateral is generated Intel PCS collateral for a hierarchy: the TCB
// info for its FMSPC, the TD QE identity, the PCK CRL and the root CA
// CRL, each as the Intel PCS response (body and issuer-chain header).
type Collateral struct {
	// TCBInfo and QEIdentity are the signed objects.
	TCBInfo    TCBInfo
	QEIdentity QEIdentity

	responses []response
}

type response struct {
	url    string // the Intel PCS URL the verifier asks for
	header map[string][]string
	body   []byte
}

// Collateral returns collateral signed under the hierarchy's root. It
// fails the hierarchy's test on any error.
func (h *Hierarchy) Collateral(o CollateralOptions) *Collateral {
	h.t.Helper()
	c, err := h.collateral(o)
	if err != nil {
		h.t.Fatalf("quotetest: collateral: %v", err)
	}
	return c
}

// CollateralDir writes valid collateral (CollateralOptions{} edited by
// o, when given) into a fresh temporary directory in quote.DirSource's
// layout and returns the directory.
func (h *Hierarchy) CollateralDir(o *CollateralOptions) string {
	h.t.Helper()
	var opts CollateralOptions
	if o != nil {
		opts = *o
	}
	dir := h.t.TempDir()
	if err := h.Collateral(opts).WriteDir(dir); err != nil {
		h.t.Fatalf("quotetest: %v", err)
	}
	return dir
}

func upperHex(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

func components(svns []byte) []TCBComponent {
	c := make([]TCBComponent, len(svns))
	for i, v := range svns {
		c[i].SVN = v
	}
	return c
}

// defaultTCBInfo matches the hierarchy's PCK certificate (FMSPC, PCEID,
// CPUSVN, PCESVN) and quotes with zero MRSIGNERSEAM and SEAMATTRIBUTES.
func defaultTCBInfo(issue, next time.Time) TCBInfo {
	cpu := pckCPUSVN()
	tdx := func(svn [16]byte) []TCBComponent {
		c := components(svn[:])
		c[0].Category, c[0].Type = "OS/VMM", "TDX Module"
		c[1].Category, c[1].Type = "OS/VMM", "TDX Module"
		c[2].Category, c[2].Type = "OS/VMM", "TDX Late Microcode Update"
		return c
	}
	zero48 := upperHex(make([]byte, 48))
	return TCBInfo{
		ID: "TDX", Version: 3, IssueDate: issue, NextUpdate: next,
		FMSPC: hex.EncodeToString(FMSPC[:]), PCEID: "0000", TCBType: 0, TCBEvaluationDataNumber: 17,
		TDXModule: TDXModule{MRSIGNER: zero48, Attributes: "0000000000000000", AttributesMask: "FFFFFFFFFFFFFFFF"},
		TDXModuleIdentities: []TDXModuleIdentity{{
			ID: "TDX_01", MRSIGNER: zero48, Attributes: "0000000000000000", AttributesMask: "FFFFFFFFFFFFFFFF",
			TCBLevels: []ISVTCBLevel{
				{TCB: ISVSVN{uint16(TeeTcbSvnUpToDate[0])}, TCBDate: "2026-11-12T00:00:00Z", TCBStatus: "UpToDate"},
				{TCB: ISVSVN{uint16(TeeTcbSvnModuleOutOfDate[0])}, TCBDate: "2025-02-12T00:00:00Z", TCBStatus: "OutOfDate", AdvisoryIDs: []string{OutOfDateAdvisory}},
			},
		}},
		TCBLevels: []TCBLevel{
			{TCB: PlatformTCB{SGXTCBComponents: components(cpu), PCESVN: pckPCESVN, TDXTCBComponents: tdx(TeeTcbSvnUpToDate)},
				TCBDate: "2026-11-12T00:00:00Z", TCBStatus: "UpToDate"},
			{TCB: PlatformTCB{SGXTCBComponents: components(cpu), PCESVN: pckPCESVN, TDXTCBComponents: tdx(TeeTcbSvnOutOfDate)},
				TCBDate: "2025-02-12T00:00:00Z", TCBStatus: "OutOfDate", AdvisoryIDs: []string{OutOfDateAdvisory}},
		},
	}
}

// defaultQEIdentity matches the QE report Hierarchy.Quote signs.
func defaultQEIdentity(issue, next time.Time) QEIdentity {
	mrsigner := make([]byte, 32)
	for i := range mrsigner {
		mrsigner[i] = qeMRSIGNERByte
	}
	return QEIdentity{
		ID: "TD_QE", Version: 2, IssueDate: issue, NextUpdate: next, TCBEvaluationDataNumber: 17,
		MiscSelect: "00000000", MiscSelectMask: "FFFFFFFF",
		Attributes:     upperHex(append([]byte{qeAttributes[0]}, make([]byte, 15)...)),
		AttributesMask: "FBFFFFFFFFFFFFFF0000000000000000",
		MRSIGNER:       upperHex(mrsigner), ISVProdID: qeISVProdID,
		TCBLevels: []ISVTCBLevel{
			{TCB: ISVSVN{qeISVSVN}, TCBDate: "2026-11-12T00:00:00Z", TCBStatus: "UpToDate"},
			{TCB: ISVSVN{0}, TCBDate: "2023-02-15T00:00:00Z", TCBStatus: "OutOfDate", AdvisoryIDs: []string{OutOfDateAdvisory}},
		},
	}
}

func (h *Hierarchy) collateral(o CollateralOptions) (*Collateral, error) {
	issue, next := o.IssueDate, o.NextUpdate
	if issue.IsZero() {
		issue = CollateralIssueDate
	}
	if next.IsZero() {
		next = issue.Add(CollateralValidity)
	}
	issue, next = issue.UTC().Truncate(time.Second), next.UTC().Truncate(time.Second)
	c := &Collateral{TCBInfo: defaultTCBInfo(issue, next), QEIdentity: defaultQEIdentity(issue, next)}
	if o.TCBInfo != nil {
		o.TCBInfo(&c.TCBInfo)
	}
	if o.QEIdentity != nil {
		o.QEIdentity(&c.QEIdentity)
	}

	tcbKey := h.tcbKey
	if o.ForgeTCBInfo {
		k, err := newKey()
		if err != nil {
			return nil, err
		}
		tcbKey = k
	}
	tcbBody, err := signedBody("tcbInfo", c.TCBInfo, tcbKey)
	if err != nil {
		return nil, fmt.Errorf("TCB info: %w", err)
	}
	qeBody, err := signedBody("enclaveIdentity", c.QEIdentity, h.tcbKey)
	if err != nil {
		return nil, fmt.Errorf("QE identity: %w", err)
	}
	var rootRevoked, pckRevoked []x509.RevocationListEntry
	if o.RevokeTCBSigning {
		rootRevoked = append(rootRevoked, x509.RevocationListEntry{SerialNumber: h.TCBSigning.SerialNumber, RevocationTime: issue})
	}
	if o.RevokePCK {
		pckRevoked = append(pckRevoked, x509.RevocationListEntry{SerialNumber: h.PCK.SerialNumber, RevocationTime: issue})
	}
	rootCRL, err := crl(h.Root, h.rootKey, issue, next, rootRevoked)
	if err != nil {
		return nil, fmt.Errorf("root CA CRL: %w", err)
	}
	pckCRL, err := crl(h.Intermediate, h.interKey, issue, next, pckRevoked)
	if err != nil {
		return nil, fmt.Errorf("PCK CRL: %w", err)
	}
	tcbChain := issuerChainHeader(h.TCBSigning, h.Root)
	c.responses = []response{
		// The URL names the hierarchy's FMSPC even when an edit changed the
		// "fmspc" field: the verifier asks for the PCK certificate's.
		{url: pcs.TcbInfoURL(hex.EncodeToString(FMSPC[:])), header: map[string][]string{"Tcb-Info-Issuer-Chain": {tcbChain}}, body: tcbBody},
		{url: pcs.QeIdentityURL(), header: map[string][]string{"Sgx-Enclave-Identity-Issuer-Chain": {tcbChain}}, body: qeBody},
		{url: pcs.PckCrlURL("platform"), header: map[string][]string{"Sgx-Pck-Crl-Issuer-Chain": {issuerChainHeader(h.Intermediate, h.Root)}}, body: pckCRL},
		{url: RootCRLURL, body: rootCRL},
	}
	return c, nil
}

// signedBody returns Intel's response body {"<field>":<object>,"signature":"<hex r‖s>"},
// the signature being over the object's exact bytes.
func signedBody(field string, obj any, key *ecdsa.PrivateKey) ([]byte, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	sig, err := signRS(key, raw)
	if err != nil {
		return nil, err
	}
	out := []byte(`{"` + field + `":`)
	out = append(out, raw...)
	out = append(out, `,"signature":"`+hex.EncodeToString(sig)+`"}`...)
	return out, nil
}

func crl(issuer *x509.Certificate, key *ecdsa.PrivateKey, issue, next time.Time, revoked []x509.RevocationListEntry) ([]byte, error) {
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: issue, NextUpdate: next, RevokedCertificateEntries: revoked,
	}, issuer, key)
}

// issuerChainHeader encodes signing certificate then root the way Intel
// PCS sends an issuer-chain header: URL-escaped PEM, spaces as %20.
func issuerChainHeader(signing, root *x509.Certificate) string {
	var p []byte
	for _, c := range []*x509.Certificate{signing, root} {
		p = append(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return strings.ReplaceAll(url.QueryEscape(string(p)), "+", "%20")
}

// WriteDir writes the collateral into dir (which must exist) in
// quote.DirSource's offline cache layout, through quote.WriteCache.
func (c *Collateral) WriteDir(dir string) error {
	for _, r := range c.responses {
		if err := quote.WriteCache(dir, r.url, r.header, r.body); err != nil {
			return err
		}
	}
	return nil
}

// PCCS returns an HTTP handler that serves the collateral the way a PCCS
// does, for quote.PCSSource: the Intel PCS paths and queries, issuer
// chains in response headers, and the root CA CRL hex-encoded at
// /sgx/certification/v4/rootcacrl. Anything else is 404.
func (c *Collateral) PCCS() http.Handler {
	byName := map[string]response{}
	for _, r := range c.responses {
		name, _, err := quote.CacheName(r.url)
		if err == nil {
			byName[name] = r
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		if req.URL.Path == "/sgx/certification/v4/rootcacrl" {
			_, _ = w.Write([]byte(hex.EncodeToString(byName["rootcrl"].body)))
			return
		}
		name, _, err := quote.CacheName("https://api.trustedservices.intel.com" + req.URL.RequestURI())
		r, ok := byName[name]
		if err != nil || !ok || name == "rootcrl" {
			http.NotFound(w, req)
			return
		}
		for k, v := range r.header {
			w.Header()[k] = v
		}
		_, _ = w.Write(r.body)
	})
}
