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
		return
	}
	r, err := image.LoadRelease(d.opts.Release)
	if err != nil {
		d.fail(id, title, err.Error(), "rebuild the release (chrysalis build --out DIR) or fetch it again; never edit a release's files")
		d.skip(tid, ttitle, "the release did not verify")
		return
	}
	d.ok(id, title, fmt.Sprintf("%s: %d files match SHA256SUMS (kernel %s, source %s)", d.opts.Release, len(image.ReleaseFiles), r.KernelVersion, r.SourceCommit))
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
	const id, title = "vhost-vsock", "vhost-vsock for the quote and status channels"
	if d.opts.Dev {
		d.skip(id, title, devModeSkipNotes)
		return
	}
	if _, err := os.Stat(d.path(pathVhostVsock)); err != nil {
		d.fail(id, title, hostErr(pathVhostVsock, err).Error()+": the TD reaches the quote generation service over vsock",
			"modprobe vhost_vsock (and add vhost_vsock to /etc/modules-load.d/ to keep it)")
		return
	}
	d.ok(id, title, pathVhostVsock+" present")
}

func (d *doctor) checkQGS() {
	const id, title = "qgs", "Intel quote generation service (QGS)"
	if d.opts.Dev {
		d.skip(id, title, devModeSkipNotes+" (dev evidence is unsigned)")
		return
	}
	port := fmt.Sprint(qemu.DefaultQGSPort)
	var found []string
	for _, dir := range qgsUnitDirs {
		if p := filepath.Join(dir, qgsUnitName); d.exists(p) {
			found = append(found, p)
		}
	}
	if d.exists(pathQGSBinary) {
		found = append(found, pathQGSBinary)
	}
	if len(found) == 0 {
		d.warn(id, title, fmt.Sprintf("no %s unit and no %s: the TD cannot get quotes signed (a QGS elsewhere on vsock %d:%s is invisible to this check)",
			qgsUnitName, pathQGSBinary, qemu.DefaultQGSCID, port),
			"install Intel's tdx-qgs and libsgx-dcap-default-qpl (Intel SGX/TDX DCAP apt repository, or your distribution's TDX stack),\n"+
				"make /etc/qgs.conf say `port = "+port+"`, then: systemctl enable --now qgsd")
		return
	}
	b, err := d.readFile(pathQGSConf)
	if err != nil {
		d.warn(id, title, "QGS installed ("+strings.Join(found, ", ")+") but "+err.Error(),
			"write /etc/qgs.conf with `port = "+port+"` and `number_threads = 4`, then: systemctl restart qgsd")
		return
	}
	c, err := ParseQGSConf(b)
	if err != nil {
		d.warn(id, title, pathQGSConf+": "+err.Error(), "set `port = "+port+"` in /etc/qgs.conf, then: systemctl restart qgsd")
		return
	}
	sock := ""
	if d.exists(pathQGSSocket) {
		sock = "; unix socket " + pathQGSSocket + " present"
	}
	switch {
	case c.Port == 0:
		d.warn(id, title, fmt.Sprintf("%s has no active port line, so QGS serves only its unix socket %s%s; chrysalis points the TD at vsock %d:%s "+
			"(tdx-qgs's installer comments the port out when it finds QEMU >= 10.1 or Linux >= 6.17)",
			pathQGSConf, pathQGSSocket, sock, qemu.DefaultQGSCID, port),
			"uncomment `port = "+port+"` in /etc/qgs.conf, then: systemctl restart qgsd")
	case c.Port != qemu.DefaultQGSPort:
		d.warn(id, title, fmt.Sprintf("%s line %d: QGS listens on vsock port %d; chrysalis points the TD at vsock %d:%s", pathQGSConf, c.Line, c.Port, qemu.DefaultQGSCID, port),
			"set `port = "+port+"` in /etc/qgs.conf, then: systemctl restart qgsd")
	default:
		d.ok(id, title, fmt.Sprintf("installed (%s); %s line %d: vsock port %d%s (whether qgsd runs: systemctl status qgsd)",
			strings.Join(found, ", "), pathQGSConf, c.Line, c.Port, sock))
	}
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
