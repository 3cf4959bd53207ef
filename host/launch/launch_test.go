package launch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/host/qemu/qemutest"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/guest/configdisk"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
)

// The test binary doubles as a fake QEMU: with CHRYSALIS_FAKE_QEMU set it
// reads the dev argv, serves the status and QMP sockets and behaves as the
// variable says.
const fakeEnv = "CHRYSALIS_FAKE_QEMU"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		os.Exit(fakeQEMU(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeQEMU(mode string, args []string) int {
	tee := "insecure-dev"
	if path := os.Getenv(fakeTDXArgvEnv); path != "" {
		if code := fakeTDXQEMU(path, args); code != 0 {
			return code
		}
		tee = TEETDX
		if t := os.Getenv(fakeTDXTEEEnv); t != "" {
			tee = t
		}
	}
	paths := map[string]string{}
	for i := 0; i+1 < len(args); i++ {
		if args[i] != "-chardev" {
			continue
		}
		kv := map[string]string{}
		for _, f := range strings.Split(args[i+1], ",") {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		paths[kv["id"]] = kv["path"]
	}
	// append=on, as QEMU opens it.
	console, err := os.OpenFile(paths["console"], os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(console, "fake console line %d\n", i)
	}
	if mode == "exit" {
		fmt.Fprintln(os.Stderr, "qemu-system-x86_64: fake failure")
		return 3
	}
	sl, err := net.Listen("unix", paths["status"])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if mode != "deaf" {
		ql, err := net.Listen("unix", paths["qmp"])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go fakeQMP(ql)
	}
	c, err := sl.Accept()
	if err != nil {
		return 1
	}
	send := func(st guest.Status) {
		b, _ := json.Marshal(st)
		c.Write(append(b, '\n'))
	}
	switch mode {
	case "ready", "noisy":
		send(guest.Status{State: guest.StateBooting})
		if mode == "noisy" {
			c.Write([]byte("not json\n\n"))
		}
		send(guest.Status{State: guest.StateReady, TEE: tee, Port: guest.HTTPSPort})
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			cmd, err := guest.ParseCommand(sc.Bytes())
			var r *guest.Reply
			switch {
			case err != nil:
				r = guest.ErrorReply(err)
			case cmd.Cmd == guest.CmdPowerOff:
				send(guest.Status{State: guest.StateStopping})
				return 0
			case cmd.Cmd == guest.CmdLogs:
				r = &guest.Reply{Reply: guest.ReplyLogs, Logs: []string{fmt.Sprintf("fake log, %d lines wanted", cmd.Lines), "msg=ready"}}
			case cmd.Cmd == guest.CmdStatus:
				// A status line in between must not be taken for the reply.
				send(guest.Status{State: guest.StateReady, TEE: "insecure-dev", Port: guest.HTTPSPort})
				r = &guest.Reply{Reply: guest.ReplyStatus, Status: &guest.StatusReport{
					State: guest.StateReady, TEE: "insecure-dev", RTMR3Source: "software", Instance: "unit", Port: guest.HTTPSPort,
					Events: []guest.ReportEvent{{Name: "config", Digest: strings.Repeat("ab", 48)}}, RTMR3: strings.Repeat("cd", 48),
					GPU: guest.GPUReport{State: guest.GPUNone}, Engine: guest.EngineUnknown, Earnings: guest.EarningsNA, UptimeSeconds: 1,
				}}
			}
			b, _ := guest.EncodeReply(r)
			c.Write(b)
		}
		return 0
	case "failed":
		send(guest.Status{State: guest.StateBooting})
		send(guest.Status{State: guest.StateFailed, Detail: "engine crashed"})
	}
	time.Sleep(time.Hour)
	return 0
}

func fakeQMP(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		fmt.Fprintln(c, `{"QMP": {"version": {}, "capabilities": []}}`)
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			var req struct{ Execute string }
			json.Unmarshal(sc.Bytes(), &req)
			fmt.Fprintln(c, `{"return": {}}`)
			if req.Execute == "quit" {
				os.Exit(0)
			}
		}
		c.Close()
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// fakeOptions returns options that run this test binary as QEMU in the
// given mode.
func fakeOptions(t *testing.T, mode string) (Options, *logBuf) {
	t.Helper()
	t.Setenv(fakeEnv, mode)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rel := t.TempDir()
	qemutest.WriteFakeRelease(t, rel)
	lb := &logBuf{}
	return Options{
		Binary:       exe,
		ReleaseDir:   rel,
		Port:         freePort(t),
		StateDir:     filepath.Join(t.TempDir(), "state"),
		ReadyTimeout: 10 * time.Second,
		StopTimeout:  2 * time.Second,
		Logf:         lb.logf,
	}, lb
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error does not mention %q:\n%v", p, err)
		}
	}
}

