package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/image"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
)

const remedyTDX = "use a host kernel >= 6.16 with TDX host support (CONFIG_INTEL_TDX_HOST=y, CONFIG_KVM_INTEL=m),\n" +
	"enable TDX in the BIOS (TME, TME-MT with key splits > 0, TDX, the SEAM loader),\n" +
	"and boot with kvm_intel.tdx=1 on the kernel command line (or `options kvm_intel tdx=1` in /etc/modprobe.d/kvm.conf);\n" +
	"`dmesg | grep -i tdx` says why the TDX module did not initialise"

func (d *doctor) checkTDX() {
	const id, title = "kvm-tdx", "TDX enabled in KVM"
	if d.opts.Dev {
		d.skip(id, title, devModeSkipNotes)
		return
	}
	b, err := d.readFile(pathTDXParam)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			d.fail(id, title, err.Error(), remedyTDX)
		} else if !d.exists(pathKVMIntel) {
			d.fail(id, title, pathKVMIntel+" is absent: the kvm_intel module is not loaded",
				"modprobe kvm_intel (and enable VT-x in the BIOS); then:\n"+remedyTDX)
		} else {
			d.fail(id, title, "kvm_intel has no tdx parameter ("+pathTDXParam+" is absent): this kernel has no TDX host support", remedyTDX)
		}
		return
	}
	v := strings.TrimSpace(string(b))
	switch v {
	case "Y", "y", "1":
		d.ok(id, title, pathTDXParam+" is "+v)
	default:
		d.fail(id, title, fmt.Sprintf("%s is %q: KVM runs without TDX", pathTDXParam, v), remedyTDX)
	}
}

func (d *doctor) checkKVM() {
	const id, title = "dev-kvm", "/dev/kvm usable"
	if d.opts.Dev {
		d.skip(id, title, devModeSkipNotes+" (dev launches run -accel tcg)")
		return
	}
	f, err := os.OpenFile(d.path(pathKVM), os.O_RDWR, 0)
	if err != nil {
		err = hostErr(pathKVM, err)
		remedy := "load KVM: modprobe kvm_intel (VT-x must be enabled in the BIOS)"
		switch {
		case errors.Is(err, fs.ErrPermission):
			remedy = "add the user to the kvm group: usermod -aG kvm $USER (then log in again), or run chrysalis as root"
		case !errors.Is(err, fs.ErrNotExist):
			remedy = pathKVM + " must be the KVM character device (10:232); check udev and the kvm module"
		}
		d.fail(id, title, err.Error(), remedy)
		return
	}
	f.Close()
	d.ok(id, title, pathKVM+" opens read-write")
}

func (d *doctor) checkQEMU() {
	const id, title = "qemu-version", "QEMU version"
	out, err := d.env.Run(d.env.QEMU, "--version")
	if err != nil {
		remedy := "install QEMU: apt-get install qemu-system-x86"
		if !d.opts.Dev {
			remedy = "install QEMU >= 10.1 built with TDX (Debian forky/sid qemu-system-x86, Ubuntu 25.10, or upstream 10.1+), or pass --qemu PATH"
		}
		d.fail(id, title, fmt.Sprintf("%s --version: %v", d.env.QEMU, err), remedy)
		d.skip("qemu-tdx", "QEMU has the tdx-guest object", "QEMU did not run")
		return
	}
	v, err := ParseQEMUVersion(out)
	if err != nil {
		d.fail(id, title, fmt.Sprintf("%s --version: %v", d.env.QEMU, err), "check that --qemu names qemu-system-x86_64")
		d.skip("qemu-tdx", "QEMU has the tdx-guest object", "QEMU's version is unknown")
		return
	}
	d.checkQEMUVersion(id, title, v)
	d.checkQEMUTDX()
}

