package doctor

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A host is a fake root: files (host path → contents; "@name" is the
// contents of testdata/name, socketFile a unix socket inode) and symlinks
// (host path → target). Trees are
// built in the test because sysfs needs symlinks and PCI addresses hold
// ':', which module zips and some file systems refuse in file names.
type host struct {
	files map[string]string
	links map[string]string
}

const gpu = "0000:17:00.0"

// socketFile in host.files makes a unix socket inode (mknod S_IFSOCK, as
// a listening QGS leaves it) instead of a regular file.
const socketFile = "=socket"

// goodHost is a ready TDX host with one H100 at 0000:17:00.0 bound to
// vfio-pci, alone in IOMMU group 42, QGS on its unix socket (no port line
// in /etc/qgs.conf, as the QEMU 10.1 profile wants) and a PCCS.
func goodHost() host {
	dev := "/sys/bus/pci/devices/" + gpu
	return host{
		files: map[string]string{
			"/sys/module/kvm_intel/parameters/tdx": "Y\n",
			"/dev/kvm":                             "",
			"/dev/vhost-vsock":                     "",
			"/dev/iommu":                           "",
			"/dev/vfio/vfio":                       "",
			"/dev/vfio/42":                         "",
			"/proc/meminfo":                        "@meminfo-256g.txt",
			dev + "/vendor":                        "0x10de\n",
			dev + "/device":                        "0x2331\n",
			"/usr/lib/systemd/system/qgsd.service": "@qgsd.service",
			"/etc/qgs.conf":                        "@qgs-socket.conf",
			"/var/run/tdx-qgs/qgs.socket":          socketFile,
			"/etc/sgx_default_qcnl.conf":           "@sgx_default_qcnl.conf",
			"/usr/bin/qemu-system-x86_64":          "qemu-10.1",
		},
		links: map[string]string{
			dev + "/driver":      "../../../../bus/pci/drivers/vfio-pci",
			dev + "/iommu_group": "../../../../kernel/iommu_groups/42",
			"/sys/kernel/iommu_groups/42/devices/" + gpu: "../../../../devices/pci0000:16/0000:16:01.0/" + gpu,
		},
	}
}

// variant returns goodHost changed by edit.
func variant(edit func(h *host)) host {
	h := goodHost()
	h.files, h.links = maps.Clone(h.files), maps.Clone(h.links)
	edit(&h)
	return h
}

var hosts = map[string]host{
	"good": goodHost(),
	"gpu-on-nvidia": variant(func(h *host) {
		h.links["/sys/bus/pci/devices/"+gpu+"/driver"] = "../../../../bus/pci/drivers/nvidia"
		delete(h.files, "/dev/vfio/42")
	}),
	"shared-group": variant(func(h *host) {
		audio := "0000:17:00.1"
		h.files["/sys/bus/pci/devices/"+audio+"/vendor"] = "0x10de\n"
		h.files["/sys/bus/pci/devices/"+audio+"/device"] = "0x22a3\n"
		h.links["/sys/bus/pci/devices/"+audio+"/driver"] = "../../../../bus/pci/drivers/snd_hda_intel"
		h.links["/sys/bus/pci/devices/"+audio+"/iommu_group"] = "../../../../kernel/iommu_groups/42"
		h.links["/sys/kernel/iommu_groups/42/devices/"+audio] = "../../../../devices/pci0000:16/0000:16:01.0/" + audio
	}),
	"shared-group-unbound": variant(func(h *host) {
		audio := "0000:17:00.1"
		h.files["/sys/bus/pci/devices/"+audio+"/vendor"] = "0x10de\n"
		h.links["/sys/kernel/iommu_groups/42/devices/"+audio] = "../../../../devices/pci0000:16/0000:16:01.0/" + audio
	}),
	"tdx-off": variant(func(h *host) {
		h.files["/sys/module/kvm_intel/parameters/tdx"] = "N\n"
	}),
	"no-tdx-param": variant(func(h *host) {
		delete(h.files, "/sys/module/kvm_intel/parameters/tdx")
		h.files["/sys/module/kvm_intel/parameters/nested"] = "Y\n"
	}),
	"no-kvm-intel": variant(func(h *host) {
		delete(h.files, "/sys/module/kvm_intel/parameters/tdx")
		delete(h.files, "/dev/kvm")
	}),
	"low-memory": variant(func(h *host) {
		h.files["/proc/meminfo"] = "@meminfo-64g.txt"
	}),
	"no-vhost-vsock": variant(func(h *host) {
		delete(h.files, "/dev/vhost-vsock")
	}),
	"no-iommu": variant(func(h *host) {
		delete(h.links, "/sys/bus/pci/devices/"+gpu+"/iommu_group")
	}),
	"not-nvidia": variant(func(h *host) {
		h.files["/sys/bus/pci/devices/"+gpu+"/vendor"] = "0x8086\n"
	}),
	"unknown-nvidia": variant(func(h *host) {
		h.files["/sys/bus/pci/devices/"+gpu+"/device"] = "0x20b0\n" // A100
	}),
	"no-iommufd": variant(func(h *host) {
		delete(h.files, "/dev/iommu")
	}),
	// QGS on vsock port 4050 (COCOON's and Canonical's setup): no socket.
	"qgs-vsock": variant(func(h *host) {
		h.files["/etc/qgs.conf"] = "@qgs-vsock.conf"
		delete(h.files, "/var/run/tdx-qgs/qgs.socket")
	}),
	"qgs-not-running": variant(func(h *host) {
		delete(h.files, "/var/run/tdx-qgs/qgs.socket")
	}),
	"qgs-socket-not-socket": variant(func(h *host) {
		h.files["/var/run/tdx-qgs/qgs.socket"] = ""
	}),
	"qgs-no-conf": variant(func(h *host) {
		delete(h.files, "/etc/qgs.conf")
	}),
	"no-qgs": variant(func(h *host) {
		delete(h.files, "/usr/lib/systemd/system/qgsd.service")
		delete(h.files, "/etc/qgs.conf")
		delete(h.files, "/etc/sgx_default_qcnl.conf")
	}),
	"legacy-qcnl": variant(func(h *host) {
		h.files["/etc/sgx_default_qcnl.conf"] = "@sgx_default_qcnl-legacy.conf"
	}),
	"old-qemu": variant(func(h *host) {
		h.files["/usr/bin/qemu-system-x86_64"] = "qemu-7.2"
	}),
	"kvm-not-a-device": variant(func(h *host) {
		delete(h.files, "/dev/kvm")
		h.files["/dev/kvm/x"] = ""
	}),
}

// build writes h under a new directory and returns it. The fake
// /usr/bin/qemu-system-x86_64 is a shell script printing the testdata
// outputs of the QEMU version its contents name ("qemu-10.1": 7.2's real
// output with the version and a tdx-guest line changed).
func (h host) build(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	td, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for p, c := range h.files {
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if c == socketFile {
			if err := syscall.Mknod(dst, syscall.S_IFSOCK|0o666, 0); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if name, ok := strings.CutPrefix(c, "@"); ok {
			b, err := os.ReadFile(filepath.Join(td, name))
			if err != nil {
				t.Fatal(err)
			}
			c = string(b)
		} else if strings.HasSuffix(p, "/qemu-system-x86_64") {
			c = "#!/bin/sh\ncase \"$*\" in\n" +
				"--version) exec cat '" + filepath.Join(td, c+"-version.txt") + "' ;;\n" +
				"'-object help') exec cat '" + filepath.Join(td, c+"-object-help.txt") + "' ;;\n" +
				"esac\necho \"unexpected arguments $*\" >&2\nexit 1\n"
			mode = 0o755
		}
		if err := os.WriteFile(dst, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range h.links {
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, dst); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// treeEnv runs QEMU from the tree's /usr/bin, so reports name the plain
// binary and stay the same wherever the tree is.
func treeEnv(root string) Env {
	return Env{
		Root: root,
		Run: func(name string, args ...string) ([]byte, error) {
			return exec.Command(filepath.Join(root, "usr/bin", name), args...).Output()
		},
	}
}
