package doctor

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/host/qemu/qemutest"
	"github.com/chrysalis-cc/chrysalis/image"
	"github.com/chrysalis-cc/chrysalis/measure/golden"
)

const h100Shape = "h100-1g-32c-100g"

func tdxOpts() Options { return Options{Shape: h100Shape, GPUs: []string{gpu}} }

func byID(checks []Check) map[string]Check {
	m := map[string]Check{}
	for _, c := range checks {
		m[c.ID] = c
	}
	return m
}

// want is a check's expected status and words its detail or remedy must
// contain.
type want struct {
	status Status
	words  []string
}

func TestRunTrees(t *testing.T) {
	okAll := map[string]want{
		"shape":             {StatusOK, []string{"h100-1g-32c-100g: 32 vCPU(s), 100 GiB RAM, 1 GPU(s)"}},
		"kvm-tdx":           {StatusOK, []string{"parameters/tdx is Y"}},
		"dev-kvm":           {StatusOK, nil},
		"qemu-version":      {StatusOK, []string{"QEMU 10.1.0"}},
		"qemu-tdx":          {StatusOK, nil},
		"release":           {StatusSkip, []string{"--release"}},
		"ovmf-tdvf":         {StatusSkip, nil},
		"release-nvidia":    {StatusSkip, []string{"no release given"}},
		"memory":            {StatusOK, []string{"MemAvailable 240 GiB (of 251.6 GiB)", "100 GiB + 1 GiB"}},
		"hugepages":         {StatusOK, []string{"1024 x 2048 kB reserved", "2 GiB"}},
		"vhost-vsock":       {StatusOK, nil},
		"gpus":              {StatusOK, []string{gpu}},
		"gpu-device/" + gpu: {StatusOK, []string{"NVIDIA H100 (10de:2331)"}},
		"gpu-driver/" + gpu: {StatusOK, []string{"vfio-pci"}},
		"gpu-iommu/" + gpu:  {StatusOK, []string{"group 42 holds only"}},
		"gpu-vfio/" + gpu:   {StatusOK, []string{"/dev/vfio/42", "/dev/iommu"}},
		"gpu-cc/" + gpu:     {StatusWarn, []string{"--gpu-bdf=" + gpu + " --query-cc-mode", "--set-cc-mode=on --reset-after-cc-mode-switch"}},
		"qgs":               {StatusOK, []string{"/usr/lib/systemd/system/qgsd.service", "no port line", "unix socket /var/run/tdx-qgs/qgs.socket present", "QEMU profile qemu-10.1"}},
		"pccs":              {StatusOK, []string{"https://localhost:8081/sgx/certification/v4/"}},
	}
	tests := []struct {
		host  string
		fatal int
		want  map[string]want // overrides of okAll
	}{
		{"good", 0, nil},
		{"gpu-on-nvidia", 1, map[string]want{
			"gpu-driver/" + gpu: {StatusFail, []string{"bound to nvidia",
				"echo 0000:17:00.0 > /sys/bus/pci/drivers/nvidia/unbind\n" +
					"echo vfio-pci > /sys/bus/pci/devices/0000:17:00.0/driver_override\n" +
					"echo 0000:17:00.0 > /sys/bus/pci/drivers_probe"}},
			"gpu-vfio/" + gpu: {StatusSkip, []string{"not bound to vfio-pci"}},
		}},
		{"shared-group", 1, map[string]want{
			"gpu-iommu/" + gpu: {StatusFail, []string{"also holds 0000:17:00.1 (snd_hda_intel)",
				"echo 0000:17:00.1 > /sys/bus/pci/drivers/snd_hda_intel/unbind", "ACS"}},
		}},
		{"shared-group-unbound", 0, map[string]want{
			"gpu-iommu/" + gpu: {StatusWarn, []string{"also holds 0000:17:00.1 (no driver)"}},
		}},
		{"tdx-off", 1, map[string]want{
			"kvm-tdx": {StatusFail, []string{`is "N"`, "kvm_intel.tdx=1", ">= 6.16", "BIOS"}},
		}},
		{"no-tdx-param", 1, map[string]want{
			"kvm-tdx": {StatusFail, []string{"no tdx parameter", "kvm_intel.tdx=1"}},
		}},
		{"no-kvm-intel", 2, map[string]want{
			"kvm-tdx": {StatusFail, []string{"not loaded", "modprobe kvm_intel"}},
			"dev-kvm": {StatusFail, []string{"open /dev/kvm: no such file or directory", "modprobe kvm_intel"}},
		}},
		{"kvm-not-a-device", 1, map[string]want{
			"dev-kvm": {StatusFail, []string{"open /dev/kvm: is a directory", "character device"}},
		}},
		{"low-memory", 1, map[string]want{
			"memory":    {StatusFail, []string{"MemAvailable 60 GiB (of 62.8 GiB)", "needs 100 GiB + 1 GiB", "free 41 GiB"}},
			"hugepages": {StatusOK, []string{"none reserved"}},
		}},
		{"no-vhost-vsock", 1, map[string]want{
			"vhost-vsock": {StatusFail, []string{"stat /dev/vhost-vsock: no such file", "modprobe vhost_vsock"}},
		}},
		{"no-iommu", 1, map[string]want{
			"gpu-iommu/" + gpu: {StatusFail, []string{"no IOMMU group", "intel_iommu=on"}},
			"gpu-vfio/" + gpu:  {StatusSkip, nil},
		}},
		{"not-nvidia", 1, map[string]want{
			"gpu-device/" + gpu: {StatusFail, []string{"vendor 0x8086, not NVIDIA", "lspci -D -d 10de:"}},
			"gpu-driver/" + gpu: {StatusSkip, nil},
			"gpu-iommu/" + gpu:  {StatusSkip, nil},
			"gpu-vfio/" + gpu:   {StatusSkip, nil},
			"gpu-cc/" + gpu:     {StatusSkip, nil},
		}},
		{"unknown-nvidia", 0, map[string]want{
			"gpu-device/" + gpu: {StatusWarn, []string{"10de:20b0, not a Hopper GPU"}},
			"gpu-cc/" + gpu:     {StatusWarn, []string{"device 0x20b0"}},
		}},
		{"no-iommufd", 1, map[string]want{
			"gpu-vfio/" + gpu: {StatusFail, []string{"missing /dev/iommu", "modprobe iommufd"}},
		}},
		{"qgs-vsock", 0, map[string]want{
			"qgs": {StatusWarn, []string{"line 2: QGS listens on vsock port 4050, not on a unix socket", "unix:/var/run/tdx-qgs/qgs.socket",
				"comment out the port line", "--qgs vsock:2:4050"}},
		}},
		{"qgs-not-running", 0, map[string]want{
			"qgs": {StatusWarn, []string{"stat /var/run/tdx-qgs/qgs.socket: no such file", "qgsd is not running", "systemctl enable --now qgsd"}},
		}},
		{"qgs-socket-not-socket", 1, map[string]want{
			"qgs": {StatusFail, []string{"/var/run/tdx-qgs/qgs.socket is a regular file, not a unix socket", "rm /var/run/tdx-qgs/qgs.socket"}},
		}},
		{"qgs-no-conf", 0, map[string]want{
			"qgs": {StatusOK, []string{"open /etc/qgs.conf: no such file", "unix socket /var/run/tdx-qgs/qgs.socket present"}},
		}},
		{"no-qgs", 0, map[string]want{
			"qgs":  {StatusWarn, []string{"no qgsd.service unit", "systemctl enable --now qgsd"}},
			"pccs": {StatusWarn, []string{"open /etc/sgx_default_qcnl.conf: no such file", "pccs_url"}},
		}},
		{"legacy-qcnl", 0, map[string]want{
			"pccs": {StatusOK, []string{"https://pccs.example.net:8081/sgx/certification/v3/"}},
		}},
		{"old-qemu", 2, map[string]want{
			"qemu-version": {StatusFail, []string{"QEMU 7.2.22", "needs QEMU >= 10.1"}},
			"qemu-tdx":     {StatusFail, []string{"does not list tdx-guest", "QEMU >= 10.1"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			h, ok := hosts[tt.host]
			if !ok {
				t.Fatalf("no host %q", tt.host)
			}
			root := h.build(t)
			checks := Run(treeEnv(root), tdxOpts())
			got := byID(checks)
			if len(got) != len(checks) {
				t.Errorf("duplicate check IDs in %v", checks)
			}
			if n := Failed(checks); n != tt.fatal {
				t.Errorf("Failed = %d, want %d", n, tt.fatal)
			}
			for id := range okAll {
				w := okAll[id]
				if o, ok := tt.want[id]; ok {
					w = o
				}
				c, ok := got[id]
				if !ok {
					t.Errorf("no check %s", id)
					continue
				}
				if c.Status != w.status {
					t.Errorf("%s: status %s, want %s (%s)", id, c.Status, w.status, c.Detail)
				}
				if (c.Status == StatusFail) != c.Fatal {
					t.Errorf("%s: status %s but fatal %v", id, c.Status, c.Fatal)
				}
				if c.Status == StatusFail || c.Status == StatusWarn {
					if c.Remedy == "" {
						t.Errorf("%s: %s without a remedy", id, c.Status)
					}
				}
				text := c.Detail + "\n" + c.Remedy
				for _, word := range w.words {
					if !strings.Contains(text, word) {
						t.Errorf("%s: %q lacks %q", id, text, word)
					}
				}
				if strings.Contains(text, root) {
					t.Errorf("%s names the fake root: %q", id, text)
				}
			}
			if len(checks) != len(okAll) {
				t.Errorf("%d checks, want %d", len(checks), len(okAll))
			}
		})
	}
}

func TestGolden(t *testing.T) {
	for _, name := range []string{"good", "gpu-on-nvidia", "shared-group"} {
		t.Run(name, func(t *testing.T) {
			checks := Run(treeEnv(hosts[name].build(t)), tdxOpts())
			var text, js bytes.Buffer
			if err := WriteText(&text, checks); err != nil {
				t.Fatal(err)
			}
			if err := WriteJSON(&js, checks); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, name+".txt.golden", text.Bytes())
			golden.Check(t, name+".json.golden", js.Bytes())
			var r Report
			if err := json.Unmarshal(js.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			if r.OK != (Failed(checks) == 0) || len(r.Checks) != len(checks) {
				t.Errorf("JSON report ok=%v with %d checks; want ok=%v, %d", r.OK, len(r.Checks), Failed(checks) == 0, len(checks))
			}
		})
	}
}

// TestRealQEMU runs the QEMU installed here. Debian bookworm's 7.2 has no
// tdx-guest: both QEMU checks must fail with the remedy. A QEMU >= 10.1
// with TDX must pass them.
func TestRealQEMU(t *testing.T) {
	if _, err := exec.LookPath(qemu.Binary); err != nil {
		t.Skipf("%s not installed", qemu.Binary)
	}
	out, err := exec.Command(qemu.Binary, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	v, err := ParseQEMUVersion(out)
	if err != nil {
		t.Fatalf("real output %q: %v", out, err)
	}
	if v[0] < 2 {
		t.Fatalf("implausible QEMU version %s from %q", v, out)
	}
	help, err := exec.Command(qemu.Binary, "-object", "help").Output()
	if err != nil {
		t.Fatal(err)
	}
	tdx := HasObject(help, "tdx-guest")
	if !HasObject(help, "memory-backend-ram") {
		t.Fatalf("-object help lists no memory-backend-ram: parsing is wrong:\n%s", help)
	}
	root := goodHost().build(t)
	got := byID(Run(Env{Root: root}, tdxOpts()))
	ver, obj := got["qemu-version"], got["qemu-tdx"]
	if !strings.Contains(ver.Detail, "qemu-system-x86_64 is QEMU "+v.String()) {
		t.Errorf("qemu-version detail %q does not name QEMU %s", ver.Detail, v)
	}
	if v.Compare(Version{10, 1, 0}) < 0 {
		if ver.Status != StatusFail || !ver.Fatal || !strings.Contains(ver.Remedy, "install QEMU 10.1") {
			t.Errorf("QEMU %s: qemu-version %+v, want a fatal failure with the remedy", v, ver)
		}
	} else if ver.Status == StatusFail {
		t.Errorf("QEMU %s: qemu-version failed: %+v", v, ver)
	}
	if tdx {
		if obj.Status != StatusOK {
			t.Errorf("QEMU with tdx-guest: qemu-tdx %+v", obj)
		}
	} else if obj.Status != StatusFail || !obj.Fatal || !strings.Contains(obj.Remedy, "QEMU >= 10.1 built with TDX") {
		t.Errorf("QEMU without tdx-guest: qemu-tdx %+v, want a fatal failure with the remedy", obj)
	}

	// Dev mode runs on any QEMU.
	dev := byID(Run(Env{Root: root}, Options{Dev: true}))
	if c := dev["qemu-version"]; c.Status != StatusOK || !strings.Contains(c.Detail, v.String()) {
		t.Errorf("dev mode qemu-version %+v", c)
	}

	// A QEMU that does not exist.
	miss := byID(Run(Env{Root: root, QEMU: filepath.Join(root, "no-such-qemu")}, tdxOpts()))
	if c := miss["qemu-version"]; c.Status != StatusFail || !strings.Contains(c.Detail, "no-such-qemu --version") {
		t.Errorf("missing QEMU: %+v", c)
	}
	if c := miss["qemu-tdx"]; c.Status != StatusSkip {
		t.Errorf("missing QEMU: qemu-tdx %+v", c)
	}
}

func TestDevMode(t *testing.T) {
	root := goodHost().build(t)
	checks := Run(treeEnv(root), Options{Dev: true})
	got := byID(checks)
	if n := Failed(checks); n != 0 {
		t.Errorf("dev mode on a good host: %d fatal\n%+v", n, checks)
	}
	for _, id := range []string{"kvm-tdx", "dev-kvm", "qemu-tdx", "vhost-vsock", "gpus", "qgs", "pccs", "release", "ovmf-tdvf"} {
		if c := got[id]; c.Status != StatusSkip || c.Detail == "" {
			t.Errorf("dev mode: %s = %+v, want skip with a reason", id, c)
		}
	}
	if c := got["shape"]; c.Status != StatusOK || !strings.HasPrefix(c.Detail, "dev-small:") {
		t.Errorf("dev mode default shape: %+v", c)
	}
	if c := got["memory"]; c.Status != StatusOK || !strings.Contains(c.Detail, "1 GiB + 1 GiB") {
		t.Errorf("dev mode memory: %+v", c)
	}
	for id := range got {
		if strings.HasPrefix(id, "gpu-") {
			t.Errorf("dev mode ran GPU check %s", id)
		}
	}

	bad := byID(Run(treeEnv(root), Options{Dev: true, Shape: h100Shape, GPUs: []string{gpu}}))
	if c := bad["shape"]; c.Status != StatusFail || !strings.Contains(c.Detail, "dev mode has no GPU passthrough") {
		t.Errorf("dev mode GPU shape: %+v", c)
	}
	if c := bad["gpus"]; c.Status != StatusFail {
		t.Errorf("dev mode --gpu: %+v", c)
	}
}

func TestOptionErrors(t *testing.T) {
	root := goodHost().build(t)
	shapeFile := filepath.Join(t.TempDir(), "shapes.json")
	tests := []struct {
		opts     Options
		id, want string
	}{
		{Options{}, "shape", "no shape named"},
		{Options{Shape: "nope", GPUs: []string{gpu}}, "shape", `unknown shape "nope"`},
		{Options{Shape: h100Shape, ShapeFile: shapeFile}, "shape", shapeFile},
		{Options{Shape: h100Shape}, "gpus", "needs 1 GPU(s), 0 address(es) given"},
		{Options{Shape: h100Shape, GPUs: []string{"17:00"}}, "gpus", `"17:00" is not a PCI address`},
		{Options{Shape: h100Shape, GPUs: []string{"17:00.0", gpu}}, "gpus", "0000:17:00.0 is given twice"},
		{Options{Shape: h100Shape, GPUs: []string{"0000:99:00.0"}}, "gpu-device/0000:99:00.0", "no PCI device 0000:99:00.0 (stat /sys/bus/pci/devices/0000:99:00.0: no such file"},
	}
	for _, tt := range tests {
		got := byID(Run(treeEnv(root), tt.opts))
		c := got[tt.id]
		if c.Status != StatusFail || !c.Fatal || !strings.Contains(c.Detail, tt.want) {
			t.Errorf("%+v: %s = %+v, want a fatal failure naming %q", tt.opts, tt.id, c, tt.want)
		}
	}
}

func TestRelease(t *testing.T) {
	root := goodHost().build(t)
	rel := t.TempDir()
	qemutest.WriteSealedFakeRelease(t, rel)

	// The fake release verifies, but its "OVMF" is zeros: no TDVF.
	got := byID(Run(treeEnv(root), Options{Shape: h100Shape, GPUs: []string{gpu}, Release: rel}))
	if c := got["release"]; c.Status != StatusOK || !strings.Contains(c.Detail, "5 files match SHA256SUMS (kernel 6.12.0-test") {
		t.Errorf("sealed release: %+v", c)
	}
	if c := got["ovmf-tdvf"]; c.Status != StatusFail || !c.Fatal || !strings.Contains(c.Detail, filepath.Join(rel, "OVMF.fd")) {
		t.Errorf("zero OVMF: %+v", c)
	}
	// Dev mode does not need TDVF metadata.
	dev := byID(Run(treeEnv(root), Options{Dev: true, Release: rel}))
	if c := dev["release"]; c.Status != StatusOK {
		t.Errorf("dev sealed release: %+v", c)
	}
	if c := dev["ovmf-tdvf"]; c.Status != StatusSkip {
		t.Errorf("dev ovmf-tdvf: %+v", c)
	}

	// The fake release has no NVIDIA driver: fatal for a GPU shape, not
	// for dev; a release whose initramfs carries nvidia.ko passes.
	if c := got["release-nvidia"]; c.Status != StatusFail || !c.Fatal || !strings.Contains(c.Detail, "no nvidia.ko among its 0 modules") ||
		!strings.Contains(c.Detail, "shape "+h100Shape+" needs 1 GPU(s)") || !strings.Contains(c.Remedy, "image/inputs.lock") {
		t.Errorf("release without the driver: %+v", c)
	}
	if c := dev["release-nvidia"]; c.Status != StatusSkip {
		t.Errorf("dev release-nvidia: %+v", c)
	}
	withDriver := t.TempDir()
	qemutest.WriteSealedFakeRelease(t, withDriver, "virtio_blk.ko.xz", "nvidia.ko.xz", "nvidia-uvm.ko.xz")
	if c := byID(Run(treeEnv(root), Options{Shape: h100Shape, GPUs: []string{gpu}, Release: withDriver}))["release-nvidia"]; c.Status != StatusOK || c.Detail != "nvidia.ko.xz" {
		t.Errorf("release with the driver: %+v", c)
	}

	// A modified file fails the release and skips TDVF.
	if err := os.WriteFile(filepath.Join(rel, image.FileInitrd), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	got = byID(Run(treeEnv(root), Options{Dev: true, Release: rel}))
	if c := got["release"]; c.Status != StatusFail || !c.Fatal || !strings.Contains(c.Detail, "initrd does not match SHA256SUMS") {
		t.Errorf("tampered release: %+v", c)
	}
	if c := got["ovmf-tdvf"]; c.Status != StatusSkip {
		t.Errorf("tampered release: ovmf-tdvf %+v", c)
	}
}

// TestRealRelease checks the release CI builds (the directory of
// CHRYSALIS_TEST_OVMF): it verifies and its OVMF has TDVF metadata.
func TestRealRelease(t *testing.T) {
	ovmf := os.Getenv("CHRYSALIS_TEST_OVMF")
	if ovmf == "" {
		t.Skip("CHRYSALIS_TEST_OVMF not set: no built release")
	}
	dir := filepath.Dir(ovmf)
	got := byID(Run(treeEnv(goodHost().build(t)), Options{Shape: h100Shape, GPUs: []string{gpu}, Release: dir}))
	if c := got["release"]; c.Status != StatusOK {
		t.Errorf("release: %+v", c)
	}
	if c := got["ovmf-tdvf"]; c.Status != StatusOK || !strings.Contains(c.Detail, "MRTD (single-pass, shape "+h100Shape+") ") {
		t.Errorf("ovmf-tdvf: %+v", c)
	}
}

func TestWriteTextMarks(t *testing.T) {
	var b bytes.Buffer
	checks := []Check{
		{ID: "a", Title: "A", Status: StatusOK, Detail: "fine"},
		{ID: "bb", Title: "B", Status: StatusFail, Detail: "broken", Remedy: "one\ntwo", Fatal: true},
		{ID: "c", Title: "C", Status: StatusWarn, Detail: "hmm", Remedy: "look"},
		{ID: "d", Title: "D", Status: StatusSkip, Detail: "n/a"},
	}
	if err := WriteText(&b, checks); err != nil {
		t.Fatal(err)
	}
	want := "✓ a   A: fine\n" +
		"✗ bb  B: broken\n  fix: one\n       two\n" +
		"! c   C: hmm\n  fix: look\n" +
		"- d   D: n/a\n" +
		"\n1 ok, 1 failed (1 fatal), 1 warning(s), 1 skipped\n" +
		"the guest cannot run on this host until the fatal ✗ items are fixed\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteJSON(&b, nil); err != nil {
		t.Fatal(err)
	}
	if b.String() != "{\n  \"ok\": true,\n  \"checks\": []\n}\n" {
		t.Errorf("empty JSON report %q", b.String())
	}
}

// TestQGSTransport: the qgs check looks for the endpoint kind the launch
// will use, the shape's QEMU profile's (unix for QEMU >= 10.1, vsock for
// Canonical's 8.2) or the --qgs override's.
func TestQGSTransport(t *testing.T) {
	const ubuntu = "h100-1g-32c-100g-ubuntu24"
	tests := []struct {
		name, host, shape string
		qgs               string // --qgs; "" for the profile's default
		status            Status
		words             []string
	}{
		{"8.2 profile, QGS on vsock", "qgs-vsock", ubuntu, "", StatusOK, []string{"line 2: vsock port 4050, as QEMU profile qemu-8.2-ubuntu (QEMU 8.2.2) wants"}},
		{"8.2 profile, QGS on its socket", "good", ubuntu, "", StatusWarn, []string{"no active port line", "points the TD at vsock:2:4050", "uncomment `port = 4050`", "--qgs unix"}},
		{"8.2 profile, --qgs unix", "good", ubuntu, "unix", StatusOK, []string{"unix socket /var/run/tdx-qgs/qgs.socket present, as --qgs wants"}},
		{"10.1 profile, --qgs vsock", "qgs-vsock", h100Shape, "vsock", StatusOK, []string{"vsock port 4050, as --qgs wants"}},
		{"10.1 profile, --qgs vsock on another port", "qgs-vsock", h100Shape, "vsock:4051", StatusWarn, []string{"QGS listens on vsock port 4050; --qgs points the TD at vsock:2:4051", "set `port = 4051`", "--qgs vsock:2:4050"}},
		{"10.1 profile, --qgs vsock, no conf", "qgs-no-conf", h100Shape, "vsock", StatusWarn, []string{"open /etc/qgs.conf: no such file", "`port = 4050`"}},
		{"--qgs unix on another path", "good", h100Shape, "unix:/run/other.sock", StatusWarn, []string{"stat /run/other.sock: no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Shape: tt.shape, GPUs: []string{gpu}}
			if tt.qgs != "" {
				q, err := qemu.ParseQGS(tt.qgs)
				if err != nil {
					t.Fatal(err)
				}
				o.QGS = &q
			}
			c, ok := byID(Run(treeEnv(hosts[tt.host].build(t)), o))["qgs"]
			if !ok {
				t.Fatal("no qgs check")
			}
			if c.Status != tt.status || (c.Status == StatusFail) != c.Fatal {
				t.Fatalf("status %s fatal %v, want %s: %s", c.Status, c.Fatal, tt.status, c.Detail)
			}
			text := c.Detail + "\n" + c.Remedy
			for _, w := range tt.words {
				if !strings.Contains(text, w) {
					t.Errorf("%q lacks %q", text, w)
				}
			}
		})
	}
	// Without a shape the transport is unknown: skipped, unless --qgs says it.
	root := hosts["good"].build(t)
	if c := byID(Run(treeEnv(root), Options{Shape: "nope"}))["qgs"]; c.Status != StatusSkip {
		t.Errorf("no shape: qgs %s (%s), want skip", c.Status, c.Detail)
	}
	if c := byID(Run(treeEnv(root), Options{Shape: "nope", QGS: &qemu.QGS{Transport: qemu.QGSUnix, Path: qemu.DefaultQGSSocket}}))["qgs"]; c.Status != StatusOK {
		t.Errorf("no shape, --qgs unix: qgs %s (%s), want ok", c.Status, c.Detail)
	}
	if c := byID(Run(treeEnv(root), Options{Shape: h100Shape, QGS: &qemu.QGS{Transport: "tcp"}}))["qgs"]; c.Status != StatusFail || !strings.Contains(c.Detail, `transport "tcp"`) {
		t.Errorf("bad --qgs: qgs %s (%s), want a failure naming the transport", c.Status, c.Detail)
	}
}
