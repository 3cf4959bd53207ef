package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
)

// Binary is the QEMU system emulator Chrysalis runs.
const Binary = "qemu-system-x86_64"

// Mode selects how the guest is run.
type Mode string

const (
	// ModeDev runs the guest under TCG emulation with no TEE: the agent
	// reports insecure-dev evidence. It works on any x86-64 Linux host.
	ModeDev Mode = "dev"
	// ModeTDX runs the guest as an Intel TDX trust domain under KVM, with
	// GPUs passed through by VFIO. It needs a TDX host and QEMU >= 8.2
	// built with TDX.
	ModeTDX Mode = "tdx"
)

// Defaults for TDX launches.
const (
	// DefaultGuestCID is the guest's vsock context ID (COCOON's default).
	DefaultGuestCID = 6
	// DefaultQGSCID and DefaultQGSPort locate the host's quote generation
	// service (Intel QGS) on vsock, for QEMU profiles older than 10.1
	// (DefaultQGS): the host is CID 2.
	DefaultQGSCID  = 2
	DefaultQGSPort = 4050
	// DefaultHostAddr is where the API port is forwarded on the host.
	DefaultHostAddr = "127.0.0.1"
)

// Instances: several guests on one host, numbered 0..MaxInstances-1
// (COCOON's cocoon-launch, research/ton-host.md §A2): instance i forwards
// its API on base port + InstancePortStride·i and has vsock CID base + i.
const (
	MaxInstances       = 64
	InstancePortStride = 10
)

// InstancePort is instance i's host port for base port base.
func InstancePort(base, i int) (int, error) {
	if i < 0 || i >= MaxInstances {
		return 0, fmt.Errorf("instance %d is out of range 0..%d", i, MaxInstances-1)
	}
	if base < 1 || base+InstancePortStride*(MaxInstances-1) > 65535 {
		return 0, fmt.Errorf("base port %d leaves no room for %d instances (want 1..%d)", base, MaxInstances, 65535-InstancePortStride*(MaxInstances-1))
	}
	return base + InstancePortStride*i, nil
}

// InstanceCID is instance i's guest vsock CID for base CID base.
func InstanceCID(base uint32, i int) (uint32, error) {
	if i < 0 || i >= MaxInstances {
		return 0, fmt.Errorf("instance %d is out of range 0..%d", i, MaxInstances-1)
	}
	if base < 3 || uint64(base)+MaxInstances-1 >= 0xFFFFFFFF {
		return 0, fmt.Errorf("base guest CID %d leaves no room for %d instances (want 3..%d)", base, MaxInstances, uint32(0xFFFFFFFF-MaxInstances))
	}
	return base + uint32(i), nil
}

// Release file names in a release directory.
const (
	FileOVMF    = "OVMF.fd"
	FileKernel  = "vmlinuz"
	FileInitrd  = "initrd"
	FileCmdline = "cmdline"
)

// MaxCmdline is the longest kernel command line x86 Linux accepts
// (COMMAND_LINE_SIZE 2048, including the NUL).
const MaxCmdline = 2047

// maxSocketPath is the longest unix socket path (sun_path less its NUL).
const maxSocketPath = 107

// Release is what a release contributes to the command line.
type Release struct {
	// OVMF is the path of the firmware image (OVMF.fd).
	OVMF string
	// Kernel is the path of the guest kernel (bzImage).
	Kernel string
	// Initrd is the path of the initramfs.
	Initrd string
	// Cmdline is the exact kernel command line (-append). It is measured
	// into RTMR2, so it is passed byte for byte.
	Cmdline string
}

