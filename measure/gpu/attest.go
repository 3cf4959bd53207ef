package gpu

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/gpu/ocsp"
	"github.com/chrysalis-cc/chrysalis/measure/gpu/rim"
)

// Policy is how Verify judges one GPU's evidence.
type Policy struct {
	// DeviceRoot and CoRIMRoot are the trust anchors; nil means the pinned
	// NVIDIA roots (DeviceRoot(), CoRIMRoot()).
	DeviceRoot, CoRIMRoot *x509.Certificate
	// RIMs supplies the driver and VBIOS RIMs by id. Required.
	RIMs rim.Store
	// RIMTime is the time RIM certificate chains are verified at; zero
	// means Now. RIM signing certificates live two years, and inside a TD
	// the clock is the host's, so an image may pin its build time here.
	RIMTime time.Time
	// Now is the clock for the device chain and OCSP (nil: time.Now).
	Now func() time.Time
	// OCSP checks the device and RIM chains; nil means policy "off".
	OCSP *ocsp.Checker
	// AllowMultiGPU names a multi-GPU CC mode ("protected-pcie", "nvle")
	// that is accepted besides "none".
	AllowMultiGPU string
	// RequireReady rejects evidence whose GPU was not yet set ready (a
	// relying party checking a serving worker sets it; the agent's own
	// boot check, which runs before the ready state is set, does not).
	RequireReady bool
}

// Claims are the outcome, under the names of NVIDIA's attestation claims
// (version 3) where one exists, so tools that know those can read them.
type Claims struct {
	MeasRes             string `json:"measres"` // "success" or "fail"
	ArchCheck           bool   `json:"x-nvidia-gpu-arch-check"`
	ReportParsed        bool   `json:"x-nvidia-gpu-attestation-report-parsed"`
	NonceMatch          bool   `json:"x-nvidia-gpu-attestation-report-nonce-match"`
	SignatureVerified   bool   `json:"x-nvidia-gpu-attestation-report-signature-verified"`
	FWIDMatch           bool   `json:"x-nvidia-gpu-attestation-report-cert-chain-fwid-match"`
	DriverVersion       string `json:"x-nvidia-gpu-driver-version"`
	VBIOSVersion        string `json:"x-nvidia-gpu-vbios-version"`
	DriverRIMFetched    bool   `json:"x-nvidia-gpu-driver-rim-fetched"`
	DriverRIMSignature  bool   `json:"x-nvidia-gpu-driver-rim-signature-verified"`
	DriverRIMVersion    bool   `json:"x-nvidia-gpu-driver-rim-version-match"`
	DriverRIMMeasures   bool   `json:"x-nvidia-gpu-driver-rim-measurements-available"`
	VBIOSRIMFetched     bool   `json:"x-nvidia-gpu-vbios-rim-fetched"`
	VBIOSRIMSignature   bool   `json:"x-nvidia-gpu-vbios-rim-signature-verified"`
	VBIOSRIMVersion     bool   `json:"x-nvidia-gpu-vbios-rim-version-match"`
	VBIOSRIMMeasures    bool   `json:"x-nvidia-gpu-vbios-rim-measurements-available"`
	IndexNoConflict     bool   `json:"x-nvidia-gpu-vbios-index-no-conflict"`
	HWModel             string `json:"hwmodel,omitempty"`
	UEID                string `json:"ueid,omitempty"`
	OEMID               string `json:"oemid,omitempty"`
	SecBoot             bool   `json:"secboot"`
	DbgStat             string `json:"dbgstat"` // "disabled" only on success
	DeviceChainStatus   string `json:"x-nvidia-gpu-attestation-report-cert-chain-status"`
	DeviceChainNotAfter string `json:"x-nvidia-gpu-attestation-report-cert-chain-expiration-date,omitempty"`
	DriverRIMID         string `json:"x-chrysalis-driver-rim-id,omitempty"`
	VBIOSRIMID          string `json:"x-chrysalis-vbios-rim-id,omitempty"`
	RIMChainsNotAfter   string `json:"x-chrysalis-rim-cert-chain-expiration-date,omitempty"`
	// OCSP lists every OCSP outcome (device chain, then the RIM chains).
	OCSP []OCSPClaim `json:"x-chrysalis-ocsp,omitempty"`
	// Mismatches lists measurement records that match no golden value.
	Mismatches []rim.Mismatch `json:"x-nvidia-mismatch-measurement-records,omitempty"`
	// Failure is the first failed check ("" on success).
	Failure string `json:"x-chrysalis-failure,omitempty"`
}

// OCSPClaim is one certificate's OCSP outcome.
type OCSPClaim struct {
	Chain        string `json:"chain"` // "device", "driver-rim", "vbios-rim"
	Subject      string `json:"subject"`
	Status       string `json:"status"`
	NonceMatched bool   `json:"nonce_matched"`
	Error        string `json:"error,omitempty"`
}

