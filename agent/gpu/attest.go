package gpu

import (
	"context"
	"errors"
	"fmt"

	mgpu "github.com/chrysalis-cc/chrysalis/measure/gpu"
)

// Collect gathers fresh evidence from every GPU for nonce, without
// verifying it (relying parties verify what the RA-TLS bundle carries).
func Collect(c Collector, nonce [32]byte) ([]mgpu.Evidence, error) {
	s, err := c.State()
	if err != nil {
		return nil, err
	}
	devs, err := c.Devices()
	if err != nil {
		return nil, err
	}
	if len(devs) == 0 {
		return nil, errors.New("gpu: the driver sees no GPU")
	}
	ready, err := c.Ready()
	if err != nil {
		return nil, err
	}
	out := make([]mgpu.Evidence, 0, len(devs))
	for _, d := range devs {
		rep, chain, err := c.Evidence(d.Index, nonce)
		if err != nil {
			return nil, err
		}
		out = append(out, mgpu.Evidence{
			Report: rep, CertChain: string(chain),
			DriverVersion: d.DriverVersion, VBIOSVersion: d.VBIOSVersion, UUID: d.UUID, Arch: d.Arch,
			CC:    mgpu.CCState{Feature: s.Feature, Environment: s.Environment, DevTools: s.DevTools, MultiGPUMode: s.MultiGPU},
			Ready: ready,
		})
	}
	return out, nil
}

// BootError is a failed boot attestation: which GPU and which check, in
// the words of the claims (Claims.Failure), for the status channel.
type BootError struct {
	UUID   string
	Claims *mgpu.Claims // nil when the failure came before verification
	Err    error
}

func (e *BootError) Error() string {
	if e.UUID == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("gpu %s not attested: %v", e.UUID, e.Err)
}

func (e *BootError) Unwrap() error { return e.Err }

// Boot is the agent's GPU gate: check the CC mode, collect every GPU's
// evidence for nonce, verify each under p, and only when all verified set
// the system ready state and read it back. On any failure the GPUs are
// left not ready (and set back to not ready if a previous boot stage had
// made them ready) and the error names the failed check.
func Boot(ctx context.Context, c Collector, p mgpu.Policy, nonce [32]byte) ([]mgpu.Evidence, []*mgpu.Claims, error) {
	evs, claims, err := boot(ctx, c, p, nonce)
	if err != nil {
		if r, rerr := c.Ready(); rerr == nil && r {
			if serr := c.SetReady(false); serr != nil {
				err = errors.Join(err, serr)
			}
		}
		return nil, claims, err
	}
	return evs, claims, nil
}

func boot(ctx context.Context, c Collector, p mgpu.Policy, nonce [32]byte) ([]mgpu.Evidence, []*mgpu.Claims, error) {
	s, err := c.State()
	if err != nil {
		return nil, nil, &BootError{Err: err}
	}
	if err := CheckState(s, p.AllowMultiGPU); err != nil {
		return nil, nil, &BootError{Err: err}
	}
	evs, err := Collect(c, nonce)
	if err != nil {
		return nil, nil, &BootError{Err: err}
	}
	var claims []*mgpu.Claims
	for i := range evs {
		// Verified before the ready state exists: the boot check cannot
		// require it.
		bp := p
		bp.RequireReady = false
		cl, err := mgpu.Verify(ctx, &evs[i], nonce, bp)
		claims = append(claims, cl)
		if err != nil {
			return nil, claims, &BootError{UUID: evs[i].UUID, Claims: cl, Err: err}
		}
	}
	if err := c.SetReady(true); err != nil {
		return nil, claims, &BootError{Err: err}
	}
	r, err := c.Ready()
	if err != nil {
		return nil, claims, &BootError{Err: err}
	}
	if !r {
		return nil, claims, &BootError{Err: errors.New("gpu: the driver did not take the ready state (still not accepting work after SetReady)")}
	}
	for i := range evs {
		evs[i].Ready = true
	}
	return evs, claims, nil
}