func (d *doctor) checkQEMUVersion(id, title string, v Version) {
	if d.opts.Dev {
		d.ok(id, title, fmt.Sprintf("%s is QEMU %s (dev mode runs on any QEMU with TCG)", d.env.QEMU, v))
		return
	}
	if d.shape == nil {
		d.skip(id, title, fmt.Sprintf("%s is QEMU %s; no shape to compare with", d.env.QEMU, v))
		return
	}
	p := d.shape.QEMU
	want, err := ParseVersion(p.QEMUVersion)
	if err != nil {
		d.fail(id, title, fmt.Sprintf("shape %s: QEMU profile %s: %v", d.shape.Name, p.Name, err), "fix the shape's QEMU profile")
		return
	}
	switch {
	case v.Compare(want) < 0:
		d.fail(id, title, fmt.Sprintf("%s is QEMU %s; shape %s (profile %s) needs QEMU >= %s", d.env.QEMU, v, d.shape.Name, p.Name, p.QEMUVersion),
			"install QEMU "+p.QEMUVersion+" built with TDX (or a shape whose QEMU profile matches this host), or pass --qemu PATH")
	case v[0] != want[0] || v[1] != want[1]:
		d.warn(id, title, fmt.Sprintf("%s is QEMU %s, newer than the %s of shape %s's profile %s: MRTD and RTMR0-2 are published for %s and may differ on this QEMU",
			d.env.QEMU, v, p.QEMUVersion, d.shape.Name, p.Name, p.QEMUVersion),
			"use a shape whose QEMU profile names this QEMU version, or install QEMU "+p.QEMUVersion)
	default:
		d.ok(id, title, fmt.Sprintf("%s is QEMU %s, as shape %s's profile %s expects", d.env.QEMU, v, d.shape.Name, p.Name))
	}
}

func (d *doctor) checkQEMUTDX() {
	const id, title = "qemu-tdx", "QEMU has the tdx-guest object"
	if d.opts.Dev {
		d.skip(id, title, devModeSkipNotes)
		return
	}
	out, err := d.env.Run(d.env.QEMU, "-object", "help")
	if err != nil {
		d.fail(id, title, fmt.Sprintf("%s -object help: %v", d.env.QEMU, err), "check that --qemu names qemu-system-x86_64")
		return
	}
	if !HasObject(out, "tdx-guest") {
		d.fail(id, title, fmt.Sprintf("`%s -object help` does not list tdx-guest: this QEMU cannot run a TD", d.env.QEMU),
			"install QEMU >= 10.1 built with TDX (Debian forky/sid qemu-system-x86, Ubuntu 25.10, or upstream 10.1+ configured for x86_64-softmmu with KVM), or pass --qemu PATH")
		return
	}
	d.ok(id, title, fmt.Sprintf("`%s -object help` lists tdx-guest", d.env.QEMU))
}

func (d *doctor) checkRelease() {
	const id, title = "release", "release files match SHA256SUMS"
	const tid, ttitle = "ovmf-tdvf", "OVMF.fd carries TDVF metadata"
	if d.opts.Release == "" {
		d.skip(id, title, "no release given (pass --release DIR)")
		d.skip(tid, ttitle, "no release given")
		d.skip(gpuDriverID, gpuDriverTitle, "no release given")
		return
	}
	r, err := image.LoadRelease(d.opts.Release)
	if err != nil {
		d.fail(id, title, err.Error(), "rebuild the release (chrysalis build --out DIR) or fetch it again; never edit a release's files")
		d.skip(tid, ttitle, "the release did not verify")
		d.skip(gpuDriverID, gpuDriverTitle, "the release did not verify")
		return
	}
	d.ok(id, title, fmt.Sprintf("%s: %d files match SHA256SUMS (kernel %s, source %s)", d.opts.Release, len(image.ReleaseFiles), r.KernelVersion, r.SourceCommit))
	d.checkReleaseDriver(r)
	if d.opts.Dev {
		d.skip(tid, ttitle, devModeSkipNotes)
		return
	}
	fw, err := tdvf.Load(r.Path(image.FileFirmware))
	if err != nil {
		d.fail(tid, ttitle, err.Error(), "the release's OVMF.fd must be a TDX-capable OVMF (TDVF); rebuild the release from image/inputs.lock")
		return
	}
	detail := fmt.Sprintf("%d TDVF sections", len(fw.Sections))
	if d.shape != nil {
		if order, err := tdvf.ParsePageOrder(d.shape.QEMU.MRTDPageOrder); err == nil {
			if mrtd, err := fw.MRTD(order); err == nil {
				detail += fmt.Sprintf("; MRTD (%s, shape %s) %x", order, d.shape.Name, mrtd)
			}
		}
	}
	d.ok(tid, ttitle, detail)
}

