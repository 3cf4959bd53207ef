package gpu

import (
	"errors"
	"fmt"
)

// ErrNoNVML is returned by NewNVML in a binary built without cgo: the
// NVML adapter needs cgo to load libnvidia-ml.so.1.
var ErrNoNVML = errors.New("gpu: NVIDIA GPU support is not compiled in (the agent was built without cgo)")

// ErrCCOff reports that the GPUs are not in confidential-computing mode.
var ErrCCOff = errors.New("gpu: CC mode off")

// State is the system-wide confidential-computing state as NVML reports
// it, in the words measure/gpu uses in evidence.
type State struct {
	Feature     string // "on" | "off"
	Environment string // "prod" | "sim" | "unavailable"
	DevTools    string // "on" | "off"
	MultiGPU    string // "none" | "protected-pcie" | "nvle"
}

// Device describes one GPU.
type Device struct {
	Index         int
	UUID          string
	Arch          string // "hopper", "blackwell", or "arch-<n>"
	DriverVersion string
	VBIOSVersion  string
}

// Collector is the narrow interface to the GPU driver.
type Collector interface {
	// State returns the system CC state.
	State() (State, error)
	// Devices lists the GPUs.
	Devices() ([]Device, error)
	// Evidence returns the SPDM attestation report for nonce and the
	// device's attestation certificate chain (PEM, leaf first).
	Evidence(index int, nonce [32]byte) (report, chainPEM []byte, err error)
	// Ready reports whether the GPUs accept work.
	Ready() (bool, error)
	// SetReady sets the system-wide ready state.
	SetReady(ready bool) error
	// Close releases the driver.
	Close() error
}

// CheckState applies the CC-mode policy: the feature on, the production
// environment, developer tools off, and a multi-GPU mode the policy allows
// ("none" unless allowMulti names the mode).
func CheckState(s State, allowMulti string) error {
	switch {
	case s.Feature != "on":
		return fmt.Errorf("%w: the CC feature is %q (enable it on the host with NVIDIA's gpu-admin-tools: nvidia_gpu_tools.py --set-cc-mode=on --reset-after-cc-mode-switch)", ErrCCOff, s.Feature)
	case s.Environment != "prod":
		return fmt.Errorf("%w: the CC environment is %q, not \"prod\"", ErrCCOff, s.Environment)
	case s.DevTools != "off":
		return fmt.Errorf("gpu: CC developer-tools mode is %q: its measurements are not production ones, refusing", s.DevTools)
	case s.MultiGPU != "none" && s.MultiGPU != allowMulti:
		return fmt.Errorf("gpu: multi-GPU CC mode %q is not allowed by the policy (allowed: none%s)", s.MultiGPU, orNone(allowMulti))
	}
	return nil
}

func orNone(s string) string {
	if s == "" || s == "none" {
		return ""
	}
	return ", " + s
}
