package qemu_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/host/qemu/qemutest"
	"github.com/chrysalis-cc/chrysalis/measure/golden"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
)

func mustShape(t *testing.T, name string) *shape.VMShape {
	t.Helper()
	s, err := shape.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var testRelease = qemu.Release{
	OVMF:    "/rel/OVMF.fd",
	Kernel:  "/rel/vmlinuz",
	Initrd:  "/rel/initrd",
	Cmdline: "console=ttyS0 panic=-1 loglevel=4",
}

func allDisks(s *shape.VMShape) map[shape.DiskKind]string {
	m := map[shape.DiskKind]string{}
	for _, d := range s.Disks {
		m[d.Kind] = "/state/" + string(d.Kind) + ".img"
	}
	return m
}

func baseOptions(t *testing.T, mode qemu.Mode, shapeName string, gpus ...string) qemu.Options {
	s := mustShape(t, shapeName)
	return qemu.Options{
		Mode:         mode,
		Shape:        s,
		Release:      testRelease,
		Disks:        allDisks(s),
		HostPort:     8443,
		ConsoleLog:   "/state/console.log",
		StatusSocket: "/state/status.sock",
		QMPSocket:    "/state/qmp.sock",
		GPUs:         gpus,
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		golden string
		opts   qemu.Options
	}{
		{"h100-1g-32c-100g-ubuntu24.tdx", baseOptions(t, qemu.ModeTDX, "h100-1g-32c-100g-ubuntu24", "3B:00.0")},
		// QGS overrides: vsock on a QEMU 10.1 profile (COCOON's setup, a
		// qgs.conf with a port line), a unix socket on QEMU 8.2.
		{"h100-1g-32c-100g.qgs-vsock.tdx", func() qemu.Options {
			o := baseOptions(t, qemu.ModeTDX, "h100-1g-32c-100g", "3b:00.0")
			o.QGS = &qemu.QGS{Transport: qemu.QGSVsock, CID: 2, Port: 4051}
			return o
		}()},
		{"h100-1g-32c-100g-ubuntu24.qgs-unix.tdx", func() qemu.Options {
			o := baseOptions(t, qemu.ModeTDX, "h100-1g-32c-100g-ubuntu24", "3b:00.0")
			o.QGS = &qemu.QGS{Transport: qemu.QGSUnix, Path: "/run/qgs,\"a\".sock"}
			return o
		}()},
		{"h100-2g-64c-200g.tdx", func() qemu.Options {
			o := baseOptions(t, qemu.ModeTDX, "h100-2g-64c-200g", "0000:3b:00.0", "0000:bc:00.0")
			o.GuestCID = 16
			o.HostAddr = "0.0.0.0"
			o.HostPort = 12000
			return o
		}()},
	}
	// Every built-in shape, in every mode it can run in, as instance 0 and
	// as instance 3 (ports and CID from InstancePort/InstanceCID, the
	// launcher's per-instance state directory).
	for _, name := range shape.Names() {
		s := mustShape(t, name)
		var gpus []string
		for i := range s.GPUs {
			gpus = append(gpus, fmt.Sprintf("0000:%02x:00.0", 0x3b+i))
		}
		modes := []qemu.Mode{qemu.ModeTDX}
		if s.GPUs == 0 {
			modes = append([]qemu.Mode{qemu.ModeDev}, modes...)
		}
		for _, m := range modes {
			tests = append(tests, struct {
				golden string
				opts   qemu.Options
			}{name + "." + string(m), baseOptions(t, m, name, gpus...)})
			o := baseOptions(t, m, name, gpus...)
			port, err := qemu.InstancePort(o.HostPort, 3)
			if err != nil {
				t.Fatal(err)
			}
			o.HostPort = port
			if m == qemu.ModeTDX {
				cid, err := qemu.InstanceCID(qemu.DefaultGuestCID, 3)
				if err != nil {
					t.Fatal(err)
				}
				o.GuestCID = cid
			}
			for k := range o.Disks {
				o.Disks[k] = "/state/instance-3/" + string(k) + ".img"
			}
			o.ConsoleLog = "/state/instance-3/console.log"
			o.StatusSocket = "/state/instance-3/status.sock"
			o.QMPSocket = "/state/instance-3/qmp.sock"
			tests = append(tests, struct {
				golden string
				opts   qemu.Options
			}{name + ".instance-3." + string(m), o})
		}
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		if seen[tt.golden] {
			continue // the explicit cases above win
		}
		seen[tt.golden] = true
		t.Run(tt.golden, func(t *testing.T) {
			argv, err := qemu.Argv(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(argv, "\n") + "\n"
			golden.Check(t, tt.golden+".golden", []byte(got))
		})
	}
}

func TestInstances(t *testing.T) {
	ports, cids := map[int]int{}, map[uint32]int{}
	for i := range qemu.MaxInstances {
		p, err := qemu.InstancePort(8443, i)
		if err != nil {
			t.Fatal(err)
		}
		c, err := qemu.InstanceCID(qemu.DefaultGuestCID, i)
		if err != nil {
			t.Fatal(err)
		}
		if j, dup := ports[p]; dup {
			t.Fatalf("instances %d and %d share port %d", i, j, p)
		}
		if j, dup := cids[c]; dup {
			t.Fatalf("instances %d and %d share CID %d", i, j, c)
		}
		ports[p], cids[c] = i, i
	}
	if p, _ := qemu.InstancePort(12000, 3); p != 12030 {
		t.Errorf("instance 3 of 12000: port %d, want 12030 (COCOON's 12000+10·i)", p)
	}
	if c, _ := qemu.InstanceCID(6, 3); c != 9 {
		t.Errorf("instance 3 of CID 6: %d, want 9", c)
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{func() error { _, err := qemu.InstancePort(8443, 64); return err }(), "instance 64 is out of range 0..63"},
		{func() error { _, err := qemu.InstancePort(8443, -1); return err }(), "instance -1"},
		{func() error { _, err := qemu.InstancePort(65000, 0); return err }(), "base port 65000 leaves no room"},
		{func() error { _, err := qemu.InstanceCID(2, 0); return err }(), "base guest CID 2"},
		{func() error { _, err := qemu.InstanceCID(0xFFFFFFF0, 0); return err }(), "leaves no room"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", tc.err, tc.want)
		}
	}
}

func TestArgvErrors(t *testing.T) {
	tests := []struct {
		name string
		mut  func(o *qemu.Options)
		want string
	}{
		{"noshape", func(o *qemu.Options) { o.Shape = nil }, "no VM shape"},
		{"badshape", func(o *qemu.Options) { o.Shape.VCPUs = 0 }, "vcpus 0"},
		{"mode", func(o *qemu.Options) { o.Mode = "sev" }, `mode "sev"`},
		{"devgpu", func(o *qemu.Options) { o.Mode = qemu.ModeDev; o.GPUs = nil }, "dev mode has no GPU passthrough"},
		{"toofewgpus", func(o *qemu.Options) { o.GPUs = nil }, "needs 1 GPU(s), but 0 GPU address(es)"},
		{"toomanygpus", func(o *qemu.Options) { o.GPUs = append(o.GPUs, "0000:3c:00.0") }, "needs 1 GPU(s), but 2"},
		{"badbdf", func(o *qemu.Options) { o.GPUs = []string{"3b:00"} }, `"3b:00" is not a PCI address`},
		{"baddev", func(o *qemu.Options) { o.GPUs = []string{"0000:3b:20.0"} }, "device 20"},
		{"dupbdf", func(o *qemu.Options) {
			o.Shape = mustShape(t, "h100-2g-64c-200g")
			o.GPUs = []string{"3b:00.0", "0000:3B:00.0"}
		}, "given twice"},
		{"cid", func(o *qemu.Options) { o.GuestCID = 2 }, "CID 2 is reserved"},
		{"qgsrelative", func(o *qemu.Options) { o.QGS = &qemu.QGS{Transport: qemu.QGSUnix, Path: "qgs.socket"} }, `unix socket path "qgs.socket" is not absolute`},
		{"qgsport0", func(o *qemu.Options) { o.QGS = &qemu.QGS{Transport: qemu.QGSVsock, CID: 2} }, "vsock port 0 is out of range"},
		{"qgskind", func(o *qemu.Options) { o.QGS = &qemu.QGS{Transport: "tcp"} }, `transport "tcp" is neither`},
		{"noovmf", func(o *qemu.Options) { o.Release.OVMF = "" }, "no release OVMF firmware"},
		{"nokernel", func(o *qemu.Options) { o.Release.Kernel = "" }, "no release kernel"},
		{"noconsole", func(o *qemu.Options) { o.ConsoleLog = "" }, "no console log path"},
		{"cmdlinenl", func(o *qemu.Options) { o.Release.Cmdline = "a\nb" }, "line break"},
		{"cmdlinelong", func(o *qemu.Options) { o.Release.Cmdline = strings.Repeat("x", 2048) }, "2048 bytes"},
		{"longsock", func(o *qemu.Options) { o.StatusSocket = "/" + strings.Repeat("s", 110) }, "unix sockets allow 107"},
		{"port0", func(o *qemu.Options) { o.HostPort = 0 }, "host port 0"},
		{"port", func(o *qemu.Options) { o.HostPort = 70000 }, "host port 70000"},
		{"addr", func(o *qemu.Options) { o.HostAddr = "localhost" }, `host address "localhost"`},
		{"missingdisk", func(o *qemu.Options) { delete(o.Disks, shape.DiskPersistent) }, `"persistent" disk slot but no image`},
		{"extradisk", func(o *qemu.Options) {
			o.Shape = mustShape(t, "dev-small")
			o.Mode = qemu.ModeDev
			o.GPUs = nil
			o.Disks = map[shape.DiskKind]string{shape.DiskConfig: "/c.img", shape.DiskModel: "/m.img"}
		}, `"model" disk image was given but shape "dev-small" has no "model" slot`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := baseOptions(t, qemu.ModeTDX, "h100-1g-32c-100g", "0000:3b:00.0")
			tt.mut(&o)
			_, err := qemu.Argv(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestEscapesCommas(t *testing.T) {
	o := baseOptions(t, qemu.ModeDev, "dev-small")
	o.Disks[shape.DiskConfig] = "/a,b/config.img"
	o.ConsoleLog = "/a,b/console.log"
	argv, err := qemu.Argv(o)
	if err != nil {
		t.Fatal(err)
	}
	j := strings.Join(argv, " ")
	if !strings.Contains(j, "file=/a,,b/config.img,") || !strings.Contains(j, "path=/a,,b/console.log") {
		t.Errorf("commas not escaped: %s", j)
	}
}

func TestParseBDF(t *testing.T) {
	for in, want := range map[string]string{
		"0000:3b:00.0": "0000:3b:00.0",
		"3B:00.1":      "0000:3b:00.1",
		"0001:AB:1f.7": "0001:ab:1f.7",
	} {
		got, err := qemu.ParseBDF(in)
		if err != nil || got != want {
			t.Errorf("ParseBDF(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "3b:00", "0000:3b:00.8", "00:3b:00.0", "0000:3b:00.00", "zz:00.0", " 3b:00.0"} {
		if _, err := qemu.ParseBDF(bad); err == nil {
			t.Errorf("ParseBDF(%q) accepted", bad)
		}
	}
}

func TestReleaseFromDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(qemu.FileOVMF, "fw")
	write(qemu.FileKernel, "k")
	if _, err := qemu.ReleaseFromDir(dir); err == nil || !strings.Contains(err.Error(), "initrd") {
		t.Errorf("missing initrd err = %v", err)
	}
	write(qemu.FileInitrd, "i")
	if _, err := qemu.ReleaseFromDir(dir); err == nil || !strings.Contains(err.Error(), "cmdline") {
		t.Errorf("missing cmdline err = %v", err)
	}
	write(qemu.FileCmdline, "console=ttyS0 panic=-1\n")
	r, err := qemu.ReleaseFromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Cmdline != "console=ttyS0 panic=-1" || r.OVMF != filepath.Join(dir, qemu.FileOVMF) {
		t.Errorf("release = %+v", r)
	}
	write(qemu.FileCmdline, "a\nb\n")
	if _, err := qemu.ReleaseFromDir(dir); err == nil || !strings.Contains(err.Error(), "line break") {
		t.Errorf("two-line cmdline err = %v", err)
	}
	write(qemu.FileKernel, "")
	if _, err := qemu.ReleaseFromDir(dir); err == nil || !strings.Contains(err.Error(), "vmlinuz is not a non-empty regular file") {
		t.Errorf("empty kernel err = %v", err)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"-m":                       "-m",
		"file=/a/b.img,if=none":    "file=/a/b.img,if=none",
		"":                         "''",
		"console=ttyS0 panic=-1":   "'console=ttyS0 panic=-1'",
		`{"qom-type":"tdx-guest"}`: `'{"qom-type":"tdx-guest"}'`,
		"it's":                     `'it'\''s'`,
	} {
		if got := qemu.Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestQEMUAcceptsDevArgv runs the installed QEMU with the dev argv (fake
// firmware and kernel, so nothing boots) and checks that it starts and
// keeps running: every option is accepted.
func TestQEMUAcceptsDevArgv(t *testing.T) {
	bin, err := exec.LookPath(qemu.Binary)
	if err != nil {
		t.Skip(qemu.Binary + " not installed")
	}
	dir := t.TempDir()
	rel := qemutest.WriteFakeRelease(t, dir)
	o := baseOptions(t, qemu.ModeDev, "cpu-4c-8g")
	o.Shape.MemoryMiB = 512 // keep the test light
	o.Release = rel
	o.HostPort = freePort(t)
	o.ConsoleLog = filepath.Join(dir, "console.log")
	o.StatusSocket = filepath.Join(dir, "status.sock")
	o.QMPSocket = filepath.Join(dir, "qmp.sock")
	for k := range o.Disks {
		p := filepath.Join(dir, string(k)+".img")
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		o.Disks[k] = p
	}
	o.Binary = bin
	argv, err := qemu.Argv(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3e9)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if ctx.Err() == nil {
		t.Fatalf("qemu exited early (%v):\n%s", err, out.String())
	}
}

func TestSupportsTDX(t *testing.T) {
	if _, err := exec.LookPath(qemu.Binary); err != nil {
		t.Skip(qemu.Binary + " not installed")
	}
	ok, err := qemu.SupportsTDX(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("installed QEMU supports tdx-guest: %v", ok)
	if _, err := qemu.SupportsTDX(context.Background(), "/nonexistent/qemu"); err == nil {
		t.Error("missing binary accepted")
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestDefaultQGS: the QEMU profile picks the transport, QEMU >= 10.1 the
// unix socket, older QEMU vsock 2:4050; the TD's object says so.
func TestDefaultQGS(t *testing.T) {
	tests := []struct {
		shape, want, object string
	}{
		{"h100-1g-32c-100g", "unix:/var/run/tdx-qgs/qgs.socket", `{"qom-type":"tdx-guest","id":"tdx","quote-generation-socket":{"type":"unix","path":"/var/run/tdx-qgs/qgs.socket"}}`},
		{"h100-1g-32c-100g-ubuntu24", "vsock:2:4050", `{"qom-type":"tdx-guest","id":"tdx","quote-generation-socket":{"type":"vsock","cid":"2","port":"4050"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.shape, func(t *testing.T) {
			s := mustShape(t, tt.shape)
			if got := qemu.DefaultQGS(s.QEMU).String(); got != tt.want {
				t.Fatalf("DefaultQGS(%s) = %s, want %s", s.QEMU.Name, got, tt.want)
			}
			argv, err := qemu.Argv(baseOptions(t, qemu.ModeTDX, tt.shape, "3b:00.0"))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(argv, tt.object) {
				t.Fatalf("argv has no -object %s:\n%s", tt.object, strings.Join(argv, "\n"))
			}
		})
	}
	for v, unix := range map[string]bool{"10.1": true, "10.2": true, "11.0": true, "10.1.3": true, "10.0": false, "9.2": false, "8.2.2": false, "x.y": false} {
		got := qemu.DefaultQGS(shape.QEMUProfile{QEMUVersion: v}).Transport
		if (got == qemu.QGSUnix) != unix {
			t.Errorf("QEMU %s: transport %s, want unix %v", v, got, unix)
		}
	}
}

func TestParseQGS(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"unix", "unix:/var/run/tdx-qgs/qgs.socket", ""},
		{"unix:/run/qgs.sock", "unix:/run/qgs.sock", ""},
		{"vsock", "vsock:2:4050", ""},
		{"vsock:4051", "vsock:2:4051", ""},
		{"vsock:1:4050", "vsock:1:4050", ""},
		{"", "", "want unix, unix:PATH, vsock"},
		{"tcp:1.2.3.4:4050", "", "want unix, unix:PATH, vsock"},
		{"unix:", "", "no unix socket path"},
		{"unix:run/qgs.sock", "", "not absolute"},
		{"unix:/" + strings.Repeat("a", 107), "", "unix sockets allow 107"},
		{"unix:/a\nb", "", "control character"},
		{"vsock:x", "", `vsock port "x" is not a number`},
		{"vsock:x:4050", "", `vsock CID "x" is not a number`},
		{"vsock:2:0", "", "vsock port 0 is out of range"},
		{"vsock:2:4294967295", "", "vsock port 4294967295"},
		{"vsock:4294967295:1", "", "VMADDR_CID_ANY"},
		{"vsock:2:99999999999", "", `vsock port "99999999999" is not a number`},
	}
	for _, tt := range tests {
		q, err := qemu.ParseQGS(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseQGS(%q) = %v, %v; want an error mentioning %q", tt.in, q, err, tt.err)
			}
			continue
		}
		if err != nil || q.String() != tt.want {
			t.Errorf("ParseQGS(%q) = %v, %v; want %s", tt.in, q, err, tt.want)
			continue
		}
		if back, err := qemu.ParseQGS(q.String()); err != nil || back != q {
			t.Errorf("ParseQGS(%q) round trip: %v, %v", q.String(), back, err)
		}
	}
}
