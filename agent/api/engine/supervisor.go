package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Adapter describes one engine: how to start it listening on a loopback
// address, and which GET path answers 200 once it serves.
type Adapter interface {
	// Name is the engine's name in logs and errors.
	Name() string
	// Command returns the process to start, listening on host:port.
	Command(host string, port int) (*exec.Cmd, error)
	// HealthPath is a GET path that answers 200 when the engine serves.
	HealthPath() string
}

// Warmer is implemented by adapters whose engine must do more than
// answer its health path before it can serve (ollama loads its model on
// the first request): the supervisor calls Warm once per start, after the
// first healthy answer and within StartTimeout, and reports the engine
// ready only when it succeeds. A warm engine answers its first request
// without a load pause, so a silent engine is a stalled one (Recycle).
type Warmer interface {
	Warm(ctx context.Context, base string) error
}

// Config tunes a Supervisor. Zero durations take the defaults below.
type Config struct {
	Adapter Adapter
	// Port is the loopback port the engine listens on; 0 picks a free one
	// at every start.
	Port int
	Log  *slog.Logger
	// Output receives the engine's stdout and stderr (nil: discarded).
	Output io.Writer
	// StartTimeout bounds the wait for the first healthy answer after a start.
	StartTimeout time.Duration
	// HealthInterval is the period of health checks while running;
	// HealthFailures consecutive failures count as a crash.
	HealthInterval time.Duration
	HealthFailures int
	// MinBackoff doubles after each crash up to MaxBackoff, and resets once
	// the engine has stayed healthy for StableAfter.
	MinBackoff, MaxBackoff, StableAfter time.Duration
}

// Defaults of Config.
const (
	DefaultStartTimeout   = 60 * time.Second
	DefaultHealthInterval = 2 * time.Second
	DefaultHealthFailures = 3
	DefaultMinBackoff     = 250 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultStableAfter    = 60 * time.Second
)

// Supervisor keeps one engine process running. Its methods are safe for
// concurrent use.
type Supervisor struct {
	cfg    Config
	client *http.Client

	mu    sync.Mutex
	url   string // base URL of the healthy engine, "" while down
	pid   int
	ready chan struct{} // closed while up; replaced when it goes down
	err   error         // last start or crash error
	// recycle is the reason Recycle gave for killing the current process,
	// reported when runOnce sees it exit.
	recycle error

	restarts atomic.Uint64
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewSupervisor checks cfg and fills in the defaults; Start runs it.
func NewSupervisor(cfg Config) (*Supervisor, error) {
	if cfg.Adapter == nil {
		return nil, errors.New("engine supervisor: no adapter")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("engine supervisor: port %d out of range", cfg.Port)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.StartTimeout, DefaultStartTimeout)
	def(&cfg.HealthInterval, DefaultHealthInterval)
	def(&cfg.MinBackoff, DefaultMinBackoff)
	def(&cfg.MaxBackoff, DefaultMaxBackoff)
	def(&cfg.StableAfter, DefaultStableAfter)
	if cfg.HealthFailures <= 0 {
		cfg.HealthFailures = DefaultHealthFailures
	}
	return &Supervisor{
		cfg:    cfg,
		client: &http.Client{Timeout: 5 * time.Second},
		ready:  make(chan struct{}),
	}, nil
}

// Start launches the supervision loop and returns at once; WaitReady
// waits for the engine.
func (s *Supervisor) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	if s.cancel != nil {
		s.mu.Unlock()
		cancel()
		return
	}
	s.cancel, s.done = cancel, make(chan struct{})
	s.mu.Unlock()
	go s.loop(ctx)
}

// Stop kills the engine (its whole process group) and ends supervision.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// URL is the engine's base URL ("http://127.0.0.1:PORT") while it is
// healthy, "" while it is starting, restarting or stopped.
func (s *Supervisor) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Ready reports whether the engine is up and healthy.
func (s *Supervisor) Ready() bool { return s.URL() != "" }

// Restarts counts starts after the first one (crashes and failed health
// checks).
func (s *Supervisor) Restarts() uint64 { return s.restarts.Load() }

// PID is the engine's process id, 0 when none runs.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// Err is the last start or crash error, nil if none happened.
func (s *Supervisor) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Recycle kills the running engine because its user found it stalled
// (reason says how); the supervisor restarts it with the usual backoff,
// counted in Restarts. The engine is reported down at once, so new
// requests get "restarting" instead of the stalled process. It returns
// false when no engine process is running.
func (s *Supervisor) Recycle(reason error) bool {
	s.mu.Lock()
	pid := s.pid
	if pid == 0 {
		s.mu.Unlock()
		return false
	}
	s.recycle = reason
	s.markDownLocked()
	s.mu.Unlock()
	s.cfg.Log.Warn("engine recycled", "engine", s.cfg.Adapter.Name(), "pid", pid, "reason", reason)
	syscall.Kill(-pid, syscall.SIGKILL)
	return true
}

// exitReason is why the process exited: the Recycle reason if it was
// recycled, else its wait status.
func (s *Supervisor) exitReason(pid int, werr error, phase string) error {
	s.mu.Lock()
	r := s.recycle
	s.recycle = nil
	s.mu.Unlock()
	if r != nil {
		return fmt.Errorf("%s engine (pid %d) recycled%s: %w", s.cfg.Adapter.Name(), pid, phase, r)
	}
	return fmt.Errorf("%s engine (pid %d) exited%s: %v", s.cfg.Adapter.Name(), pid, phase, werr)
}

