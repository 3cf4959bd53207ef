package swtpm

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/acpi"
	"github.com/chrysalis-cc/chrysalis/measure/eventlog"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// gpuMmio64Mb enlarges OVMF's 64-bit aperture to 256 GiB: under TCG the
// vCPU has 40 physical address bits, whose dynamic aperture (128 GiB)
// cannot hold an H100's 128 GiB + 32 MiB of prefetchable BARs.
const gpuMmio64Mb = "262144"

// iomemEntry is one line of /proc/iomem.
type iomemEntry struct {
	start, end uint64
	name       string
}

func parseIomem(console []byte) []iomemEntry {
	var out []iomemEntry
	sc := bufio.NewScanner(bytes.NewReader(console))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	in := false
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasSuffix(line, "DUMPINIT-IOMEM-BEGIN"):
			in = true
		case strings.HasPrefix(line, "DUMPINIT-IOMEM-END"):
			in = false
		case in:
			rng, name, ok := strings.Cut(strings.TrimSpace(line), " : ")
			lo, hi, ok2 := strings.Cut(rng, "-")
			if !ok || !ok2 {
				continue
			}
			s, err1 := strconv.ParseUint(lo, 16, 64)
			e, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				out = append(out, iomemEntry{s, e, name})
			}
		}
	}
	return out
}

// TestSwtpmGPUStandIn boots the release's OVMF under TCG with swtpm and a
// pcie-root-port holding the H100 stand-in (the real H100 BAR sizes:
// 128 GiB + 32 MiB prefetchable), and compares what the firmware measured
// for the ACPI blobs with acpi.Capture of the vfio-pci launch argv (the
// capture substitutes the stand-in itself), and the BAR and bridge window
// addresses the guest kernel reports with the capture's placements.
func TestSwtpmGPUStandIn(t *testing.T) {
	if testing.Short() {
		t.Skip("boots the release under TCG with swtpm (~20 s); run without -short")
	}
	// The dev-mode launch of the shape plus a TPM, a larger OVMF 64-bit
	// aperture and a GPU behind a root port, as host/qemu writes it for
	// GPU shapes (the host address names no device here).
	b := newTPMBoot(t,
		"-fw_cfg", "name=opt/ovmf/X-PciMmio64Mb,string="+gpuMmio64Mb,
		"-device", "pcie-root-port,id=rp0,bus=pcie.0,chassis=1",
		"-device", "vfio-pci,host=0000:ff:1f.7,bus=rp0,rombar=0")
	absent := func(string) bool { return false }
	tables := b.capture(t, acpi.Options{GPUStandIn: &acpi.GPUH100, HostPCIPresent: absent})
	c, _, log := b.boot(t, func(args []string) []string {
		out, _, err := acpi.StandInArgs(args, &acpi.GPUH100, absent)
		if err != nil {
			t.Fatal(err)
		}
		return out
	})

	var report []string
	// The ACPI DATA events (PCR1) against the capture's blobs.
	var got []*eventlog.Event
	for i := range log.Events {
		if e := &log.Events[i]; e.Index == 1 && e.Type == eventlog.EvPlatformConfigFlags {
			got = append(got, e)
		}
	}
	blobs, err := tables.Measured()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(blobs) {
		t.Fatalf("PCR1 has %d ACPI DATA events, the capture measures %d blobs", len(got), len(blobs))
	}
	for i, b := range blobs {
		want := tdxmr.Sum384(b.Data)
		sum, _ := got[i].Digest(eventlog.AlgSHA384)
		if !bytes.Equal(sum, want[:]) {
			t.Errorf("ACPI DATA %s: firmware measured %x, capture gives %s (%d bytes)", b.Name, sum, want, len(b.Data))
			report = append(report, fmt.Sprintf("ACPI DATA %-20s DIFFERS", b.Name))
		} else {
			report = append(report, fmt.Sprintf("ACPI DATA %-20s equal (%s…)", b.Name, want.String()[:16]))
		}
	}

	// The guest kernel's view of the BARs and bridge windows.
	iomem := parseIomem(c)
	if len(iomem) == 0 {
		t.Fatalf("no /proc/iomem on the console:\n%s", c)
	}
	has := func(start, size uint64, name string) bool {
		for _, e := range iomem {
			if e.start == start && e.end == start+size-1 && e.name == name {
				return true
			}
		}
		return false
	}
	for _, b := range tables.BARs {
		name := fmt.Sprintf("0000:%02x:%02x.%d", b.Bus, b.Dev, b.Fn)
		if !has(b.Addr, b.Size, name) {
			t.Errorf("guest /proc/iomem has no [%#x-%#x] %s (capture: %v)", b.Addr, b.Addr+b.Size-1, name, b)
		}
	}
	for _, br := range tables.Bridges {
		name := fmt.Sprintf("PCI Bus 0000:%02x", br.Secondary)
		for _, w := range []acpi.Range{br.Mem, br.PMem} {
			if w.Size != 0 && !has(w.Base, w.Size, name) {
				t.Errorf("guest /proc/iomem has no bridge window [%#x-%#x] %s (capture: %v)", w.Base, w.Base+w.Size-1, name, br)
			}
		}
	}
	report = append(report, fmt.Sprintf("guest /proc/iomem has the %d BARs and the windows of %d bridge(s) the capture placed", len(tables.BARs), len(tables.Bridges)))
	report = append(report, fmt.Sprintf("capture: %s, window [%#x,+%#x), bridges %v", tables.QEMU, tables.Window.Base, tables.Window.Size, tables.Bridges))
	for _, b := range tables.BARs {
		report = append(report, "  "+b.String())
	}
	t.Logf("GPU stand-in cross-check (%s + pcie-root-port + %s stand-in, X-PciMmio64Mb=%s):\n  %s", shapeName, acpi.GPUH100.Model, gpuMmio64Mb, strings.Join(report, "\n  "))
}
