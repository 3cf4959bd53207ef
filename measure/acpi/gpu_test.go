package acpi

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestStandInArgs(t *testing.T) {
	launch := []string{
		"-object", "iommufd,id=iommufd0",
		"-device", "pcie-root-port,id=rp0,bus=pcie.0,chassis=1",
		"-device", "vfio-pci,host=0000:3b:00.0,bus=rp0,iommufd=iommufd0,acpi-index=7",
		"-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=2",
		"-device", "vfio-pci,host=0000:bc:00.0,bus=rp1,iommufd=iommufd0",
	}
	for _, tc := range []struct {
		name    string
		present map[string]bool
		want    []string
		notes   int
	}{
		{"none present", nil, []string{
			"-device", "pcie-root-port,id=rp0,bus=pcie.0,chassis=1",
			"-object", "memory-backend-ram,id=chrysalis-gpu0-bar,size=137438953472,reserve=off",
			"-device", "nvme,serial=gpu0,pmrdev=chrysalis-gpu0-bar,cmb_size_mb=32,bus=rp0,acpi-index=7",
			"-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=2",
			"-object", "memory-backend-ram,id=chrysalis-gpu1-bar,size=137438953472,reserve=off",
			"-device", "nvme,serial=gpu1,pmrdev=chrysalis-gpu1-bar,cmb_size_mb=32,bus=rp1",
		}, 3},
		{"one present", map[string]bool{"0000:bc:00.0": true}, []string{
			"-object", "iommufd,id=iommufd0",
			"-device", "pcie-root-port,id=rp0,bus=pcie.0,chassis=1",
			"-object", "memory-backend-ram,id=chrysalis-gpu0-bar,size=137438953472,reserve=off",
			"-device", "nvme,serial=gpu0,pmrdev=chrysalis-gpu0-bar,cmb_size_mb=32,bus=rp0,acpi-index=7",
			"-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=2",
			"-device", "vfio-pci,host=0000:bc:00.0,bus=rp1,iommufd=iommufd0",
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, notes, err := StandInArgs(launch, &GPUH100, func(h string) bool { return tc.present[h] })
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(out, tc.want) {
				t.Errorf("got\n%q\nwant\n%q", out, tc.want)
			}
			if len(notes) != tc.notes {
				t.Errorf("notes %v", notes)
			}
			for _, n := range notes {
				if !n.StandIn {
					t.Errorf("note %v not marked StandIn", n)
				}
			}
		})
	}
}

func TestStandInErrors(t *testing.T) {
	for _, tc := range []struct {
		p    GPUProfile
		args []string
		want string
	}{
		{GPUH100, []string{"-device", "vfio-pci,sysfsdev=/sys/x,bus=rp0"}, "without host="},
		{GPUProfile{Model: "x", BARs: []GPUBAR{{Index: 0, Size: 3 << 20, Bits64: true, Prefetchable: true}}}, nil, "not a power of two"},
		{GPUProfile{Model: "x", BARs: []GPUBAR{{Index: 0, Size: 1 << 20, Prefetchable: true}}}, nil, "32-bit prefetchable"},
		{GPUProfile{Model: "x", BARs: []GPUBAR{{Index: 0, Size: 1 << 20, Bits64: true}}}, nil, "64-bit non-prefetchable"},
		{GPUProfile{Model: "x", BARs: []GPUBAR{{Index: 0, Size: 1 << 20}}}, nil, "has 0 64-bit prefetchable"},
		{GPUProfile{Model: "x", BARs: []GPUBAR{{Index: 0, Size: 1 << 30, Bits64: true, Prefetchable: true}, {Index: 2, Size: 4096, Bits64: true, Prefetchable: true}}}, nil, "1 MiB granularity"},
	} {
		args := tc.args
		if args == nil {
			args = []string{"-device", "vfio-pci,host=0000:01:00.0,bus=rp0"}
		}
		if _, _, err := StandInArgs(args, &tc.p, func(string) bool { return false }); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: error %v, want %q", tc.p.Model, args, err, tc.want)
		}
	}
	if _, err := GPUProfileFor("a100"); err == nil || !strings.Contains(err.Error(), "known: h100") {
		t.Errorf("GPUProfileFor(a100): %v", err)
	}
}