// gpuDriverModule is the kernel module a release must carry for GPU
// shapes: NVIDIA's GPU driver (the open kernel modules' nvidia.ko).
const gpuDriverModule = "nvidia"

const gpuDriverID, gpuDriverTitle = "release-nvidia", "release carries the NVIDIA GPU driver"

// checkReleaseDriver fails a TDX launch of a GPU shape from a release whose
// initramfs has no NVIDIA driver: such a guest boots, then stops at the
// agent's GPU gate, after the owner has waited for it.
func (d *doctor) checkReleaseDriver(r *image.Release) {
	const id, title = gpuDriverID, gpuDriverTitle
	if d.opts.Dev || d.shape == nil || d.shape.GPUs == 0 {
		d.skip(id, title, "no GPUs in this launch")
		return
	}
	for _, m := range r.Modules {
		if image.ModuleName(m) == gpuDriverModule {
			d.ok(id, title, m)
			return
		}
	}
	d.fail(id, title,
		fmt.Sprintf("%s has none of the NVIDIA driver's modules (no %s.ko among its %d modules), and shape %s needs %d GPU(s): the guest would stop at the agent's GPU gate",
			d.opts.Release, gpuDriverModule, len(r.Modules), d.shape.Name, d.shape.GPUs),
		"boot GPU shapes only from a release that carries the NVIDIA open GPU kernel modules and a cgo agent;\n"+
			"releases built from this repository's image/inputs.lock do not carry them yet (README, \"GPU image\")")
}

func (d *doctor) checkMemory() {
	const id, title = "memory", "memory available for the guest"
	const hid, htitle = "hugepages", "huge pages"
	b, err := d.readFile(pathMeminfo)
	if err != nil {
		d.fail(id, title, err.Error(), "run on Linux with /proc mounted")
		d.skip(hid, htitle, pathMeminfo+" unreadable")
		return
	}
	m, err := ParseMeminfo(b)
	if err != nil {
		d.fail(id, title, pathMeminfo+": "+err.Error(), "run on Linux with /proc mounted")
		d.skip(hid, htitle, pathMeminfo+" unreadable")
		return
	}
	avail := m.MemAvailableKiB / 1024
	switch {
	case d.shape == nil:
		d.skip(id, title, fmt.Sprintf("MemAvailable %s; no shape to compare with", mib(avail)))
	case avail < int64(d.shape.MemoryMiB)+MemoryOverheadMiB:
		d.fail(id, title, fmt.Sprintf("MemAvailable %s (of %s); shape %s needs %s + %s overhead",
			mib(avail), mib(m.MemTotalKiB/1024), d.shape.Name, mib(int64(d.shape.MemoryMiB)), mib(MemoryOverheadMiB)),
			fmt.Sprintf("free %s of memory (stop other VMs and services, release reserved huge pages), or choose a smaller shape",
				mib(int64(d.shape.MemoryMiB)+MemoryOverheadMiB-avail)))
	default:
		d.ok(id, title, fmt.Sprintf("MemAvailable %s (of %s) covers shape %s's %s + %s overhead",
			mib(avail), mib(m.MemTotalKiB/1024), d.shape.Name, mib(int64(d.shape.MemoryMiB)), mib(MemoryOverheadMiB)))
	}
	if m.HugePagesTotal == 0 {
		d.ok(hid, htitle, "none reserved (the guest's RAM is memory-backend-ram, not huge pages)")
		return
	}
	d.ok(hid, htitle, fmt.Sprintf("%d x %d kB reserved (%d free), %s that the guest's memory-backend-ram cannot use and MemAvailable does not count",
		m.HugePagesTotal, m.HugepageSizeKiB, m.HugePagesFree, mib(m.HugePagesTotal*m.HugepageSizeKiB/1024)))
}

