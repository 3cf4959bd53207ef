package launch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
)

// A TDX host cannot exist here, so TDX launches run the test binary as
// fakeTDXQEMU: a fake of a TDX-capable QEMU that records its argv (JSON)
// in the file fakeTDXArgvEnv names, refuses a command line without a TD,
// and then behaves like the dev fake (fakeQEMU's modes), except that a
// ready guest reports TEE "tdx" (or fakeTDXTEEEnv's value).
const (
	fakeTDXArgvEnv = "CHRYSALIS_FAKE_TDX_QEMU_ARGV"
	fakeTDXTEEEnv  = "CHRYSALIS_FAKE_TDX_QEMU_TEE"
)

func fakeTDXQEMU(argvFile string, args []string) int {
	b, _ := json.Marshal(append([]string{os.Args[0]}, args...))
	if err := os.WriteFile(argvFile, b, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "fakeTDXQEMU:", err)
		return 1
	}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, "confidential-guest-support=tdx") }) {
		fmt.Fprintln(os.Stderr, "fakeTDXQEMU: not a TDX command line")
		return 2
	}
	return 0
}

const tdxShape = "h100-1g-32c-100g"

// tdxOptions returns options for a TDX launch of tdxShape with one GPU,
// its model disks inside the state directory (the persistent disk is left
// for Preflight to create there), running fakeTDXQEMU in the given mode.
// The host check records that it ran and that nothing existed yet.
func tdxOptions(t *testing.T, mode, stateDir string) (Options, *logBuf, *bool) {
	t.Helper()
	o, lb := fakeOptions(t, mode)
	argvFile := filepath.Join(t.TempDir(), "argv.json")
	t.Setenv(fakeTDXArgvEnv, argvFile)
	o.Mode = qemu.ModeTDX
	o.Shape = mustShape(t, tdxShape)
	o.GPUs = []string{"0000:3b:00.0"}
	o.StateDir = stateDir
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	o.Disks = map[shape.DiskKind]string{
		shape.DiskModel:       filepath.Join(stateDir, "model.img"),
		shape.DiskModelVerity: filepath.Join(stateDir, "model-verity.img"),
		shape.DiskPersistent:  filepath.Join(stateDir, "persistent.img"),
	}
	for _, k := range []shape.DiskKind{shape.DiskModel, shape.DiskModelVerity} {
		if err := os.WriteFile(o.Disks[k], make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	checked := new(bool)
	o.HostCheck = func(got Options) error {
		if got.Mode != qemu.ModeTDX || !slices.Equal(got.GPUs, o.GPUs) {
			return fmt.Errorf("host check got mode %q GPUs %v", got.Mode, got.GPUs)
		}
		for _, p := range []string{argvFile, filepath.Join(stateDir, FileConfigDisk), o.Disks[shape.DiskPersistent]} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s exists before the host check", p)
			}
		}
		*checked = true
		return nil
	}
	return o, lb, checked
}

