package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMain doubles as a minimal engine process: with
// CHRYSALIS_TEST_ENGINE_ADDR set, the test binary serves 200 on every
// path at that address until killed — a real process for the
// supervisor to start, health-check, recycle and kill.
func TestMain(m *testing.M) {
	if addr := os.Getenv("CHRYSALIS_TEST_ENGINE_ADDR"); addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		os.Exit(4)
	}
	os.Exit(m.Run())
}

// selfAdapter runs the test binary as the engine; warm, when set, is its
// Warm.
type selfAdapter struct {
	warm func(ctx context.Context, base string) error
}

func (selfAdapter) Name() string       { return "self" }
func (selfAdapter) HealthPath() string { return "/health" }
func (selfAdapter) Command(host string, port int) (*exec.Cmd, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = environ("CHRYSALIS_TEST_ENGINE_ADDR=" + net.JoinHostPort(host, strconv.Itoa(port)))
	return cmd, nil
}

type warmAdapter struct{ selfAdapter }

func (w warmAdapter) Warm(ctx context.Context, base string) error { return w.warm(ctx, base) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestSupervisorRecycle(t *testing.T) {
	s, err := NewSupervisor(Config{Adapter: selfAdapter{}, MinBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if s.Recycle(errors.New("x")) {
		t.Error("Recycle before Start reported a kill")
	}
	s.Start()
	defer s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	pid, url := s.PID(), s.URL()
	if !s.Recycle(errors.New("no output for 2m0s")) {
		t.Fatal("Recycle of a running engine reported no kill")
	}
	if s.Ready() {
		t.Error("still ready right after Recycle")
	}
	waitFor(t, "the recycled engine to come back", func() bool { return s.Ready() && s.PID() != pid })
	if n := s.Restarts(); n != 1 {
		t.Errorf("%d restarts, want 1", n)
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("self engine (pid %d) recycled: no output for 2m0s", pid)) {
		t.Errorf("err %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("recycled process %d still exists: %v", pid, err)
	}
	if s.URL() == url {
		t.Errorf("the restarted engine kept the old URL %s (a fresh port was asked for)", url)
	}
	resp, err := http.Get(s.URL() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// The engine counts as ready only after Warm succeeds; a failed warm-up
// is a failed start (killed, retried with backoff), and a warm-up that
// never ends is bounded by StartTimeout.
func TestSupervisorWarm(t *testing.T) {
	var calls atomic.Int32
	s, err := NewSupervisor(Config{Adapter: warmAdapter{selfAdapter{warm: func(ctx context.Context, base string) error {
		if calls.Add(1) < 3 {
			return errors.New("model not loaded")
		}
		return nil
	}}}, MinBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if calls.Load() != 3 || s.Restarts() != 2 {
		t.Errorf("%d warm-ups, %d restarts; want 3, 2", calls.Load(), s.Restarts())
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "warm-up: model not loaded") {
		t.Errorf("err %v", err)
	}

	s, err = NewSupervisor(Config{Adapter: warmAdapter{selfAdapter{warm: func(ctx context.Context, base string) error {
		<-ctx.Done()
		return ctx.Err()
	}}}, StartTimeout: 2 * time.Second, MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Stop()
	waitFor(t, "the warm-up timeout", func() bool { return s.Err() != nil })
	if err := s.Err(); !strings.Contains(err.Error(), "not warm after 2s") || s.Ready() {
		t.Errorf("err %v, ready %v", err, s.Ready())
	}
}