// WaitReady blocks until the engine is healthy or ctx ends.
func (s *Supervisor) WaitReady(ctx context.Context) error {
	for {
		s.mu.Lock()
		up, ch, err := s.url != "", s.ready, s.err
		s.mu.Unlock()
		if up {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%s engine not ready: %w (last error: %v)", s.cfg.Adapter.Name(), ctx.Err(), err)
			}
			return fmt.Errorf("%s engine not ready: %w", s.cfg.Adapter.Name(), ctx.Err())
		}
	}
}

func (s *Supervisor) setPID(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pid = pid
}

func (s *Supervisor) setUp(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.url = url
	close(s.ready)
}

// markDownLocked reports the engine down: no URL, and a fresh ready
// channel for WaitReady if it was up. s.mu must be held.
func (s *Supervisor) markDownLocked() {
	if s.url != "" {
		s.ready = make(chan struct{})
	}
	s.url = ""
}

func (s *Supervisor) setDown(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.markDownLocked()
	s.pid = 0
	if err != nil {
		s.err = err
	}
}

func (s *Supervisor) loop(ctx context.Context) {
	defer close(s.done)
	backoff := s.cfg.MinBackoff
	for first := true; ; first = false {
		if !first {
			s.restarts.Add(1)
		}
		began := time.Now()
		err := s.runOnce(ctx)
		s.setDown(err)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) >= s.cfg.StableAfter {
			backoff = s.cfg.MinBackoff
		}
		s.cfg.Log.Warn("engine down, restarting", "engine", s.cfg.Adapter.Name(), "err", err, "backoff", backoff, "restarts", s.restarts.Load()+1)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// runOnce starts the engine, waits for health, watches it, and returns
// why it went down (after killing its process group).
func (s *Supervisor) runOnce(ctx context.Context) error {
	name := s.cfg.Adapter.Name()
	port := s.cfg.Port
	if port == 0 {
		p, err := FreePort()
		if err != nil {
			return err
		}
		port = p
	}
	cmd, err := s.cfg.Adapter.Command("127.0.0.1", port)
	if err != nil {
		return fmt.Errorf("%s engine: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = s.cfg.Output, s.cfg.Output
	// Own process group, so that Stop and restarts also kill the engine's
	// children (ollama's runner); and die with the agent.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s engine: start %s: %w", name, cmd.Path, err)
	}
	pid := cmd.Process.Pid
	s.setPID(pid)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	kill := func() {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	base := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.cfg.Log.Info("engine started", "engine", name, "pid", pid, "url", base)

	// Start: poll the health path until it answers, then (for a Warmer)
	// warm the engine; both within StartTimeout, and an exit, a stop or
	// the deadline end either phase the same way.
	deadline := time.NewTimer(s.cfg.StartTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	warmer, _ := s.cfg.Adapter.(Warmer)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	pollC, phase := poll.C, "start"
	var warmed chan error // set while warming; a nil channel never fires
	for up := false; !up; {
		select {
		case err := <-exited:
			kill()
			return s.exitReason(pid, err, " during "+phase)
		case <-ctx.Done():
			kill()
			<-exited
			return nil
		case <-deadline.C:
			kill()
			<-exited
			if warmed != nil {
				return fmt.Errorf("%s engine (pid %d) not warm after %s", name, pid, s.cfg.StartTimeout)
			}
			return fmt.Errorf("%s engine (pid %d) not healthy at %s%s after %s", name, pid, base, s.cfg.Adapter.HealthPath(), s.cfg.StartTimeout)
		case <-pollC:
			if s.check(ctx, base) != nil {
				continue
			}
			if warmer == nil {
				up = true
				continue
			}
			pollC, phase, warmed = nil, "warm-up", make(chan error, 1)
			go func() { warmed <- warmer.Warm(wctx, base) }()
		case err := <-warmed:
			if err != nil {
				kill()
				<-exited
				return fmt.Errorf("%s engine (pid %d) warm-up: %w", name, pid, err)
			}
			up = true
		}
	}
	s.setUp(base)
	s.cfg.Log.Info("engine ready", "engine", name, "pid", pid, "url", base)

	tick := time.NewTicker(s.cfg.HealthInterval)
	defer tick.Stop()
	fails := 0
	for {
		select {
		case err := <-exited:
			kill()
			return s.exitReason(pid, err, "")
		case <-ctx.Done():
			kill()
			<-exited
			return nil
		case <-tick.C:
			if err := s.check(ctx, base); err != nil {
				fails++
				if fails >= s.cfg.HealthFailures {
					kill()
					<-exited
					return fmt.Errorf("%s engine (pid %d): %d health checks failed, last: %w", name, pid, fails, err)
				}
				continue
			}
			fails = 0
		}
	}
}

func (s *Supervisor) check(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+s.cfg.Adapter.HealthPath(), nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s%s: status %d", base, s.cfg.Adapter.HealthPath(), resp.StatusCode)
	}
	return nil
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// environ returns the minimal environment engines run with: PATH plus
// the given variables (the agent's own environment is not inherited).
func environ(kv ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH")}
	return append(env, kv...)
}
