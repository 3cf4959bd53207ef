//go:build linux && cgo

package gpu

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// h100 is go-nvml's mock set up as one Hopper GPU in CC mode.
func h100(t *testing.T, settings nvml.SystemConfComputeSettings) (*mock.Interface, *uint32) {
	t.Helper()
	ready := new(uint32)
	dev := &mock.Device{
		GetUUIDFunc:         func() (string, nvml.Return) { return "GPU-0f1e2d3c", nvml.SUCCESS },
		GetVbiosVersionFunc: func() (string, nvml.Return) { return "96.00.5E.00.01", nvml.SUCCESS },
		GetArchitectureFunc: func() (nvml.DeviceArchitecture, nvml.Return) { return nvml.DEVICE_ARCH_HOPPER, nvml.SUCCESS },
		GetConfComputeGpuAttestationReportFunc: func(r *nvml.ConfComputeGpuAttestationReport) nvml.Return {
			// A device echoes the requester nonce at report[4:36].
			r.AttestationReportSize = 100
			r.AttestationReport[0] = 0x11
			r.AttestationReport[1] = 0xe0
			copy(r.AttestationReport[4:36], r.Nonce[:])
			return nvml.SUCCESS
		},
		GetConfComputeGpuCertificateFunc: func() (nvml.ConfComputeGpuCertificate, nvml.Return) {
			var c nvml.ConfComputeGpuCertificate
			pem := "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
			c.AttestationCertChainSize = uint32(copy(c.AttestationCertChain[:], pem))
			c.CertChainSize = 7 // the other chain must not be used
			return c, nvml.SUCCESS
		},
	}
	lib := &mock.Interface{
		InitFunc:                         func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:                     func() nvml.Return { return nvml.SUCCESS },
		SystemGetConfComputeSettingsFunc: func() (nvml.SystemConfComputeSettings, nvml.Return) { return settings, nvml.SUCCESS },
		SystemGetDriverVersionFunc:       func() (string, nvml.Return) { return "545.00", nvml.SUCCESS },
		DeviceGetCountFunc:               func() (int, nvml.Return) { return 1, nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i != 0 {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return dev, nvml.SUCCESS
		},
		SystemGetConfComputeGpusReadyStateFunc: func() (uint32, nvml.Return) { return *ready, nvml.SUCCESS },
		SystemSetConfComputeGpusReadyStateFunc: func(v uint32) nvml.Return { *ready = v; return nvml.SUCCESS },
	}
	return lib, ready
}

var ccOn = nvml.SystemConfComputeSettings{
	Environment: nvml.CC_SYSTEM_ENVIRONMENT_PROD, CcFeature: nvml.CC_SYSTEM_FEATURE_ENABLED,
	DevToolsMode: nvml.CC_SYSTEM_DEVTOOLS_MODE_OFF, MultiGpuMode: nvml.CC_SYSTEM_MULTIGPU_NONE,
}

func TestNVMLState(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   nvml.SystemConfComputeSettings
		want State
		err  string // from CheckState
	}{
		{"cc on", ccOn, State{"on", "prod", "off", "none"}, ""},
		{"cc off", nvml.SystemConfComputeSettings{}, State{"off", "unavailable", "off", "none"}, "CC mode off: the CC feature is \"off\""},
		{"sim", nvml.SystemConfComputeSettings{Environment: 1, CcFeature: 1}, State{"on", "sim", "off", "none"}, "environment is \"sim\""},
		{"devtools", nvml.SystemConfComputeSettings{Environment: 2, CcFeature: 1, DevToolsMode: 1}, State{"on", "prod", "on", "none"}, "developer-tools"},
		{"ppcie", nvml.SystemConfComputeSettings{Environment: 2, CcFeature: 1, MultiGpuMode: 1}, State{"on", "prod", "off", "protected-pcie"}, "multi-GPU CC mode \"protected-pcie\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lib, _ := h100(t, tc.in)
			n, err := newNVML(lib)
			if err != nil {
				t.Fatal(err)
			}
			got, err := n.State()
			if err != nil || got != tc.want {
				t.Fatalf("State = %+v, %v; want %+v", got, err, tc.want)
			}
			err = CheckState(got, "none")
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("CheckState = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestNVMLStateOldDriver(t *testing.T) {
	lib, _ := h100(t, ccOn)
	lib.SystemGetConfComputeSettingsFunc = func() (nvml.SystemConfComputeSettings, nvml.Return) {
		return nvml.SystemConfComputeSettings{}, nvml.ERROR_FUNCTION_NOT_FOUND
	}
	lib.SystemGetConfComputeStateFunc = func() (nvml.ConfComputeSystemState, nvml.Return) {
		return nvml.ConfComputeSystemState{Environment: 2, CcFeature: 1}, nvml.SUCCESS
	}
	n, _ := newNVML(lib)
	got, err := n.State()
	if err != nil || got != (State{"on", "prod", "off", "none"}) {
		t.Fatalf("State = %+v, %v", got, err)
	}
}

func TestNVMLDevicesAndEvidence(t *testing.T) {
	lib, _ := h100(t, ccOn)
	n, err := newNVML(lib)
	if err != nil {
		t.Fatal(err)
	}
	devs, err := n.Devices()
	if err != nil {
		t.Fatal(err)
	}
	want := Device{Index: 0, UUID: "GPU-0f1e2d3c", Arch: "hopper", DriverVersion: "545.00", VBIOSVersion: "96.00.5E.00.01"}
	if len(devs) != 1 || devs[0] != want {
		t.Fatalf("Devices = %+v", devs)
	}
	var nonce [32]byte
	for i := range nonce {
		nonce[i] = byte(i + 1)
	}
	rep, chain, err := n.Evidence(0, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep) != 100 || !bytes.Equal(rep[4:36], nonce[:]) {
		t.Fatalf("report: len %d, nonce %x", len(rep), rep[4:36])
	}
	if !strings.HasPrefix(string(chain), "-----BEGIN CERTIFICATE-----") || strings.Contains(string(chain), "\x00") {
		t.Fatalf("chain = %q", chain)
	}
	if _, _, err := n.Evidence(1, nonce); err == nil || !strings.Contains(err.Error(), "gpu 1: handle") {
		t.Fatalf("Evidence(1) = %v", err)
	}
}

func TestNVMLEvidenceSizes(t *testing.T) {
	for _, tc := range []struct {
		name         string
		report, cert uint32
		err          string
	}{
		{"empty report", 0, 10, "attestation report size 0"},
		{"report overflow", 8193, 10, "attestation report size 8193"},
		{"empty chain", 10, 0, "certificate chain size 0"},
		{"chain overflow", 10, 5121, "certificate chain size 5121"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lib, _ := h100(t, ccOn)
			dev, _ := lib.DeviceGetHandleByIndexFunc(0)
			d := dev.(*mock.Device)
			d.GetConfComputeGpuAttestationReportFunc = func(r *nvml.ConfComputeGpuAttestationReport) nvml.Return {
				r.AttestationReportSize = tc.report
				return nvml.SUCCESS
			}
			d.GetConfComputeGpuCertificateFunc = func() (nvml.ConfComputeGpuCertificate, nvml.Return) {
				return nvml.ConfComputeGpuCertificate{AttestationCertChainSize: tc.cert}, nvml.SUCCESS
			}
			n, _ := newNVML(lib)
			if _, _, err := n.Evidence(0, [32]byte{}); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Evidence = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestNVMLReady(t *testing.T) {
	lib, ready := h100(t, ccOn)
	n, _ := newNVML(lib)
	if r, err := n.Ready(); err != nil || r {
		t.Fatalf("Ready = %v, %v", r, err)
	}
	if err := n.SetReady(true); err != nil || *ready != 1 {
		t.Fatalf("SetReady(true) = %v, state %d", err, *ready)
	}
	if r, _ := n.Ready(); !r {
		t.Fatal("not ready after SetReady(true)")
	}
	for ret, want := range map[nvml.Return]string{
		nvml.ERROR_NO_PERMISSION:    "needs root",
		nvml.ERROR_INVALID_ARGUMENT: "terminal state",
		nvml.ERROR_UNKNOWN:          "setting the ready state",
	} {
		lib.SystemSetConfComputeGpusReadyStateFunc = func(uint32) nvml.Return { return ret }
		err := n.SetReady(true)
		var ne nvmlError
		if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &ne) || ne.ret != ret {
			t.Errorf("SetReady with %v = %v, want %q", ret, err, want)
		}
	}
}

func TestNVMLInitErrors(t *testing.T) {
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	if _, err := newNVML(lib); err == nil || !strings.Contains(err.Error(), "libnvidia-ml.so.1 not found") {
		t.Fatalf("newNVML = %v", err)
	}
	lib.InitFunc = func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }
	if _, err := newNVML(lib); err == nil || !strings.Contains(err.Error(), "nvml init") {
		t.Fatalf("newNVML = %v", err)
	}
}

// TestNewNVMLWithoutDriver loads the real library: on a machine without the
// NVIDIA driver that is a precise error, never a crash.
func TestNewNVMLWithoutDriver(t *testing.T) {
	n, err := NewNVML("/nonexistent/libnvidia-ml.so.1")
	if err == nil {
		n.Close()
		t.Fatal("NewNVML with a missing library succeeded")
	}
	if !strings.Contains(err.Error(), "libnvidia-ml.so.1 not found") {
		t.Fatalf("NewNVML = %v", err)
	}
}
