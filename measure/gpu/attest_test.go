package gpu

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/gpu/ocsp"
	"github.com/chrysalis-cc/chrysalis/measure/gpu/rim"
)

// RIM files of the vectors, by the id Verify asks for.
const (
	rimDriver545   = nv + "nvtrust/samples/Driver_RIM_test_no_gpu.swidtag"
	rimVBIOSTest   = nv + "nvtrust/samples/1010_0200_882_96005E0001_test_no_gpu.swidtag"
	rimVBIOSProd   = nv + "nvtrust/samples/1010_0200_882_96005E0001_PROD.swidtag"
	rimVBIOSIndex9 = nv + "attestation-sdk/testdata/sample_rims/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml"
	rimDriver535   = nv + "attestation-sdk/testdata/sample_rims/NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml"
)

// store makes a DirStore holding the given files under their RIM ids.
func store(t *testing.T, files map[string]string) rim.Store {
	t.Helper()
	dir := t.TempDir()
	for id, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, id+".xml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return rim.DirStore{Dir: dir}
}

// evidence is what the agent would have collected for vector v.
func evidence(t testing.TB, v vector) (*Evidence, [32]byte) {
	t.Helper()
	chain, err := os.ReadFile(v.chain)
	if err != nil {
		t.Fatal(err)
	}
	var n [32]byte
	hex.Decode(n[:], []byte(v.nonce))
	return &Evidence{
		Report: readReport(t, v.report), CertChain: string(chain),
		DriverVersion: v.driver, VBIOSVersion: v.vbios, UUID: "GPU-" + v.name, Arch: ArchHopper,
		CC: CCState{Feature: CCOn, Environment: CCEnvProd, DevTools: CCOff, MultiGPUMode: CCMultiGPUNone}, Ready: false,
	}, n
}

func policy(s rim.Store) Policy {
	return Policy{RIMs: s, RIMTime: verifyAt, Now: func() time.Time { return verifyAt }}
}

// TestVerifySetA is NVIDIA's full positive vector: report, chain, both
// RIMs and every measurement.
func TestVerifySetA(t *testing.T) {
	ev, n := evidence(t, vec("A"))
	s := store(t, map[string]string{"NV_GPU_DRIVER_GH100_545.00": rimDriver545, "NV_GPU_VBIOS_1010_0200_882_96005E0001": rimVBIOSTest})
	c, err := Verify(context.Background(), ev, n, policy(s))
	if err != nil {
		t.Fatalf("Verify: %v\nclaims %+v", err, c)
	}
	if c.MeasRes != "success" || !c.SecBoot || c.DbgStat != "disabled" || c.Failure != "" || len(c.Mismatches) != 0 {
		t.Fatalf("claims %+v", c)
	}
	for name, ok := range map[string]bool{
		"arch": c.ArchCheck, "parsed": c.ReportParsed, "nonce": c.NonceMatch, "sig": c.SignatureVerified, "fwid": c.FWIDMatch,
		"drv fetched": c.DriverRIMFetched, "drv sig": c.DriverRIMSignature, "drv version": c.DriverRIMVersion, "drv meas": c.DriverRIMMeasures,
		"vbios fetched": c.VBIOSRIMFetched, "vbios sig": c.VBIOSRIMSignature, "vbios version": c.VBIOSRIMVersion, "vbios meas": c.VBIOSRIMMeasures,
		"no conflict": c.IndexNoConflict,
	} {
		if !ok {
			t.Errorf("claim %s is false", name)
		}
	}
	if c.HWModel != "GH100 A01 GSP BROM" || c.DeviceChainStatus != "valid" || c.DriverRIMID != "NV_GPU_DRIVER_GH100_545.00" || c.VBIOSRIMID != "NV_GPU_VBIOS_1010_0200_882_96005E0001" {
		t.Fatalf("claims %+v", c)
	}
	if len(c.OCSP) != 3 || c.OCSP[0].Status != ocsp.StatusSkipped {
		t.Fatalf("OCSP claims %+v", c.OCSP)
	}
}

