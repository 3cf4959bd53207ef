package verify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/evidence"
	"github.com/chrysalis-cc/chrysalis/measure/gpu"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/manifest"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/measure/quote"
	"github.com/chrysalis-cc/chrysalis/measure/registry"
)

// Policy says which evidence is acceptable.
type Policy struct {
	// Name identifies the policy in output and errors.
	Name string
	// AllowInsecureDev accepts evidence with no hardware root. Only the
	// policy named "insecure-dev" sets it.
	AllowInsecureDev bool
	// AllowDebugConfig accepts guests whose measured config asks for debug.
	AllowDebugConfig bool
	// Instance, when set, is the instance name the config must carry.
	Instance string
	// Quote is how TDX quotes are verified (roots, collateral, TCB status,
	// TD attribute and config-ID expectations). Nil rejects TDX evidence.
	Quote *quote.Policy
	// GPU is how NVIDIA GPU evidence is verified (pinned roots, RIM
	// store, OCSP policy). Nil rejects workers that attest GPUs.
	GPU *gpu.Policy
	// Images is the allowlist of image hashes (ARCHITECTURE decision 3),
	// each with a label naming the release and shape it came from. Build
	// it from signed manifests with AllowManifest and from registry
	// contract states with AllowRegistry.
	Images map[manifest.Hash]string
	// Models, when non-nil, is the allowlist of model disks by dm-verity
	// root hash (lowercase hex) with a label: a worker whose model event
	// names another root is rejected. Fill it with AllowModel (from a
	// pinned catalog) and AllowRegistry (the registry's model hashes). Nil
	// accepts any measured model (the insecure-dev policy).
	Models map[string]string
}

// AllowModel adds one model root hash (hex) to the model allowlist.
func (p *Policy) AllowModel(rootHex, label string) error {
	if !modelRootRE.MatchString(rootHex) {
		return fmt.Errorf("allowlist: model root %q is not 64 lowercase hex characters", rootHex)
	}
	if p.Models == nil {
		p.Models = map[string]string{}
	}
	if prev, ok := p.Models[rootHex]; ok && !strings.Contains(prev, label) {
		label = prev + "; " + label
	}
	p.Models[rootHex] = label
	return nil
}

var modelRootRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// AllowRegistry adds every image hash listed in the decoded account data
// of a registry contract (measure/registry) to the image allowlist,
// labelled with contract, the address the state was read from, and the
// state's seqno. The state is trusted as given: the caller decides where
// it came from (a liteserver answer with proofs, a file an operator
// dumped). A hash already listed keeps its label with the registry's
// appended. It returns how many hashes the state listed.
func (p *Policy) AllowRegistry(st *registry.State, contract string) (int, error) {
	if st == nil {
		return 0, errors.New("allowlist: no registry state")
	}
	if contract == "" {
		return 0, errors.New("allowlist: a registry state must name the contract address it was read from")
	}
	if p.Images == nil {
		p.Images = map[manifest.Hash]string{}
	}
	label := fmt.Sprintf("registry %s, seqno %d", contract, st.Seqno)
	for _, h := range st.ModelHashes() {
		if err := p.AllowModel(hex.EncodeToString(h[:]), label); err != nil {
			return 0, err
		}
	}
	hashes := st.ImageHashes()
	for _, h := range hashes {
		switch prev, ok := p.Images[h]; {
		case !ok:
			p.Images[h] = label
		case !strings.Contains(prev, label):
			p.Images[h] = prev + "; " + label
		}
	}
	return len(hashes), nil
}

// AllowManifest adds every shape of a verified, signed manifest to the
// image allowlist. Pass what manifest.Verify returned: an unsigned
// manifest cannot be added.
func (p *Policy) AllowManifest(s *manifest.Signed) error {
	if s == nil || s.Manifest == nil || len(s.KeyIDs) == 0 {
		return errors.New("allowlist: only a manifest verified against pinned keys can be added")
	}
	if p.Images == nil {
		p.Images = map[manifest.Hash]string{}
	}
	for _, sh := range s.Manifest.Shapes {
		p.Images[sh.ImageHash] = fmt.Sprintf("release %s, shape %s, signed by %s", s.Manifest.Release.SourceCommit, sh.Name, strings.Join(s.KeyIDs, ","))
	}
	return nil
}

// PolicyInsecureDev is the only policy that accepts insecure-dev evidence.
const PolicyInsecureDev = "insecure-dev"

// PolicyByName returns a built-in policy.
func PolicyByName(name string) (Policy, error) {
	switch name {
	case PolicyInsecureDev:
		return Policy{Name: name, AllowInsecureDev: true, AllowDebugConfig: true}, nil
	case "":
		return Policy{}, errors.New("no policy given: name one explicitly (available: insecure-dev)")
	default:
		return Policy{}, fmt.Errorf("unknown policy %q (available: insecure-dev)", name)
	}
}

