package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mgpu "github.com/chrysalis-cc/chrysalis/measure/gpu"
)

// NVIDIA's vectors (measure/gpu/testdata/nvidia/README.md).
const nvSamples = "../../../measure/gpu/testdata/nvidia/nvtrust/samples/"

// rimDir holds the driver RIM and the given VBIOS RIM under their ids.
func rimDir(t *testing.T, vbios string) string {
	t.Helper()
	dir := t.TempDir()
	for id, f := range map[string]string{"NV_GPU_DRIVER_GH100_545.00": "Driver_RIM_test_no_gpu.swidtag", "NV_GPU_VBIOS_1010_0200_882_96005E0001": vbios} {
		b, err := os.ReadFile(nvSamples + f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, id+".xml"), b, 0o644)
	}
	return dir
}

func TestGPUVerify(t *testing.T) {
	const nonceA = "4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e"
	good := rimDir(t, "1010_0200_882_96005E0001_test_no_gpu.swidtag")
	prod := rimDir(t, "1010_0200_882_96005E0001_PROD.swidtag")
	raw := filepath.Join(t.TempDir(), "report.bin")
	hx, _ := os.ReadFile(nvSamples + "attestationReport.txt")
	b, _ := mgpu.DecodeHex(hx)
	os.WriteFile(raw, b, 0o644)
	base := []string{"gpu", "verify", "--chain", nvSamples + "gpuAkCertChain.txt", "--at", "2025-06-01T00:00:00Z"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  []string
		err  string
	}{
		{"set A", []string{"--report", nvSamples + "attestationReport.txt", "--nonce", nonceA, "--rims", good}, 0,
			[]string{"✓ measurements", "✓ driver RIM NV_GPU_DRIVER_GH100_545.00", "result: success (driver 545.00, VBIOS 96.00.5E.00.01"}, ""},
		{"raw report", []string{"--report", raw, "--nonce", nonceA, "--rims", good}, 0, []string{"result: success"}, ""},
		{"PROD VBIOS RIM", []string{"--report", nvSamples + "attestationReport.txt", "--nonce", nonceA, "--rims", prod}, 1,
			[]string{"✗ measurements", "mismatch vbios RIM index 9", "result: fail"}, "do not match the RIMs"},
		{"other nonce", []string{"--report", nvSamples + "attestationReport.txt", "--nonce", strings.Repeat("00", 32), "--rims", good}, 1,
			[]string{"✗ nonce"}, "nonce"},
		{"NVML driver differs", []string{"--report", nvSamples + "attestationReport.txt", "--nonce", nonceA, "--rims", good, "--driver", "550.90.07"}, 1,
			nil, "driver version \"545.00\" is not NVML's \"550.90.07\""},
		{"short nonce", []string{"--report", nvSamples + "attestationReport.txt", "--nonce", "abcd", "--rims", good}, 1, nil, "64 hex characters"},
		{"no RIMs", []string{"--report", nvSamples + "attestationReport.txt", "--nonce", nonceA}, 1, nil, "--rims DIR"},
		{"bad policy", []string{"--report", nvSamples + "attestationReport.txt", "--nonce", nonceA, "--rims", good, "--policy", "maybe"}, 1, nil, "--policy"},
		{"not a report", []string{"--report", nvSamples + "gpuAkCertChain.txt", "--nonce", nonceA, "--rims", good}, 1, nil, "neither a raw SPDM report nor hex text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(append(append([]string(nil), base...), tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.out {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if tc.err != "" && !strings.Contains(errOut, tc.err) {
				t.Errorf("stderr lacks %q:\n%s", tc.err, errOut)
			}
		})
	}
	// --json prints NVIDIA-named claims.
	code, out, errOut := cli(append(base, "--report", nvSamples+"attestationReport.txt", "--nonce", nonceA, "--rims", good, "--json")...)
	var claims map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &claims) != nil || claims["measres"] != "success" || claims["x-nvidia-gpu-attestation-report-nonce-match"] != true {
		t.Fatalf("--json: exit %d %s %s", code, out, errOut)
	}
}
