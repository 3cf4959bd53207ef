package tdxmr

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/chrysalis-cc/chrysalis/measure/acpi"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/smbios"
	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
)

// Release file names (the image package's release directory).
const (
	FileFirmware = "OVMF.fd"
	FileKernel   = "vmlinuz"
	FileInitrd   = "initrd"
	FileCmdline  = "cmdline"
)

// Release is what a release directory contributes to the measurements.
type Release struct {
	// Dir is where the files were read from ("" when built in memory).
	Dir      string
	Firmware []byte
	Kernel   []byte
	Initrd   []byte
	// Cmdline is the -append string: the cmdline file less one trailing
	// newline.
	Cmdline string
}

// ReadRelease reads the firmware, kernel, initrd and command line of a
// release directory. It does not check SHA256SUMS or release.json
// (image.LoadRelease does).
func ReadRelease(dir string) (*Release, error) {
	r := &Release{Dir: dir}
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{FileFirmware, &r.Firmware}, {FileKernel, &r.Kernel}, {FileInitrd, &r.Initrd}} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return nil, fmt.Errorf("tdxmr: release: %w", err)
		}
		*f.dst = b
	}
	c, err := os.ReadFile(filepath.Join(dir, FileCmdline))
	if err != nil {
		return nil, fmt.Errorf("tdxmr: release: %w", err)
	}
	r.Cmdline = strings.TrimSuffix(string(c), "\n")
	return r, nil
}

// Inputs are what a release and a shape do not determine.
type Inputs struct {
	// Tables are the fw_cfg files QEMU serves for the shape's device list
	// (acpi.Capture of host/qemu's argv for the shape). Their digests are
	// those of the QEMU version that produced them.
	Tables *acpi.Tables
	// BIOS are the SMBIOS type 0 strings of the firmware build (layouts
	// with an SMBIOS event; see RTMR0Input.BIOS).
	BIOS *smbios.BIOSInfo
	// ProcessorID is the TD's CPUID leaf 1 (EAX, EDX) for SMBIOS type 4;
	// nil keeps the capture's (see RTMR0Input.ProcessorID).
	ProcessorID *[8]byte
	// SecureBoot is the SecureBoot variable's data; nil for a firmware
	// without Secure Boot support (Debian's OVMF.fd).
	SecureBoot []byte
}

// Measurements are the expected boot measurements of a release launched
// with a VM shape.
type Measurements struct {
	// Shape is the shape's name; ShapeDigest its shape.Digest.
	Shape       string
	ShapeDigest string
	// MRTDOrder is the page-add order of the shape's QEMU profile.
	MRTDOrder tdvf.PageOrder
	MRTD      Digest
	// RTMR0-2 carry their labelled events.
	RTMR0, RTMR1, RTMR2 *Register
	// ACPIQEMUVersion is the version of the QEMU that built the fw_cfg
	// files RTMR0 uses.
	ACPIQEMUVersion string
	// Warnings name the inputs whose provenance limits the result.
	Warnings []string
}

// ComputeAll reads the release in dir and computes MRTD and RTMR0-2 for
// the shape.
func ComputeAll(dir string, s *shape.VMShape, in Inputs) (*Measurements, error) {
	r, err := ReadRelease(dir)
	if err != nil {
		return nil, err
	}
	return Compute(r, s, in)
}

// Compute computes MRTD and RTMR0-2 of a release for a shape: MRTD under
// the QEMU profile's page order, RTMR0 under the OVMF profile's event
// layout with the captured fw_cfg files, RTMR1 for the kernel as the QEMU
// profile serves it, RTMR2 with the OVMF profile's initrd= placement.
func Compute(r *Release, s *shape.VMShape, in Inputs) (*Measurements, error) {
	if s == nil {
		return nil, fmt.Errorf("tdxmr: no VM shape")
	}
	sd, err := s.Digest() // validates the shape
	if err != nil {
		return nil, fmt.Errorf("tdxmr: %w", err)
	}
	m := &Measurements{Shape: s.Name, ShapeDigest: sd}
	fw, err := tdvf.Parse(r.Firmware)
	if err != nil {
		return nil, fmt.Errorf("tdxmr: release firmware %s: %w", FileFirmware, err)
	}
	if m.MRTDOrder, err = tdvf.ParsePageOrder(s.QEMU.MRTDPageOrder); err != nil {
		return nil, err
	}
	if m.MRTD, err = fw.MRTD(m.MRTDOrder); err != nil {
		return nil, err
	}
	layout, err := LayoutFor(s.OVMF.EventLayout)
	if err != nil {
		return nil, err
	}
	memory := uint64(s.MemoryMiB) << 20
	if in.Tables != nil {
		m.ACPIQEMUVersion = in.Tables.QEMUVersion
		if !sameMinor(in.Tables.QEMUVersion, s.QEMU.QEMUVersion) {
			m.Warnings = append(m.Warnings, fmt.Sprintf(
				"RTMR0: the ACPI and fw_cfg digests are those of QEMU %s, but shape %q's QEMU profile %q is QEMU %s; they match a TD only when captured with that QEMU version",
				in.Tables.QEMUVersion, s.Name, s.QEMU.Name, s.QEMU.QEMUVersion))
		}
		for _, rw := range in.Tables.Rewritten {
			if rw.StandIn && rw.To != "" {
				m.Warnings = append(m.Warnings, "RTMR0: the capture stood in for "+rw.From+" with "+rw.To)
			}
		}
	}
	for _, e := range layout.Entries {
		if e.Kind == KindSMBIOS && in.ProcessorID == nil {
			m.Warnings = append(m.Warnings, "RTMR0: the SMBIOS type 4 ProcessorId (CPUID leaf 1) is that of the capture's vCPU model; a TD's QEMU takes it from the host CPU (Inputs.ProcessorID)")
		}
	}
	if m.RTMR0, err = RTMR0(RTMR0Input{
		Firmware: fw, MemorySize: memory, Layout: layout, Tables: in.Tables,
		SecureBoot: in.SecureBoot, BIOS: in.BIOS, ProcessorID: in.ProcessorID,
	}); err != nil {
		return nil, err
	}
	opt, err := ParseInitrdOption(s.OVMF.InitrdOption)
	if err != nil {
		return nil, err
	}
	b := Boot{
		Kernel: r.Kernel, Initrd: r.Initrd, Cmdline: r.Cmdline, MemorySize: memory,
		KernelSource: KernelSourceFor(s.QEMU.PatchesKernelHeader), InitrdOption: opt,
	}
	if m.RTMR1, err = RTMR1(b); err != nil {
		return nil, err
	}
	if m.RTMR2, err = RTMR2(b); err != nil {
		return nil, err
	}
	return m, nil
}

// sameMinor reports whether two QEMU versions agree in major and minor.
func sameMinor(a, b string) bool {
	mm := func(v string) string {
		p := strings.SplitN(v, ".", 3)
		if len(p) < 2 {
			return v
		}
		return p[0] + "." + p[1]
	}
	return mm(a) == mm(b)
}
