package launch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

// TestControlQuery launches the fake VM twice in one state directory:
// the control socket forwards status and logs to the guest, refuses
// poweroff and bad commands, and the console log keeps both boots.
func TestControlQuery(t *testing.T) {
	o, _ := fakeOptions(t, "ready")
	vm, err := Launch(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := Query(ctx, vm.StateDir(), guest.Command{Cmd: guest.CmdStatus})
	if err != nil || r.Status == nil || r.Status.Instance != "unit" || r.Status.Events[0].Name != "config" {
		t.Fatalf("status: %+v, %v", r, err)
	}
	r, err = Query(ctx, vm.StateDir(), guest.Command{Cmd: guest.CmdLogs, Lines: 5})
	if err != nil || len(r.Logs) != 2 || r.Logs[0] != "fake log, 5 lines wanted" {
		t.Fatalf("logs: %+v, %v", r, err)
	}
	if _, err := Query(ctx, vm.StateDir(), guest.Command{Cmd: guest.CmdPowerOff}); err == nil || !strings.Contains(err.Error(), "poweroff is not forwarded") {
		t.Errorf("poweroff over the control socket: %v", err)
	}
	if _, err := Query(ctx, vm.StateDir(), guest.Command{Cmd: "reboot"}); err == nil || !strings.Contains(err.Error(), `"reboot" is unknown`) {
		t.Errorf("unknown command: %v", err)
	}
	if err := vm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(vm.StateDir(), FileControlSock)); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
	if _, err := Query(ctx, vm.StateDir(), guest.Command{Cmd: guest.CmdStatus}); err == nil || !strings.Contains(err.Error(), "no launcher is running") {
		t.Errorf("query without a launcher: %v", err)
	}

	// Second boot in the same directory: the console log is appended to.
	vm, err = Launch(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := vm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(vm.ConsolePath())
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), ConsoleSeparator); n != 2 || strings.Count(string(b), "fake console line 30\n") != 2 {
		t.Fatalf("console after two boots has %d separators:\n%s", n, b)
	}
}

// TestFailureShowsOnlyThisBoot: a failure's console tail starts after
// this boot's separator.
func TestFailureShowsOnlyThisBoot(t *testing.T) {
	o, _ := fakeOptions(t, "exit")
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(o.StateDir, FileConsole), []byte("old boot line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Launch(context.Background(), o)
	if err == nil || strings.Contains(err.Error(), "old boot line") || !strings.Contains(err.Error(), "fake console line 30") {
		t.Fatalf("err = %v", err)
	}
}

// TestInstancesNeverCollide derives every instance of one host and
// checks that no two share a port, CID, state directory or any file the
// launcher puts there.
func TestInstancesNeverCollide(t *testing.T) {
	base := t.TempDir()
	ports, cids, paths := map[int]int{}, map[uint32]int{}, map[string]int{}
	for i := range qemu.MaxInstances {
		in, err := NewInstance(base, DefaultPort, qemu.DefaultGuestCID, i)
		if err != nil {
			t.Fatal(err)
		}
		if j, dup := ports[in.Port]; dup {
			t.Fatalf("instances %d and %d share port %d", i, j, in.Port)
		}
		if j, dup := cids[in.GuestCID]; dup {
			t.Fatalf("instances %d and %d share CID %d", i, j, in.GuestCID)
		}
		ports[in.Port], cids[in.GuestCID] = i, i
		for _, f := range []string{FileConfigDisk, FileConsole, FileQEMULog, FileStatusSock, FileQMPSock, FileControlSock, FileLock} {
			p := in.Path(f)
			if j, dup := paths[p]; dup {
				t.Fatalf("instances %d and %d share %s", i, j, p)
			}
			paths[p] = i
		}
	}
	in, err := NewInstance("/var/lib/chrysalis", 12000, 6, 3)
	if err != nil || in != (Instance{Index: 3, StateDir: "/var/lib/chrysalis/instance-3", Port: 12030, GuestCID: 9}) {
		t.Fatalf("instance 3: %+v, %v", in, err)
	}
	for _, tc := range []struct {
		i    int
		port int
		want string
	}{{64, 8443, "instance 64 is out of range"}, {-1, 8443, "out of range"}, {0, 65500, "base port 65500"}} {
		if _, err := NewInstance(base, tc.port, 6, tc.i); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("instance %d port %d: %v", tc.i, tc.port, err)
		}
	}

	// Two instances run side by side: each locks only its own directory.
	a, _ := NewInstance(base, freePort(t), qemu.DefaultGuestCID, 0)
	b, _ := NewInstance(base, a.Port, qemu.DefaultGuestCID, 1)
	var vms []*VM
	for _, in := range []Instance{a, b} {
		o, _ := fakeOptions(t, "ready")
		o.StateDir, o.Port = in.StateDir, in.Port
		vm, err := Launch(context.Background(), o)
		if err != nil {
			t.Fatalf("instance %d: %v", in.Index, err)
		}
		vms = append(vms, vm)
	}
	for i, vm := range vms {
		r, err := Query(context.Background(), vm.StateDir(), guest.Command{Cmd: guest.CmdStatus})
		if err != nil || r.Status.State != guest.StateReady {
			t.Errorf("instance %d status: %+v, %v", i, r, err)
		}
		if err := vm.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