// ReleaseFromDir reads a release directory holding FileOVMF, FileKernel,
// FileInitrd and FileCmdline. The command line is the cmdline file's
// contents less one trailing newline.
func ReleaseFromDir(dir string) (Release, error) {
	r := Release{
		OVMF:   filepath.Join(dir, FileOVMF),
		Kernel: filepath.Join(dir, FileKernel),
		Initrd: filepath.Join(dir, FileInitrd),
	}
	for _, p := range []string{r.OVMF, r.Kernel, r.Initrd} {
		st, err := os.Stat(p)
		if err != nil {
			return Release{}, fmt.Errorf("release %s: %w", dir, err)
		}
		if !st.Mode().IsRegular() || st.Size() == 0 {
			return Release{}, fmt.Errorf("release %s: %s is not a non-empty regular file", dir, filepath.Base(p))
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, FileCmdline))
	if err != nil {
		return Release{}, fmt.Errorf("release %s: %w", dir, err)
	}
	r.Cmdline = strings.TrimSuffix(string(b), "\n")
	if err := checkCmdline(r.Cmdline); err != nil {
		return Release{}, fmt.Errorf("release %s: %s: %w", dir, FileCmdline, err)
	}
	return r, nil
}

func checkCmdline(c string) error {
	if len(c) > MaxCmdline {
		return fmt.Errorf("kernel command line is %d bytes; at most %d fit", len(c), MaxCmdline)
	}
	if strings.ContainsAny(c, "\x00\n\r") {
		return errors.New("kernel command line contains a NUL or line break")
	}
	return nil
}

// Options describe one launch. Shape, Release and the host paths are
// required; the rest have defaults.
type Options struct {
	// Mode is ModeDev or ModeTDX.
	Mode Mode
	// Shape is the declared VM shape.
	Shape *shape.VMShape
	// Release holds the firmware, kernel, initrd and command line.
	Release Release
	// Disks maps each of the shape's disk slots to a raw image path.
	Disks map[shape.DiskKind]string
	// HostAddr and HostPort are where the guest's API port
	// (guest.HTTPSPort) is forwarded on the host. HostAddr defaults to
	// DefaultHostAddr.
	HostAddr string
	HostPort int
	// ConsoleLog receives the guest serial console (ttyS0).
	ConsoleLog string
	// StatusSocket is the unix socket QEMU serves the status channel on.
	StatusSocket string
	// QMPSocket is the unix socket QEMU serves QMP on.
	QMPSocket string
	// GPUs are the host PCI addresses of the GPUs to pass through, one per
	// GPU the shape declares (TDX only).
	GPUs []string
	// GuestCID is the guest's vsock CID (TDX only; default DefaultGuestCID).
	GuestCID uint32
	// QGS overrides where QEMU reaches the quote generation service (TDX
	// only); nil takes DefaultQGS of the shape's QEMU profile.
	QGS *QGS
	// Binary is the QEMU executable (default Binary).
	Binary string
}

var (
	bdfRE = regexp.MustCompile(`^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$`)
)

// ParseBDF checks a PCI address such as 0000:3b:00.0 or 3b:00.0 and
// returns it in full lower-case form (domain:bus:device.function).
func ParseBDF(s string) (string, error) {
	m := bdfRE.FindStringSubmatch(s)
	if m == nil {
		return "", fmt.Errorf("GPU address %q is not a PCI address like 0000:3b:00.0", s)
	}
	dom := m[1]
	if dom == "" {
		dom = "0000"
	}
	dev, _ := strconv.ParseUint(m[3], 16, 8)
	if dev > 0x1f {
		return "", fmt.Errorf("GPU address %q: device %s is above 1f", s, m[3])
	}
	return strings.ToLower(fmt.Sprintf("%s:%s:%s.%s", dom, m[2], m[3], m[4])), nil
}

