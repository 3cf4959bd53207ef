package gpu

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
)

// MaxEvidenceSize bounds the JSON DecodeEvidence accepts.
const MaxEvidenceSize = 64 << 10

// maxShortField bounds driver_version, vbios_version, uuid and arch.
const maxShortField = 64

// ArchHopper is Evidence.Arch for an H100/H200.
const ArchHopper = "hopper"

// Values of the CCState fields, from NVML's confidential-computing settings.
const (
	// Feature and DevTools.
	CCOn  = "on"
	CCOff = "off"
	// Environment.
	CCEnvUnavailable = "unavailable"
	CCEnvSim         = "sim"
	CCEnvProd        = "prod"
	// MultiGPUMode.
	CCMultiGPUNone          = "none"
	CCMultiGPUProtectedPCIe = "protected-pcie"
	CCMultiGPUNVLE          = "nvle"
)

// CCState is the GPU's confidential-computing state as NVML reports it
// (SystemGetConfComputeSettings).
type CCState struct {
	// Feature is CCOn when the CC feature is enabled, else CCOff.
	Feature string `json:"feature"`
	// Environment is CCEnvProd, CCEnvSim or CCEnvUnavailable.
	Environment string `json:"environment"`
	// DevTools is CCOn in DevTools (debug) mode, else CCOff.
	DevTools string `json:"devtools"`
	// MultiGPUMode is CCMultiGPUNone, CCMultiGPUProtectedPCIe or CCMultiGPUNVLE.
	MultiGPUMode string `json:"multi_gpu_mode"`
}

// Evidence is one GPU's evidence as the agent collects it and carries it in
// the RA-TLS bundle. Relying parties re-verify Report and CertChain
// themselves (ParseReport, ParseChainPEM, VerifyDeviceChain, …); the other
// fields are NVML's statements, to be compared with the report.
type Evidence struct {
	// Report is the raw attestation report (base64 in JSON).
	Report []byte `json:"report"`
	// CertChain is the device certificate chain as PEM text, leaf first.
	CertChain string `json:"cert_chain"`
	// DriverVersion is NVML's driver version, e.g. "550.90.07".
	DriverVersion string `json:"driver_version"`
	// VBIOSVersion is NVML's VBIOS version, e.g. "96.00.9F.00.01".
	VBIOSVersion string `json:"vbios_version"`
	// UUID is NVML's GPU UUID ("GPU-…").
	UUID string `json:"uuid"`
	// Arch is the GPU architecture in lower case, e.g. ArchHopper.
	Arch string `json:"arch"`
	// CC is the confidential-computing state.
	CC CCState `json:"cc"`
	// Ready is the CC ready state (GPU accepting client requests).
	Ready bool `json:"ready"`
}

var (
	evidenceKeys = []string{"report", "cert_chain", "driver_version", "vbios_version", "uuid", "arch", "cc", "ready"}
	ccKeys       = []string{"feature", "environment", "devtools", "multi_gpu_mode"}
)

// DecodeEvidence decodes one Evidence JSON object strictly: at most
// MaxEvidenceSize bytes, valid UTF-8, one value and nothing after it, no
// duplicate keys, exactly the known keys (matched case-sensitively), none
// of them null, and field values that pass Validate.
func DecodeEvidence(b []byte) (*Evidence, error) {
	if len(b) > MaxEvidenceSize {
		return nil, fmt.Errorf("gpu: evidence of %d bytes, more than %d", len(b), MaxEvidenceSize)
	}
	if _, err := canon.Canonicalize(b); err != nil {
		return nil, fmt.Errorf("gpu: evidence: %w", err)
	}
	top, err := exactObject(b, "evidence", evidenceKeys)
	if err != nil {
		return nil, err
	}
	cc, err := exactObject(top["cc"], "evidence cc", ccKeys)
	if err != nil {
		return nil, err
	}
	e := &Evidence{}
	targets := map[string]any{
		"report": &e.Report, "cert_chain": &e.CertChain, "driver_version": &e.DriverVersion,
		"vbios_version": &e.VBIOSVersion, "uuid": &e.UUID, "arch": &e.Arch, "ready": &e.Ready,
	}
	for k, dst := range targets {
		if err := json.Unmarshal(top[k], dst); err != nil {
			return nil, fmt.Errorf("gpu: evidence field %q: %w", k, err)
		}
	}
	ccTargets := map[string]*string{
		"feature": &e.CC.Feature, "environment": &e.CC.Environment, "devtools": &e.CC.DevTools, "multi_gpu_mode": &e.CC.MultiGPUMode,
	}
	for k, dst := range ccTargets {
		if err := json.Unmarshal(cc[k], dst); err != nil {
			return nil, fmt.Errorf("gpu: evidence field \"cc.%s\": %w", k, err)
		}
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// exactObject decodes a JSON object whose keys must be exactly keys, with
// no value null.
func exactObject(raw []byte, what string, keys []string) (map[string]json.RawMessage, error) {
	if !bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte("{")) {
		return nil, fmt.Errorf("gpu: %s is not a JSON object", what)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("gpu: %s: %w", what, err)
	}
	for k, v := range m {
		if !slices.Contains(keys, k) {
			return nil, fmt.Errorf("gpu: %s has unknown field %q", what, k)
		}
		if string(v) == "null" {
			return nil, fmt.Errorf("gpu: %s field %q is null", what, k)
		}
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("gpu: %s lacks field %q", what, k)
		}
	}
	return m, nil
}

