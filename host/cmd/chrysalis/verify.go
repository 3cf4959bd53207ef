package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/evidence"
	"github.com/chrysalis-cc/chrysalis/measure/manifest"
	"github.com/chrysalis-cc/chrysalis/measure/manifest/dsse"
	"github.com/chrysalis-cc/chrysalis/measure/quote"
	"github.com/chrysalis-cc/chrysalis/measure/registry"
	"github.com/chrysalis-cc/chrysalis/measure/verify"
	"github.com/chrysalis-cc/chrysalis/models/catalog"
)

func init() {
	register("verify", "verify a running guest over RA-TLS and print its claims", runVerify)
}

// verifyReport is what `chrysalis verify --json` prints.
type verifyReport struct {
	Endpoint     string            `json:"endpoint"`
	Policy       string            `json:"policy"`
	Type         evidence.Type     `json:"type"`
	Insecure     bool              `json:"insecure"`
	Claims       evidence.Claims   `json:"claims"`
	Config       json.RawMessage   `json:"config"`
	Events       []event.Entry     `json:"events"`
	RTMR3        event.Digest      `json:"rtmr3"`
	RTMR3Source  string            `json:"rtmr3_source"`
	Measurements map[string]string `json:"measurements"`
	FreshNonce   string            `json:"fresh_nonce"`
	HandshakeMS  float64           `json:"handshake_ms"`
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	policy := fs.String("policy", "", "verification policy by name (required): insecure-dev, or tdx (with --manifest and --pub, and/or --registry-state and --registry)")
	var manifests, pubs repeated
	fs.Var(&manifests, "manifest", "tdx: a DSSE-signed release manifest `file` whose image hashes are allowed (repeatable)")
	fs.Var(&pubs, "pub", "tdx: a pinned manifest signer public key `file` (repeatable)")
	regState := fs.String("registry-state", "", "tdx: also allow the image hashes of this registry contract's account data `file` (BOC, or its hex or base64 text)")
	regAddr := fs.String("registry", "", "tdx: the registry contract `address` --registry-state was read from (required with it)")
	collateral := fs.String("collateral", "", "tdx: offline collateral cache `directory` (TCB info, QE identity, CRLs)")
	pccs := fs.String("pccs", "", "tdx: PCCS/PCS base `URL` to fetch collateral from (instead of --collateral)")
	var tcb repeated
	fs.Var(&tcb, "allow-tcb", "tdx: also accept this TCB `status` (e.g. SWHardeningNeeded; repeatable; UpToDate is always accepted)")
	asJSON := fs.Bool("json", false, "print the verified result as one line of JSON (event payloads byte-exact)")
	timeout := fs.Duration("timeout", 30*time.Second, "overall timeout")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: chrysalis verify https://HOST:PORT --policy NAME [--json]")
		fs.PrintDefaults()
	}
	// Accept the endpoint before or after the flags.
	var endpoint string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		endpoint, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if endpoint == "" && fs.NArg() == 1 {
		endpoint = fs.Arg(0)
	} else if fs.NArg() != 0 || endpoint == "" {
		fs.Usage()
		return errors.New("give exactly one endpoint, e.g. https://127.0.0.1:8443")
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("endpoint %q must be https://HOST:PORT", endpoint)
	}
	var pol verify.Policy
	if *policy == "tdx" {
		pol, err = tdxPolicy(manifests, pubs, *regState, *regAddr, *collateral, *pccs, tcb)
	} else {
		pol, err = verify.PolicyByName(*policy)
	}
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	rep, err := verifyEndpoint(ctx, u, pol)
	if err != nil {
		return err
	}
	if *asJSON {
		// One line, not indented: indenting would rewrite the canonical
		// event payloads whose bytes the digests commit to.
		return json.NewEncoder(stdout).Encode(rep)
	}
	printReport(stdout, rep)
	return nil
}

