package gpu

import (
	"fmt"
	"sync"
)

// Fake is a pure-Go Collector standing in for a GPU that cannot exist on a
// development machine or in CI. It serves recorded evidence (it cannot sign
// a report for a new nonce, so only the recorded nonce verifies) and keeps
// a ready flag. It is for tests; the agent binary never uses it.
type Fake struct {
	mu      sync.Mutex
	state   State
	devices []Device
	reports map[int]FakeEvidence
	ready   bool
	// SetCalls counts SetReady calls, with the values passed.
	setCalls []bool
	// FailSetReady, when set, is returned by SetReady.
	FailSetReady error
	// IgnoreSetReady makes SetReady succeed without changing the state
	// (a driver that does not take the request).
	IgnoreSetReady bool
}

// FakeEvidence is one recorded report and chain.
type FakeEvidence struct {
	Report, ChainPEM []byte
}

// NewFake returns a Fake with the given state, devices and evidence by
// device index; the GPUs start not ready, as after a CC-mode boot.
func NewFake(s State, devices []Device, ev map[int]FakeEvidence) *Fake {
	return &Fake{state: s, devices: devices, reports: ev}
}

// State implements Collector.
func (f *Fake) State() (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state, nil
}

// Devices implements Collector.
func (f *Fake) Devices() ([]Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Device(nil), f.devices...), nil
}

// Evidence implements Collector; the nonce is ignored (see Fake).
func (f *Fake) Evidence(index int, _ [32]byte) ([]byte, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.reports[index]
	if !ok {
		return nil, nil, fmt.Errorf("gpu %d: fake: no recorded evidence", index)
	}
	return append([]byte(nil), e.Report...), append([]byte(nil), e.ChainPEM...), nil
}

// Ready implements Collector.
func (f *Fake) Ready() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready, nil
}

// SetReady implements Collector.
func (f *Fake) SetReady(r bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setCalls = append(f.setCalls, r)
	if f.FailSetReady != nil {
		return f.FailSetReady
	}
	if !f.IgnoreSetReady {
		f.ready = r
	}
	return nil
}

// SetCalls returns the values SetReady was called with, in order.
func (f *Fake) SetCalls() []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bool(nil), f.setCalls...)
}

// Close implements Collector.
func (f *Fake) Close() error { return nil }

var _ Collector = (*Fake)(nil)
