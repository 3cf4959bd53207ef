package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/host/doctor"
	"github.com/chrysalis-cc/chrysalis/host/qemu"
)

// doctorTree writes a fake root with the given files (host path →
// contents).
func doctorTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const doctorMeminfo = "MemTotal:       65863204 kB\nMemFree:        61865984 kB\nMemAvailable:   62914560 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\n"

// TestDoctorExitCode runs `chrysalis doctor` through the CLI's dispatcher:
// a host without TDX exits 1 with the failures in the report; a dev check
// of a host with QEMU and memory exits 0.
func TestDoctorExitCode(t *testing.T) {
	noTDX := doctorTree(t, map[string]string{
		"/sys/module/kvm_intel/parameters/tdx": "N\n",
		"/proc/meminfo":                        doctorMeminfo,
	})
	var out, errb bytes.Buffer
	code := run([]string{"doctor", "--root", noTDX, "--shape", "h100-1g-32c-100g", "--gpu", "0000:17:00.0", "--json"}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "chrysalis doctor: host not ready:") {
		t.Errorf("stderr %q", errb.String())
	}
	var r doctor.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if r.OK {
		t.Error("report says ok")
	}
	status := map[string]doctor.Status{}
	for _, c := range r.Checks {
		status[c.ID] = c.Status
	}
	for id, want := range map[string]doctor.Status{
		"kvm-tdx":                 doctor.StatusFail,
		"dev-kvm":                 doctor.StatusFail,
		"memory":                  doctor.StatusFail, // 60 GiB < 100 GiB + 1 GiB
		"vhost-vsock":             doctor.StatusFail,
		"gpu-device/0000:17:00.0": doctor.StatusFail,
		"qgs":                     doctor.StatusWarn,
	} {
		if status[id] != want {
			t.Errorf("%s: %s, want %s", id, status[id], want)
		}
	}

	if _, err := exec.LookPath(qemu.Binary); err != nil {
		t.Skipf("%s not installed: no dev check", qemu.Binary)
	}
	devHost := doctorTree(t, map[string]string{"/proc/meminfo": doctorMeminfo})
	out.Reset()
	errb.Reset()
	if code := run([]string{"doctor", "--dev", "--root", devHost}, &out, &errb); code != 0 {
		t.Fatalf("dev: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "✓ memory") || !strings.Contains(out.String(), "- kvm-tdx") ||
		!strings.Contains(out.String(), "nothing here stops the guest") {
		t.Errorf("dev report:\n%s", out.String())
	}
}

func TestDoctorFlags(t *testing.T) {
	var out, errb bytes.Buffer
	err := runDoctor(t.Context(), []string{"extra"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), `unexpected argument "extra"`) {
		t.Errorf("extra argument: %v", err)
	}
	if err := runDoctor(t.Context(), []string{"--nope"}, &out, &errb); err == nil {
		t.Error("unknown flag accepted")
	}
	errb.Reset()
	if err := runDoctor(t.Context(), []string{"-h"}, &out, &errb); err != nil || !strings.Contains(errb.String(), "chrysalis doctor --shape NAME --gpu BDF") {
		t.Errorf("-h: %v\n%s", err, errb.String())
	}
	if err := runDoctor(t.Context(), []string{"--shape", "h100-1g-32c-100g", "--qgs", "vsock:0"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "--qgs: quote generation service: vsock port 0") {
		t.Errorf("bad --qgs: %v", err)
	}
	// --qgs reaches the QGS check: QGS on vsock port 4050 is what it asks for.
	vsockHost := doctorTree(t, map[string]string{
		"/usr/lib/systemd/system/qgsd.service": "[Service]\n",
		"/etc/qgs.conf":                        "port = 4050\n",
		"/proc/meminfo":                        doctorMeminfo,
	})
	for _, tc := range []struct {
		qgs  []string
		want doctor.Status
	}{
		{nil, doctor.StatusWarn}, // the QEMU 10.1 profile wants the unix socket
		{[]string{"--qgs", "vsock:2:4050"}, doctor.StatusOK},
	} {
		out.Reset()
		args := append([]string{"--root", vsockHost, "--shape", "h100-1g-32c-100g", "--gpu", "0000:17:00.0", "--json"}, tc.qgs...)
		_ = runDoctor(t.Context(), args, &out, &errb) // the fake host fails other checks
		var r doctor.Report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		for _, c := range r.Checks {
			if c.ID == "qgs" && c.Status != tc.want {
				t.Errorf("%v: qgs check %s (%s), want %s", tc.qgs, c.Status, c.Detail, tc.want)
			}
		}
	}
	// A missing QEMU is a fatal check, not a usage error.
	root := doctorTree(t, map[string]string{"/proc/meminfo": doctorMeminfo})
	err = runDoctor(t.Context(), []string{"--dev", "--root", root, "--qemu", filepath.Join(root, "no-qemu")}, &out, &errb)
	if !errors.Is(err, errDoctorFatal) {
		t.Errorf("missing QEMU: %v", err)
	}
}
