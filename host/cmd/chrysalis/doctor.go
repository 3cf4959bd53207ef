package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/chrysalis-cc/chrysalis/host/doctor"
	"github.com/chrysalis-cc/chrysalis/host/launch"
	"github.com/chrysalis-cc/chrysalis/host/qemu"
)

func init() {
	register("doctor", "check that this host can run the guest (TDX, QEMU, GPUs, QGS)", runDoctor)
}

const doctorUsage = `usage:
  chrysalis doctor --shape NAME --gpu BDF [--gpu BDF...] [--release DIR] [--qgs ADDR] [--json]
  chrysalis doctor --dev [--shape NAME] [--release DIR] [--json]

Checks this host for a TDX launch of the shape (or, with --dev, a TCG dev
launch): TDX in KVM, /dev/kvm, QEMU's version and tdx-guest object, the
release, each GPU's vfio-pci binding, IOMMU group and CC mode, memory,
vhost-vsock and Intel's quote generation service. Prints one line per check
(✓ ok, ✗ failed, ! warning, - skipped) with the exact fix below it. Exits 1
when a check fails that would make the guest fail.

flags:
`

// errDoctorFatal is returned when a fatal check failed; the report has
// already said which.
var errDoctorFatal = errors.New("host not ready")

func runDoctor(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, doctorUsage)
		fs.PrintDefaults()
	}
	var (
		dev       = fs.Bool("dev", false, "check for a dev (TCG) launch: no TDX, no GPUs")
		release   = fs.String("release", "", "release `directory` to verify (SHA256SUMS, OVMF's TDVF metadata)")
		shapeName = fs.String("shape", "", "VM shape `name` (built-in, or from --shape-file); dev default "+launch.DefaultShape)
		shapeFile = fs.String("shape-file", "", "shape `file` declaring your own shapes")
		jsonOut   = fs.Bool("json", false, "print the checks as JSON")
		root      = fs.String("root", "/", "filesystem `root` to inspect (sysfs, procfs, /dev, /etc below it)")
		qemuBin   = fs.String("qemu", qemu.Binary, "QEMU `binary` to check")
		qgsFlag   = fs.String("qgs", "", "quote generation service `address` the launch will use, as `launch --qgs` takes it: unix[:PATH] or vsock[:[CID:]PORT] (default by the shape's QEMU profile)")
		gpus      repeated
	)
	fs.Var(&gpus, "gpu", "host PCI `address` of a GPU to pass through, e.g. 0000:17:00.0 (repeat per GPU)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see chrysalis doctor -h)", fs.Arg(0))
	}
	var qgs *qemu.QGS
	if *qgsFlag != "" {
		q, err := qemu.ParseQGS(*qgsFlag)
		if err != nil {
			return fmt.Errorf("--qgs: %w", err)
		}
		qgs = &q
	}
	checks := doctor.Run(doctor.Env{Root: *root, QEMU: *qemuBin}, doctor.Options{
		Dev:       *dev,
		Release:   *release,
		Shape:     *shapeName,
		ShapeFile: *shapeFile,
		GPUs:      gpus,
		QGS:       qgs,
	})
	write := doctor.WriteText
	if *jsonOut {
		write = doctor.WriteJSON
	}
	if err := write(stdout, checks); err != nil {
		return err
	}
	if n := doctor.Failed(checks); n > 0 {
		return fmt.Errorf("%w: %d fatal check(s) failed", errDoctorFatal, n)
	}
	return nil
}