func mustShape(t *testing.T, name string) *shape.VMShape {
	t.Helper()
	s, err := shape.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recordedArgv is the argv fakeTDXQEMU recorded.
func recordedArgv(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(os.Getenv(fakeTDXArgvEnv))
	if err != nil {
		t.Fatalf("fakeTDXQEMU recorded no argv: %v", err)
	}
	var argv []string
	if err := json.Unmarshal(b, &argv); err != nil {
		t.Fatal(err)
	}
	return argv
}

// assertGone checks that QEMU's process is reaped and that the sockets
// and the lock are released.
func assertGone(t *testing.T, vm *VM) {
	t.Helper()
	if err := syscall.Kill(vm.PID(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("QEMU pid %d still exists (kill 0: %v)", vm.PID(), err)
	}
	assertUnlocked(t, vm.StateDir())
	if _, err := os.Stat(filepath.Join(vm.StateDir(), FileControlSock)); err == nil {
		t.Errorf("%s left behind", FileControlSock)
	}
}

// TestTDXLaunchLifecycle launches fakeTDXQEMU as a TD of a GPU shape, as
// instance 0 and as instance 3: the host check runs before anything
// exists, the recorded argv is qemu.Argv's TDX argv for the same options
// and, with the temporary paths and port put back, byte for byte the
// shape's golden command line in host/qemu/testdata; status queries go
// through the control socket; Stop powers the guest off and leaves no
// process, socket or lock behind.
func TestTDXLaunchLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name     string
		instance int // -1: none
		golden   string
	}{
		{"plain", -1, tdxShape + ".tdx.golden"},
		{"instance-3", 3, tdxShape + ".instance-3.tdx.golden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), "st")
			o, lb, checked := tdxOptions(t, "ready", base)
			if tc.instance >= 0 {
				in, err := NewInstance(base, freePort(t)-qemu.InstancePortStride*tc.instance, qemu.DefaultGuestCID, tc.instance)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(in.StateDir, 0o700); err != nil {
					t.Fatal(err)
				}
				for k, p := range o.Disks {
					np := in.Path(filepath.Base(p))
					if err := os.Rename(p, np); err != nil && !errors.Is(err, os.ErrNotExist) {
						t.Fatal(err)
					}
					o.Disks[k] = np
				}
				o.StateDir, o.Port, o.GuestCID = in.StateDir, in.Port, in.GuestCID
			}
			vm, err := Launch(context.Background(), o)
			if err != nil {
				t.Fatalf("%v\nlog:\n%s", err, lb)
			}
			if !*checked {
				t.Error("the host check did not run")
			}
			if st := vm.LastStatus(); st.State != guest.StateReady || st.TEE != TEETDX {
				t.Errorf("last status %+v", st)
			}

			got := recordedArgv(t)
			rel, err := qemu.ReleaseFromDir(o.ReleaseDir)
			if err != nil {
				t.Fatal(err)
			}
			disks := map[shape.DiskKind]string{shape.DiskConfig: filepath.Join(o.StateDir, FileConfigDisk)}
			for k, p := range o.Disks {
				disks[k] = p
			}
			want, err := qemu.Argv(qemu.Options{
				Mode: qemu.ModeTDX, Shape: o.Shape, Release: rel, Disks: disks, HostPort: o.Port,
				ConsoleLog:   filepath.Join(o.StateDir, FileConsole),
				StatusSocket: filepath.Join(o.StateDir, FileStatusSock),
				QMPSocket:    filepath.Join(o.StateDir, FileQMPSock),
				GPUs:         o.GPUs, GuestCID: o.GuestCID, Binary: o.Binary,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("recorded argv differs from qemu.Argv:\ngot  %q\nwant %q", got, want)
			}
			// The golden form: /state, /rel, the plain binary, port 8443
			// (instance 3: 8473).
			goldenPort := 8443
			if tc.instance >= 0 {
				goldenPort += qemu.InstancePortStride * tc.instance
			}
			repl := strings.NewReplacer(base, "/state", o.ReleaseDir, "/rel",
				fmt.Sprintf("tcp:127.0.0.1:%d-", o.Port), fmt.Sprintf("tcp:127.0.0.1:%d-", goldenPort))
			norm := []string{qemu.Binary}
			for _, a := range got[1:] {
				norm = append(norm, repl.Replace(a))
			}
			golden, err := os.ReadFile(filepath.Join("..", "qemu", "testdata", tc.golden))
			if err != nil {
				t.Fatal(err)
			}
			if g := strings.Join(norm, "\n") + "\n"; g != string(golden) {
				t.Errorf("recorded argv is not the golden %s:\n%s", tc.golden, g)
			}

			if _, err := os.Stat(o.Disks[shape.DiskPersistent]); err != nil {
				t.Errorf("persistent disk not created: %v", err)
			}
			if _, err := Query(context.Background(), vm.StateDir(), guest.Command{Cmd: guest.CmdStatus}); err != nil {
				t.Errorf("status query: %v", err)
			}
			console, _ := os.ReadFile(vm.ConsolePath())
			if !strings.Contains(string(console), " shape "+tdxShape+" tdx port ") {
				t.Errorf("console separator lacks the mode:\n%s", console)
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
			assertGone(t, vm)
		})
	}
}

// TestTDXNeverReady: a TD that never reports is stopped after the ready
// timeout (QMP quit), with the console tail in the error and nothing left.
func TestTDXNeverReady(t *testing.T) {
	o, lb, _ := tdxOptions(t, "silent", filepath.Join(t.TempDir(), "st"))
	o.ReadyTimeout = 500 * time.Millisecond
	vm, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitReady(context.Background()); err == nil || !strings.Contains(err.Error(), "did not report ready within 500ms") {
		t.Fatalf("wait ready: %v", err)
	}
	if err := vm.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if vm.StoppedBy() != "QMP quit" {
		t.Errorf("stopped by %q\nlog:\n%s", vm.StoppedBy(), lb)
	}
	assertGone(t, vm)
}

// TestTDXWrongTEE: a guest launched as a TD that reports another TEE is
// not running as a TD; the launch fails and stops it.
func TestTDXWrongTEE(t *testing.T) {
	o, _, _ := tdxOptions(t, "ready", filepath.Join(t.TempDir(), "st"))
	t.Setenv(fakeTDXTEEEnv, "insecure-dev")
	_, err := Launch(context.Background(), o)
	wantErr(t, err, `the guest reported ready with TEE "insecure-dev", not "tdx"`, "fake console line 30")
	assertUnlocked(t, o.StateDir)
}

// TestTDXPreflightRefuses: without a host check, with the wrong number of
// GPUs or when the host check fails, nothing is created or started.
func TestTDXPreflightRefuses(t *testing.T) {
	refusal := errors.New("host preflight: 1 check(s) failed that would make the guest fail (kvm-tdx)")
	for _, tc := range []struct {
		name string
		mut  func(o *Options)
		want string
	}{
		{"no-host-check", func(o *Options) { o.HostCheck = nil }, "a TDX launch needs a host check"},
		{"gpus", func(o *Options) { o.GPUs = nil }, `shape "h100-1g-32c-100g" needs 1 GPU(s), but 0`},
		{"refused", func(o *Options) { o.HostCheck = func(Options) error { return refusal } }, refusal.Error()},
		{"dev-gpus", func(o *Options) { o.Mode = qemu.ModeDev }, "dev mode has no GPU passthrough"},
		{"mode", func(o *Options) { o.Mode = "sev" }, `launch mode "sev" is neither`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "st")
			o, _, _ := tdxOptions(t, "ready", state)
			tc.mut(&o)
			_, err := Launch(context.Background(), o)
			wantErr(t, err, tc.want)
			if tc.name == "refused" && !errors.Is(err, refusal) {
				t.Errorf("the host check's error is not returned as is: %v", err)
			}
			for _, p := range []string{os.Getenv(fakeTDXArgvEnv), filepath.Join(state, FileConfigDisk), filepath.Join(state, FileConsole), o.Disks[shape.DiskPersistent]} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s exists after the refusal", p)
				}
			}
		})
	}
}