func (d *doctor) checkVsock() {
	const id, title = "vhost-vsock", "vhost-vsock for the guest's vsock device"
	if d.opts.Dev {
		d.skip(id, title, devModeSkipNotes)
		return
	}
	if _, err := os.Stat(d.path(pathVhostVsock)); err != nil {
		detail := hostErr(pathVhostVsock, err).Error() + ": QEMU cannot create the TD's vhost-vsock-pci device"
		if q, _, ok := d.qgs(); ok && q.Transport == qemu.QGSVsock {
			detail += ", and the TD reaches the quote generation service over vsock"
		}
		d.fail(id, title, detail, "modprobe vhost_vsock (and add vhost_vsock to /etc/modules-load.d/ to keep it)")
		return
	}
	d.ok(id, title, pathVhostVsock+" present")
}

// qgs is where the TD will reach QGS and why: Options.QGS, else the
// default of the shape's QEMU profile; ok is false without either.
func (d *doctor) qgs() (q qemu.QGS, why string, ok bool) {
	switch {
	case d.opts.QGS != nil:
		return *d.opts.QGS, "--qgs", true
	case d.shape != nil:
		return qemu.DefaultQGS(d.shape.QEMU), fmt.Sprintf("QEMU profile %s (QEMU %s)", d.shape.QEMU.Name, d.shape.QEMU.QEMUVersion), true
	}
	return qemu.QGS{}, "", false
}

