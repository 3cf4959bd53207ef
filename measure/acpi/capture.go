package acpi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Binary is the QEMU system emulator Capture runs by default.
const Binary = "qemu-system-x86_64"

// Names of the fw_cfg files of the ACPI tables.
const (
	FileTableLoader = "etc/table-loader"
	FileRSDP        = "etc/acpi/rsdp"
	FileTables      = "etc/acpi/tables"
)

// MaxFileBytes bounds the size of one fw_cfg file Capture reads; larger
// files (the kernel and initrd QEMU >= 10 also serves as etc/boot/*, none
// of which OVMF measures into RTMR0) are listed in Tables.Dir only.
const MaxFileBytes = 4 << 20

// DefaultTimeout bounds a capture when the context has no deadline.
const DefaultTimeout = 60 * time.Second

// Options configure Capture.
type Options struct {
	// Binary is the QEMU executable; default Binary.
	Binary string
	// Args are the launch arguments without argv[0] (see QtestArgs).
	Args []string
	// CPU is the vCPU the launched VM's OVMF sees, which places OVMF's
	// 64-bit PCI window and so the 64-bit PCI hole QEMU writes into the
	// DSDT. Nil infers it from Args: CPUTDX for a TDX launch, CPUTCGMax
	// for "-cpu max" (or no -cpu) under TCG; anything else is an error.
	CPU *CPU
	// GPUStandIn, when set, replaces each vfio-pci device whose host
	// device is absent by a stock QEMU device with the profile's
	// prefetchable BAR layout (StandInArgs), so that a machine without
	// the GPUs can capture a GPU shape's tables. A vfio-pci device whose
	// host device is present is kept.
	GPUStandIn *GPUProfile
	// HostPCIPresent reports whether a vfio-pci host= address names a
	// device of this machine; nil looks in /sys/bus/pci/devices.
	HostPCIPresent func(host string) bool
}

// Tables are the fw_cfg files QEMU serves for one VM configuration.
type Tables struct {
	// QEMU is the first line of "qemu --version"; QEMUVersion its version
	// number, e.g. "7.2.22".
	QEMU        string
	QEMUVersion string
	// Accelerator says how QEMU ran: "qtest", or "tcg" with the vCPUs
	// stopped (-S) where the build has no qtest accelerator.
	Accelerator string
	// Argv is the complete command line that ran (its qtest socket was
	// temporary).
	Argv []string
	// Rewritten lists how the launch arguments were changed (QtestArgs).
	Rewritten []Rewritten
	// Dir is the fw_cfg file directory after the ACPI tables were built.
	Dir []File
	// Files holds the contents of every file in Dir of at most
	// MaxFileBytes bytes.
	Files map[string][]byte
	// BootMenu is the 2-byte item of key KeyBootMenu.
	BootMenu []byte
	// CPU is the vCPU OVMF was assumed to see; Window the 64-bit PCI
	// window OVMF computes for it, Mmio32 its 32-bit one; BARs the memory
	// BARs and Bridges the PCI bridges on bus 0, placed and programmed
	// before the tables were built as OVMF's PCI enumeration does.
	CPU     CPU
	Window  Window
	Mmio32  Range
	BARs    []PCIBar
	Bridges []PCIBridge
}

// Blob is one fw_cfg file OVMF measures as "ACPI DATA".
type Blob struct {
	Name string
	Data []byte
}

// Measured returns the blobs OVMF's ACPI driver (QemuFwCfgAcpi.c)
// measures, in its order: "etc/table-loader", then every file the script
// allocates, in command order ("etc/acpi/rsdp", "etc/acpi/tables", and
// e.g. "etc/tpm/log" with a TPM).
func (t *Tables) Measured() ([]Blob, error) {
	loader, ok := t.Files[FileTableLoader]
	if !ok {
		return nil, fmt.Errorf("acpi: the capture has no %q", FileTableLoader)
	}
	cmds, err := ParseLoader(loader)
	if err != nil {
		return nil, err
	}
	out := []Blob{{Name: FileTableLoader, Data: loader}}
	for _, name := range AllocatedFiles(cmds) {
		b, ok := t.Files[name]
		if !ok {
			return nil, fmt.Errorf("acpi: %s allocates %q, which the capture does not have (not served, or larger than %d bytes)", FileTableLoader, name, MaxFileBytes)
		}
		out = append(out, Blob{Name: name, Data: b})
	}
	return out, nil
}