func TestVerifyFailures(t *testing.T) {
	good := map[string]string{"NV_GPU_DRIVER_GH100_545.00": rimDriver545, "NV_GPU_VBIOS_1010_0200_882_96005E0001": rimVBIOSTest}
	for _, tc := range []struct {
		name   string
		rims   map[string]string
		set    string
		mutate func(*Evidence, *[32]byte, *Policy)
		err    string
		// mismatching RIM indices expected in the claims
		mismatch []int
	}{
		{name: "PROD VBIOS RIM", rims: map[string]string{"NV_GPU_DRIVER_GH100_545.00": rimDriver545, "NV_GPU_VBIOS_1010_0200_882_96005E0001": rimVBIOSProd},
			err: "do not match the RIMs", mismatch: []int{1, 2, 3, 9}},
		{name: "missing VBIOS RIM", rims: map[string]string{"NV_GPU_DRIVER_GH100_545.00": rimDriver545},
			err: "VBIOS RIM: RIM not found: NV_GPU_VBIOS_1010_0200_882_96005E0001"},
		{name: "missing driver RIM", rims: map[string]string{},
			err: "driver RIM: RIM not found: NV_GPU_DRIVER_GH100_545.00"},
		{name: "set D against the re-signed index-9 RIM", set: "D",
			rims: map[string]string{"NV_GPU_DRIVER_GH100_535.86.09": rimDriver535, "NV_GPU_VBIOS_1010_0200_882_96005E0001": rimVBIOSIndex9},
			err:  "driver RIM: rim NV_GPU_DRIVER_GH100_535.86.09"},
		{name: "RIM for another version", rims: map[string]string{"NV_GPU_DRIVER_GH100_545.00": rimVBIOSTest, "NV_GPU_VBIOS_1010_0200_882_96005E0001": rimVBIOSTest},
			err: "driver RIM"},
		{name: "RIM chain expired", mutate: func(_ *Evidence, _ *[32]byte, p *Policy) { p.RIMTime = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) },
			err: "driver RIM: rim NV_GPU_DRIVER_GH100_545.00"},
		{name: "nonce", mutate: func(_ *Evidence, n *[32]byte, _ *Policy) { n[0] ^= 1 }, err: "nonce"},
		{name: "CC off", mutate: func(e *Evidence, _ *[32]byte, _ *Policy) { e.CC.Feature = CCOff }, err: "CC mode off"},
		{name: "sim", mutate: func(e *Evidence, _ *[32]byte, _ *Policy) { e.CC.Environment = CCEnvSim }, err: "CC environment \"sim\""},
		{name: "devtools", mutate: func(e *Evidence, _ *[32]byte, _ *Policy) { e.CC.DevTools = CCOn }, err: "developer-tools"},
		{name: "ppcie", mutate: func(e *Evidence, _ *[32]byte, _ *Policy) { e.CC.MultiGPUMode = CCMultiGPUProtectedPCIe }, err: "multi-GPU"},
		{name: "not ready", mutate: func(_ *Evidence, _ *[32]byte, p *Policy) { p.RequireReady = true }, err: "not in the CC ready state"},
		{name: "arch", mutate: func(e *Evidence, _ *[32]byte, _ *Policy) { e.Arch = "blackwell" }, err: "architecture"},
		{name: "NVML driver", mutate: func(e *Evidence, _ *[32]byte, _ *Policy) { e.DriverVersion = "545.01" }, err: "driver version \"545.00\" is not NVML's \"545.01\""},
		{name: "NVML VBIOS", mutate: func(e *Evidence, _ *[32]byte, _ *Policy) { e.VBIOSVersion = "96.00.5E.00.02" }, err: "VBIOS version"},
		{name: "flipped report byte", mutate: func(e *Evidence, _ *[32]byte, _ *Policy) { e.Report[60] ^= 1 /* inside block 1's digest */ }, err: "signature"},
		{name: "wrong root", mutate: func(_ *Evidence, _ *[32]byte, p *Policy) { p.DeviceRoot = CoRIMRoot() }, err: "gpu GPU-A: gpu:"},
		{name: "other chain", mutate: func(e *Evidence, _ *[32]byte, _ *Policy) {
			b, _ := os.ReadFile(vec("B").chain)
			e.CertChain = string(b)
		}, err: "signature"},
		{name: "OCSP required, responder unreachable", mutate: func(_ *Evidence, _ *[32]byte, p *Policy) {
			p.OCSP = &ocsp.Checker{URL: "http://127.0.0.1:1/", Policy: ocsp.Require, Timeout: time.Second, Now: func() time.Time { return verifyAt }}
		}, err: "device chain OCSP"},
		{name: "no RIM store", mutate: func(_ *Evidence, _ *[32]byte, p *Policy) { p.RIMs = nil }, err: "no RIM store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := tc.set
			if set == "" {
				set = "A"
			}
			rims := tc.rims
			if rims == nil {
				rims = good
			}
			ev, n := evidence(t, vec(set))
			p := policy(store(t, rims))
			if tc.mutate != nil {
				tc.mutate(ev, &n, &p)
			}
			c, err := Verify(context.Background(), ev, n, p)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Verify = %v, want %q", err, tc.err)
			}
			if c == nil || c.MeasRes != "fail" || c.Failure != err.Error() || c.SecBoot || c.DbgStat != "enabled" {
				t.Fatalf("claims %+v", c)
			}
			var got []int
			for _, m := range c.Mismatches {
				got = append(got, m.Index)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.mismatch) {
				t.Fatalf("mismatching indices %v, want %v", got, tc.mismatch)
			}
		})
	}
}

