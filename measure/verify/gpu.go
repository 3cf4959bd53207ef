package verify

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/evidence"
	"github.com/chrysalis-cc/chrysalis/measure/gpu"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

// ReasonGPU: the GPU evidence is missing, not bound to the claims, or does
// not verify (see the GPU claims' Failure for the check).
const ReasonGPU Reason = "gpu"

// checkGPUEvent applies the gpu event policy: one event, after the
// config, naming exactly as many GPUs as the measured config says.
func checkGPUEvent(payload []byte, cfg *guest.MeasuredConfig) (*event.GPUPayload, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var p event.GPUPayload
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("gpu payload: %w", err)
	}
	if len(p.GPUs) != cfg.GPUs {
		return nil, fmt.Errorf("the gpu event names %d GPUs but the measured config expects %d", len(p.GPUs), cfg.GPUs)
	}
	seen := map[string]bool{}
	for _, g := range p.GPUs {
		if g.UUID == "" || seen[g.UUID] {
			return nil, fmt.Errorf("the gpu event names GPU %q twice or without a UUID", g.UUID)
		}
		seen[g.UUID] = true
	}
	return &p, nil
}

// checkGPU verifies the bundle's GPU evidence: one item per GPU the
// measured config expects, each bound into REPORTDATA by its digest in the
// claims, each a report for the nonce derived from the TLS key and the
// verifier's challenge, each passing measure/gpu.Verify under the policy
// with the GPU ready, and the same GPUs the boot-time gpu event names.
func checkGPU(ctx context.Context, b *evidence.Bundle, cfg *guest.MeasuredConfig, ev *event.GPUPayload, pol Policy) ([]*gpu.Claims, error) {
	if len(b.GPU) != cfg.GPUs {
		return nil, fmt.Errorf("the bundle carries %d GPU evidence items but the measured config expects %d GPUs", len(b.GPU), cfg.GPUs)
	}
	if len(b.GPU) == 0 {
		return nil, nil
	}
	if pol.GPU == nil {
		return nil, fmt.Errorf("the worker attests %d GPUs but policy %q has no GPU verification settings: refusing rather than trusting them unverified", len(b.GPU), pol.Name)
	}
	if len(b.Claims.GPU) != len(b.GPU) {
		return nil, fmt.Errorf("claims bind %d GPU evidence digests for %d items", len(b.Claims.GPU), len(b.GPU))
	}
	key, err := hex.DecodeString(b.Claims.TLSKeySHA256)
	if err != nil || len(key) != 32 {
		return nil, errors.New("claims tls_key_sha256 is not 32 bytes of hex")
	}
	var challenge []byte
	if b.Claims.Nonce != "" {
		if challenge, err = hex.DecodeString(b.Claims.Nonce); err != nil {
			return nil, errors.New("claims nonce is not hex")
		}
	}
	nonce := gpu.Nonce([32]byte(key), challenge)
	p := *pol.GPU
	p.RequireReady = true
	var out []*gpu.Claims
	var uuids []string
	for i, raw := range b.GPU {
		e, err := gpu.DecodeEvidence(raw)
		if err != nil {
			return nil, fmt.Errorf("GPU evidence %d: %w", i, err)
		}
		d := e.Digest()
		if hex.EncodeToString(d[:]) != b.Claims.GPU[i] {
			return nil, fmt.Errorf("GPU evidence %d (%s) is not the evidence the claims bind (digest %x, claims %s)", i, e.UUID, d, b.Claims.GPU[i])
		}
		c, err := gpu.Verify(ctx, e, nonce, p)
		out = append(out, c)
		if err != nil {
			return out, err
		}
		uuids = append(uuids, e.UUID)
	}
	var booted []string
	for _, g := range ev.GPUs {
		booted = append(booted, g.UUID)
	}
	slices.Sort(uuids)
	slices.Sort(booted)
	if !slices.Equal(uuids, booted) {
		return out, fmt.Errorf("the GPUs in the evidence %v are not the GPUs attested at boot %v", uuids, booted)
	}
	return out, nil
}
