package acpi

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// GPUBAR is one memory BAR of a GPU model.
type GPUBAR struct {
	Index        int    `json:"index"`
	Size         uint64 `json:"size"`
	Bits64       bool   `json:"bits64"`
	Prefetchable bool   `json:"prefetchable"`
}

// GPUProfile is the memory BAR layout of a GPU model, which decides the
// prefetchable window OVMF gives the PCIe root port the GPU sits behind
// and so the 64-bit PCI hole in the DSDT.
type GPUProfile struct {
	Model string   `json:"model"`
	BARs  []GPUBAR `json:"bars"`
}

// GPUH100 is an NVIDIA H100 (PCIe and SXM5, 80 GB) as lspci reports it:
// BAR0 16 MiB 32-bit non-prefetchable, BAR1 128 GiB 64-bit prefetchable,
// BAR3 32 MiB 64-bit prefetchable.
var GPUH100 = GPUProfile{Model: "h100", BARs: []GPUBAR{
	{Index: 0, Size: 16 << 20},
	{Index: 1, Size: 128 << 30, Bits64: true, Prefetchable: true},
	{Index: 3, Size: 32 << 20, Bits64: true, Prefetchable: true},
}}

// GPUProfiles are the known GPU models by name.
var GPUProfiles = map[string]*GPUProfile{GPUH100.Model: &GPUH100}

// GPUProfileFor returns the profile of a GPU model name.
func GPUProfileFor(model string) (*GPUProfile, error) {
	if p, ok := GPUProfiles[model]; ok {
		return p, nil
	}
	var names []string
	for n := range GPUProfiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return nil, fmt.Errorf("acpi: unknown GPU model %q (known: %s)", model, strings.Join(names, ", "))
}

// standInDevice is the QEMU device of a stand-in: an NVMe controller
// without namespaces. Its controller registers are a small 64-bit
// non-prefetchable BAR0 (behind a PCI bridge edk2 places it in the 32-bit
// window, as it does the GPU's BAR0); its controller memory buffer
// (cmb_size_mb, BAR2) and persistent memory region (pmrdev, BAR4) are
// 64-bit prefetchable BARs of chosen power-of-two sizes. Like vfio-pci it
// is a hot-pluggable, non-bridge PCI function whose QOM class is not VGA,
// so QEMU describes the slot under the root port with the same ACPI
// objects; it has no option ROM and offers no boot option. QEMU 7.2 and
// later have all of it.
const standInDevice = "nvme"

// standIn returns the -object and -device values that stand in for one
// GPU: the profile's 64-bit prefetchable BARs become the PMR (largest)
// and the CMB (the other, if any); the non-prefetchable BARs are not
// reproduced (they lie in the bridge's 32-bit window, which no ACPI table
// depends on).
func (p *GPUProfile) standIn(n int, keep []string) (object, device string, err error) {
	var pref []uint64
	for _, b := range p.BARs {
		if b.Size == 0 || b.Size&(b.Size-1) != 0 {
			return "", "", fmt.Errorf("acpi: GPU model %s: BAR%d size %#x is not a power of two", p.Model, b.Index, b.Size)
		}
		switch {
		case b.Bits64 && b.Prefetchable:
			pref = append(pref, b.Size)
		case b.Prefetchable:
			return "", "", fmt.Errorf("acpi: GPU model %s: BAR%d is 32-bit prefetchable, which the %s stand-in cannot reproduce", p.Model, b.Index, standInDevice)
		case b.Bits64:
			return "", "", fmt.Errorf("acpi: GPU model %s: BAR%d is 64-bit non-prefetchable, which the %s stand-in cannot reproduce", p.Model, b.Index, standInDevice)
		}
	}
	if len(pref) == 0 || len(pref) > 2 {
		return "", "", fmt.Errorf("acpi: GPU model %s has %d 64-bit prefetchable BARs; the %s stand-in has one or two", p.Model, len(pref), standInDevice)
	}
	slices.Sort(pref)
	pmr := pref[len(pref)-1]
	id := fmt.Sprintf("chrysalis-gpu%d-bar", n)
	object = fmt.Sprintf("memory-backend-ram,id=%s,size=%d,reserve=off", id, pmr)
	props := []string{standInDevice, fmt.Sprintf("serial=gpu%d", n), "pmrdev=" + id}
	if len(pref) == 2 {
		if pref[0] < 1<<20 {
			return "", "", fmt.Errorf("acpi: GPU model %s: a %#x-byte prefetchable BAR is below the stand-in's 1 MiB granularity", p.Model, pref[0])
		}
		props = append(props, fmt.Sprintf("cmb_size_mb=%d", pref[0]>>20))
	}
	return object, joinProps(append(props, keep...)), nil
}