// TestVerifyOCSPSoftFail: an unreachable responder under soft-fail is
// recorded as "unknown" for every checked certificate and does not fail.
func TestVerifyOCSPSoftFail(t *testing.T) {
	ev, n := evidence(t, vec("A"))
	p := policy(store(t, map[string]string{"NV_GPU_DRIVER_GH100_545.00": rimDriver545, "NV_GPU_VBIOS_1010_0200_882_96005E0001": rimVBIOSTest}))
	p.OCSP = &ocsp.Checker{URL: "http://127.0.0.1:1/", Policy: ocsp.SoftFail, Timeout: time.Second, Now: func() time.Time { return verifyAt }}
	c, err := Verify(context.Background(), ev, n, p)
	if err != nil {
		t.Fatal(err)
	}
	unknown := 0
	for _, o := range c.OCSP {
		switch o.Status {
		case ocsp.StatusUnknown:
			unknown++
			if o.Error == "" {
				t.Errorf("unknown status without its error: %+v", o)
			}
		case ocsp.StatusSkipped:
		default:
			t.Errorf("OCSP claim %+v", o)
		}
	}
	// Device chain: BROM, ProvICA, Identity; each RIM chain: L4's issuers.
	if unknown < 5 {
		t.Fatalf("%d unknown OCSP results in %+v", unknown, c.OCSP)
	}
}

func BenchmarkVerifySetA(b *testing.B) {
	ev, n := evidence(b, vec("A"))
	dir := b.TempDir()
	for id, path := range map[string]string{"NV_GPU_DRIVER_GH100_545.00": rimDriver545, "NV_GPU_VBIOS_1010_0200_882_96005E0001": rimVBIOSTest} {
		data, _ := os.ReadFile(path)
		os.WriteFile(filepath.Join(dir, id+".xml"), data, 0o644)
	}
	p := policy(rim.DirStore{Dir: dir})
	for b.Loop() {
		if _, err := Verify(context.Background(), ev, n, p); err != nil {
			b.Fatal(err)
		}
	}
}
