package ratls

import (
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/agent/attest"
	agpu "github.com/chrysalis-cc/chrysalis/agent/gpu"
	"github.com/chrysalis-cc/chrysalis/agent/rtmr"
	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/evidence"
	mgpu "github.com/chrysalis-cc/chrysalis/measure/gpu"
	"github.com/chrysalis-cc/chrysalis/measure/gpu/rim"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/verify"
)

// TestGPUEvidenceBinding: each bundle asks the GPU for a report on the
// nonce derived from its own TLS key and the verifier's challenge, carries
// the evidence and binds its digest in the claims; the verifier recomputes
// that nonce. The Fake serves NVIDIA's recorded set-A report, whose nonce
// is not ours, so the verifier must refuse it at exactly that check.
func TestGPUEvidenceBinding(t *testing.T) {
	const nv = "../../measure/gpu/testdata/nvidia/nvtrust/samples/"
	hx, _ := os.ReadFile(nv + "attestationReport.txt")
	rep, err := mgpu.DecodeHex(hx)
	if err != nil {
		t.Fatal(err)
	}
	chain, _ := os.ReadFile(nv + "gpuAkCertChain.txt")
	fake := agpu.NewFake(agpu.State{Feature: "on", Environment: "prod", DevTools: "off", MultiGPU: "none"},
		[]agpu.Device{{UUID: "GPU-set-a", Arch: "hopper", DriverVersion: "545.00", VBIOSVersion: "96.00.5E.00.01"}},
		map[int]agpu.FakeEvidence{0: {Report: rep, ChainPEM: chain}})
	fake.SetReady(true)

	var asked [][32]byte
	src := func(n [32]byte) ([]mgpu.Evidence, error) {
		asked = append(asked, n)
		return agpu.Collect(fake, n)
	}
	rec := rtmr.NewRecorder(&rtmr.Software{})
	cfg := guest.MeasuredConfig{Instance: "w", GPUs: 1}
	for _, e := range []struct {
		name string
		v    any
	}{{event.NameConfig, cfg}, {event.NameGPU, event.GPUPayload{Policy: "p", GPUs: []event.GPUPayloadEntry{{UUID: "GPU-set-a"}}}}, {event.NameReady, struct{}{}}} {
		ev, _ := event.New(e.name, 1, e.v)
		if _, err := rec.Record(ev); err != nil {
			t.Fatal(err)
		}
	}
	clock := time.Unix(1800000000, 0)
	id, err := New(attest.InsecureDev{}, rec, evidence.Claims{Instance: "w"}, "w", func() time.Time { return clock }, WithGPU(src))
	if err != nil {
		t.Fatal(err)
	}
	fb, err := id.Fresh("c0ffee")
	if err != nil {
		t.Fatal(err)
	}
	b, err := evidence.Decode(fb)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := hex.DecodeString(b.Claims.TLSKeySHA256)
	if want := mgpu.Nonce([32]byte(key), []byte{0xc0, 0xff, 0xee}); len(asked) != 2 || asked[1] != want {
		t.Fatalf("GPU asked for nonces %x, want the fresh one %x last", asked, want)
	}
	if len(b.GPU) != 1 || len(b.Claims.GPU) != 1 {
		t.Fatalf("bundle GPU %d items, claims %v", len(b.GPU), b.Claims.GPU)
	}
	ev, err := mgpu.DecodeEvidence(b.GPU[0])
	if err != nil {
		t.Fatal(err)
	}
	if d := ev.Digest(); hex.EncodeToString(d[:]) != b.Claims.GPU[0] || !ev.Ready || ev.UUID != "GPU-set-a" {
		t.Fatalf("evidence %s digest %x, claims %s", ev.UUID, d, b.Claims.GPU[0])
	}

	pol, _ := verify.PolicyByName("insecure-dev")
	leaf, _ := id.GetCertificate(nil)
	spki := leaf.Leaf.RawSubjectPublicKeyInfo
	if _, err := verify.Bundle(b, spki, pol, verify.Options{Nonce: "c0ffee"}); !isReason(err, verify.ReasonGPU) || !strings.Contains(err.Error(), "no GPU verification settings") {
		t.Fatalf("without a GPU policy: %v", err)
	}
	pol.GPU = &mgpu.Policy{RIMs: rim.DirStore{Dir: t.TempDir()}}
	if _, err := verify.Bundle(b, spki, pol, verify.Options{Nonce: "c0ffee"}); !isReason(err, verify.ReasonGPU) || !strings.Contains(err.Error(), "nonce") {
		t.Fatalf("recorded report for another nonce: %v", err)
	}
	// Evidence swapped after signing breaks the claims binding.
	b.GPU[0] = []byte(strings.Replace(string(b.GPU[0]), `"ready":true`, `"ready":false`, 1))
	if _, err := verify.Bundle(b, spki, pol, verify.Options{Nonce: "c0ffee"}); !isReason(err, verify.ReasonGPU) || !strings.Contains(err.Error(), "not the evidence the claims bind") {
		t.Fatalf("swapped evidence: %v", err)
	}
	// A GPU that stops answering fails the bundle, never drops it.
	fake2 := agpu.NewFake(agpu.State{}, nil, nil)
	id2, err := New(attest.InsecureDev{}, rec, evidence.Claims{Instance: "w"}, "w", nil, WithGPU(func(n [32]byte) ([]mgpu.Evidence, error) { return agpu.Collect(fake2, n) }))
	if err == nil || id2 != nil || !strings.Contains(err.Error(), "gpu evidence") {
		t.Fatalf("New with a failing GPU source = %v", err)
	}
}

func isReason(err error, r verify.Reason) bool {
	var ve *verify.Error
	return errors.As(err, &ve) && ve.Reason == r
}