// shapeArgv returns the TDX launch argv host/qemu's golden files record
// for a shape, without argv[0], with the firmware replaced by a blank
// image and the direct-boot files removed (the capture never runs guest
// code, and no ACPI table depends on them).
func shapeArgv(t testing.TB, shape string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "host", "qemu", "testdata", shape+".tdx.golden"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	bios := filepath.Join(t.TempDir(), "bios.fd")
	if err := os.WriteFile(bios, make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := 1; i < len(lines); i++ {
		switch lines[i] {
		case "-kernel", "-initrd", "-append":
			i++
		case "-bios":
			out = append(out, "-bios", bios)
			i++
		default:
			out = append(out, lines[i])
		}
	}
	return out
}

// gpuCaptureReport is the golden text of a GPU shape's capture: the
// 64-bit window, bridges, 64-bit BARs, and the SHA-384 of each measured
// blob (the RTMR0 "ACPI DATA" event digests).
func gpuCaptureReport(t testing.TB, tb *Tables) string {
	t.Helper()
	var sb strings.Builder
	fmt.Fprintf(&sb, "qemu %s\nwindow %#x +%#x\n", tb.QEMUVersion, tb.Window.Base, tb.Window.Size)
	for _, b := range tb.Bridges {
		fmt.Fprintf(&sb, "bridge %s\n", b)
	}
	for _, b := range tb.BARs {
		if b.Placed == Mem64 || b.Placed == PMem64 {
			fmt.Fprintf(&sb, "bar %s\n", b)
		}
	}
	blobs, err := tb.Measured()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		sum := sha512.Sum384(b.Data)
		fmt.Fprintf(&sb, "acpi-data %s %s\n", b.Name, hex.EncodeToString(sum[:]))
	}
	return sb.String()
}

func TestCaptureGPUShapes(t *testing.T) {
	needQEMU(t)
	for _, shape := range []string{"h100-1g-32c-100g", "h100-2g-64c-200g"} {
		t.Run(shape, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			tb, err := Capture(ctx, Options{Args: shapeArgv(t, shape), GPUStandIn: &GPUH100, HostPCIPresent: func(string) bool { return false }})
			if err != nil {
				t.Fatal(err)
			}
			got := gpuCaptureReport(t, tb)
			t.Logf("%s", got)
			// Each root port: a 128 GiB + 32 MiB prefetchable window
			// (the GPU's two BARs, larger than OVMF's 32 GiB padding)
			// at the bottom of OVMF's TDX window, 128 GiB aligned.
			gpus := strings.Count(shape, "-1g-") + 2*strings.Count(shape, "-2g-")
			if len(tb.Bridges) != gpus {
				t.Fatalf("bridges %v", tb.Bridges)
			}
			for i, b := range tb.Bridges {
				if !b.PMem64 || b.PMem.Size != 128<<30+32<<20 || b.PMem.Base != tb.Window.Base+uint64(i)*256<<30 || b.Secondary != i+1 {
					t.Errorf("bridge %d: %v", i, b)
				}
			}
			if q := qwordMemory(tb.Files[FileTables]); len(q) != 1 || q[0] != tb.Window.Base {
				t.Errorf("DSDT QWordMemory minima %#x, want [%#x]", q, tb.Window.Base)
			}
			golden := filepath.Join("testdata", shape+".capture.golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(want, []byte(got)) {
				t.Errorf("capture differs from %s (QEMU %s; regenerate with -update if intended):\n%s", golden, tb.QEMUVersion, got)
			}
		})
	}
}

// BenchmarkCaptureGPUShape times one capture of the two-GPU shape with
// the stand-in: QEMU start-up, enumeration behind two root ports, BAR and
// window programming, and the fw_cfg reads.
func BenchmarkCaptureGPUShape(b *testing.B) {
	needQEMU(b)
	args := shapeArgv(b, "h100-2g-64c-200g")
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if _, err := Capture(ctx, Options{Args: args, GPUStandIn: &GPUH100, HostPCIPresent: func(string) bool { return false }}); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
}
