package gpu

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mgpu "github.com/chrysalis-cc/chrysalis/measure/gpu"
	"github.com/chrysalis-cc/chrysalis/measure/gpu/rim"
)

// NVIDIA's positive vector (set A of measure/gpu/testdata/nvidia).
const nv = "../../measure/gpu/testdata/nvidia/nvtrust/samples/"

var setANonce = func() [32]byte {
	var n [32]byte
	hex.Decode(n[:], []byte("4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e"))
	return n
}()

var at = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

func setA(t *testing.T, state State) *Fake {
	t.Helper()
	hx, err := os.ReadFile(nv + "attestationReport.txt")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := mgpu.DecodeHex(hx)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := os.ReadFile(nv + "gpuAkCertChain.txt")
	if err != nil {
		t.Fatal(err)
	}
	dev := Device{Index: 0, UUID: "GPU-set-a", Arch: "hopper", DriverVersion: "545.00", VBIOSVersion: "96.00.5E.00.01"}
	return NewFake(state, []Device{dev}, map[int]FakeEvidence{0: {Report: rep, ChainPEM: chain}})
}

func rims(t *testing.T, vbios string) rim.Store {
	t.Helper()
	dir := t.TempDir()
	for id, f := range map[string]string{"NV_GPU_DRIVER_GH100_545.00": "Driver_RIM_test_no_gpu.swidtag", "NV_GPU_VBIOS_1010_0200_882_96005E0001": vbios} {
		b, err := os.ReadFile(nv + f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, id+".xml"), b, 0o644)
	}
	return rim.DirStore{Dir: dir}
}

var ccOnState = State{Feature: "on", Environment: "prod", DevTools: "off", MultiGPU: "none"}

func TestBootSetsReadyOnlyAfterSuccess(t *testing.T) {
	f := setA(t, ccOnState)
	p := mgpu.Policy{RIMs: rims(t, "1010_0200_882_96005E0001_test_no_gpu.swidtag"), RIMTime: at, Now: func() time.Time { return at }}
	evs, claims, err := Boot(context.Background(), f, p, setANonce)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || !evs[0].Ready || evs[0].UUID != "GPU-set-a" || evs[0].CC.Feature != "on" || len(claims) != 1 || claims[0].MeasRes != "success" {
		t.Fatalf("evidence %+v claims %+v", evs, claims)
	}
	if r, _ := f.Ready(); !r || !slices.Equal(f.SetCalls(), []bool{true}) {
		t.Fatalf("ready %v, SetReady calls %v", r, f.SetCalls())
	}
	// The evidence carried is what a relying party re-verifies.
	p.RequireReady = true
	if _, err := mgpu.Verify(context.Background(), &evs[0], setANonce, p); err != nil {
		t.Fatal(err)
	}
}

func TestBootFailureLeavesNotReady(t *testing.T) {
	for _, tc := range []struct {
		name   string
		state  State
		vbios  string
		nonce  func([32]byte) [32]byte
		setup  func(*Fake)
		err    string
		claims bool // the failure came from verification
	}{
		{name: "CC off", state: State{Feature: "off", Environment: "unavailable", DevTools: "off", MultiGPU: "none"}, err: "CC mode off"},
		{name: "devtools", state: State{Feature: "on", Environment: "prod", DevTools: "on", MultiGPU: "none"}, err: "developer-tools"},
		{name: "measurement mismatch", vbios: "1010_0200_882_96005E0001_PROD.swidtag", err: "do not match the RIMs", claims: true},
		{name: "stale nonce", nonce: func(n [32]byte) [32]byte { n[31] ^= 1; return n }, err: "nonce", claims: true},
		{name: "ready refused", setup: func(f *Fake) { f.FailSetReady = errors.New("nvml ERROR_NO_PERMISSION") }, err: "ERROR_NO_PERMISSION"},
		{name: "ready not taken", setup: func(f *Fake) { f.IgnoreSetReady = true }, err: "did not take the ready state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.state
			if st == (State{}) {
				st = ccOnState
			}
			vb := tc.vbios
			if vb == "" {
				vb = "1010_0200_882_96005E0001_test_no_gpu.swidtag"
			}
			f := setA(t, st)
			if tc.setup != nil {
				tc.setup(f)
			}
			n := setANonce
			if tc.nonce != nil {
				n = tc.nonce(n)
			}
			p := mgpu.Policy{RIMs: rims(t, vb), RIMTime: at, Now: func() time.Time { return at }}
			evs, claims, err := Boot(context.Background(), f, p, n)
			if err == nil || !strings.Contains(err.Error(), tc.err) || evs != nil {
				t.Fatalf("Boot = %v, %v; want %q", evs, err, tc.err)
			}
			var be *BootError
			if !errors.As(err, &be) || (be.Claims != nil) != tc.claims {
				t.Fatalf("error %T %+v", err, be)
			}
			if tc.claims && (be.UUID != "GPU-set-a" || be.Claims.Failure == "" || len(claims) != 1) {
				t.Fatalf("BootError %+v", be)
			}
			if r, _ := f.Ready(); r {
				t.Fatal("GPU ready after a failed attestation")
			}
			if calls := f.SetCalls(); tc.setup == nil && len(calls) != 0 {
				t.Fatalf("SetReady called %v on a failed attestation", calls)
			}
		})
	}
}

// A GPU some earlier stage made ready is set back to not ready when the
// attestation fails.
func TestBootFailureResetsReady(t *testing.T) {
	f := setA(t, ccOnState)
	f.SetReady(true)
	p := mgpu.Policy{RIMs: rims(t, "1010_0200_882_96005E0001_PROD.swidtag"), RIMTime: at, Now: func() time.Time { return at }}
	if _, _, err := Boot(context.Background(), f, p, setANonce); err == nil {
		t.Fatal("Boot succeeded")
	}
	if r, _ := f.Ready(); r || !slices.Equal(f.SetCalls(), []bool{true, false}) {
		t.Fatalf("ready %v, calls %v", r, f.SetCalls())
	}
}

func TestCollectNoGPU(t *testing.T) {
	f := NewFake(ccOnState, nil, nil)
	if _, err := Collect(f, [32]byte{}); err == nil || !strings.Contains(err.Error(), "no GPU") {
		t.Fatalf("Collect = %v", err)
	}
}
