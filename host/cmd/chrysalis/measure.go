package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/image"
	"github.com/chrysalis-cc/chrysalis/measure/acpi"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

func init() {
	register("measure", "compute a release's TDX measurements (MRTD, RTMR0-2) for VM shapes", runMeasure)
}

func runMeasure(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("measure", flag.ContinueOnError)
	fs.SetOutput(stderr)
	release := fs.String("release", "release", "release `directory`")
	shapes := fs.String("shape", "dev-small", "comma-separated VM shape `names`")
	shapeFile := fs.String("shape-file", "", "read shapes from this `file` instead of the built-in catalog")
	asJSON := fs.Bool("json", false, "print the measurements as JSON")
	events := fs.Bool("events", true, "list every expected event with its digest and input")
	fw := addFirmwareFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if _, err := image.LoadRelease(*release); err != nil {
		return err
	}
	shapeList, err := lookupShapes(*shapeFile, *shapes)
	if err != nil {
		return err
	}
	rel, err := qemu.ReleaseFromDir(*release)
	if err != nil {
		return err
	}
	var all []*tdxmr.Measurements
	for _, s := range shapeList {
		m, err := measureShape(ctx, *release, rel, s, fw)
		if err != nil {
			return fmt.Errorf("shape %s: %w", s.Name, err)
		}
		all = append(all, m)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	for _, m := range all {
		printMeasurements(stdout, m, *events)
	}
	return nil
}

// lookupShapes resolves comma-separated shape names in the built-in
// catalog, or in the shape file when one is given.
func lookupShapes(shapeFile, names string) ([]*shape.VMShape, error) {
	cat := shape.Builtin()
	if shapeFile != "" {
		c, err := shape.Load(shapeFile)
		if err != nil {
			return nil, err
		}
		cat = c
	}
	var out []*shape.VMShape
	for _, n := range strings.Split(names, ",") {
		s, err := cat.Lookup(strings.TrimSpace(n))
		if err != nil {
			return nil, fmt.Errorf("--shape: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// measureShape captures the ACPI tables stock QEMU builds for the shape's
// TDX launch argv (the same argv `launch --tdx` runs; GPUs through the
// acpi stand-in) and computes MRTD and RTMR0-2.
// fw gives the firmware inputs of layouts with an SMBIOS event (nil: none).
func measureShape(ctx context.Context, dir string, rel qemu.Release, s *shape.VMShape, fw *firmwareFlags) (*tdxmr.Measurements, error) {
	in, err := fw.inputs()
	if err != nil {
		return nil, err
	}
	disks := map[shape.DiskKind]string{}
	for _, d := range s.Disks {
		// Backends are replaced by inert ones for the capture; only the
		// device list matters.
		disks[d.Kind] = filepath.Join("/nonexistent", string(d.Kind)+".img")
	}
	var gpus []string
	for i := 0; i < s.GPUs; i++ {
		gpus = append(gpus, fmt.Sprintf("0000:%02x:00.0", 0x10+i))
	}
	argv, err := qemu.Argv(qemu.Options{
		Mode: qemu.ModeTDX, Shape: s, Release: rel, Disks: disks, GPUs: gpus,
		HostPort: 1, ConsoleLog: "/nonexistent/console.log",
		StatusSocket: "/nonexistent/status.sock", QMPSocket: "/nonexistent/qmp.sock",
	})
	if err != nil {
		return nil, err
	}
	o := acpi.Options{Args: argv[1:]}
	if s.GPUs > 0 {
		// Every GPU is captured through the stand-in with the H100's BAR
		// layout (the only GPU model the shapes describe), whether or not
		// this machine has GPUs: the tables, and so RTMR0, are then the
		// same for the publisher, the auditor and the GPU owner's launch
		// check (ci/swtpm checks the stand-in against OVMF's own
		// measurements).
		o.GPUStandIn = &acpi.GPUH100
		o.HostPCIPresent = func(string) bool { return false }
	}
	tables, err := acpi.Capture(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("ACPI capture: %w", err)
	}
	in.Tables = tables
	m, err := tdxmr.ComputeAll(dir, s, in)
	if errors.Is(err, tdxmr.ErrBIOSInfoNeeded) {
		return nil, fmt.Errorf("%w\n(pass the firmware build's strings: --bios-version, and --bios-vendor/--bios-date when not edk2's defaults)", err)
	}
	return m, err
}

func printMeasurements(w io.Writer, m *tdxmr.Measurements, events bool) {
	fmt.Fprintf(w, "shape  %s (%s)\n", m.Shape, m.ShapeDigest)
	fmt.Fprintf(w, "  MRTD   %s (%s)\n", m.MRTD, m.MRTDOrder)
	for _, r := range []*tdxmr.Register{m.RTMR0, m.RTMR1, m.RTMR2} {
		fmt.Fprintf(w, "  RTMR%d  %s\n", r.Index, r.Value)
		if !events {
			continue
		}
		for i, e := range r.Events {
			fmt.Fprintf(w, "    %2d %-38s %s  (%s)\n", i, e.Name, e.Digest, e.Input)
		}
	}
	fmt.Fprintf(w, "  ACPI tables from QEMU %s\n", m.ACPIQEMUVersion)
	for _, warn := range m.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
}