// Result is what a successful verification establishes.
type Result struct {
	Policy string
	Type   evidence.Type
	Claims evidence.Claims
	// Config is the measured config from the first RTMR3 event.
	Config guest.MeasuredConfig
	// Events is the replayed RTMR3 log.
	Events []event.Entry
	// RTMR3 is the replayed register and where the compared value came from.
	RTMR3       event.Digest
	RTMR3Source string
	ReportData  []byte
	// Measurements holds MRTD, RTMR0-2 etc. from a quote, keyed by name
	// (empty for insecure-dev evidence: there is no quote).
	Measurements map[string]string
	// Bundle is the verified bundle.
	Bundle *evidence.Bundle
	// PeerSPKI is the DER SubjectPublicKeyInfo the bundle is bound to.
	PeerSPKI []byte
	// GPU holds each verified GPU's claims (NVIDIA's claim names).
	GPU []*gpu.Claims
}

// Options tune a single verification.
type Options struct {
	// Now is the time against which certificate validity is checked.
	Now time.Time
	// Nonce, when non-empty, must equal the bundle's claims nonce.
	Nonce string
}

// Certificate verifies an RA-TLS certificate and its evidence. Every
// rejection is an *Error naming the failed check.
func Certificate(cert *x509.Certificate, pol Policy, opts Options) (*Result, error) {
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return nil, reject(ReasonCertificate, fmt.Errorf("ra-tls certificate: bad self-signature: %w", err))
	}
	if err := checkCriticalExtensions(cert); err != nil {
		return nil, reject(ReasonCertificate, err)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, reject(ReasonCertificate, fmt.Errorf("ra-tls certificate: valid %s to %s, not at %s",
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
	}
	raw, err := evidence.BundleFromCertificate(cert)
	if err != nil {
		return nil, reject(ReasonCertificate, err)
	}
	b, err := evidence.Decode(raw)
	if err != nil {
		return nil, reject(ReasonFormat, err)
	}
	return Bundle(b, cert.RawSubjectPublicKeyInfo, pol, opts)
}

// Bundle verifies a decoded bundle for the TLS key whose DER SPKI is
// given (the key the peer actually presented). Every rejection is an
// *Error naming the failed check.
func Bundle(b *evidence.Bundle, spki []byte, pol Policy, opts Options) (*Result, error) {
	res, err := bundle(b, spki, pol, opts)
	if err != nil {
		return nil, reject(ReasonFormat, err)
	}
	return res, nil
}

func bundle(b *evidence.Bundle, spki []byte, pol Policy, opts Options) (*Result, error) {
	switch b.Type {
	case evidence.TypeInsecureDev:
		if !pol.AllowInsecureDev {
			return nil, reject(ReasonInsecureDev, fmt.Errorf("evidence is insecure-dev (no TEE, nothing is hardware-backed); policy %q does not accept it — only the policy named %q does", pol.Name, PolicyInsecureDev))
		}
	case evidence.TypeTDX:
		if pol.Quote == nil {
			return nil, reject(ReasonPolicy, fmt.Errorf("evidence is a TDX quote but policy %q has no quote verification settings: refusing rather than trusting it unverified", pol.Name))
		}
		if len(pol.Images) == 0 {
			return nil, reject(ReasonPolicy, fmt.Errorf("policy %q has an empty image allowlist: add signed manifests", pol.Name))
		}
	default:
		return nil, reject(ReasonFormat, fmt.Errorf("evidence type %q is unknown", b.Type))
	}
	if got := evidence.SPKIHash(spki); got != b.Claims.TLSKeySHA256 {
		return nil, reject(ReasonReportDataBinding, fmt.Errorf("claims bind TLS key %s but the peer presented %s", b.Claims.TLSKeySHA256, got))
	}
	rd, err := evidence.ReportData(spki, b.Claims)
	if err != nil {
		return nil, reject(ReasonFormat, err)
	}
	if !bytes.Equal(rd[:], b.ReportData) {
		return nil, reject(ReasonReportDataBinding, fmt.Errorf("report_data %s does not equal SHA-512(tag, key, claims) = %s", hex.EncodeToString(b.ReportData), hex.EncodeToString(rd[:])))
	}
	if opts.Nonce != "" && b.Claims.Nonce != opts.Nonce {
		return nil, reject(ReasonNonce, fmt.Errorf("claims nonce %q does not equal the nonce sent (%q): stale or replayed evidence", b.Claims.Nonce, opts.Nonce))
	}
	mr, err := b.EventLog.Replay()
	if err != nil {
		return nil, reject(ReasonEventLog, err)
	}
	if mr != b.RTMR3 {
		return nil, reject(ReasonEventLog, fmt.Errorf("RTMR3 %s (%s) does not equal the replayed event log %s", b.RTMR3, b.RTMR3Source, mr))
	}
	measurements := map[string]string{}
	if b.Type == evidence.TypeTDX {
		q, err := quote.Verify(b.Quote, rd, *pol.Quote)
		if err != nil {
			return nil, reject(quoteReason(err, quoteDebug(b.Quote)), fmt.Errorf("tdx quote: %w", err))
		}
		if q.RTMR[3] != mr {
			return nil, reject(ReasonEventLog, fmt.Errorf("quote RTMR3 %x does not equal the replayed event log %s", q.RTMR[3], mr))
		}
		img, label, err := checkImage(q, pol)
		if err != nil {
			return nil, err
		}
		measurements["MRTD"] = hex.EncodeToString(q.MRTD[:])
		for i := 0; i < 3; i++ {
			measurements[fmt.Sprintf("RTMR%d", i)] = hex.EncodeToString(q.RTMR[i][:])
		}
		measurements["image hash"] = img.String() + " (" + label + ")"
		measurements["TCB status"] = q.TCBStatus
	}
	cfg, gpuEvent, err := judgeEvents(b.EventLog.Events, pol)
	if err != nil {
		return nil, reject(ReasonEventPolicy, err)
	}
	gpus, err := checkGPU(context.Background(), b, cfg, gpuEvent, pol)
	if err != nil {
		return nil, reject(ReasonGPU, err)
	}
	if b.Claims.Instance != cfg.Instance || b.Claims.Model != cfg.Model || b.Claims.OwnerAddress != cfg.OwnerAddress {
		return nil, reject(ReasonEventPolicy, errors.New("claims (instance, model, owner_address) differ from the measured config event"))
	}
	// Receipts are signed with the channel key the measured config names:
	// a worker without a payment channel must not claim a receipt key.
	wantKey := ""
	if cfg.Payment != nil {
		wantKey = cfg.Payment.WorkerKey
	}
	if b.Claims.ReceiptKey != wantKey {
		return nil, reject(ReasonEventPolicy, fmt.Errorf("claims.receipt_key %q is not the measured config's payment.worker_key %q", b.Claims.ReceiptKey, wantKey))
	}
	return &Result{
		Policy:       pol.Name,
		Type:         b.Type,
		Claims:       b.Claims,
		Config:       *cfg,
		Events:       b.EventLog.Events,
		RTMR3:        mr,
		RTMR3Source:  b.RTMR3Source,
		ReportData:   b.ReportData,
		Measurements: measurements,
		Bundle:       b,
		PeerSPKI:     spki,
		GPU:          gpus,
	}, nil
}

// checkImage computes the image hash of a verified quote and looks it up
// in the policy's allowlist.
func checkImage(q *quote.Quote, pol Policy) (manifest.Hash, string, error) {
	f, err := manifest.QuoteFieldsFromBody(q.Body())
	if err != nil {
		return manifest.Hash{}, "", reject(ReasonFormat, fmt.Errorf("tdx quote: %w", err))
	}
	img := manifest.Hash(manifest.ImageHash(f))
	label, ok := pol.Images[img]
	if !ok {
		return img, "", reject(ReasonImageNotAllowed, fmt.Errorf("image hash %s (MRTD %x) is not in policy %q's allowlist of %d signed images", img, q.MRTD, pol.Name, len(pol.Images)))
	}
	return img, label, nil
}

// judgeEvents applies the event policy: the first event is the config
// (version 1, a valid measured config), every event is known, and nothing
// follows "ready".
func judgeEvents(evs []event.Entry, pol Policy) (*guest.MeasuredConfig, *event.GPUPayload, error) {
	cfg, g, err := judgeEventList(evs, pol)
	if err != nil {
		return nil, nil, err
	}
	if cfg.GPUs > 0 && g == nil {
		return nil, nil, fmt.Errorf("event log: the measured config expects %d GPUs but there is no gpu event", cfg.GPUs)
	}
	return cfg, g, nil
}

func judgeEventList(evs []event.Entry, pol Policy) (*guest.MeasuredConfig, *event.GPUPayload, error) {
	if len(evs) == 0 || evs[0].Name != event.NameConfig {
		return nil, nil, errors.New("event log: the first event must be the measured config")
	}
	var cfg *guest.MeasuredConfig
	var gpuEv *event.GPUPayload
	ready, model, payout := false, false, false
	for i, e := range evs {
		if ready {
			return nil, nil, fmt.Errorf("event log: event %d (%s) follows the ready event", i, e.Name)
		}
		switch {
		case e.Name == event.NameConfig && e.Version == 1:
			if i != 0 {
				return nil, nil, fmt.Errorf("event log: config event repeated at %d", i)
			}
			dec := json.NewDecoder(bytes.NewReader(e.Payload))
			dec.DisallowUnknownFields()
			var c guest.MeasuredConfig
			if err := dec.Decode(&c); err != nil {
				return nil, nil, fmt.Errorf("event log: config payload: %w", err)
			}
			if err := c.Validate(); err != nil {
				return nil, nil, fmt.Errorf("event log: %w", err)
			}
			if c.Debug && !pol.AllowDebugConfig {
				return nil, nil, fmt.Errorf("event log: the measured config enables debug; policy %q refuses debug workers", pol.Name)
			}
			if pol.Instance != "" && c.Instance != pol.Instance {
				return nil, nil, fmt.Errorf("event log: instance %q is not the expected %q", c.Instance, pol.Instance)
			}
			cfg = &c
		case e.Name == event.NameModel && e.Version == 1:
			if cfg == nil {
				return nil, nil, fmt.Errorf("event log: model event %d precedes the config", i)
			}
			if model {
				return nil, nil, fmt.Errorf("event log: second model event at %d", i)
			}
			model = true
			dec := json.NewDecoder(bytes.NewReader(e.Payload))
			dec.DisallowUnknownFields()
			var m event.ModelPayload
			if err := dec.Decode(&m); err != nil {
				return nil, nil, fmt.Errorf("event log: model payload: %w", err)
			}
			if m.Name != cfg.Model || m.RootHash != cfg.ModelRoot || m.RootHash == "" {
				return nil, nil, fmt.Errorf("event log: the model event (%s, root %s) is not the model the measured config names (%s, root %s)", m.Name, m.RootHash, cfg.Model, cfg.ModelRoot)
			}
			if _, ok := pol.Models[m.RootHash]; pol.Models != nil && !ok {
				return nil, nil, fmt.Errorf("event log: model %s (root %s) is not in policy %q's model allowlist of %d", m.Name, m.RootHash, pol.Name, len(pol.Models))
			}
		case e.Name == event.NamePayout && e.Version == 1:
			if cfg == nil || payout {
				return nil, nil, fmt.Errorf("event log: payout event %d must follow the config, once", i)
			}
			payout = true
			if err := checkPayout(e.Payload, cfg); err != nil {
				return nil, nil, fmt.Errorf("event log: %w", err)
			}
		case e.Name == event.NameGPU && e.Version == 1:
			if cfg == nil || gpuEv != nil {
				return nil, nil, fmt.Errorf("event log: gpu event %d must follow the config, once", i)
			}
			g, err := checkGPUEvent(e.Payload, cfg)
			if err != nil {
				return nil, nil, fmt.Errorf("event log: %w", err)
			}
			gpuEv = g
		case e.Name == event.NameReady && e.Version == 1:
			if !bytes.Equal(e.Payload, []byte("{}")) {
				return nil, nil, errors.New("event log: ready event payload must be {}")
			}
			if cfg != nil && cfg.OwnerAddress != "" && !payout {
				return nil, nil, fmt.Errorf("event log: the measured config names owner %s but no payout event precedes ready", cfg.OwnerAddress)
			}
			if cfg != nil && cfg.ModelRoot != "" && !model {
				return nil, nil, fmt.Errorf("event log: the measured config names model %s (root %s) but no model event precedes ready", cfg.Model, cfg.ModelRoot)
			}
			ready = true
		default:
			return nil, nil, fmt.Errorf("event log: event %d %s v%d is not known to this verifier", i, e.Name, e.Version)
		}
	}
	return cfg, gpuEv, nil
}

// checkPayout requires the payout event to be exactly the normalised form
// of the measured owner address: what the agent pays to is what the config
// says, in a form relying parties compare without parsing TON addresses.
func checkPayout(payload []byte, cfg *guest.MeasuredConfig) error {
	if cfg.OwnerAddress == "" {
		return errors.New("payout event without an owner address in the measured config")
	}
	n, err := payment.ParseNetwork(cfg.TONNetwork)
	if err != nil {
		return err
	}
	a, err := payment.ParseOwnerAddress(cfg.OwnerAddress, n)
	if err != nil {
		return err
	}
	want, err := canon.Marshal(a.Event())
	if err != nil {
		return err
	}
	if !bytes.Equal(payload, want) {
		return fmt.Errorf("payout event %s is not the measured owner address %s", payload, want)
	}
	return nil
}

// ClientConfig returns a TLS 1.3 client config that accepts the server
// only if its RA-TLS certificate verifies under pol; the result of the
// last successful verification is passed to onVerified.
func ClientConfig(pol Policy, opts Options, onVerified func(*Result)) *tls.Config {
	return CachedClientConfig(pol, opts, nil, onVerified)
}
