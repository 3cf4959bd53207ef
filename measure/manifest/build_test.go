package manifest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/acpi"

	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// realFiles reads the release CI builds (CHRYSALIS_TEST_OVMF and
// CHRYSALIS_TEST_KERNEL, with initrd and cmdline next to the kernel when
// present).
func realFiles(t *testing.T) *Files {
	t.Helper()
	ovmf, kernel := os.Getenv("CHRYSALIS_TEST_OVMF"), os.Getenv("CHRYSALIS_TEST_KERNEL")
	if ovmf == "" || kernel == "" {
		t.Skip("CHRYSALIS_TEST_OVMF / CHRYSALIS_TEST_KERNEL not set: no real release to build a manifest of")
	}
	fw, err := tdvf.Load(ovmf)
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatal(err)
	}
	f := &Files{Firmware: fw, Kernel: k, Cmdline: "console=ttyS0"}
	dir := filepath.Dir(kernel)
	if b, err := os.ReadFile(filepath.Join(dir, "initrd")); err == nil {
		f.Initrd = b
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		f.Cmdline = string(b)
	}
	return f
}

func TestBuildRealRelease(t *testing.T) {
	f := realFiles(t)
	shapes := testShapes()
	calls := 0
	rtmr0 := func(s *shape.VMShape) (tdxmr.Digest, error) {
		calls++
		return fake("rtmr0 " + s.Name), nil
	}
	rel, inputs := testRelease()
	m, err := BuildWithRTMR0(rel, inputs, f, shapes, rtmr0)
	if err != nil {
		t.Fatal(err)
	}
	if calls != len(shapes) || len(m.Shapes) != len(shapes) {
		t.Fatalf("%d RTMR0 calls, %d shapes", calls, len(m.Shapes))
	}
	mrtds := f.Firmware.MRTDs()
	for i, s := range m.Shapes {
		sh := shapes[i]
		order, _ := tdvf.ParsePageOrder(sh.QEMU.MRTDPageOrder)
		if s.MRTD != tdxmr.Digest(mrtds[order]) {
			t.Errorf("%s: MRTD %s", s.Name, s.MRTD)
		}
		boot, err := f.Boot(sh)
		if err != nil {
			t.Fatal(err)
		}
		r1, _ := tdxmr.RTMR1(boot)
		r2, _ := tdxmr.RTMR2(boot)
		if s.RTMR1 != r1.Value || s.RTMR2 != r2.Value || s.RTMR0 != fake("rtmr0 "+sh.Name) {
			t.Errorf("%s: registers differ from tdxmr", s.Name)
		}
	}
	// The patched and unpatched kernels differ, and the patch depends
	// on memory below 2.75 GiB.
	v := map[string]tdxmr.Digest{}
	for _, x := range m.RTMR1 {
		v[x.Name] = x.Value
	}
	if len(v) != 3 || v["unpatched"] == v["patched-below4g-2048mib"] || v["patched-below4g-1024mib"] == v["patched-below4g-2048mib"] {
		t.Errorf("rtmr1 variants %v", m.RTMR1)
	}
	if _, err := BuildWithRTMR0(rel, inputs, f, shapes, nil); err == nil || !strings.Contains(err.Error(), "no RTMR0") {
		t.Errorf("nil RTMR0: %v", err)
	}
}

func TestFromMeasurements(t *testing.T) {
	shapes := testShapes()
	var ms []*tdxmr.Measurements
	for _, s := range shapes {
		d, _ := s.Digest()
		order, _ := tdvf.ParsePageOrder(s.QEMU.MRTDPageOrder)
		reg := func(label string) *tdxmr.Register { return &tdxmr.Register{Value: fake(label)} }
		ms = append(ms, &tdxmr.Measurements{
			Shape: s.Name, ShapeDigest: d, MRTDOrder: order, MRTD: fake("mrtd " + order.String()),
			RTMR0: reg("rtmr0 " + s.Name), RTMR1: reg("rtmr1 " + KernelVariant(s)), RTMR2: reg("rtmr2 " + s.OVMF.InitrdOption),
		})
	}
	ms[1].Warnings = []string{"RTMR0: capture from another QEMU"}
	rel, inputs := testRelease()
	m, warnings, err := FromMeasurements(rel, inputs, shapes, ms)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || warnings[0] != "test-gpu: RTMR0: capture from another QEMU" {
		t.Errorf("warnings %q", warnings)
	}
	// The same values as New with the same inputs: the golden manifest.
	got, _ := m.Encode()
	want, _ := testManifest(t).Encode()
	if !bytes.Equal(got, want) {
		t.Error("FromMeasurements differs from New")
	}
	ms[0].ShapeDigest = "sha256:00"
	if _, _, err := FromMeasurements(rel, inputs, shapes, ms); err == nil || !strings.Contains(err.Error(), "measurements 0 are of shape") {
		t.Errorf("wrong shape: %v", err)
	}
	if _, _, err := FromMeasurements(rel, inputs, shapes, ms[:1]); err == nil {
		t.Error("length mismatch accepted")
	}
}

