package gpu

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/golden"
)

func evidenceB(t testing.TB) *Evidence {
	t.Helper()
	chain, err := os.ReadFile(vec("B").chain)
	if err != nil {
		t.Fatal(err)
	}
	return &Evidence{
		Report:        readReport(t, vec("B").report),
		CertChain:     string(chain),
		DriverVersion: "550.90.07",
		VBIOSVersion:  "96.00.9F.00.01",
		UUID:          "GPU-0b0f2a1c-5d3e-4f60-8a7b-9c0d1e2f3a4b",
		Arch:          ArchHopper,
		CC:            CCState{Feature: CCOn, Environment: CCEnvProd, DevTools: CCOff, MultiGPUMode: CCMultiGPUNone},
		Ready:         true,
	}
}

func TestEvidenceRoundTrip(t *testing.T) {
	e := evidenceB(t)
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEvidence(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("round trip changed the evidence:\n%+v\n%+v", got, e)
	}
	if got.Digest() != e.Digest() {
		t.Error("round trip changed the digest")
	}
	// The decoded report still verifies end to end.
	r, err := ParseReport(got.Report)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ParseChainPEM([]byte(got.CertChain))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.VerifySignature(chain[0]); err != nil {
		t.Error(err)
	}
}

// TestEvidenceCanonical pins the canonical JSON (the digest's preimage).
func TestEvidenceCanonical(t *testing.T) {
	e := evidenceB(t)
	e.Report = e.Report[:48] // keep the golden file short
	e.CertChain = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
	canonical, err := canon.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "evidence.canonical.golden.json", canonical)
	d := e.Digest()
	golden.Check(t, "evidence.digest.golden.txt", []byte(hex.EncodeToString(d[:])+"\n"))
}

func TestEvidenceDigestCoversEveryField(t *testing.T) {
	base := evidenceB(t).Digest()
	for name, edit := range map[string]func(e *Evidence){
		"report":         func(e *Evidence) { e.Report[100] ^= 1 },
		"cert_chain":     func(e *Evidence) { e.CertChain += "\n" },
		"driver_version": func(e *Evidence) { e.DriverVersion = "550.90.12" },
		"vbios_version":  func(e *Evidence) { e.VBIOSVersion = "96.00.9F.00.02" },
		"uuid":           func(e *Evidence) { e.UUID = "GPU-1" },
		"arch":           func(e *Evidence) { e.Arch = "blackwell" },
		"cc.feature":     func(e *Evidence) { e.CC.Feature = CCOff },
		"cc.environment": func(e *Evidence) { e.CC.Environment = CCEnvSim },
		"cc.devtools":    func(e *Evidence) { e.CC.DevTools = CCOn },
		"cc.multi_gpu":   func(e *Evidence) { e.CC.MultiGPUMode = CCMultiGPUProtectedPCIe },
		"ready":          func(e *Evidence) { e.Ready = false },
	} {
		e := evidenceB(t)
		edit(e)
		if e.Digest() == base {
			t.Errorf("changing %s left the digest unchanged", name)
		}
	}
}

func TestDecodeEvidenceRejects(t *testing.T) {
	good, err := json.Marshal(evidenceB(t))
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	// edit replaces the first occurrence of old in the good JSON.
	edit := func(old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("good evidence lacks %q", old)
		}
		return strings.Replace(s, old, new, 1)
	}
	// with replaces one top-level field's value.
	with := func(key string, v any) string {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		m[key] = v
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct{ name, in, err string }{
		{"unknown field", edit(`"ready":true`, `"ready":true,"extra":1`), `unknown field "extra"`},
		{"unknown cc field", edit(`"feature":"on"`, `"feature":"on","mig":"off"`), `evidence cc has unknown field "mig"`},
		{"case-folded key", edit(`"uuid"`, `"UUID"`), `unknown field "UUID"`},
		{"missing ready", edit(`,"ready":true`, ``), `lacks field "ready"`},
		{"missing cc field", edit(`"devtools":"off",`, ``), `lacks field "devtools"`},
		{"null", edit(`"arch":"hopper"`, `"arch":null`), `"arch" is null`},
		{"duplicate key", edit(`"ready":true`, `"ready":true,"ready":false`), "duplicate object key"},
		{"trailing data", s + "{}", "trailing data"},
		{"not an object", `["report"]`, "not a JSON object"},
		{"cc not an object", with("cc", "on"), "evidence cc is not a JSON object"},
		{"wrong type", edit(`"ready":true`, `"ready":"yes"`), `field "ready"`},
		{"bad base64", edit(`"report":"`, `"report":"*`), `field "report"`},
		{"empty report", with("report", ""), "report is empty"},
		{"empty uuid", edit(`"uuid":"GPU-0b0f2a1c-5d3e-4f60-8a7b-9c0d1e2f3a4b"`, `"uuid":""`), "uuid is empty"},
		{"cc value", edit(`"environment":"prod"`, `"environment":"production"`), `cc.environment is "production"`},
		{"arch case", edit(`"arch":"hopper"`, `"arch":"Hopper"`), "lower-case"},
		{"control char", edit(`"driver_version":"550.90.07"`, `"driver_version":"550\u0007"`), "byte 0x07"},
		{"too large", strings.Repeat(" ", MaxEvidenceSize+1), "more than"},
		{"invalid UTF-8", edit(`"hopper"`, "\"hop\xffper\""), "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeEvidence([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestEvidenceValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(e *Evidence)
		err  string
	}{
		"ok":                {func(*Evidence) {}, ""},
		"report too large":  {func(e *Evidence) { e.Report = make([]byte, MaxReportSize+1) }, "more than 8192"},
		"empty chain":       {func(e *Evidence) { e.CertChain = "" }, "cert_chain is empty"},
		"binary chain":      {func(e *Evidence) { e.CertChain = "\x00" }, "want PEM text"},
		"long uuid":         {func(e *Evidence) { e.UUID = strings.Repeat("a", 65) }, "more than 64"},
		"empty driver":      {func(e *Evidence) { e.DriverVersion = "" }, "driver_version is empty"},
		"feature":           {func(e *Evidence) { e.CC.Feature = "enabled" }, "cc.feature"},
		"devtools":          {func(e *Evidence) { e.CC.DevTools = "" }, "cc.devtools"},
		"multi-GPU mode":    {func(e *Evidence) { e.CC.MultiGPUMode = "ppcie" }, "cc.multi_gpu_mode"},
		"protected PCIe ok": {func(e *Evidence) { e.CC.MultiGPUMode = CCMultiGPUProtectedPCIe }, ""},
	} {
		e := evidenceB(t)
		tc.edit(e)
		err := e.Validate()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want %q", name, err, tc.err)
		}
	}
}