// Capture starts QEMU with QtestArgs(o.Args), programs the q35 chipset
// registers OVMF sets before it reads the ACPI tables, and reads the
// fw_cfg file directory and files. No guest code runs. QEMU is stopped
// before Capture returns. Errors carry QEMU's stderr.
func Capture(ctx context.Context, o Options) (*Tables, error) {
	bin := o.Binary
	if bin == "" {
		bin = Binary
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	launch := o.Args
	var standIn []Rewritten
	if o.GPUStandIn != nil {
		var err error
		if launch, standIn, err = StandInArgs(o.Args, o.GPUStandIn, o.HostPCIPresent); err != nil {
			return nil, err
		}
	}
	args, notes, err := QtestArgs(launch)
	if err != nil {
		return nil, err
	}
	t := &Tables{Rewritten: append(standIn, notes...), Files: map[string][]byte{}}
	if t.QEMU, t.QEMUVersion, err = Version(ctx, bin); err != nil {
		return nil, err
	}
	if o.CPU != nil {
		t.CPU = *o.CPU
	} else if t.CPU, err = InferCPU(o.Args); err != nil {
		return nil, err
	}
	if t.Accelerator, err = accelerator(ctx, bin); err != nil {
		return nil, err
	}

	dir, err := os.MkdirTemp("", "chrysalis-acpi-")
	if err != nil {
		return nil, fmt.Errorf("acpi: %w", err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "qtest.sock")
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", sock)
	if err != nil {
		return nil, fmt.Errorf("acpi: qtest socket: %w", err)
	}
	defer ln.Close()

	args = append(args, "-accel", t.Accelerator, "-S", "-display", "none",
		"-qtest", "unix:"+sock, "-qtest-log", "none")
	t.Argv = append([]string{bin}, args...)
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("acpi: starting %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() { // kills QEMU if it runs and waits for its output
		if stopped {
			return
		}
		stopped = true
		select {
		case err := <-exited:
			exited <- err
		default:
			_ = cmd.Process.Kill()
			exited <- <-exited
		}
	}
	defer stop()
	qemuErr := func(err error) error {
		stop()
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return fmt.Errorf("acpi: %s: %w", bin, err)
		}
		return fmt.Errorf("acpi: %s: %w; QEMU said: %s", bin, err, msg)
	}

	type accepted struct {
		c   net.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		acc <- accepted{c, err}
	}()
	var conn net.Conn
	select {
	case a := <-acc:
		if a.err != nil {
			return nil, qemuErr(a.err)
		}
		conn = a.c
	case err := <-exited:
		exited <- err
		if err == nil {
			err = errors.New("exited")
		}
		return nil, qemuErr(fmt.Errorf("QEMU stopped before it connected to the qtest socket: %w", err))
	case <-ctx.Done():
		return nil, qemuErr(fmt.Errorf("waiting for QEMU to connect: %w", ctx.Err()))
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if err := t.read(newQtest(conn)); err != nil {
		return nil, qemuErr(err)
	}
	return t, nil
}

// Chipset registers OVMF programs on q35 before its ACPI driver reads the
// tables (OvmfPkg/Library/PlatformInitLib), which QEMU's table generator
// reads back (MCFG, FADT PM blocks).
const (
	q35HostBridgeID = 0x29c08086 // 8086:29c0, MCH at 00:00.0
	ich9LPCDev      = 0x1f       // LPC bridge at 00:1f.0

	mchPCIEXBAR      = 0x60
	pciExpressBase   = 0xE0000000
	pciexbarEnable   = 1
	ich9PMBASE       = 0x40
	acpiPMBaseAddr   = 0x600
	ich9ACPICntl     = 0x44
	ich9ACPICntlACPI = 0x80
)

func (t *Tables) read(q *qtest) error {
	sig, err := q.fwCfgReadIO(KeySignature, 4)
	if err != nil {
		return err
	}
	if string(sig) != "QEMU" {
		return fmt.Errorf("fw_cfg signature %q, want \"QEMU\"", sig)
	}
	id, err := q.fwCfgReadIO(KeyID, 4)
	if err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(id)&FeatureDMA == 0 {
		return fmt.Errorf("fw_cfg has no DMA interface (feature bitmap %#x)", binary.LittleEndian.Uint32(id))
	}
	host, err := q.pciRead32(0, 0, 0)
	if err != nil {
		return err
	}
	if host != q35HostBridgeID {
		return fmt.Errorf("host bridge 00:00.0 is %04x:%04x, not the q35 MCH 8086:29c0: only -machine q35 is supported", host&0xffff, host>>16)
	}
	for _, w := range []struct {
		dev, off, v uint32
		byte        bool
	}{
		{0, mchPCIEXBAR + 4, 0, false},
		{0, mchPCIEXBAR, pciExpressBase | pciexbarEnable, false},
		{ich9LPCDev, ich9PMBASE, acpiPMBaseAddr, false},
		{ich9LPCDev, ich9ACPICntl, ich9ACPICntlACPI, true},
	} {
		if w.byte {
			err = q.pciWrite8(w.dev, 0, w.off, uint8(w.v))
		} else {
			err = q.pciWrite32(w.dev, 0, w.off, w.v)
		}
		if err != nil {
			return err
		}
	}

	dir, err := readDir(q)
	if err != nil {
		return err
	}
	// OVMF's PCI enumeration places the BARs and bridge windows in its
	// apertures before the ACPI driver runs; QEMU reports the range of
	// the 64-bit BARs and prefetchable windows on bus 0 as the 64-bit PCI
	// hole.
	platform := map[string][]byte{}
	for _, f := range dir {
		switch f.Name {
		case fileE820, fileMmio64Mb, fileReservedEnd, fileHardwareInfo:
			if f.Size > MaxFileBytes {
				return fmt.Errorf("fw_cfg file %q has %d bytes", f.Name, f.Size)
			}
			if platform[f.Name], err = q.fwCfgReadDMA(f.Key, int(f.Size)); err != nil {
				return err
			}
		}
	}
	if t.Window, err = OVMFMmio64Window(t.CPU, platform); err != nil {
		return err
	}
	e820, err := ParseE820(platform[fileE820])
	if err != nil {
		return err
	}
	if t.Mmio32, err = OVMFMmio32Window(e820); err != nil {
		return err
	}
	a, err := programPCI(q, t.Mmio32, t.Window)
	if err != nil {
		return err
	}
	t.BARs, t.Bridges = a.bars, a.bridges
	// Selecting an ACPI file makes QEMU rebuild the tables from the
	// current chipset state, as OVMF's first read does; the sizes of the
	// rebuilt files are those OVMF sees.
	for _, f := range dir {
		if f.Name == FileTableLoader {
			if _, err := q.fwCfgReadDMA(f.Key, 0); err != nil {
				return err
			}
		}
	}
	if t.Dir, err = readDir(q); err != nil {
		return err
	}
	for _, f := range t.Dir {
		if f.Size > MaxFileBytes {
			continue
		}
		b, err := q.fwCfgReadDMA(f.Key, int(f.Size))
		if err != nil {
			return fmt.Errorf("reading %q: %w", f.Name, err)
		}
		t.Files[f.Name] = b
	}
	if t.BootMenu, err = q.fwCfgReadDMA(KeyBootMenu, 2); err != nil {
		return err
	}
	if _, ok := t.Files[FileTableLoader]; !ok {
		return fmt.Errorf("QEMU serves no %q (ACPI disabled?)", FileTableLoader)
	}
	return nil
}

func readDir(q *qtest) ([]File, error) {
	head, err := q.fwCfgReadDMA(KeyFileDir, 4)
	if err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(head)
	if n > MaxFiles {
		return nil, fmt.Errorf("fw_cfg file directory claims %d entries", n)
	}
	b, err := q.fwCfgReadDMA(KeyFileDir, 4+int(n)*fileEntrySize)
	if err != nil {
		return nil, err
	}
	return ParseFileDir(b)
}

// InferCPU returns the vCPU OVMF sees for a launch's arguments: CPUTDX
// for a TDX launch (a tdx-guest object or confidential-guest-support),
// CPUTCGMax for "-cpu max" or the default CPU under TCG. Other launches
// (a host CPU under KVM) need Options.CPU.
func InferCPU(args []string) (CPU, error) {
	accel, cpu, tdx := "", "", false
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-accel":
			accel, _, _ = strings.Cut(args[i+1], ",")
		case "-cpu":
			cpu, _, _ = strings.Cut(args[i+1], ",")
		case "-machine", "-M":
			if hasProp(args[i+1], "confidential-guest-support") {
				tdx = true
			}
		case "-object":
			if typ, _ := objectType(args[i+1]); typ == "tdx-guest" {
				tdx = true
			}
		}
	}
	switch {
	case tdx:
		return CPUTDX, nil
	case accel == "tcg" && (cpu == "max" || cpu == "" || cpu == "qemu64"):
		return CPUTCGMax, nil
	}
	return CPU{}, fmt.Errorf("acpi: cannot tell which vCPU OVMF sees (-accel %q, -cpu %q); set Options.CPU", accel, cpu)
}

