package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/chrysalis-cc/chrysalis/host/launch"
	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
)

// Status is the outcome of one check.
type Status string

// Check outcomes.
const (
	// StatusOK: the host is ready in this respect.
	StatusOK Status = "ok"
	// StatusFail: the host is not ready; Fatal says whether the guest
	// would fail because of it.
	StatusFail Status = "fail"
	// StatusWarn: probably fine, or cannot be verified from here; the
	// remedy says how to make sure. Never fatal.
	StatusWarn Status = "warn"
	// StatusSkip: the check does not apply (dev mode, no --release, a
	// check it depends on failed); Detail says why.
	StatusSkip Status = "skip"
)

// Mark is the one-character mark of the status in the text report.
func (s Status) Mark() string {
	switch s {
	case StatusOK:
		return "✓"
	case StatusFail:
		return "✗"
	case StatusWarn:
		return "!"
	}
	return "-"
}

// Check is the result of one preflight check.
type Check struct {
	// ID names the check, stable across releases (e.g. "kvm-tdx"); per-GPU
	// checks carry the PCI address ("gpu-driver/0000:17:00.0").
	ID string `json:"id"`
	// Title says what is checked.
	Title string `json:"title"`
	// Status is the outcome.
	Status Status `json:"status"`
	// Detail is what was found, naming the file or command it came from.
	Detail string `json:"detail"`
	// Remedy is the exact fix (commands, settings); empty when ok.
	Remedy string `json:"remedy,omitempty"`
	// Fatal marks a failure that would make the guest fail to start or
	// to attest. Only failed checks are fatal.
	Fatal bool `json:"fatal"`
}

// Env is the host being inspected.
type Env struct {
	// Root is the filesystem root the checks read below: "/" (the
	// default) or a fake tree.
	Root string
	// QEMU is the QEMU system emulator to run (default qemu.Binary, found
	// on PATH).
	QEMU string
	// Run runs a command and returns its standard output (default: run
	// it for real, with a 30 s limit).
	Run func(name string, args ...string) ([]byte, error)
}

// Options say what the host is to run.
type Options struct {
	// Dev checks for a dev (TCG) launch: no TDX, no GPUs.
	Dev bool
	// Release is the release directory to verify (a host path, not below
	// Env.Root); empty skips the release checks.
	Release string
	// Shape names the VM shape (default launch.DefaultShape in dev mode;
	// required otherwise), looked up in ShapeFile when given, else among
	// the built-in shapes.
	Shape string
	// ShapeFile is a shape catalog file (shape.Load).
	ShapeFile string
	// GPUs are the PCI addresses of the GPUs to pass through, one per GPU
	// the shape declares.
	GPUs []string
	// QGS is where the TD will reach the quote generation service, as
	// `launch --qgs` sets it; nil takes qemu.DefaultQGS of the shape's
	// QEMU profile (the unix socket for QEMU >= 10.1, else vsock 2:4050).
	QGS *qemu.QGS
}

// MemoryOverheadMiB is the host memory a guest needs beyond its RAM: QEMU
// itself, page tables, TDX metadata (PAMT is reserved at boot, so it is not
// part of this).
const MemoryOverheadMiB = 1024

// host paths the checks read (below Env.Root).
const (
	pathKVMIntel     = "/sys/module/kvm_intel"
	pathTDXParam     = "/sys/module/kvm_intel/parameters/tdx"
	pathKVM          = "/dev/kvm"
	pathMeminfo      = "/proc/meminfo"
	pathVhostVsock   = "/dev/vhost-vsock"
	pathIOMMUFD      = "/dev/iommu"
	pathPCIDevices   = "/sys/bus/pci/devices"
	pathIOMMUGroups  = "/sys/kernel/iommu_groups"
	pathQGSConf      = "/etc/qgs.conf"
	pathQGSSocket    = "/var/run/tdx-qgs/qgs.socket"
	pathQGSBinary    = "/opt/intel/tdx-qgs/qgs"
	pathQCNLConf     = "/etc/sgx_default_qcnl.conf"
	qgsUnitName      = "qgsd.service"
	devModeSkipNotes = "dev mode (TCG) does not use it"
)

// qgsUnitDirs are where systemd unit files of the tdx-qgs package live.
var qgsUnitDirs = []string{"/usr/lib/systemd/system", "/lib/systemd/system", "/etc/systemd/system"}

// doctor carries one run's state.
type doctor struct {
	env   Env
	opts  Options
	shape *shape.VMShape
	out   []Check
}

// Run performs every check and returns them in report order.
func Run(env Env, opts Options) []Check {
	if env.Root == "" {
		env.Root = "/"
	}
	if env.QEMU == "" {
		env.QEMU = qemu.Binary
	}
	if env.Run == nil {
		env.Run = runCommand
	}
	d := &doctor{env: env, opts: opts}
	d.checkShape()
	d.checkTDX()
	d.checkKVM()
	d.checkQEMU()
	d.checkRelease()
	d.checkMemory()
	d.checkVsock()
	d.checkGPUs()
	d.checkQGS()
	d.checkPCCS()
	return d.out
}

// Failed reports the number of fatal failures.
func Failed(checks []Check) int {
	n := 0
	for _, c := range checks {
		if c.Status == StatusFail && c.Fatal {
			n++
		}
	}
	return n
}

// runCommand runs name for real and returns its standard output; the
// error carries its standard error.
func runCommand(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return out, fmt.Errorf("%w: %s", err, msg)
		}
		return out, err
	}
	return out, nil
}

