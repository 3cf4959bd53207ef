//go:build linux && cgo

package gpu

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// NVML is the Collector over NVIDIA's management library. It needs the
// driver's libnvidia-ml.so.1 at run time and nvidia-persistenced running.
type NVML struct {
	lib nvml.Interface
}

// NewNVML loads the library (libPath "" = the default soname) and
// initialises it.
func NewNVML(libPath string) (Collector, error) {
	var opts []nvml.LibraryOption
	if libPath != "" {
		opts = append(opts, nvml.WithLibraryPath(libPath))
	}
	n, err := newNVML(nvml.New(opts...))
	if err != nil {
		return nil, err
	}
	return n, nil
}

// newNVML initialises lib; tests pass go-nvml's mock here.
func newNVML(lib nvml.Interface) (*NVML, error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			return nil, fmt.Errorf("gpu: nvml: libnvidia-ml.so.1 not found (is the NVIDIA driver in the image?): %w", nvmlErr(ret))
		}
		return nil, fmt.Errorf("gpu: nvml init: %w", nvmlErr(ret))
	}
	return &NVML{lib: lib}, nil
}

// nvmlError carries an NVML return code as a Go error.
type nvmlError struct{ ret nvml.Return }

func (e nvmlError) Error() string { return "nvml " + e.ret.Error() }

func nvmlErr(ret nvml.Return) error { return nvmlError{ret} }

func onOff(v, on uint32) string {
	if v == on {
		return "on"
	}
	return "off"
}

// State implements Collector.
func (n *NVML) State() (State, error) {
	s, ret := n.lib.SystemGetConfComputeSettings()
	if ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_FUNCTION_NOT_FOUND {
		// Older drivers: no multi-GPU field; fall back to the state call.
		st, ret := n.lib.SystemGetConfComputeState()
		if ret != nvml.SUCCESS {
			return State{}, fmt.Errorf("gpu: reading the CC state: %w", nvmlErr(ret))
		}
		s = nvml.SystemConfComputeSettings{Environment: st.Environment, CcFeature: st.CcFeature, DevToolsMode: st.DevToolsMode}
	} else if ret != nvml.SUCCESS {
		return State{}, fmt.Errorf("gpu: reading the CC settings: %w", nvmlErr(ret))
	}
	out := State{
		Feature:  onOff(s.CcFeature, nvml.CC_SYSTEM_FEATURE_ENABLED),
		DevTools: onOff(s.DevToolsMode, nvml.CC_SYSTEM_DEVTOOLS_MODE_ON),
	}
	switch s.Environment {
	case nvml.CC_SYSTEM_ENVIRONMENT_PROD:
		out.Environment = "prod"
	case nvml.CC_SYSTEM_ENVIRONMENT_SIM:
		out.Environment = "sim"
	default:
		out.Environment = "unavailable"
	}
	switch s.MultiGpuMode {
	case nvml.CC_SYSTEM_MULTIGPU_NONE:
		out.MultiGPU = "none"
	case nvml.CC_SYSTEM_MULTIGPU_PROTECTED_PCIE:
		out.MultiGPU = "protected-pcie"
	case nvml.CC_SYSTEM_MULTIGPU_NVLE:
		out.MultiGPU = "nvle"
	default:
		out.MultiGPU = fmt.Sprintf("mode-%d", s.MultiGpuMode)
	}
	return out, nil
}

func archName(a nvml.DeviceArchitecture) string {
	switch a {
	case nvml.DEVICE_ARCH_HOPPER:
		return "hopper"
	case nvml.DEVICE_ARCH_BLACKWELL:
		return "blackwell"
	}
	return fmt.Sprintf("arch-%d", a)
}