// Argv builds the complete QEMU argument vector (argv[0] is the binary)
// for a launch. Devices are emitted in a fixed order derived from the
// shape, because their order fixes PCI addresses and so the ACPI tables
// measured into RTMR0: for one shape the device part of the command line
// is identical in dev and TDX mode, apart from TDX's vsock and GPUs.
func Argv(o Options) ([]string, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	s := o.Shape
	bin := o.Binary
	if bin == "" {
		bin = Binary
	}
	mem := strconv.Itoa(s.MemoryMiB) + "M"
	a := []string{bin}
	switch o.Mode {
	case ModeDev:
		a = append(a,
			"-accel", "tcg",
			"-machine", "q35",
			"-cpu", "max",
			"-smp", strconv.Itoa(s.VCPUs),
			"-m", mem,
		)
	case ModeTDX:
		machine := "q35,kernel-irqchip=split,confidential-guest-support=tdx"
		if s.QEMU.MemoryBackend == shape.MemoryBackendRAM {
			machine += ",memory-backend=mem0"
		}
		a = append(a,
			"-accel", "kvm",
			"-machine", machine,
			"-cpu", "host",
			"-smp", strconv.Itoa(s.VCPUs),
			"-m", mem,
		)
		if s.QEMU.MemoryBackend == shape.MemoryBackendRAM {
			a = append(a, "-object", "memory-backend-ram,id=mem0,size="+mem)
		}
		obj, err := tdxObject("tdx", QGSFor(s, o.QGS))
		if err != nil {
			return nil, err
		}
		a = append(a, "-object", obj)
	}
	a = append(a,
		"-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
		"-bios", o.Release.OVMF,
		"-kernel", o.Release.Kernel,
		"-initrd", o.Release.Initrd,
		"-append", o.Release.Cmdline,
		"-chardev", "file,id=console,path="+escape(o.ConsoleLog)+",append=on",
		"-serial", "chardev:console",
	)
	hostAddr := o.HostAddr
	if hostAddr == "" {
		hostAddr = DefaultHostAddr
	}
	for i := range s.NICs {
		netdev := fmt.Sprintf("user,id=net%d", i)
		if i == 0 {
			netdev += fmt.Sprintf(",hostfwd=tcp:%s:%d-:%d", hostAddr, o.HostPort, guest.HTTPSPort)
		}
		a = append(a,
			"-netdev", netdev,
			"-device", fmt.Sprintf("virtio-net-pci,netdev=net%d,romfile=", i),
		)
	}
	for _, d := range s.Disks {
		drive := "file=" + escape(o.Disks[d.Kind]) + ",if=none,id=" + string(d.Kind) + ",format=raw"
		if d.Kind.ReadOnly() {
			drive += ",readonly=on"
		}
		a = append(a,
			"-drive", drive,
			"-device", "virtio-blk-pci,drive="+string(d.Kind)+",serial="+d.Kind.Serial(),
		)
	}
	a = append(a,
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=status,path="+escape(o.StatusSocket)+",server=on,wait=off",
		"-device", "virtserialport,chardev=status,name="+guest.StatusPortName,
	)
	if o.Mode == ModeTDX {
		a = append(a, "-device", fmt.Sprintf("vhost-vsock-pci,guest-cid=%d", orDefault(o.GuestCID, DefaultGuestCID)))
		if len(o.GPUs) > 0 && s.QEMU.IOMMUFD {
			a = append(a, "-object", "iommufd,id=iommufd0")
		}
		for i, g := range o.GPUs {
			bdf, _ := ParseBDF(g)
			// rombar=0: the GPU's option ROM (its VBIOS UEFI driver) is
			// neither exposed nor run. OVMF would otherwise load it, a
			// measured driver image the release does not contain, and
			// place the GPU's 64-bit BARs differently (see measure/acpi).
			vfio := fmt.Sprintf("vfio-pci,host=%s,bus=rp%d,rombar=0", bdf, i)
			if s.QEMU.IOMMUFD {
				vfio += ",iommufd=iommufd0"
			}
			a = append(a,
				"-device", fmt.Sprintf("pcie-root-port,id=rp%d,bus=pcie.0,chassis=%d", i, i+1),
				"-device", vfio,
			)
		}
	}
	a = append(a,
		"-chardev", "socket,id=qmp,path="+escape(o.QMPSocket)+",server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
	)
	return a, nil
}

func orDefault(v, d uint32) uint32 {
	if v == 0 {
		return d
	}
	return v
}

// escape doubles commas, QEMU's escape inside option lists.
func escape(v string) string { return strings.ReplaceAll(v, ",", ",,") }

