package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMeasureGPUShapes: GPU shapes are measurable on a machine without
// GPUs (each vfio-pci captured through the H100 stand-in), the result is
// the same on every run, and it depends on the GPU count.
func TestMeasureGPUShapes(t *testing.T) {
	ovmf := os.Getenv("CHRYSALIS_TEST_OVMF")
	if ovmf == "" {
		t.Skip("CHRYSALIS_TEST_OVMF not set: no built release")
	}
	rel := filepath.Dir(ovmf)
	rtmr0 := func() map[string]string {
		code, out, errs := cli("measure", "--release", rel, "--shape", "h100-1g-32c-100g,h100-2g-64c-200g,cpu-4c-8g", "--events=false")
		if code != 0 {
			t.Fatalf("measure: exit %d: %s", code, errs)
		}
		got := map[string]string{}
		var cur string
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) >= 2 && f[0] == "shape":
				cur = f[1]
			case len(f) == 2 && f[0] == "RTMR0":
				got[cur] = f[1]
			}
		}
		if !strings.Contains(out, "stood in for vfio-pci,host=0000:11:00.0") {
			t.Errorf("no stand-in warning for the second GPU:\n%s", out)
		}
		return got
	}
	a, b := rtmr0(), rtmr0()
	if len(a) != 3 {
		t.Fatalf("RTMR0 of %d shapes, want 3: %v", len(a), a)
	}
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s: RTMR0 %s then %s", k, v, b[k])
		}
	}
	if a["h100-1g-32c-100g"] == a["h100-2g-64c-200g"] || a["h100-1g-32c-100g"] == a["cpu-4c-8g"] {
		t.Errorf("GPU count does not change RTMR0: %v", a)
	}
}

// TestMeasureSMBIOSInputs: a shape whose OVMF logs an SMBIOS event needs
// the firmware build's type 0 strings (the error names the flag), and the
// TD host's CPUID leaf 1 changes RTMR0.
func TestMeasureSMBIOSInputs(t *testing.T) {
	ovmf := os.Getenv("CHRYSALIS_TEST_OVMF")
	if ovmf == "" {
		t.Skip("CHRYSALIS_TEST_OVMF not set: no built release")
	}
	base := []string{"measure", "--release", filepath.Dir(ovmf), "--shape-file", "testdata/shapes-edk2-202505.json", "--shape", "dev-small-edk2-202505"}
	measure := func(extra ...string) (string, string) {
		code, out, errs := cli(append(base, extra...)...)
		if code != 0 {
			return "", errs
		}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "RTMR0" {
				return f[1], out
			}
		}
		t.Fatalf("no RTMR0 in:\n%s", out)
		return "", ""
	}
	if _, errs := measure(); !strings.Contains(errs, "--bios-version") {
		t.Fatalf("without the BIOS strings: %s", errs)
	}
	plain, _ := measure("--bios-version", "2026.08+ds-2")
	other, _ := measure("--bios-version", "2026.08+ds-3")
	withCPU, _ := measure("--bios-version", "2026.08+ds-2", "--cpuid-1", "000806f8:bfebfbff")
	// The SMBIOS event's detail (in --json) names both inputs.
	code, out, errs := cli(append(base, "--json", "--bios-version", "2026.08+ds-2", "--cpuid-1", "000806f8:bfebfbff")...)
	if code != 0 || !strings.Contains(out, `OVMF's type 0 \"EDK II\" \"2026.08+ds-2\" \"\"`) || !strings.Contains(out, "type 4 ProcessorId f8060800fffbebbf supplied") {
		t.Errorf("the SMBIOS event does not name the inputs (exit %d, %s):\n%s", code, errs, out)
	}
	if plain == other || plain == withCPU {
		t.Errorf("RTMR0 ignores the inputs: %s %s %s", plain, other, withCPU)
	}
	for _, bad := range [][]string{
		{"--cpuid-1", "806f8:bfebfbff", "--bios-version", "x"},
		{"--cpuid-1", "000806f8", "--bios-version", "x"},
		{"--bios-date", "01/01/2026"},
	} {
		if _, errs := measure(bad...); !strings.Contains(errs, bad[0]) {
			t.Errorf("%q: %s", bad, errs)
		}
	}
}
