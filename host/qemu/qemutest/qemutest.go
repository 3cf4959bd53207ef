// Package qemutest provides a fake release for tests that start a real
// QEMU without booting anything.
package qemutest

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/image"
)

// WriteFakeRelease writes OVMF.fd, vmlinuz, initrd and cmdline into dir
// and returns the release. QEMU accepts them, but nothing boots: the
// "firmware" is 64 KiB of zeros the vCPU executes forever (as no-ops), and
// the "kernel" is a bare bzImage header (boot protocol 2.15) that QEMU
// loads but never runs. Such a VM never reports on the status channel and
// never writes to the console, which is what lifecycle tests need.
func WriteFakeRelease(tb testing.TB, dir string) qemu.Release {
	tb.Helper()
	kernel := make([]byte, 16<<10)
	kernel[0x1f1] = 4 // setup_sects
	copy(kernel[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(kernel[0x206:], 0x020f) // boot protocol
	kernel[0x211] = 1                                     // loadflags: LOADED_HIGH
	binary.LittleEndian.PutUint32(kernel[0x22c:], 0x37ffffff)
	files := map[string][]byte{
		qemu.FileOVMF:    make([]byte, 64<<10),
		qemu.FileKernel:  kernel,
		qemu.FileInitrd:  make([]byte, 4096),
		qemu.FileCmdline: []byte("console=ttyS0 panic=-1 loglevel=4\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	r, err := qemu.ReleaseFromDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// WriteSealedFakeRelease writes the fake release plus the release.json and
// SHA256SUMS that image.LoadRelease requires (image.Seal), for tests of
// code that checks a release's integrity before using it; release.json
// lists modules as the initramfs's modules.
func WriteSealedFakeRelease(tb testing.TB, dir string, modules ...string) {
	tb.Helper()
	WriteFakeRelease(tb, dir)
	cmdline, err := os.ReadFile(filepath.Join(dir, image.FileCmdline))
	if err != nil {
		tb.Fatal(err)
	}
	rel := &image.Release{Format: image.ReleaseFormat, Cmdline: string(cmdline), KernelVersion: "6.12.0-test", SourceCommit: "unknown", Modules: modules}
	if err := image.Seal(dir, rel); err != nil {
		tb.Fatal(err)
	}
	if _, err := image.LoadRelease(dir); err != nil {
		tb.Fatal(err)
	}
}