func TestBuildErrors(t *testing.T) {
	rel, inputs := testRelease()
	r := &tdxmr.Release{}
	if _, _, err := Build(rel, inputs, nil, testShapes(), nil); err == nil {
		t.Error("no release accepted")
	}
	failing := func(s *shape.VMShape) (tdxmr.Inputs, error) { return tdxmr.Inputs{}, errors.New("no capture") }
	if _, _, err := Build(rel, inputs, r, testShapes(), failing); err == nil || !strings.Contains(err.Error(), "shape test-small: no capture") {
		t.Errorf("inputs error: %v", err)
	}
	empty := func(s *shape.VMShape) (tdxmr.Inputs, error) { return tdxmr.Inputs{}, nil }
	if _, _, err := Build(rel, inputs, r, testShapes(), empty); err == nil || !strings.Contains(err.Error(), "shape test-small") {
		t.Errorf("compute error: %v", err)
	}
}

// TestBuildWithTDXMR runs the whole computation for dev-small on the
// release CI built, with the ACPI tables captured from the local QEMU for
// dev-small's dev-mode device list (a literal copy of host/qemu's argv, as
// measure/tdxmr's own test does; the launcher cannot be imported here).
func TestBuildWithTDXMR(t *testing.T) {
	f := realFiles(t)
	if _, err := exec.LookPath(acpi.Binary); err != nil {
		t.Skipf("%s is not installed", acpi.Binary)
	}
	dir := filepath.Dir(os.Getenv("CHRYSALIS_TEST_KERNEL"))
	s, err := shape.Lookup("dev-small")
	if err != nil {
		t.Fatal(err)
	}
	capture := func(s *shape.VMShape) (tdxmr.Inputs, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		tb, err := acpi.Capture(ctx, acpi.Options{Args: []string{
			"-accel", "tcg", "-machine", "q35", "-cpu", "max", "-smp", "1", "-m", "1024M",
			"-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
			"-bios", filepath.Join(dir, tdxmr.FileFirmware), "-kernel", filepath.Join(dir, tdxmr.FileKernel),
			"-chardev", "file,id=console,path=/dev/null", "-serial", "chardev:console",
			"-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile=",
			"-drive", "file=/dev/null,if=none,id=config,format=raw,readonly=on", "-device", "virtio-blk-pci,drive=config,serial=chrysalis-config",
			"-device", "virtio-serial-pci",
			"-chardev", "null,id=status", "-device", "virtserialport,chardev=status,name=chrysalis.status",
		}})
		return tdxmr.Inputs{Tables: tb}, err
	}
	r, err := tdxmr.ReadRelease(dir)
	if err != nil {
		t.Fatal(err)
	}
	rel, inputs := testRelease()
	m, warnings, err := Build(rel, inputs, r, []*shape.VMShape{s}, capture)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("warnings: %q", warnings)
	sh := m.Shapes[0]
	mrtd, r1, r2, err := CodeRegisters(f, s)
	if err != nil {
		t.Fatal(err)
	}
	if sh.MRTD != mrtd.Value || sh.RTMR1 != r1.Value || sh.RTMR2 != r2.Value || sh.RTMR0 == (tdxmr.Digest{}) {
		t.Errorf("Build and CodeRegisters disagree")
	}
	t.Logf("dev-small image hash %s (RTMR0 %s)", sh.ImageHash, sh.RTMR0)
}