// Devices implements Collector.
func (n *NVML) Devices() ([]Device, error) {
	drv, ret := n.lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu: driver version: %w", nvmlErr(ret))
	}
	count, ret := n.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu: device count: %w", nvmlErr(ret))
	}
	out := make([]Device, 0, count)
	for i := range count {
		d, ret := n.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("gpu %d: handle: %w", i, nvmlErr(ret))
		}
		dev := Device{Index: i, DriverVersion: drv}
		if dev.UUID, ret = d.GetUUID(); ret != nvml.SUCCESS {
			return nil, fmt.Errorf("gpu %d: uuid: %w", i, nvmlErr(ret))
		}
		if dev.VBIOSVersion, ret = d.GetVbiosVersion(); ret != nvml.SUCCESS {
			return nil, fmt.Errorf("gpu %d: vbios version: %w", i, nvmlErr(ret))
		}
		a, ret := d.GetArchitecture()
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("gpu %d: architecture: %w", i, nvmlErr(ret))
		}
		dev.Arch = archName(a)
		out = append(out, dev)
	}
	return out, nil
}

// Evidence implements Collector.
func (n *NVML) Evidence(index int, nonce [32]byte) ([]byte, []byte, error) {
	d, ret := n.lib.DeviceGetHandleByIndex(index)
	if ret != nvml.SUCCESS {
		return nil, nil, fmt.Errorf("gpu %d: handle: %w", index, nvmlErr(ret))
	}
	rep := nvml.ConfComputeGpuAttestationReport{Nonce: nonce}
	if ret := d.GetConfComputeGpuAttestationReport(&rep); ret != nvml.SUCCESS {
		return nil, nil, fmt.Errorf("gpu %d: attestation report: %w", index, nvmlErr(ret))
	}
	if rep.AttestationReportSize == 0 || int(rep.AttestationReportSize) > len(rep.AttestationReport) {
		return nil, nil, fmt.Errorf("gpu %d: attestation report size %d is outside 1..%d", index, rep.AttestationReportSize, len(rep.AttestationReport))
	}
	cert, ret := d.GetConfComputeGpuCertificate()
	if ret != nvml.SUCCESS {
		return nil, nil, fmt.Errorf("gpu %d: certificate chain: %w", index, nvmlErr(ret))
	}
	if cert.AttestationCertChainSize == 0 || int(cert.AttestationCertChainSize) > len(cert.AttestationCertChain) {
		return nil, nil, fmt.Errorf("gpu %d: attestation certificate chain size %d is outside 1..%d", index, cert.AttestationCertChainSize, len(cert.AttestationCertChain))
	}
	report := append([]byte(nil), rep.AttestationReport[:rep.AttestationReportSize]...)
	chain := append([]byte(nil), cert.AttestationCertChain[:cert.AttestationCertChainSize]...)
	return report, chain, nil
}

// Ready implements Collector.
func (n *NVML) Ready() (bool, error) {
	v, ret := n.lib.SystemGetConfComputeGpusReadyState()
	if ret != nvml.SUCCESS {
		return false, fmt.Errorf("gpu: reading the ready state: %w", nvmlErr(ret))
	}
	return v == nvml.CC_ACCEPTING_CLIENT_REQUESTS_TRUE, nil
}

// SetReady implements Collector.
func (n *NVML) SetReady(ready bool) error {
	v := uint32(nvml.CC_ACCEPTING_CLIENT_REQUESTS_FALSE)
	if ready {
		v = nvml.CC_ACCEPTING_CLIENT_REQUESTS_TRUE
	}
	switch ret := n.lib.SystemSetConfComputeGpusReadyState(v); ret {
	case nvml.SUCCESS:
		return nil
	case nvml.ERROR_NO_PERMISSION:
		return fmt.Errorf("gpu: setting the ready state needs root: %w", nvmlErr(ret))
	case nvml.ERROR_INVALID_ARGUMENT:
		return fmt.Errorf("gpu: the ready state is in a terminal state, the GPU must be reset (reboot): %w", nvmlErr(ret))
	default:
		return fmt.Errorf("gpu: setting the ready state: %w", nvmlErr(ret))
	}
}

// Close implements Collector.
func (n *NVML) Close() error {
	if ret := n.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("gpu: nvml shutdown: %w", nvmlErr(ret))
	}
	return nil
}

var _ Collector = (*NVML)(nil)