// HostPCIPresent reports whether /sys/bus/pci/devices has the device of
// a vfio-pci host= address.
func HostPCIPresent(host string) bool {
	if strings.ContainsAny(host, "/") || host == "" {
		return false
	}
	_, err := os.Stat(filepath.Join("/sys/bus/pci/devices", host))
	return err == nil
}

// StandInArgs replaces every vfio-pci -device whose host device is absent
// (present reports it; nil is HostPCIPresent) by the stand-in of GPU
// profile p at the same place in the device order, keeping its bus,
// addr, id, multifunction and acpi-index, and adds the stand-in's memory
// backend just before it. An iommufd object no remaining vfio-pci device
// uses is removed. The result is a command line for a machine without the
// GPUs whose ACPI tables equal those of the launch with GPUs of model p.
func StandInArgs(args []string, p *GPUProfile, present func(string) bool) ([]string, []Rewritten, error) {
	if p == nil {
		return nil, nil, fmt.Errorf("acpi: no GPU profile for the stand-in")
	}
	if present == nil {
		present = HostPCIPresent
	}
	var out []string
	var notes []Rewritten
	usedIOMMUFD := map[string]bool{}
	n := 0
	for i := 0; i < len(args); i++ {
		if args[i] != "-device" || i+1 >= len(args) {
			out = append(out, args[i])
			continue
		}
		val := args[i+1]
		i++
		parts, _ := splitProps(val)
		driver := parts[0]
		if k, d, ok := strings.Cut(driver, "="); ok && k == "driver" {
			driver = d
		}
		if driver != "vfio-pci" {
			out = append(out, "-device", val)
			continue
		}
		host, iommufd := "", ""
		var keep []string
		for _, pr := range parts[1:] {
			k, v, _ := strings.Cut(pr, "=")
			switch k {
			case "host":
				host = v
			case "bus", "addr", "id", "multifunction", "acpi-index":
				keep = append(keep, pr)
			case "iommufd":
				iommufd = v
			}
		}
		if host == "" {
			return nil, nil, fmt.Errorf("acpi: -device %q: vfio-pci without host= (sysfsdev= is not supported)", val)
		}
		if present(host) {
			usedIOMMUFD[iommufd] = true
			out = append(out, "-device", val)
			continue
		}
		obj, dev, err := p.standIn(n, keep)
		if err != nil {
			return nil, nil, err
		}
		n++
		why := fmt.Sprintf("GPU stand-in: host device %s is absent; %s has the %s's 64-bit prefetchable BARs and, like vfio-pci, is a hot-pluggable non-VGA endpoint", host, standInDevice, p.Model)
		notes = append(notes, Rewritten{Option: "-device", From: val, To: dev, Why: why, StandIn: true})
		out = append(out, "-object", obj, "-device", dev)
	}
	// Drop iommufd objects that only replaced devices used.
	final := out[:0:0]
	for i := 0; i < len(out); i++ {
		if out[i] == "-object" && i+1 < len(out) {
			if typ, err := objectType(out[i+1]); err == nil && typ == "iommufd" {
				if id, err := requireID(out[i+1]); err == nil && !usedIOMMUFD[id] {
					notes = append(notes, Rewritten{Option: "-object", From: out[i+1], Why: "iommufd object of the replaced vfio-pci devices", StandIn: true})
					i++
					continue
				}
			}
		}
		final = append(final, out[i])
	}
	return final, notes, nil
}