func (o *Options) check() error {
	s := o.Shape
	if s == nil {
		return errors.New("qemu: no VM shape given")
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	switch o.Mode {
	case ModeDev:
		if s.GPUs > 0 {
			return fmt.Errorf("qemu: shape %q needs %d GPU(s); dev mode has no GPU passthrough (use TDX mode or a shape without GPUs)", s.Name, s.GPUs)
		}
		if len(o.GPUs) > 0 {
			return fmt.Errorf("qemu: %d GPU address(es) given; dev mode has no GPU passthrough", len(o.GPUs))
		}
	case ModeTDX:
		if len(o.GPUs) != s.GPUs {
			return fmt.Errorf("qemu: shape %q needs %d GPU(s), but %d GPU address(es) were given", s.Name, s.GPUs, len(o.GPUs))
		}
		seen := map[string]bool{}
		for _, g := range o.GPUs {
			bdf, err := ParseBDF(g)
			if err != nil {
				return fmt.Errorf("qemu: %w", err)
			}
			if seen[bdf] {
				return fmt.Errorf("qemu: GPU address %s is given twice", bdf)
			}
			seen[bdf] = true
		}
		if o.GuestCID != 0 && (o.GuestCID < 3 || o.GuestCID == 0xFFFFFFFF) {
			return fmt.Errorf("qemu: guest vsock CID %d is reserved (use 3 or more)", o.GuestCID)
		}
		if o.QGS != nil {
			if err := o.QGS.Validate(); err != nil {
				return fmt.Errorf("qemu: %w", err)
			}
		}
	default:
		return fmt.Errorf("qemu: mode %q is neither %q nor %q", o.Mode, ModeDev, ModeTDX)
	}
	for _, f := range []struct{ name, v string }{
		{"release OVMF firmware", o.Release.OVMF},
		{"release kernel", o.Release.Kernel},
		{"release initrd", o.Release.Initrd},
		{"console log path", o.ConsoleLog},
		{"status socket path", o.StatusSocket},
		{"QMP socket path", o.QMPSocket},
	} {
		if f.v == "" {
			return fmt.Errorf("qemu: no %s given", f.name)
		}
	}
	if err := checkCmdline(o.Release.Cmdline); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	for _, p := range []struct{ name, v string }{{"status socket", o.StatusSocket}, {"QMP socket", o.QMPSocket}} {
		if len(p.v) > maxSocketPath {
			return fmt.Errorf("qemu: %s path %q is %d bytes; unix sockets allow %d (use a shorter state directory)", p.name, p.v, len(p.v), maxSocketPath)
		}
	}
	if o.HostPort < 1 || o.HostPort > 65535 {
		return fmt.Errorf("qemu: host port %d is out of range 1..65535", o.HostPort)
	}
	if o.HostAddr != "" {
		if a, err := netip.ParseAddr(o.HostAddr); err != nil || !a.Is4() {
			return fmt.Errorf("qemu: host address %q is not an IPv4 address", o.HostAddr)
		}
	}
	for _, d := range s.Disks {
		if o.Disks[d.Kind] == "" {
			return fmt.Errorf("qemu: shape %q has a %q disk slot but no image was given for it", s.Name, d.Kind)
		}
	}
	for k := range o.Disks {
		if !s.HasDisk(k) {
			return fmt.Errorf("qemu: a %q disk image was given but shape %q has no %q slot", k, s.Name, k)
		}
	}
	return nil
}

// SupportsTDX runs "binary -object help" and reports whether the QEMU
// build offers the tdx-guest object. binary defaults to Binary.
func SupportsTDX(ctx context.Context, binary string) (bool, error) {
	if binary == "" {
		binary = Binary
	}
	out, err := exec.CommandContext(ctx, binary, "-object", "help").Output()
	if err != nil {
		return false, fmt.Errorf("qemu: %s -object help: %w", binary, err)
	}
	for _, line := range bytes.Split(out, []byte("\n")) {
		if string(bytes.TrimSpace(line)) == "tdx-guest" {
			return true, nil
		}
	}
	return false, nil
}

// Quote returns s quoted for a POSIX shell when it needs quoting.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := func(r rune) bool {
		return r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			slices.Contains([]rune("_@%+=:,./-"), r))
	}
	ok := true
	for _, r := range s {
		if !safe(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
