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