var versionRE = regexp.MustCompile(`QEMU emulator version ([0-9]+\.[0-9]+(?:\.[0-9]+)?)`)

// Version runs "binary --version" and returns its first line and the
// version number.
func Version(ctx context.Context, binary string) (line, version string, err error) {
	out, err := exec.CommandContext(ctx, binary, "--version").Output()
	if err != nil {
		return "", "", fmt.Errorf("acpi: %s --version: %w", binary, err)
	}
	line, _, _ = strings.Cut(string(out), "\n")
	m := versionRE.FindStringSubmatch(line)
	if m == nil {
		return "", "", fmt.Errorf("acpi: %s --version printed %q, not \"QEMU emulator version X.Y\"", binary, line)
	}
	return line, m[1], nil
}

// accelerator returns "qtest" when the QEMU build has the qtest
// accelerator, else "tcg" (the capture always passes -S, so no vCPU runs).
func accelerator(ctx context.Context, binary string) (string, error) {
	out, err := exec.CommandContext(ctx, binary, "-accel", "help").Output()
	if err != nil {
		return "", fmt.Errorf("acpi: %s -accel help: %w", binary, err)
	}
	var have []string
	for _, l := range strings.Split(string(out), "\n") {
		have = append(have, strings.TrimSpace(l))
	}
	for _, a := range []string{"qtest", "tcg"} {
		for _, h := range have {
			if h == a {
				return a, nil
			}
		}
	}
	return "", fmt.Errorf("acpi: %s has neither the qtest nor the tcg accelerator (-accel help: %q)", binary, strings.TrimSpace(string(out)))
}