// path is the file below Root for the host path p.
func (d *doctor) path(p string) string { return filepath.Join(d.env.Root, p) }

func (d *doctor) readFile(p string) ([]byte, error) {
	b, err := os.ReadFile(d.path(p))
	if err != nil {
		return nil, hostErr(p, err)
	}
	return b, nil
}

func (d *doctor) exists(p string) bool {
	_, err := os.Stat(d.path(p))
	return err == nil
}

// hostErr rewrites a path error so that it names the host path p instead
// of the Root-prefixed one.
func hostErr(p string, err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return fmt.Errorf("%s %s: %w", pe.Op, p, pe.Err)
	}
	return fmt.Errorf("%s: %w", p, err)
}

func (d *doctor) add(c Check) { d.out = append(d.out, c) }

func (d *doctor) ok(id, title, detail string) {
	d.add(Check{ID: id, Title: title, Status: StatusOK, Detail: detail})
}

func (d *doctor) fail(id, title, detail, remedy string) {
	d.add(Check{ID: id, Title: title, Status: StatusFail, Detail: detail, Remedy: remedy, Fatal: true})
}

func (d *doctor) warn(id, title, detail, remedy string) {
	d.add(Check{ID: id, Title: title, Status: StatusWarn, Detail: detail, Remedy: remedy})
}

func (d *doctor) skip(id, title, why string) {
	d.add(Check{ID: id, Title: title, Status: StatusSkip, Detail: why})
}

func (d *doctor) checkShape() {
	const id, title = "shape", "VM shape"
	name := d.opts.Shape
	if name == "" && d.opts.Dev {
		name = launch.DefaultShape
	}
	var (
		s   *shape.VMShape
		err error
	)
	switch {
	case d.opts.ShapeFile != "":
		var c *shape.Catalog
		if c, err = shape.Load(d.opts.ShapeFile); err == nil {
			if name == "" {
				err = fmt.Errorf("shape file %s: no shape named (pass --shape; it declares %s)", d.opts.ShapeFile, strings.Join(c.Names(), ", "))
			} else {
				s, err = c.Lookup(name)
			}
		}
	case name == "":
		err = fmt.Errorf("no shape named: a TDX host is checked for one shape (built-in: %s)", strings.Join(shape.Names(), ", "))
	default:
		s, err = shape.Lookup(name)
	}
	if err != nil {
		d.fail(id, title, err.Error(), "pass --shape NAME (and --shape-file FILE for your own shapes)")
		return
	}
	if d.opts.Dev && s.GPUs > 0 {
		d.fail(id, title, fmt.Sprintf("shape %q needs %d GPU(s); dev mode has no GPU passthrough", s.Name, s.GPUs),
			"choose a shape without GPUs for dev mode (e.g. "+launch.DefaultShape+"), or check for TDX without --dev")
		return
	}
	d.shape = s
	d.ok(id, title, fmt.Sprintf("%s: %d vCPU(s), %s RAM, %d GPU(s), QEMU profile %s (QEMU %s), OVMF profile %s",
		s.Name, s.VCPUs, mib(int64(s.MemoryMiB)), s.GPUs, s.QEMU.Name, s.QEMU.QEMUVersion, s.OVMF.Name))
}

// mib formats a size in MiB as GiB (or MiB below 1 GiB).
func mib(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d MiB", n)
	}
	if n%1024 == 0 {
		return fmt.Sprintf("%d GiB", n/1024)
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/1024)
}

// WriteText writes the human report: one line per check with its mark,
// the remedy indented below, and a summary line.
func WriteText(w io.Writer, checks []Check) error {
	width := 0
	for _, c := range checks {
		width = max(width, len(c.ID))
	}
	var b strings.Builder
	counts := map[Status]int{}
	for _, c := range checks {
		counts[c.Status]++
		writeCheck(&b, c, width)
	}
	fatal := Failed(checks)
	fmt.Fprintf(&b, "\n%d ok, %d failed (%d fatal), %d warning(s), %d skipped\n",
		counts[StatusOK], counts[StatusFail], fatal, counts[StatusWarn], counts[StatusSkip])
	if fatal > 0 {
		b.WriteString("the guest cannot run on this host until the fatal ✗ items are fixed\n")
	} else if counts[StatusWarn] > 0 {
		b.WriteString("nothing here stops the guest; read the ! items\n")
	} else {
		b.WriteString("nothing here stops the guest\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCheck writes one check's report line, its ID padded to width, and
// its remedy indented below.
func writeCheck(b *strings.Builder, c Check, width int) {
	fmt.Fprintf(b, "%s %-*s  %s: %s\n", c.Status.Mark(), width, c.ID, c.Title, c.Detail)
	if c.Remedy != "" {
		for i, line := range strings.Split(c.Remedy, "\n") {
			lead := "       "
			if i == 0 {
				lead = "  fix: "
			}
			fmt.Fprintf(b, "%s%s\n", lead, line)
		}
	}
}

// Report is the JSON form of a run.
type Report struct {
	// OK is true when no check failed fatally.
	OK bool `json:"ok"`
	// Checks are the checks in report order.
	Checks []Check `json:"checks"`
}

// WriteJSON writes the report as indented JSON with a trailing newline.
func WriteJSON(w io.Writer, checks []Check) error {
	if checks == nil {
		checks = []Check{}
	}
	b, err := json.MarshalIndent(Report{OK: Failed(checks) == 0, Checks: checks}, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