// Verify checks one GPU's evidence for the expected nonce, in the order
// NVIDIA's verifiers do: CC state and architecture; the report (parse,
// nonce, NVML versions); the device chain to the pinned root, FWID and
// OCSP; the report signature; both RIMs (signature, chain, version, OCSP);
// then every golden measurement. The returned claims are filled as far as
// verification got; err names the first failed check.
func Verify(ctx context.Context, ev *Evidence, nonce [32]byte, p Policy) (*Claims, error) {
	c := &Claims{MeasRes: "fail", DbgStat: "enabled", DeviceChainStatus: "unverified"}
	fail := func(format string, a ...any) (*Claims, error) {
		err := fmt.Errorf("gpu %s: "+format, append([]any{ev.UUID}, a...)...)
		c.Failure = err.Error()
		return c, err
	}
	if p.RIMs == nil {
		return fail("policy has no RIM store")
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	devRoot, corim := p.DeviceRoot, p.CoRIMRoot
	if devRoot == nil {
		devRoot = DeviceRoot()
	}
	if corim == nil {
		corim = CoRIMRoot()
	}
	rimAt := p.RIMTime
	if rimAt.IsZero() {
		rimAt = now()
	}
	if err := ev.Validate(); err != nil {
		return fail("%v", err)
	}

	// CC state and architecture (NVML's statements).
	switch {
	case ev.CC.Feature != CCOn:
		return fail("CC mode off (feature %q)", ev.CC.Feature)
	case ev.CC.Environment != CCEnvProd:
		return fail("CC environment %q, not %q", ev.CC.Environment, CCEnvProd)
	case ev.CC.DevTools != CCOff:
		return fail("CC developer-tools mode is on: measurements are not production ones")
	case ev.CC.MultiGPUMode != CCMultiGPUNone && ev.CC.MultiGPUMode != p.AllowMultiGPU:
		return fail("multi-GPU CC mode %q is not allowed by the policy", ev.CC.MultiGPUMode)
	case p.RequireReady && !ev.Ready:
		return fail("the GPU is not in the CC ready state")
	}
	if ev.Arch != ArchHopper {
		return fail("architecture %q is not supported (want %q)", ev.Arch, ArchHopper)
	}
	c.ArchCheck = true

	// The report.
	r, err := ParseReport(ev.Report)
	if err != nil {
		return fail("%v", err)
	}
	c.ReportParsed = true
	if err := r.CheckNonce(nonce); err != nil {
		return fail("%v", err)
	}
	c.NonceMatch = true
	drv, err := r.DriverVersion()
	if err != nil {
		return fail("%v", err)
	}
	vbios, err := r.VBIOSVersion()
	if err != nil {
		return fail("%v", err)
	}
	c.DriverVersion, c.VBIOSVersion = drv, vbios
	if drv != ev.DriverVersion {
		return fail("the report's driver version %q is not NVML's %q", drv, ev.DriverVersion)
	}
	if !strings.EqualFold(vbios, ev.VBIOSVersion) {
		return fail("the report's VBIOS version %q is not NVML's %q", vbios, ev.VBIOSVersion)
	}

	// The device chain, FWID, OCSP and the signature.
	chain, err := ParseChainPEM([]byte(ev.CertChain))
	if err != nil {
		return fail("%v", err)
	}
	cr, err := VerifyDeviceChain(chain, devRoot, now())
	if err != nil {
		c.DeviceChainStatus = "invalid"
		return fail("%v", err)
	}
	c.DeviceChainStatus = "valid"
	c.HWModel, c.UEID = cr.HWModel, cr.UEID
	c.DeviceChainNotAfter = cr.NotAfter.UTC().Format(time.RFC3339)
	if _, err := CheckFWID(cr.Chain[0], r); err != nil {
		return fail("%v", err)
	}
	c.FWIDMatch = true
	if err := checkOCSP(ctx, p.OCSP, "device", cr.Chain, c); err != nil {
		return fail("device chain OCSP: %v", err)
	}
	if err := r.VerifySignature(cr.Chain[0]); err != nil {
		return fail("%v", err)
	}
	c.SignatureVerified = true

	// The RIMs.
	c.DriverRIMID = DriverRIMID(drv)
	if c.VBIOSRIMID, err = r.VBIOSRIMID(); err != nil {
		return fail("%v", err)
	}
	var notAfter time.Time
	load := func(kind, id, version string, fetched, signed, versionOK, measures *bool) (*rim.RIM, error) {
		data, err := p.RIMs.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		*fetched = true
		doc, sig, err := rim.VerifyID(id, data, corim, rimAt)
		if err != nil {
			return nil, err
		}
		*signed = true
		if notAfter.IsZero() || sig.NotAfter.Before(notAfter) {
			notAfter = sig.NotAfter
		}
		if err := doc.CheckVersion(version); err != nil {
			return nil, err
		}
		*versionOK = true
		if len(doc.Measurements()) == 0 {
			return nil, fmt.Errorf("rim %s has no measurements", id)
		}
		*measures = true
		if kind == rim.VBIOS && doc.FirmwareManufacturerID != "" {
			c.OEMID = doc.FirmwareManufacturerID
		}
		if err := checkOCSP(ctx, p.OCSP, kind+"-rim", sig.Chain, c); err != nil {
			return nil, fmt.Errorf("rim %s chain OCSP: %w", id, err)
		}
		return doc, nil
	}
	drvRIM, err := load(rim.Driver, c.DriverRIMID, drv, &c.DriverRIMFetched, &c.DriverRIMSignature, &c.DriverRIMVersion, &c.DriverRIMMeasures)
	if err != nil {
		return fail("driver RIM: %v", err)
	}
	vbiosRIM, err := load(rim.VBIOS, c.VBIOSRIMID, vbios, &c.VBIOSRIMFetched, &c.VBIOSRIMSignature, &c.VBIOSRIMVersion, &c.VBIOSRIMMeasures)
	if err != nil {
		return fail("VBIOS RIM: %v", err)
	}
	c.RIMChainsNotAfter = notAfter.UTC().Format(time.RFC3339)

	// The measurements.
	nvdec, err := r.NVDEC0Status()
	if err != nil {
		return fail("%v", err)
	}
	cmp, err := rim.Compare(drvRIM, vbiosRIM, r.Measurements, nvdec == StatusDisabled)
	if err != nil {
		return fail("%v", err)
	}
	c.IndexNoConflict = true
	if !cmp.OK() {
		c.Mismatches = cmp.Mismatches
		return fail("%v", cmp.Err())
	}
	c.MeasRes, c.SecBoot, c.DbgStat = "success", true, "disabled"
	return c, nil
}

// checkOCSP runs the checker over a chain (leaf first, pinned root last)
// and records every outcome; the checker's policy decides what fails.
func checkOCSP(ctx context.Context, chk *ocsp.Checker, name string, chain []*x509.Certificate, c *Claims) error {
	if chk == nil || chk.Policy == ocsp.Off {
		c.OCSP = append(c.OCSP, OCSPClaim{Chain: name, Status: ocsp.StatusSkipped})
		return nil
	}
	if len(chain) < 2 {
		return errors.New("chain too short for OCSP")
	}
	root := chain[len(chain)-1]
	res, err := chk.CheckChain(ctx, chain[:len(chain)-1], root)
	for _, r := range res {
		oc := OCSPClaim{Chain: name, Subject: r.Subject, Status: r.Status, NonceMatched: r.NonceMatched}
		if r.Err != nil {
			oc.Error = r.Err.Error()
		}
		c.OCSP = append(c.OCSP, oc)
	}
	return err
}

// PolicyDoc is the canonical description of a Policy: what the agent
// records (hashed) in its RTMR3 gpu event, so relying parties see under
// which rules the GPUs were made ready.
type PolicyDoc struct {
	DeviceRootSHA256 string `json:"device_root_sha256"`
	CoRIMRootSHA256  string `json:"corim_root_sha256"`
	OCSP             string `json:"ocsp"`
	AllowMultiGPU    string `json:"allow_multi_gpu,omitempty"`
	// RIMTime is the fixed RIM chain time (RFC 3339), "" for "now".
	RIMTime string `json:"rim_time,omitempty"`
}

// Doc describes p.
func (p Policy) Doc() PolicyDoc {
	root := func(c, def *x509.Certificate) string {
		if c == nil {
			c = def
		}
		s := sha256.Sum256(c.Raw)
		return hex.EncodeToString(s[:])
	}
	d := PolicyDoc{
		DeviceRootSHA256: root(p.DeviceRoot, DeviceRoot()),
		CoRIMRootSHA256:  root(p.CoRIMRoot, CoRIMRoot()),
		OCSP:             string(ocsp.Off),
		AllowMultiGPU:    p.AllowMultiGPU,
	}
	if p.OCSP != nil {
		d.OCSP = string(p.OCSP.Policy)
		if d.OCSP == "" {
			d.OCSP = string(ocsp.Require) // the checker's zero policy fails closed
		}
	}
	if !p.RIMTime.IsZero() {
		d.RIMTime = p.RIMTime.UTC().Format(time.RFC3339)
	}
	return d
}

// Hash is the hex SHA-256 of the canonical JSON of d.
func (d PolicyDoc) Hash() string {
	b, err := canon.Marshal(d)
	if err != nil {
		panic(err) // a struct of strings always marshals
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
