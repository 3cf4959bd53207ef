package manifest

import (
	"fmt"

	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// Files are the release contents the registers depend on.
type Files struct {
	// Firmware is the parsed OVMF.fd.
	Firmware *tdvf.Firmware
	// Kernel, Initrd and Cmdline are the -kernel, -initrd and -append
	// values.
	Kernel  []byte
	Initrd  []byte
	Cmdline string
}

// Boot returns the tdxmr description of booting f on shape s.
func (f *Files) Boot(s *shape.VMShape) (tdxmr.Boot, error) {
	opt, err := tdxmr.ParseInitrdOption(s.OVMF.InitrdOption)
	if err != nil {
		return tdxmr.Boot{}, err
	}
	return tdxmr.Boot{
		Kernel:       f.Kernel,
		Initrd:       f.Initrd,
		Cmdline:      f.Cmdline,
		MemorySize:   uint64(s.MemoryMiB) << 20,
		KernelSource: tdxmr.KernelSourceFor(s.QEMU.PatchesKernelHeader),
		InitrdOption: opt,
	}, nil
}

// KernelVariant names the RTMR1 variant of a shape: "unpatched" when its
// QEMU serves the kernel as is, else "patched-below4g-<N>mib", N being
// the RAM q35 maps below 4 GiB (the only shape input the patched header
// depends on once kernel, initrd and command line are fixed).
func KernelVariant(s *shape.VMShape) string {
	if !s.QEMU.PatchesKernelHeader {
		return tdxmr.KernelUnpatched.String()
	}
	return fmt.Sprintf("%s-below4g-%dmib", tdxmr.KernelPatched, tdxmr.BelowFourG(uint64(s.MemoryMiB)<<20)>>20)
}

// CodeRegisters computes a shape's MRTD (its QEMU profile's page order),
// RTMR1 (its kernel variant) and RTMR2 (its OVMF initrd= placement),
// labelled with their variant names. RTMR0 is not computed here.
func CodeRegisters(f *Files, s *shape.VMShape) (mrtd, rtmr1, rtmr2 Variant, err error) {
	if f.Firmware == nil {
		return mrtd, rtmr1, rtmr2, fmt.Errorf("manifest: no firmware")
	}
	if err := s.Validate(); err != nil {
		return mrtd, rtmr1, rtmr2, err
	}
	order, err := tdvf.ParsePageOrder(s.QEMU.MRTDPageOrder)
	if err != nil {
		return mrtd, rtmr1, rtmr2, err
	}
	m, err := f.Firmware.MRTD(order)
	if err != nil {
		return mrtd, rtmr1, rtmr2, fmt.Errorf("manifest: shape %s: MRTD: %w", s.Name, err)
	}
	boot, err := f.Boot(s)
	if err != nil {
		return mrtd, rtmr1, rtmr2, err
	}
	r1, err := tdxmr.RTMR1(boot)
	if err != nil {
		return mrtd, rtmr1, rtmr2, fmt.Errorf("manifest: shape %s: RTMR1: %w", s.Name, err)
	}
	r2, err := tdxmr.RTMR2(boot)
	if err != nil {
		return mrtd, rtmr1, rtmr2, fmt.Errorf("manifest: shape %s: RTMR2: %w", s.Name, err)
	}
	return Variant{order.String(), m}, Variant{KernelVariant(s), r1.Value}, Variant{boot.InitrdOption.String(), r2.Value}, nil
}

// RTMR0Func returns the expected RTMR0 of a shape (RTMR0 depends on the
// firmware and the whole launch shape; measure/tdxmr computes it).
type RTMR0Func func(s *shape.VMShape) (tdxmr.Digest, error)

// BuildWithRTMR0 computes MRTD, RTMR1 and RTMR2 of every shape with
// CodeRegisters, takes RTMR0 from rtmr0 and the TD fields from
// TDFieldsFor, and assembles the manifest.
func BuildWithRTMR0(rel Release, inputs []Input, f *Files, shapes []*shape.VMShape, rtmr0 RTMR0Func) (*Manifest, error) {
	if rtmr0 == nil {
		return nil, fmt.Errorf("manifest: no RTMR0 computation")
	}
	var vals []ShapeValues
	for _, s := range shapes {
		mrtd, r1, r2, err := CodeRegisters(f, s)
		if err != nil {
			return nil, err
		}
		r0, err := rtmr0(s)
		if err != nil {
			return nil, fmt.Errorf("manifest: shape %s: RTMR0: %w", s.Name, err)
		}
		td, err := TDFieldsFor(s)
		if err != nil {
			return nil, err
		}
		vals = append(vals, ShapeValues{Shape: s, MRTD: mrtd, RTMR0: r0, RTMR1: r1, RTMR2: r2, TD: td})
	}
	return New(rel, inputs, vals)
}

// InputsFunc returns what tdxmr.Compute needs for a shape besides the
// release: above all the shape's ACPI/fw_cfg capture (measure/acpi
// Capture of host/qemu's argv for the shape, taken with the QEMU version
// of the shape's profile).
type InputsFunc func(s *shape.VMShape) (tdxmr.Inputs, error)

// Build computes every register of every shape with measure/tdxmr
// (tdxmr.Compute of release r with in(shape)) and assembles the manifest
// (FromMeasurements). It returns tdxmr's warnings, prefixed with the
// shape name.
func Build(rel Release, inputs []Input, r *tdxmr.Release, shapes []*shape.VMShape, in InputsFunc) (*Manifest, []string, error) {
	if r == nil || in == nil {
		return nil, nil, fmt.Errorf("manifest: Build needs the release files and an inputs function")
	}
	var ms []*tdxmr.Measurements
	for _, s := range shapes {
		if s == nil {
			return nil, nil, fmt.Errorf("manifest: a shape is nil")
		}
		x, err := in(s)
		if err != nil {
			return nil, nil, fmt.Errorf("manifest: shape %s: %w", s.Name, err)
		}
		m, err := tdxmr.Compute(r, s, x)
		if err != nil {
			return nil, nil, fmt.Errorf("manifest: shape %s: %w", s.Name, err)
		}
		ms = append(ms, m)
	}
	return FromMeasurements(rel, inputs, shapes, ms)
}

// FromMeasurements assembles a manifest from measure/tdxmr's results, one
// per shape and in the same order (tdxmr.Compute of the release for each
// shape). Variant names follow the shapes' profiles (page order,
// KernelVariant, initrd= placement), the TD fields TDFieldsFor. It also
// returns the measurements' warnings, prefixed with the shape name: a
// manifest whose RTMR0 rests on a doubtful ACPI capture should not be
// signed without reading them.
func FromMeasurements(rel Release, inputs []Input, shapes []*shape.VMShape, ms []*tdxmr.Measurements) (*Manifest, []string, error) {
	if len(shapes) != len(ms) {
		return nil, nil, fmt.Errorf("manifest: %d shapes but %d measurements", len(shapes), len(ms))
	}
	var vals []ShapeValues
	var warnings []string
	for i, s := range shapes {
		m := ms[i]
		if s == nil || m == nil || m.RTMR0 == nil || m.RTMR1 == nil || m.RTMR2 == nil {
			return nil, nil, fmt.Errorf("manifest: shape or measurements %d missing", i)
		}
		d, err := s.Digest()
		if err != nil {
			return nil, nil, fmt.Errorf("manifest: %w", err)
		}
		if m.Shape != s.Name || m.ShapeDigest != d {
			return nil, nil, fmt.Errorf("manifest: measurements %d are of shape %s (%s), not %s (%s)", i, m.Shape, m.ShapeDigest, s.Name, d)
		}
		if m.MRTDOrder.String() != s.QEMU.MRTDPageOrder {
			return nil, nil, fmt.Errorf("manifest: shape %s: MRTD computed with page order %s, its QEMU profile says %s", s.Name, m.MRTDOrder, s.QEMU.MRTDPageOrder)
		}
		td, err := TDFieldsFor(s)
		if err != nil {
			return nil, nil, err
		}
		vals = append(vals, ShapeValues{
			Shape: s,
			MRTD:  Variant{m.MRTDOrder.String(), m.MRTD},
			RTMR0: m.RTMR0.Value,
			RTMR1: Variant{KernelVariant(s), m.RTMR1.Value},
			RTMR2: Variant{s.OVMF.InitrdOption, m.RTMR2.Value},
			TD:    td,
		})
		for _, w := range m.Warnings {
			warnings = append(warnings, s.Name+": "+w)
		}
	}
	man, err := New(rel, inputs, vals)
	if err != nil {
		return nil, nil, err
	}
	return man, warnings, nil
}
