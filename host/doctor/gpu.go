package doctor

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
)

// VendorNVIDIA is NVIDIA's PCI vendor ID.
const VendorNVIDIA = 0x10de

// HopperGPUs maps the PCI device IDs of NVIDIA's Hopper GPUs, the ones with
// confidential computing, to their names. Source: NVIDIA gpu-admin-tools,
// gpu/devid_names.py (GPU_NAME_BY_DEVID), read 2026; 0x2342 is left out
// because that table names it both H100 and GH200 (a Grace module, not a
// PCIe card for an x86 host).
var HopperGPUs = map[uint16]string{
	0x2313: "H100", 0x2321: "H100", 0x2330: "H100", 0x2331: "H100",
	0x2336: "H100", 0x2337: "H100", 0x2338: "H100", 0x2339: "H100", 0x233d: "H100",
	0x2335: "H200", 0x233b: "H200",
	0x2322: "H800", 0x2324: "H800", 0x233a: "H800",
	0x2309: "H20", 0x230c: "H20", 0x230e: "H20", 0x2328: "H20", 0x2329: "H20",
}

const gpuToolsRepo = "https://github.com/NVIDIA/gpu-admin-tools"

func (d *doctor) checkGPUs() {
	const id, title = "gpus", "GPU addresses for the shape"
	if d.opts.Dev {
		if len(d.opts.GPUs) > 0 {
			d.fail(id, title, fmt.Sprintf("%d GPU address(es) given; dev mode has no GPU passthrough", len(d.opts.GPUs)), "drop --gpu, or check for TDX without --dev")
			return
		}
		d.skip(id, title, "dev mode has no GPU passthrough")
		return
	}
	var addrs []string
	for _, g := range d.opts.GPUs {
		a, err := qemu.ParseBDF(g)
		if err != nil {
			d.fail(id, title, err.Error(), "give each GPU as --gpu DOMAIN:BUS:DEVICE.FUNCTION, as `lspci -D -d 10de:` prints it")
			return
		}
		if slices.Contains(addrs, a) {
			d.fail(id, title, "GPU address "+a+" is given twice", "give each GPU once")
			return
		}
		addrs = append(addrs, a)
	}
	switch {
	case d.shape == nil:
		d.skip(id, title, "no shape to compare with")
	case len(addrs) != d.shape.GPUs:
		d.fail(id, title, fmt.Sprintf("shape %s needs %d GPU(s), %d address(es) given", d.shape.Name, d.shape.GPUs, len(addrs)),
			"pass one --gpu ADDRESS per GPU (list them with `lspci -D -d 10de:`), or choose a shape with as many GPUs")
	case len(addrs) == 0:
		d.ok(id, title, fmt.Sprintf("shape %s has no GPUs", d.shape.Name))
	default:
		d.ok(id, title, fmt.Sprintf("%s for shape %s", strings.Join(addrs, ", "), d.shape.Name))
	}
	for _, a := range addrs {
		d.checkGPU(a)
	}
}

// checkGPU runs the checks of the GPU at PCI address addr (normalised).
func (d *doctor) checkGPU(addr string) {
	devID, ok := d.checkGPUDevice(addr)
	driver := ""
	if ok {
		driver = d.checkGPUDriver(addr)
	} else {
		d.skip("gpu-driver/"+addr, "bound to vfio-pci", "no NVIDIA GPU at "+addr+" (see gpu-device)")
	}
	if ok {
		d.checkIOMMUGroup(addr, driver)
	} else {
		d.skip("gpu-iommu/"+addr, "alone in its IOMMU group", "no NVIDIA GPU at "+addr+" (see gpu-device)")
		d.skip("gpu-vfio/"+addr, "VFIO device nodes", "no NVIDIA GPU at "+addr+" (see gpu-device)")
	}
	const ccID, ccTitle = "gpu-cc/", "confidential computing mode on"
	if !ok {
		d.skip(ccID+addr, ccTitle, "no NVIDIA GPU at "+addr+" (see gpu-device)")
		return
	}
	name := HopperGPUs[devID]
	if name == "" {
		name = fmt.Sprintf("device %#04x", devID)
	}
	d.warn(ccID+addr, ccTitle,
		fmt.Sprintf("the %s's CC mode lives in the GPU and cannot be read from sysfs; without CC mode on, the guest's GPU attestation fails", name),
		"query and set it with NVIDIA's gpu-admin-tools, as root, with the GPU off the nvidia driver (the tool refuses while nvidia holds it):\n"+
			"git clone "+gpuToolsRepo+" && cd gpu-admin-tools\n"+
			"python3 ./nvidia_gpu_tools.py --gpu-bdf="+addr+" --query-cc-mode\n"+
			"python3 ./nvidia_gpu_tools.py --gpu-bdf="+addr+" --set-cc-mode=on --reset-after-cc-mode-switch")
}