// assertUnlocked checks that the state directory's lock is free, i.e. the
// VM was reaped and released everything.
func assertUnlocked(t *testing.T, dir string) {
	t.Helper()
	f, err := lockDir(dir)
	if err != nil {
		t.Fatalf("state directory still locked: %v", err)
	}
	f.Close()
	for _, s := range []string{FileStatusSock, FileQMPSock} {
		if _, err := os.Stat(filepath.Join(dir, s)); err == nil {
			t.Errorf("%s left behind", s)
		}
	}
}

func TestPreflightMissingQEMU(t *testing.T) {
	o, _ := fakeOptions(t, "ready")
	o.Binary = ""
	t.Setenv("PATH", t.TempDir())
	wantErr(t, Preflight(&o), "qemu-system-x86_64 not found: install it with `apt-get install qemu-system-x86`")
	o.Binary = "/nonexistent/qemu"
	wantErr(t, Preflight(&o), "/nonexistent/qemu not found")
}

func TestPreflightPortInUse(t *testing.T) {
	o, _ := fakeOptions(t, "ready")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	o.Port = l.Addr().(*net.TCPAddr).Port
	wantErr(t, Preflight(&o), fmt.Sprintf("port %d is in use: choose another with --port", o.Port))
}

func TestPreflightErrors(t *testing.T) {
	tests := []struct {
		name string
		mut  func(o *Options)
		want string
	}{
		{"noinitrd", func(o *Options) { os.Remove(filepath.Join(o.ReleaseDir, qemu.FileInitrd)) }, "initrd"},
		{"norelease", func(o *Options) { o.ReleaseDir = "" }, "no release given"},
		{"releasefile", func(o *Options) { o.Release = qemu.Release{OVMF: "/nonexistent/OVMF.fd"} }, "/nonexistent/OVMF.fd"},
		{"gpushape", func(o *Options) { o.Shape, _ = shape.Lookup("h100-1g-32c-100g") }, "dev mode has no GPU passthrough"},
		{"config", func(o *Options) { o.Config = &guest.Config{Version: 1} }, "measured.instance"},
		{"nostate", func(o *Options) { o.StateDir = "" }, "no state directory"},
		{"port", func(o *Options) { o.Port = 70000 }, "port 70000 is out of range"},
		{"configdisk", func(o *Options) { o.Disks = map[shape.DiskKind]string{shape.DiskConfig: "/x"} }, "written by launch"},
		{"diskmissing", func(o *Options) {
			o.Disks = map[shape.DiskKind]string{shape.DiskModel: "/nonexistent/model.img"}
		}, "model disk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, _ := fakeOptions(t, "ready")
			tt.mut(&o)
			wantErr(t, Preflight(&o), tt.want)
		})
	}
}

func TestLaunchReadyAndStop(t *testing.T) {
	o, lb := fakeOptions(t, "noisy")
	cfg := DefaultConfig()
	cfg.Measured.Instance = "unit"
	o.Config = cfg
	vm, err := Launch(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("https://127.0.0.1:%d", o.Port); vm.Endpoint() != want {
		t.Errorf("endpoint %s, want %s", vm.Endpoint(), want)
	}
	if st := vm.LastStatus(); st.State != guest.StateReady || st.TEE != "insecure-dev" {
		t.Errorf("last status %+v", st)
	}
	got, _, err := configdisk.Read(filepath.Join(vm.StateDir(), FileConfigDisk))
	if err != nil || got.Measured.Instance != "unit" {
		t.Errorf("config disk: %+v, %v", got, err)
	}
	if err := vm.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if vm.StoppedBy() != "guest poweroff" {
		t.Errorf("stopped by %q\nlog:\n%s", vm.StoppedBy(), lb)
	}
	if err := vm.Wait(); err != nil {
		t.Errorf("wait: %v", err)
	}
	if err := vm.Stop(context.Background()); err != nil {
		t.Errorf("second stop: %v", err)
	}
	assertUnlocked(t, vm.StateDir())
	log := lb.String()
	for _, want := range []string{"status: booting", "status: ready (tee=insecure-dev, port=8443)", "malformed line", "status: stopping", "VM stopped (guest poweroff)"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestLaunchGuestFailed(t *testing.T) {
	o, _ := fakeOptions(t, "failed")
	_, err := Launch(context.Background(), o)
	wantErr(t, err, "the guest reported failure: engine crashed", "last 20 console lines", "fake console line 11", "fake console line 30")
	if strings.Contains(err.Error(), "fake console line 10\n") {
		t.Errorf("more than 20 console lines:\n%v", err)
	}
	assertUnlocked(t, o.StateDir)
}

func TestLaunchQEMUExits(t *testing.T) {
	o, _ := fakeOptions(t, "exit")
	_, err := Launch(context.Background(), o)
	wantErr(t, err, "QEMU exited", "exit status 3", "fake console line 30", "qemu-system-x86_64: fake failure")
	assertUnlocked(t, o.StateDir)
}

func TestLaunchTimeout(t *testing.T) {
	o, _ := fakeOptions(t, "silent")
	o.ReadyTimeout = 500 * time.Millisecond
	start := time.Now()
	_, err := Launch(context.Background(), o)
	wantErr(t, err, "did not report ready within 500ms", "fake console line 30")
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("took %s", d)
	}
	assertUnlocked(t, o.StateDir)
}

func TestLaunchCancelled(t *testing.T) {
	o, _ := fakeOptions(t, "silent")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Launch(ctx, o)
	wantErr(t, err, "launch cancelled")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v does not wrap the context error", err)
	}
	assertUnlocked(t, o.StateDir)
}

func TestStopEscalatesToQMP(t *testing.T) {
	o, lb := fakeOptions(t, "silent")
	o.StopTimeout = 200 * time.Millisecond
	vm, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := vm.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if vm.StoppedBy() != "QMP quit" {
		t.Errorf("stopped by %q\n%s", vm.StoppedBy(), lb)
	}
	assertUnlocked(t, vm.StateDir())
}

func TestStopEscalatesToKill(t *testing.T) {
	o, lb := fakeOptions(t, "deaf")
	o.StopTimeout = 200 * time.Millisecond
	vm, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := vm.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if vm.StoppedBy() != "SIGKILL" {
		t.Errorf("stopped by %q\n%s", vm.StoppedBy(), lb)
	}
	if err := vm.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("wait = %v, want killed", err)
	}
	assertUnlocked(t, vm.StateDir())
}