// tdxPolicy builds the tdx policy: quotes verified against Intel's roots
// with collateral, and an image allowlist from signed manifests and/or a
// registry contract's state.
func tdxPolicy(manifests, pubs []string, regState, regAddr, collateralDir, pccs string, tcb []string) (verify.Policy, error) {
	if (len(manifests) == 0) != (len(pubs) == 0) || (regState == "") != (regAddr == "") || (len(manifests) == 0 && regState == "") {
		return verify.Policy{}, errors.New("tdx needs an image allowlist: at least one --manifest with one --pub, and/or --registry-state with --registry")
	}
	qp := &quote.Policy{AllowedTCBStatuses: append([]string{"UpToDate"}, tcb...)}
	switch {
	case collateralDir != "" && pccs != "":
		return verify.Policy{}, errors.New("give --collateral or --pccs, not both")
	case collateralDir != "":
		qp.Collateral = quote.DirSource{Dir: collateralDir}
	case pccs != "":
		qp.Collateral = quote.PCSSource{BaseURL: pccs}
	default:
		return verify.Policy{}, errors.New("tdx needs collateral: --collateral DIR or --pccs URL")
	}
	var keys []*dsse.PublicKey
	for _, p := range pubs {
		k, err := dsse.LoadPublicKey(p)
		if err != nil {
			return verify.Policy{}, fmt.Errorf("--pub %s: %w", p, err)
		}
		keys = append(keys, k)
	}
	// Models: only the pinned catalog's (and, below, the registry's).
	pol := verify.Policy{Name: "tdx", Quote: qp, Models: map[string]string{}}
	cat, err := catalog.Default()
	if err != nil {
		return verify.Policy{}, err
	}
	for _, m := range cat.Models {
		if err := pol.AllowModel(m.RootHash, "catalog "+m.Name); err != nil {
			return verify.Policy{}, err
		}
	}
	for _, m := range manifests {
		env, err := os.ReadFile(m)
		if err != nil {
			return verify.Policy{}, fmt.Errorf("--manifest: %w", err)
		}
		signed, err := manifest.Verify(env, keys)
		if err != nil {
			return verify.Policy{}, fmt.Errorf("--manifest %s: %w", m, err)
		}
		if err := pol.AllowManifest(signed); err != nil {
			return verify.Policy{}, fmt.Errorf("--manifest %s: %w", m, err)
		}
	}
	if regState != "" {
		if err := allowRegistryState(&pol, regState, regAddr); err != nil {
			return verify.Policy{}, err
		}
	}
	if len(pol.Images) == 0 {
		return verify.Policy{}, errors.New("the image allowlist is empty: the manifests and the registry state list no image hashes")
	}
	return pol, nil
}

// allowRegistryState adds the image hashes of a registry account data file
// to pol. The file is the account's data cell as a BOC — what a
// liteserver's GetAccount returns as State.Data, e.g. saved by
// `chrysalis registry dump --liteserver-config F --registry ADDR
// --save-state FILE`, which checks the state proof and the account's code
// hash against registry.CodeHash() — or the same BOC as hex or base64 text.
func allowRegistryState(pol *verify.Policy, path, addr string) error {
	a, err := parseTONAddress("--registry", addr, false, true)
	if err != nil {
		return err
	}
	b, err := mfReadLimited(path, maxRegistryStateFile)
	if err != nil {
		return fmt.Errorf("--registry-state: %w", err)
	}
	st, err := decodeRegistryState(b)
	if err != nil {
		return fmt.Errorf("--registry-state %s: %w", path, err)
	}
	if _, err := pol.AllowRegistry(st, a.StringRaw()); err != nil {
		return fmt.Errorf("--registry-state %s: %w", path, err)
	}
	return nil
}

// maxRegistryStateFile bounds a registry state file: MaxEntries 64-bit
// entries in each of two dictionaries, with forks, is well under 16 MiB,
// twice that as text.
const maxRegistryStateFile = 32 << 20

// bocMagic starts every serialized bag of cells.
var bocMagic = []byte{0xb5, 0xee, 0x9c, 0x72}

// decodeRegistryState decodes registry account data given as a BOC, or as
// the BOC's hex or base64 (standard or URL alphabet, padded or not) text.
func decodeRegistryState(b []byte) (*registry.State, error) {
	if !bytes.HasPrefix(b, bocMagic) {
		text := strings.TrimSpace(string(b))
		var err error
		switch {
		case text == "":
			return nil, errors.New("empty file")
		case strings.HasPrefix(strings.ToLower(text), "b5ee9c72"):
			b, err = hex.DecodeString(text)
		default:
			text = strings.TrimRight(strings.NewReplacer("-", "+", "_", "/").Replace(text), "=")
			b, err = base64.RawStdEncoding.DecodeString(text)
		}
		if err != nil {
			return nil, fmt.Errorf("neither a BOC nor its hex or base64 text: %v", err)
		}
		if !bytes.HasPrefix(b, bocMagic) {
			return nil, errors.New("the decoded text is not a BOC (no b5ee9c72 magic)")
		}
	}
	return registry.ParseDataBOC(b)
}