// readHex reads a sysfs hex ID file such as vendor ("0x10de\n").
func (d *doctor) readHex(p string) (uint16, error) {
	b, err := d.readFile(p)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 16)
	if err != nil || !strings.HasPrefix(s, "0x") {
		return 0, fmt.Errorf("%s: %q is not a 16-bit hex ID like 0x10de", p, s)
	}
	return uint16(v), nil
}

// checkGPUDevice checks that addr is an NVIDIA GPU and returns its device
// ID; ok is false when it is not (or cannot be read), which is fatal.
func (d *doctor) checkGPUDevice(addr string) (devID uint16, ok bool) {
	id, title := "gpu-device/"+addr, "NVIDIA confidential-computing GPU"
	dir := pathPCIDevices + "/" + addr
	if _, err := os.Stat(d.path(dir)); err != nil {
		d.fail(id, title, fmt.Sprintf("no PCI device %s (%v)", addr, hostErr(dir, err)),
			"list the NVIDIA GPUs with `lspci -D -d 10de:` and pass one of their addresses to --gpu")
		return 0, false
	}
	vendor, err := d.readHex(dir + "/vendor")
	if err != nil {
		d.fail(id, title, err.Error(), "check the address with `lspci -D -s "+addr+"`")
		return 0, false
	}
	if vendor != VendorNVIDIA {
		d.fail(id, title, fmt.Sprintf("%s is vendor %#04x, not NVIDIA (%#04x)", addr, vendor, VendorNVIDIA),
			"list the NVIDIA GPUs with `lspci -D -d 10de:` and pass one of their addresses to --gpu")
		return 0, false
	}
	devID, err = d.readHex(dir + "/device")
	if err != nil {
		d.fail(id, title, err.Error(), "check the address with `lspci -D -s "+addr+"`")
		return 0, false
	}
	if name, known := HopperGPUs[devID]; known {
		d.ok(id, title, fmt.Sprintf("%s is an NVIDIA %s (10de:%04x)", addr, name, devID))
		return devID, true
	}
	d.warn(id, title, fmt.Sprintf("%s is NVIDIA device 10de:%04x, not a Hopper GPU (H100, H200, H800, H20) known to support confidential computing", addr, devID),
		"use a CC-capable GPU; if this one is (a newer part), check with NVIDIA's gpu-admin-tools --query-cc-mode")
	return devID, true
}

// driverOf returns the name of the driver bound to the PCI device at addr
// ("" when none), from the device's driver symlink.
func (d *doctor) driverOf(addr string) (string, error) {
	p := pathPCIDevices + "/" + addr + "/driver"
	target, err := os.Readlink(d.path(p))
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", hostErr(p, err)
	}
	return filepath.Base(target), nil
}

// bindCommands are the root shell commands that bind addr, now bound to
// driver (or none), to vfio-pci.
func bindCommands(addr, driver string) []string {
	var c []string
	if driver != "" {
		c = append(c, fmt.Sprintf("echo %s > /sys/bus/pci/drivers/%s/unbind", addr, driver))
	}
	return append(c,
		fmt.Sprintf("echo vfio-pci > /sys/bus/pci/devices/%s/driver_override", addr),
		fmt.Sprintf("echo %s > /sys/bus/pci/drivers_probe", addr))
}

// checkGPUDriver checks the vfio-pci binding and returns the driver bound.
func (d *doctor) checkGPUDriver(addr string) string {
	id, title := "gpu-driver/"+addr, "bound to vfio-pci"
	drv, err := d.driverOf(addr)
	if err != nil {
		d.fail(id, title, err.Error(), "check the device with `lspci -k -s "+addr+"`")
		return ""
	}
	if drv == "vfio-pci" {
		d.ok(id, title, addr+" is bound to vfio-pci")
		return drv
	}
	what := "bound to no driver"
	if drv != "" {
		what = "bound to " + drv
	}
	d.fail(id, title, addr+" is "+what+"; QEMU passes through only vfio-pci devices",
		"as root:\nmodprobe vfio-pci\n"+strings.Join(bindCommands(addr, drv), "\n"))
	return drv
}