func TestStateDirLocked(t *testing.T) {
	o, _ := fakeOptions(t, "silent")
	o.StopTimeout = 200 * time.Millisecond
	vm, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop(context.Background())
	o2 := o
	o2.Port = freePort(t)
	_, err = Start(context.Background(), o2)
	wantErr(t, err, "is in use by another launch")
}

// TestRealQEMU starts the installed QEMU with a release that boots nothing:
// the guest never reports, so Launch must time out with the console tail,
// and Stop must get past the ignored poweroff to QMP quit.
func TestRealQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	if _, err := exec.LookPath(qemu.Binary); err != nil {
		t.Skip(qemu.Binary + " not installed")
	}
	rel := t.TempDir()
	qemutest.WriteFakeRelease(t, rel)
	lb := &logBuf{}
	o := Options{
		ReleaseDir:   rel,
		Port:         freePort(t),
		StateDir:     filepath.Join(t.TempDir(), "s"),
		ReadyTimeout: 2 * time.Second,
		StopTimeout:  500 * time.Millisecond,
		Logf:         lb.logf,
	}
	_, err := Launch(context.Background(), o)
	wantErr(t, err, "did not report ready within 2s", "console")
	assertUnlocked(t, o.StateDir)

	vm, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitReady(context.Background()); err == nil {
		t.Fatal("a VM with no kernel became ready")
	}
	if err := vm.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if vm.StoppedBy() != "QMP quit" {
		t.Errorf("stopped by %q\n%s", vm.StoppedBy(), lb)
	}
	if err := vm.Wait(); err != nil {
		t.Errorf("QEMU exit after QMP quit: %v", err)
	}
	assertUnlocked(t, vm.StateDir())
	b, _ := os.ReadFile(filepath.Join(vm.StateDir(), FileQEMULog))
	if !strings.HasPrefix(string(b), "# ") || !strings.Contains(string(b), "-accel tcg") {
		t.Errorf("qemu.log lacks the command line:\n%s", b)
	}
}

func TestPrintable(t *testing.T) {
	in := "\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: failed to load Boot0001\r\x07"
	if got := printable(in); got != "BdsDxe: failed to load Boot0001" {
		t.Errorf("printable = %q", got)
	}
}

func TestPreflightMakesPathsAbsolute(t *testing.T) {
	if _, err := exec.LookPath(qemu.Binary); err != nil {
		t.Skip(qemu.Binary + " not installed")
	}
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.Mkdir("rel", 0o755); err != nil {
		t.Fatal(err)
	}
	qemutest.WriteFakeRelease(t, "rel")
	o := Options{ReleaseDir: "rel", StateDir: "state", Port: freePort(t)}
	if err := Preflight(&o); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{o.Release.OVMF, o.Release.Kernel, o.Release.Initrd, o.StateDir} {
		if !filepath.IsAbs(p) || !strings.HasPrefix(p, dir) {
			t.Errorf("path %q is not absolute under %s", p, dir)
		}
	}
}
