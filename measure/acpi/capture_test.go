package acpi

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/binary"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func needQEMU(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(Binary); err != nil {
		t.Skipf("%s is not installed: the real-QEMU capture tests need it (apt-get install qemu-system-x86)", Binary)
	}
}

// captureArgs is a dev-mode style machine with three virtio functions
// (each with a 64-bit BAR), nothing on the host side.
func captureArgs(smp string) []string {
	return []string{
		"-accel", "tcg", "-machine", "q35", "-cpu", "max", "-smp", smp, "-m", "1024M",
		"-nographic", "-nodefaults", "-no-user-config",
		"-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile=",
		"-drive", "file=/nonexistent.img,if=none,id=config,format=raw,readonly=on", "-device", "virtio-blk-pci,drive=config,serial=c",
		"-device", "virtio-serial-pci",
	}
}

func capture(t testing.TB, args []string) *Tables {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tb, err := Capture(ctx, Options{Args: args})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// qwordMemory returns the minimum addresses of the QWordMemory resource
// descriptors (ACPI 6.4 §6.4.3.5.1) in b.
func qwordMemory(b []byte) []uint64 {
	var out []uint64
	for i := 0; ; i++ {
		j := bytes.Index(b[i:], []byte{0x8a, 0x2b, 0x00})
		if j < 0 || i+j+46 > len(b) {
			return out
		}
		i += j
		out = append(out, binary.LittleEndian.Uint64(b[i+14:]))
	}
}

func TestCaptureRealQEMU(t *testing.T) {
	needQEMU(t)
	tb := capture(t, captureArgs("1"))
	t.Logf("%s, accelerator %s, window %+v, BARs %v", tb.QEMU, tb.Accelerator, tb.Window, tb.BARs)
	if !strings.HasPrefix(tb.QEMU, "QEMU emulator version "+tb.QEMUVersion) {
		t.Errorf("version %q / %q", tb.QEMU, tb.QEMUVersion)
	}
	blobs, err := tb.Measured()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range blobs {
		names = append(names, b.Name)
	}
	if strings.Join(names, ",") != "etc/table-loader,etc/acpi/rsdp,etc/acpi/tables" {
		t.Fatalf("measured blobs %q", names)
	}
	loader, rsdp, tables := blobs[0].Data, blobs[1].Data, blobs[2].Data
	if len(loader) != 4096 || len(rsdp) != 20 || len(tables) < 64<<10 {
		t.Errorf("sizes: loader %d, rsdp %d, tables %d", len(loader), len(rsdp), len(tables))
	}
	// The RSDP is unpatched: "RSD PTR ", zero checksum, OEM "BOCHS ".
	if string(rsdp[:8]) != "RSD PTR " || rsdp[8] != 0 || string(rsdp[9:15]) != "BOCHS " {
		t.Errorf("rsdp % x", rsdp)
	}
	for _, sig := range []string{"DSDT", "FACP", "APIC", "MCFG", "HPET", "WAET", "RSDT", "FACS"} {
		if !bytes.Contains(tables, []byte(sig)) {
			t.Errorf("tables lack %s", sig)
		}
	}
	// The MCFG names OVMF's PCIEXBAR: the chipset was programmed before
	// the tables were built.
	if i := bytes.Index(tables, []byte("MCFG")); i < 0 || binary.LittleEndian.Uint64(tables[i+44:]) != pciExpressBase {
		t.Errorf("MCFG base is not %#x", pciExpressBase)
	}
	// OVMF's 64-bit window for TCG -cpu max (AMD, 40 bits, HT hole), the
	// three virtio BARs packed at its base, and QEMU's DSDT reporting the
	// 64-bit PCI hole from there.
	var bars64 []PCIBar
	for _, b := range tb.BARs {
		if b.Kind == PMem64 || b.Kind == Mem64 {
			bars64 = append(bars64, b)
		}
	}
	if tb.CPU != CPUTCGMax || tb.Window.Base != 0xC000000000 || len(bars64) != 3 {
		t.Fatalf("cpu %+v window %+v bars %v", tb.CPU, tb.Window, tb.BARs)
	}
	for i, b := range bars64 {
		if b.Dev != i+1 || b.BAR != 4 || b.Size != 0x4000 || b.Addr != 0xC000000000+uint64(i)*0x4000 {
			t.Errorf("BAR %d: %v", i, b)
		}
	}
	if q := qwordMemory(tables); len(q) != 1 || q[0] != 0xC000000000 {
		t.Errorf("DSDT QWordMemory minima %#x, want [0xc000000000]", q)
	}
	// The files edk2's fw_cfg cache reads.
	if bytes.Contains(tb.Files["bootorder"], []byte("linuxboot")) || len(tb.BootMenu) != 2 {
		t.Errorf("bootorder %q (no -kernel given), BootMenu % x", tb.Files["bootorder"], tb.BootMenu)
	}
	if _, ok := tb.Files["etc/e820"]; !ok {
		t.Error("no etc/e820")
	}

	// Deterministic, and sensitive to the device list and vCPU count.
	again := capture(t, captureArgs("1"))
	if digest(t, again) != digest(t, tb) {
		t.Error("two captures of the same arguments differ")
	}
	two := capture(t, captureArgs("2"))
	if digest(t, two) == digest(t, tb) {
		t.Error("2 vCPUs give the same tables as 1")
	}
	fewer := captureArgs("1")
	fewer = fewer[:len(fewer)-2] // drop virtio-serial-pci
	if digest(t, capture(t, fewer)) == digest(t, tb) {
		t.Error("dropping a device leaves the tables unchanged")
	}
}

func digest(t testing.TB, tb *Tables) string {
	t.Helper()
	blobs, err := tb.Measured()
	if err != nil {
		t.Fatal(err)
	}
	h := sha512.New384()
	for _, b := range blobs {
		h.Write(b.Data)
	}
	return string(h.Sum(nil))
}

func TestCaptureErrors(t *testing.T) {
	needQEMU(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Args: []string{"-accel", "tcg", "-machine", "pc", "-m", "512M"}}, "not the q35 MCH 8086:29c0"},
		{Options{Args: []string{"-accel", "tcg", "-machine", "q35", "-device", "no-such-device"}}, "QEMU said:"},
		{Options{Args: []string{"-accel", "kvm", "-cpu", "host", "-machine", "q35"}}, "set Options.CPU"},
		{Options{Binary: "/nonexistent/qemu"}, "--version"},
	} {
		if _, err := Capture(ctx, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.o.Args, err, tc.want)
		}
	}
}

// BenchmarkCapture times one capture of a three-device machine: QEMU
// start-up, chipset and BAR programming, and the fw_cfg reads.
func BenchmarkCapture(b *testing.B) {
	needQEMU(b)
	for b.Loop() {
		capture(b, captureArgs("1"))
	}
}