// Validate checks field values: Report 1..MaxReportSize bytes, CertChain
// non-empty ASCII of at most MaxChainPEMSize bytes, versions and UUID
// non-empty printable ASCII of at most 64 bytes, Arch lower-case
// [a-z0-9]+, and the CC fields from their vocabularies. It does not parse
// the report or the chain.
func (e *Evidence) Validate() error {
	switch {
	case len(e.Report) == 0:
		return fmt.Errorf("gpu: evidence report is empty")
	case len(e.Report) > MaxReportSize:
		return fmt.Errorf("gpu: evidence report of %d bytes, more than %d", len(e.Report), MaxReportSize)
	case e.CertChain == "":
		return fmt.Errorf("gpu: evidence cert_chain is empty")
	case len(e.CertChain) > MaxChainPEMSize:
		return fmt.Errorf("gpu: evidence cert_chain of %d bytes, more than %d", len(e.CertChain), MaxChainPEMSize)
	}
	for i := 0; i < len(e.CertChain); i++ {
		if c := e.CertChain[i]; c >= 0x80 || c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
			return fmt.Errorf("gpu: evidence cert_chain has byte %#02x at offset %d, want PEM text", c, i)
		}
	}
	for _, f := range []struct{ name, v string }{{"driver_version", e.DriverVersion}, {"vbios_version", e.VBIOSVersion}, {"uuid", e.UUID}} {
		if err := printable(f.name, f.v); err != nil {
			return err
		}
	}
	if err := printable("arch", e.Arch); err != nil {
		return err
	}
	for i := 0; i < len(e.Arch); i++ {
		if c := e.Arch[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return fmt.Errorf("gpu: evidence arch %q is not lower-case [a-z0-9]+", e.Arch)
		}
	}
	for _, f := range []struct {
		name, v string
		allowed []string
	}{
		{"cc.feature", e.CC.Feature, []string{CCOn, CCOff}},
		{"cc.environment", e.CC.Environment, []string{CCEnvUnavailable, CCEnvSim, CCEnvProd}},
		{"cc.devtools", e.CC.DevTools, []string{CCOn, CCOff}},
		{"cc.multi_gpu_mode", e.CC.MultiGPUMode, []string{CCMultiGPUNone, CCMultiGPUProtectedPCIe, CCMultiGPUNVLE}},
	} {
		if !slices.Contains(f.allowed, f.v) {
			return fmt.Errorf("gpu: evidence %s is %q, want one of %q", f.name, f.v, f.allowed)
		}
	}
	return nil
}

func printable(name, v string) error {
	if v == "" {
		return fmt.Errorf("gpu: evidence %s is empty", name)
	}
	if len(v) > maxShortField {
		return fmt.Errorf("gpu: evidence %s has %d bytes, more than %d", name, len(v), maxShortField)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("gpu: evidence %s has byte %#02x at offset %d, want printable ASCII", name, c, i)
		}
	}
	return nil
}

// Digest is SHA-384 of the evidence's canonical JSON (measure/canon). It
// is what the bundle commits to. Two Evidence values that pass Validate
// have the same digest exactly when all their fields are equal.
func (e *Evidence) Digest() [48]byte {
	b, err := canon.Marshal(e)
	if err != nil {
		// Strings, bytes and a bool always marshal; canon only fails on
		// input encoding/json cannot produce.
		panic(fmt.Sprintf("gpu: canonical evidence JSON: %v", err))
	}
	return sha512.Sum384(b)
}
