package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// freePort asks the kernel for an unused loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestBootVerifyShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM under TCG; run without -short")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatal("qemu-system-x86_64 not found: install qemu-system-x86 (.ci/run does)")
	}
	root := repoRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "chrysalis")
	run := func(timeout time.Duration, name string, args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
		}
		return out
	}
	run(5*time.Minute, "go", "build", "-o", bin, "./host/cmd/chrysalis")

	start := time.Now()
	release := filepath.Join(dir, "release")
	run(15*time.Minute, bin, "build", "--out", release)
	t.Logf("release built in %s", time.Since(start).Round(time.Millisecond))

	// The release's expected TDX measurements: MRTD of the pinned OVMF
	// (single-pass, cross-checked against gce-tcb-verifier in measure/tdvf)
	// and RTMR0-2 with their events.
	var ms []struct {
		MRTD                string
		RTMR0, RTMR1, RTMR2 struct{ Value string }
	}
	if err := json.Unmarshal(run(time.Minute, bin, "measure", "--release", release, "--shape", "dev-small", "--json"), &ms); err != nil {
		t.Fatal(err)
	}
	const pinnedMRTD = "bdc6fb145880f06f30c8b346b8dce2a99d9351b56892df22f80fcf6574caa9f9c31df8e8576d53b4d0cd1c3f28910e11"
	if len(ms) != 1 || ms[0].MRTD != pinnedMRTD || len(ms[0].RTMR0.Value) != 96 || len(ms[0].RTMR1.Value) != 96 || len(ms[0].RTMR2.Value) != 96 {
		t.Fatalf("measurements %+v", ms)
	}

	// The measured config the host attaches.
	cfg := guest.Config{Version: 1, Measured: guest.MeasuredConfig{Instance: "e2e-worker", OwnerAddress: "EQ-e2e-owner", Model: "none"}, Network: guest.DevNetwork}
	cfgPath := filepath.Join(dir, "config.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	state := filepath.Join(dir, "state")
	launch := exec.Command(bin, "launch", "--dev", "--release", release, "--port", fmt.Sprint(port), "--state", state, "--config", cfgPath)
	launch.Dir = root
	stdout, err := launch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var launchErr bytes.Buffer
	launch.Stderr = &launchErr
	bootStart := time.Now()
	if err := launch.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	endpointC := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			t.Logf("launch: %s", line)
			if f := strings.Fields(line); len(f) == 2 && f[0] == "endpoint:" {
				endpointC <- f[1]
			}
		}
		exited <- launch.Wait()
	}()
	defer func() {
		if launch.ProcessState == nil {
			launch.Process.Kill()
		}
		if t.Failed() {
			if c, err := os.ReadFile(filepath.Join(state, "console.log")); err == nil {
				t.Logf("console.log:\n%s", c)
			}
			t.Logf("launch stderr:\n%s", launchErr.Bytes())
		}
	}()

	var endpoint string
	select {
	case endpoint = <-endpointC:
	case err := <-exited:
		t.Fatalf("launch exited before ready: %v", err)
	case <-time.After(5 * time.Minute):
		t.Fatal("guest not ready after 5 minutes")
	}
	t.Logf("boot to ready: %s", time.Since(bootStart).Round(time.Millisecond))
	if endpoint != fmt.Sprintf("https://127.0.0.1:%d", port) {
		t.Fatalf("endpoint %q", endpoint)
	}

	// A verifier without the insecure-dev opt-in refuses the guest.
	cmd := exec.Command(bin, "verify", endpoint, "--policy", "tdx")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("verify --policy tdx accepted insecure-dev evidence:\n%s", out)
	}

	out := run(2*time.Minute, bin, "verify", endpoint, "--policy", "insecure-dev", "--json")
	var rep struct {
		Type        string          `json:"type"`
		Insecure    bool            `json:"insecure"`
		Config      json.RawMessage `json:"config"`
		Events      []event.Entry   `json:"events"`
		RTMR3       event.Digest    `json:"rtmr3"`
		RTMR3Source string          `json:"rtmr3_source"`
		HandshakeMS float64         `json:"handshake_ms"`
		Claims      struct {
			Instance     string `json:"instance"`
			OwnerAddress string `json:"owner_address"`
		} `json:"claims"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("verify output: %v\n%s", err, out)
	}
	t.Logf("RA-TLS handshake (incl. verification): %.1f ms", rep.HandshakeMS)
	if rep.Type != "insecure-dev" || !rep.Insecure || rep.RTMR3Source != "software" {
		t.Fatalf("evidence type %q insecure=%v source %q", rep.Type, rep.Insecure, rep.RTMR3Source)
	}
	if rep.Claims.Instance != "e2e-worker" || rep.Claims.OwnerAddress != "EQ-e2e-owner" {
		t.Fatalf("claims %+v", rep.Claims)
	}
	// The first event is exactly our measured config, canonicalised, and
	// the log replays to the reported RTMR3.
	want, _ := canon.Marshal(cfg.Measured)
	if len(rep.Events) < 2 || rep.Events[0].Name != event.NameConfig || string(rep.Events[0].Payload) != string(want) {
		t.Fatalf("first event %+v, want config payload %s", rep.Events, want)
	}
	wantEv, _ := event.New(event.NameConfig, 1, json.RawMessage(want))
	if d, _ := wantEv.Digest(); d != rep.Events[0].Digest {
		t.Fatalf("config event digest %s, want %s", rep.Events[0].Digest, d)
	}
	l := event.Log{Version: event.LogVersion, Events: rep.Events}
	if mr, err := l.Replay(); err != nil || mr != rep.RTMR3 {
		t.Fatalf("replay %s (%v), reported %s", mr, err, rep.RTMR3)
	}

	// Ctrl-C: the launcher asks the guest to power off and exits cleanly.
	stopStart := time.Now()
	launch.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("launch exited with %v after Ctrl-C", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("launch did not exit within 60 s of Ctrl-C")
	}
	t.Logf("shutdown: %s", time.Since(stopStart).Round(time.Millisecond))
	console, err := os.ReadFile(filepath.Join(state, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(console, []byte("power off requested by host")) {
		t.Fatalf("guest did not log the host's power-off request; console:\n%s", console)
	}
}
