package doctor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/host/launch"
	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/host/qemu/qemutest"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
)

// TestGateRefusesLaunch runs a TDX launch (host/launch) whose host check
// is Gate over Run on fake host trees: a host with a fatal failure is
// refused before anything is created, the error naming each fatal check
// with its ✗ line and fix; warnings do not refuse; a good host passes the
// gate and the launch goes on to its next step (here: the QEMU binary,
// which does not exist, because no TD can run here).
func TestGateRefusesLaunch(t *testing.T) {
	rel := t.TempDir()
	qemutest.WriteFakeRelease(t, rel)
	for _, tc := range []struct {
		host  string
		fatal []string // IDs Gate must name; none: the gate passes
		words []string // in the refusal
	}{
		{"good", nil, nil},
		{"no-qgs", nil, nil}, // warnings only
		{"tdx-off", []string{"kvm-tdx"}, []string{`✗ kvm-tdx  TDX enabled in KVM: /sys/module/kvm_intel/parameters/tdx is "N"`, "  fix: use a host kernel >= 6.16", "kvm_intel.tdx=1"}},
		{"gpu-on-nvidia", []string{"gpu-driver/" + gpu}, []string{"bound to nvidia", "echo vfio-pci > /sys/bus/pci/devices/0000:17:00.0/driver_override"}},
		{"shared-group", []string{"gpu-iommu/" + gpu}, []string{"also holds 0000:17:00.1 (snd_hda_intel)"}},
		{"low-memory", []string{"memory"}, []string{"needs 100 GiB + 1 GiB"}},
		{"no-kvm-intel", []string{"kvm-tdx", "dev-kvm"}, []string{"2 check(s) failed that would make the guest fail (kvm-tdx, dev-kvm)", "modprobe kvm_intel"}},
		{"old-qemu", []string{"qemu-version", "qemu-tdx"}, []string{"does not list tdx-guest"}},
		{"qgs-socket-not-socket", []string{"qgs"}, []string{"rm /var/run/tdx-qgs/qgs.socket"}},
	} {
		t.Run(tc.host, func(t *testing.T) {
			root := hosts[tc.host].build(t)
			state := filepath.Join(t.TempDir(), "st")
			s, err := shape.Lookup(h100Shape)
			if err != nil {
				t.Fatal(err)
			}
			var checks []Check
			_, err = launch.Launch(context.Background(), launch.Options{
				Mode:       qemu.ModeTDX,
				Binary:     "/nonexistent/fakeTDXQEMU",
				ReleaseDir: rel,
				Shape:      s,
				GPUs:       []string{gpu},
				StateDir:   state,
				HostCheck: func(o launch.Options) error {
					checks = Run(treeEnv(root), Options{Shape: o.Shape.Name, GPUs: o.GPUs, QGS: o.QGS})
					return Gate(checks)
				},
			})
			if checks == nil {
				t.Fatal("the host check did not run")
			}
			if err == nil {
				t.Fatal("launch succeeded without QEMU")
			}
			var refusal *RefusalError
			if tc.fatal == nil {
				if errors.As(err, &refusal) {
					t.Fatalf("refused: %v", err)
				}
				if !strings.Contains(err.Error(), "/nonexistent/fakeTDXQEMU not found") {
					t.Fatalf("err = %v, want the launch to stop at the QEMU binary", err)
				}
				return
			}
			if !errors.As(err, &refusal) {
				t.Fatalf("err = %v, want a *RefusalError", err)
			}
			var ids []string
			for _, c := range refusal.Failed {
				ids = append(ids, c.ID)
			}
			if !slices.Equal(ids, tc.fatal) {
				t.Errorf("refusal names %v, want %v", ids, tc.fatal)
			}
			msg := err.Error()
			for _, w := range append(tc.words, "host preflight: ") {
				if !strings.Contains(msg, w) {
					t.Errorf("refusal lacks %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, "gpu-cc/") {
				t.Errorf("refusal names a warning:\n%s", msg)
			}
			if _, err := os.Stat(state); err == nil {
				t.Errorf("state directory %s created despite the refusal", state)
			}
		})
	}
}

func TestGateNone(t *testing.T) {
	if err := Gate(nil); err != nil {
		t.Errorf("Gate(nil) = %v", err)
	}
	checks := []Check{
		{ID: "a", Status: StatusOK},
		{ID: "b", Status: StatusWarn, Remedy: "do b"},
		{ID: "c", Status: StatusSkip},
		{ID: "d", Status: StatusFail}, // not fatal
	}
	if err := Gate(checks); err != nil {
		t.Errorf("Gate without fatal failures = %v", err)
	}
	checks = append(checks, Check{ID: "e", Title: "E", Status: StatusFail, Fatal: true, Detail: "broken", Remedy: "fix e\nthen restart"})
	want := "host preflight: 1 check(s) failed that would make the guest fail (e):\n✗ e  E: broken\n  fix: fix e\n       then restart"
	if err := Gate(checks); err == nil || err.Error() != want {
		t.Errorf("Gate = %q, want %q", err, want)
	}
}