// checkIOMMUGroup checks that the GPU is alone in its IOMMU group (or that
// the others cannot stop VFIO from claiming it) and that the VFIO device
// nodes exist.
func (d *doctor) checkIOMMUGroup(addr, driver string) {
	id, title := "gpu-iommu/"+addr, "alone in its IOMMU group"
	vid, vtitle := "gpu-vfio/"+addr, "VFIO device nodes"
	link := pathPCIDevices + "/" + addr + "/iommu_group"
	target, err := os.Readlink(d.path(link))
	if err != nil {
		remedy := "enable VT-d in the BIOS and boot with intel_iommu=on iommu=pt on the kernel command line"
		if !os.IsNotExist(err) {
			remedy = "check " + link
		}
		d.fail(id, title, fmt.Sprintf("%s has no IOMMU group (%v): the IOMMU is off", addr, hostErr(link, err)), remedy)
		d.skip(vid, vtitle, "no IOMMU group")
		return
	}
	group := filepath.Base(target)
	gdir := pathIOMMUGroups + "/" + group + "/devices"
	entries, err := os.ReadDir(d.path(gdir))
	if err != nil {
		d.fail(id, title, hostErr(gdir, err).Error(), "check "+gdir)
		d.skip(vid, vtitle, "IOMMU group unreadable")
		return
	}
	var others, blocking []string
	var remedy []string
	for _, e := range entries {
		o := e.Name()
		if o == addr {
			continue
		}
		drv, err := d.driverOf(o)
		if err != nil {
			d.fail(id, title, err.Error(), "check "+pathPCIDevices+"/"+o)
			d.skip(vid, vtitle, "IOMMU group unreadable")
			return
		}
		desc := o + " (no driver)"
		if drv != "" {
			desc = o + " (" + drv + ")"
		}
		others = append(others, desc)
		if drv != "" && drv != "vfio-pci" && drv != "pci-stub" {
			blocking = append(blocking, desc)
			remedy = append(remedy, bindCommands(o, drv)...)
		}
	}
	switch {
	case len(others) == 0:
		d.ok(id, title, fmt.Sprintf("IOMMU group %s holds only %s", group, addr))
	case len(blocking) > 0:
		verb := "are"
		if len(blocking) == 1 {
			verb = "is"
		}
		d.fail(id, title, fmt.Sprintf("IOMMU group %s also holds %s; VFIO cannot claim the group while %s %s bound to a host driver",
			group, strings.Join(others, ", "), strings.Join(blocking, ", "), verb),
			"bind the other devices of the group to vfio-pci too, as root:\n"+strings.Join(remedy, "\n")+
				"\nor move the GPU to a slot with its own IOMMU group (BIOS: enable ACS; a slot not behind a shared switch)")
	default:
		d.warn(id, title, fmt.Sprintf("IOMMU group %s also holds %s; none is bound to a host driver, so VFIO can claim the group, but they stay unusable to the host",
			group, strings.Join(others, ", ")),
			"fine for the guest; to keep them for the host, move the GPU to a slot with its own IOMMU group")
	}

	if driver != "vfio-pci" {
		d.skip(vid, vtitle, "the GPU is not bound to vfio-pci yet (see gpu-driver)")
		return
	}
	need := []string{"/dev/vfio/vfio", "/dev/vfio/" + group}
	if profileUsesIOMMUFD(d.shape) {
		need = append(need, pathIOMMUFD)
	}
	var missing []string
	for _, p := range need {
		if !d.exists(p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		remedy := "modprobe vfio-pci; check udev rules for /dev/vfio"
		if slices.Contains(missing, pathIOMMUFD) {
			remedy = "modprobe iommufd (a kernel with CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV; the shape's QEMU profile attaches GPUs through iommufd)\n" + remedy
		}
		d.fail(vid, vtitle, "missing "+strings.Join(missing, ", "), remedy)
		return
	}
	d.ok(vid, vtitle, strings.Join(need, ", ")+" present")
}