func verifyEndpoint(ctx context.Context, u *url.URL, pol verify.Policy) (*verifyReport, error) {
	var hs *verify.Result
	var hsTime time.Duration
	start := time.Now()
	tr := &http.Transport{TLSClientConfig: verify.ClientConfig(pol, verify.Options{}, func(r *verify.Result) {
		hs, hsTime = r, time.Since(start)
	})}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	base := "https://" + u.Host

	if _, err := get(ctx, c, base+"/healthz"); err != nil {
		return nil, err
	}
	if hs == nil {
		return nil, errors.New("TLS handshake completed without RA-TLS verification")
	}

	// Freshness: a bundle bound to our nonce and to the key of this very
	// connection (the transport reuses it).
	nb := make([]byte, 32)
	if _, err := rand.Read(nb); err != nil {
		return nil, err
	}
	nonce := hex.EncodeToString(nb)
	body, err := get(ctx, c, base+"/v1/attestation?nonce="+nonce)
	if err != nil {
		return nil, err
	}
	b, err := evidence.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("fresh evidence: %w", err)
	}
	fresh, err := verify.Bundle(b, hs.PeerSPKI, pol, verify.Options{Nonce: nonce})
	if err != nil {
		return nil, fmt.Errorf("fresh evidence: %w", err)
	}

	evs, err := get(ctx, c, base+"/v1/events")
	if err != nil {
		return nil, err
	}
	_, mr, err := event.Parse(evs)
	if err != nil {
		return nil, fmt.Errorf("/v1/events: %w", err)
	}
	if mr != fresh.RTMR3 {
		return nil, fmt.Errorf("/v1/events replays to %s but the evidence says %s", mr, fresh.RTMR3)
	}
	cfg, _ := json.Marshal(fresh.Config)
	return &verifyReport{
		Endpoint:     base,
		Policy:       fresh.Policy,
		Type:         fresh.Type,
		Insecure:     fresh.Type == evidence.TypeInsecureDev,
		Claims:       fresh.Claims,
		Config:       cfg,
		Events:       fresh.Events,
		RTMR3:        fresh.RTMR3,
		RTMR3Source:  fresh.RTMR3Source,
		Measurements: fresh.Measurements,
		FreshNonce:   nonce,
		HandshakeMS:  float64(hsTime.Microseconds()) / 1000,
	}, nil
}

func get(ctx context.Context, c *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, evidence.MaxBundleSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %s", u, resp.StatusCode, bytes.TrimSpace(body))
	}
	return body, nil
}

func printReport(w io.Writer, r *verifyReport) {
	fmt.Fprintf(w, "endpoint      %s\n", r.Endpoint)
	fmt.Fprintf(w, "policy        %s\n", r.Policy)
	if r.Insecure {
		fmt.Fprintf(w, "evidence      %s  — INSECURE: no TEE, no quote; nothing below is hardware-backed\n", r.Type)
	} else {
		fmt.Fprintf(w, "evidence      %s\n", r.Type)
	}
	fmt.Fprintf(w, "verified      RA-TLS binding (REPORTDATA = H(tag, TLS key, claims)), event log replay, fresh nonce %s…\n", r.FreshNonce[:16])
	fmt.Fprintf(w, "handshake     %.1f ms\n", r.HandshakeMS)
	fmt.Fprintln(w, "claims")
	fmt.Fprintf(w, "  tls key sha256  %s\n", r.Claims.TLSKeySHA256)
	fmt.Fprintf(w, "  instance        %s\n", r.Claims.Instance)
	fmt.Fprintf(w, "  model           %s\n", orNone(r.Claims.Model))
	fmt.Fprintf(w, "  owner address   %s\n", orNone(r.Claims.OwnerAddress))
	fmt.Fprintf(w, "  issued at       %s (guest clock)\n", time.Unix(r.Claims.IssuedAt, 0).UTC().Format(time.RFC3339))
	fmt.Fprintln(w, "measurements")
	if len(r.Measurements) == 0 {
		fmt.Fprintln(w, "  MRTD, RTMR0-2   none (insecure-dev evidence carries no quote)")
	}
	for k, v := range r.Measurements {
		fmt.Fprintf(w, "  %-15s %s\n", k, v)
	}
	fmt.Fprintf(w, "  RTMR3           %s (%s)\n", r.RTMR3, r.RTMR3Source)
	fmt.Fprintln(w, "rtmr3 events")
	for i, e := range r.Events {
		fmt.Fprintf(w, "  %d %s v%d  %s\n    %s\n", i, e.Name, e.Version, e.Digest, e.Payload)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