// checkQGS looks for the kind of QGS endpoint the TD will use: Intel's
// tdx-qgs serves a vsock port when /etc/qgs.conf has a port line, else its
// unix socket, never both.
func (d *doctor) checkQGS() {
	const id, title = "qgs", "Intel quote generation service (QGS)"
	if d.opts.Dev {
		d.skip(id, title, devModeSkipNotes+" (dev evidence is unsigned)")
		return
	}
	q, why, ok := d.qgs()
	if !ok {
		d.skip(id, title, "no shape: the QGS transport follows the shape's QEMU profile (or --qgs)")
		return
	}
	if err := q.Validate(); err != nil {
		d.fail(id, title, err.Error(), "pass --qgs unix[:PATH] or vsock[:[CID:]PORT]")
		return
	}
	var found []string
	for _, dir := range qgsUnitDirs {
		if p := filepath.Join(dir, qgsUnitName); d.exists(p) {
			found = append(found, p)
		}
	}
	if d.exists(pathQGSBinary) {
		found = append(found, pathQGSBinary)
	}
	serve := "leave /etc/qgs.conf without a `port` line (QGS then serves " + pathQGSSocket + ")"
	if q.Transport == qemu.QGSVsock {
		serve = fmt.Sprintf("make /etc/qgs.conf say `port = %d`", q.Port)
	}
	if len(found) == 0 {
		d.warn(id, title, fmt.Sprintf("no %s unit and no %s: the TD cannot get quotes signed (a QGS elsewhere on %s is invisible to this check)",
			qgsUnitName, pathQGSBinary, q),
			"install Intel's tdx-qgs and libsgx-dcap-default-qpl (Intel SGX/TDX DCAP apt repository, or your distribution's TDX stack),\n"+
				serve+", then: systemctl enable --now qgsd")
		return
	}
	installed := "installed (" + strings.Join(found, ", ") + ")"
	var c QGSConf
	confNote := pathQGSConf + ": no port line"
	b, err := d.readFile(pathQGSConf)
	switch {
	case err == nil:
		if c, err = ParseQGSConf(b); err != nil {
			d.warn(id, title, pathQGSConf+": "+err.Error(), serve+", then: systemctl restart qgsd")
			return
		}
	case q.Transport == qemu.QGSVsock:
		d.warn(id, title, installed+" but "+err.Error(),
			fmt.Sprintf("write /etc/qgs.conf with `port = %d` and `number_threads = 4`, then: systemctl restart qgsd", q.Port))
		return
	default: // without a config file QGS serves its unix socket
		confNote = err.Error()
	}
	switch q.Transport {
	case qemu.QGSUnix:
		if c.Port != 0 {
			d.warn(id, title, fmt.Sprintf("%s line %d: QGS listens on vsock port %d, not on a unix socket; %s points the TD at %s",
				pathQGSConf, c.Line, c.Port, why, q),
				fmt.Sprintf("comment out the port line in /etc/qgs.conf (QGS then serves %s), then: systemctl restart qgsd\n"+
					"or keep it and launch with --qgs vsock:%d:%d", pathQGSSocket, qemu.DefaultQGSCID, c.Port))
			return
		}
		st, err := os.Stat(d.path(q.Path))
		switch {
		case err != nil:
			d.warn(id, title, fmt.Sprintf("%s, %s, but %v: qgsd is not running (%s points the TD at %s)", installed, confNote, hostErr(q.Path, err), why, q),
				"systemctl enable --now qgsd (its log: journalctl -u qgsd)")
		case st.Mode()&os.ModeSocket == 0:
			d.fail(id, title, fmt.Sprintf("%s is a %s, not a unix socket: QEMU cannot reach QGS there (%s points the TD at %s)", q.Path, fileKind(st.Mode()), why, q),
				fmt.Sprintf("rm %s; systemctl restart qgsd", q.Path))
		default:
			d.ok(id, title, fmt.Sprintf("%s; %s; unix socket %s present, as %s wants (whether qgsd answers: systemctl status qgsd)", installed, confNote, q.Path, why))
		}
	case qemu.QGSVsock:
		port := fmt.Sprint(q.Port)
		switch {
		case c.Port == 0:
			sock := ""
			if d.exists(pathQGSSocket) {
				sock = "; unix socket " + pathQGSSocket + " present"
			}
			d.warn(id, title, fmt.Sprintf("%s has no active port line, so QGS serves only its unix socket %s%s; %s points the TD at %s "+
				"(tdx-qgs's installer comments the port out when it finds QEMU >= 10.1 or Linux >= 6.17)",
				pathQGSConf, pathQGSSocket, sock, why, q),
				"uncomment `port = "+port+"` in /etc/qgs.conf, then: systemctl restart qgsd\nor launch with --qgs unix")
		case uint32(c.Port) != q.Port:
			d.warn(id, title, fmt.Sprintf("%s line %d: QGS listens on vsock port %d; %s points the TD at %s", pathQGSConf, c.Line, c.Port, why, q),
				"set `port = "+port+"` in /etc/qgs.conf, then: systemctl restart qgsd\n"+
					fmt.Sprintf("or launch with --qgs vsock:%d:%d", q.CID, c.Port))
		default:
			d.ok(id, title, fmt.Sprintf("%s; %s line %d: vsock port %d, as %s wants (whether qgsd runs: systemctl status qgsd)",
				installed, pathQGSConf, c.Line, c.Port, why))
		}
	}
}

// fileKind names a non-socket file type for a message.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeDevice != 0:
		return "device"
	}
	return "non-socket file"
}

func (d *doctor) checkPCCS() {
	const id, title = "pccs", "PCCS for quote collateral"
	if d.opts.Dev {
		d.skip(id, title, devModeSkipNotes)
		return
	}
	b, err := d.readFile(pathQCNLConf)
	if err != nil {
		d.warn(id, title, err.Error()+": QGS's quote provider library does not know where to fetch PCK certificates",
			"install libsgx-dcap-default-qpl and set \"pccs_url\" in "+pathQCNLConf+" to your PCCS (e.g. https://localhost:8081/sgx/certification/v4/), then: systemctl restart qgsd")
		return
	}
	url := ParsePCCSURL(b)
	if url == "" {
		d.warn(id, title, pathQCNLConf+" sets no pccs_url",
			"set \"pccs_url\" in "+pathQCNLConf+" to your PCCS (e.g. https://localhost:8081/sgx/certification/v4/), then: systemctl restart qgsd")
		return
	}
	d.ok(id, title, pathQCNLConf+": pccs_url "+url)
}

// profileUsesIOMMUFD reports whether s's QEMU profile attaches GPUs
// through iommufd.
func profileUsesIOMMUFD(s *shape.VMShape) bool { return s != nil && s.QEMU.IOMMUFD }
