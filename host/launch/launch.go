package launch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/guest/configdisk"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
)

// Defaults.
const (
	DefaultShape        = "dev-small"
	DefaultPort         = guest.HTTPSPort
	DefaultReadyTimeout = 180 * time.Second
	DefaultStopTimeout  = 15 * time.Second
	// ConsoleTailLines is how many console lines launch errors carry.
	ConsoleTailLines = 20
)

// File names inside the state directory.
const (
	FileConfigDisk = "config.img"
	FileConsole    = "console.log"
	FileQEMULog    = "qemu.log"
	FileStatusSock = "status.sock"
	FileQMPSock    = "qmp.sock"
	FileLock       = "lock"
	// FileControlSock is the launcher's own socket: `chrysalis status`
	// and `chrysalis logs` ask the guest through it (Query).
	FileControlSock = "control.sock"
)

// ConsoleSeparator starts the line Start appends to the console log
// before each boot: the log persists across launches.
const ConsoleSeparator = "==== chrysalis launch "

// TEETDX is the TEE a guest launched in TDX mode must report when ready.
const TEETDX = "tdx"

// QueryTimeout bounds one forwarded command's round trip to the guest.
const QueryTimeout = 10 * time.Second

const (
	connectTimeout = 10 * time.Second
	qmpTimeout     = 5 * time.Second
	killTimeout    = 5 * time.Second
)

// Options describe a launch. Only StateDir and the release are required
// for a dev launch; a TDX launch also needs the GPUs its shape declares
// and a HostCheck.
type Options struct {
	// Mode is qemu.ModeDev (TCG, no TEE; the default) or qemu.ModeTDX (a
	// trust domain under KVM with GPUs passed through by VFIO).
	Mode qemu.Mode
	// Binary is the QEMU executable, looked up on PATH unless it contains
	// a slash (default qemu.Binary).
	Binary string
	// ReleaseDir is a release directory (qemu.ReleaseFromDir). It is read
	// when Release is zero.
	ReleaseDir string
	// Release is the release to boot; it overrides ReleaseDir.
	Release qemu.Release
	// Shape is the VM shape (default: the built-in DefaultShape). Dev mode
	// needs a shape without GPUs.
	Shape *shape.VMShape
	// GPUs are the host PCI addresses of the GPUs to pass through, one per
	// GPU the shape declares (TDX only).
	GPUs []string
	// GuestCID is the guest's vsock CID (TDX only; default
	// qemu.DefaultGuestCID). NewInstance derives one per instance.
	GuestCID uint32
	// QGS overrides where QEMU reaches the quote generation service (TDX
	// only); nil takes qemu.DefaultQGS of the shape's QEMU profile.
	QGS *qemu.QGS
	// HostCheck vets the host before anything is created or started
	// (TDX only, and required there): a TD that cannot start or attest on
	// this host must not be launched. It gets the options with defaults
	// applied; its error is returned as is. chrysalis launch runs
	// host/doctor's checks through doctor.Gate.
	HostCheck func(Options) error
	// Disks are images for the shape's disk slots other than the config
	// disk, which Launch writes itself.
	Disks map[shape.DiskKind]string
	// Port is the host TCP port forwarded to the guest API (default
	// DefaultPort), on HostAddr.
	Port int
	// HostAddr is the host IPv4 address Port listens on (default
	// qemu.DefaultHostAddr, 127.0.0.1).
	HostAddr string
	// StateDir holds the config disk, console log, QEMU log and sockets.
	// It is created if missing and locked while the VM runs.
	StateDir string
	// Config is written to the config disk (default DefaultConfig()).
	Config *guest.Config
	// ReadyTimeout bounds the wait for the guest's ready status (default
	// DefaultReadyTimeout).
	ReadyTimeout time.Duration
	// StopTimeout is how long Stop waits for the guest to power off before
	// asking QEMU to quit (default DefaultStopTimeout).
	StopTimeout time.Duration
	// Logf receives progress lines (status messages, how the VM stopped).
	Logf func(format string, args ...any)
}

// DefaultConfig is the config a dev launch uses unless told otherwise.
func DefaultConfig() *guest.Config {
	return &guest.Config{
		Version:  1,
		Measured: guest.MeasuredConfig{Instance: "dev"},
		Network:  guest.DevNetwork,
	}
}

func (o *Options) setDefaults() error {
	if o.Mode == "" {
		o.Mode = qemu.ModeDev
	}
	if o.Binary == "" {
		o.Binary = qemu.Binary
	}
	if o.Shape == nil {
		s, err := shape.Lookup(DefaultShape)
		if err != nil {
			return err
		}
		o.Shape = s
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.HostAddr == "" {
		o.HostAddr = qemu.DefaultHostAddr
	}
	if o.Config == nil {
		o.Config = DefaultConfig()
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// Preflight checks what a launch needs before anything is started: for
// TDX first the GPU count and the HostCheck, then QEMU on PATH, the
// release files, the disks (creating a missing persistent disk), a free
// host port and a valid config. It fills in o's defaults and resolves
// o.Binary and o.Release.
func Preflight(o *Options) error {
	if err := o.setDefaults(); err != nil {
		return err
	}
	switch o.Mode {
	case qemu.ModeDev:
		if len(o.GPUs) > 0 {
			return fmt.Errorf("%d GPU address(es) given; dev mode has no GPU passthrough", len(o.GPUs))
		}
	case qemu.ModeTDX:
		if len(o.GPUs) != o.Shape.GPUs {
			return fmt.Errorf("shape %q needs %d GPU(s), but %d GPU address(es) were given", o.Shape.Name, o.Shape.GPUs, len(o.GPUs))
		}
		if o.HostCheck == nil {
			return errors.New("a TDX launch needs a host check (Options.HostCheck): a TD must not be started on a host that cannot run or attest it")
		}
		if err := o.HostCheck(*o); err != nil {
			return err
		}
	default:
		return fmt.Errorf("launch mode %q is neither %q nor %q", o.Mode, qemu.ModeDev, qemu.ModeTDX)
	}
	bin, err := exec.LookPath(o.Binary)
	if err != nil {
		if o.Binary == qemu.Binary {
			return fmt.Errorf("%s not found: install it with `apt-get install qemu-system-x86`", qemu.Binary)
		}
		return fmt.Errorf("QEMU binary %s not found: %w", o.Binary, err)
	}
	o.Binary = bin
	if o.Release == (qemu.Release{}) {
		if o.ReleaseDir == "" {
			return errors.New("no release given: pass a release directory")
		}
		r, err := qemu.ReleaseFromDir(o.ReleaseDir)
		if err != nil {
			return err
		}
		o.Release = r
	} else {
		for _, p := range []string{o.Release.OVMF, o.Release.Kernel, o.Release.Initrd} {
			if _, err := os.Stat(p); err != nil {
				return fmt.Errorf("release: %w", err)
			}
		}
	}
	if o.Mode == qemu.ModeDev && o.Shape.GPUs > 0 {
		return fmt.Errorf("shape %q needs %d GPU(s); dev mode has no GPU passthrough (choose a shape without GPUs)", o.Shape.Name, o.Shape.GPUs)
	}
	for k, p := range o.Disks {
		if k == shape.DiskConfig {
			return errors.New("the config disk is written by launch; do not pass one")
		}
		if k == shape.DiskPersistent {
			if err := ensureStateParent(p, o.StateDir); err != nil {
				return err
			}
			created, err := EnsurePersistentDisk(p, DefaultPersistentMiB)
			if err != nil {
				return err
			}
			if created {
				o.Logf("created the persistent disk %s (%d MiB, ext4)", p, DefaultPersistentMiB)
			}
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s disk: %w", k, err)
		}
	}
	if err := o.Config.Validate(); err != nil {
		return err
	}
	if o.StateDir == "" {
		return errors.New("no state directory given")
	}
	// QEMU runs with the state directory as its working directory, so
	// every path it is given must be absolute.
	for _, p := range []*string{&o.Release.OVMF, &o.Release.Kernel, &o.Release.Initrd, &o.StateDir} {
		a, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = a
	}
	for k, p := range o.Disks {
		a, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		o.Disks[k] = a
	}
	if o.Port < 1 || o.Port > 65535 {
		return fmt.Errorf("port %d is out of range 1..65535", o.Port)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(o.HostAddr, fmt.Sprint(o.Port)))
	if err != nil {
		if o.HostAddr != qemu.DefaultHostAddr {
			return fmt.Errorf("cannot listen on %s port %d (%v): choose another with --port or --listen", o.HostAddr, o.Port, err)
		}
		return fmt.Errorf("port %d is in use: choose another with --port", o.Port)
	}
	l.Close()
	return nil
}

// ensureStateParent creates the state directory when disk p is to be
// made inside it (a launch's default persistent disk), so it can be
// created before Start makes the directory.
func ensureStateParent(p, stateDir string) error {
	if stateDir == "" {
		return nil
	}
	dir, err1 := filepath.Abs(filepath.Dir(p))
	state, err2 := filepath.Abs(stateDir)
	if err1 != nil || err2 != nil || dir != state {
		return nil
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	return nil
}

// VM is a running guest.
type VM struct {
	opts     Options
	cmd      *exec.Cmd
	state    string
	lock     *os.File
	qemuLog  *os.File
	done     chan struct{} // closed when QEMU has exited and been reaped
	exitErr  error
	statusCh chan guest.Status
	// readerDone is closed when the status reader has seen the channel
	// close (nil if it never started).
	readerDone chan struct{}

	// consoleStart is the console log's size after this boot's
	// separator: failure messages show only this boot's lines.
	consoleStart int64
	// replies carries the guest's answers to forwarded commands; queryMu
	// keeps one command in flight so answers match in order.
	replies chan *guest.Reply
	queryMu sync.Mutex
	control net.Listener

	mu        sync.Mutex
	conn      net.Conn
	last      guest.Status
	stoppedBy string

	stopOnce sync.Once
	stopErr  error
}

// Launch starts a VM (dev or TDX, Options.Mode) and waits until the agent reports ready.
// On any failure the VM is stopped and the error carries the last console
// lines. ctx bounds only the launch: once Launch returns, the VM runs
// until Stop.
func Launch(ctx context.Context, o Options) (*VM, error) {
	vm, err := Start(ctx, o)
	if err != nil {
		return nil, err
	}
	if _, err := vm.WaitReady(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), qmpTimeout+killTimeout)
		defer cancel()
		vm.stopNow(stopCtx)
		return nil, err
	}
	return vm, nil
}

// Start runs Preflight, writes the config disk into the state directory,
// starts QEMU in its own process group and connects to the status
// channel. It does not wait for the guest.
func Start(ctx context.Context, o Options) (vm *VM, err error) {
	if err := Preflight(&o); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	state, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	lock, err := lockDir(state)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && lock != nil {
			lock.Close()
		}
	}()
	p := func(name string) string { return filepath.Join(state, name) }
	if len(p(FileControlSock)) > 107 {
		return nil, fmt.Errorf("state directory %s is too long for its unix sockets (at most %d bytes for %s): use a shorter --state", state, 107-len(FileControlSock)-1, FileControlSock)
	}
	for _, s := range []string{FileStatusSock, FileQMPSock, FileControlSock} {
		if err := os.Remove(p(s)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("state directory: %w", err)
		}
	}
	if err := configdisk.Write(p(FileConfigDisk), o.Config); err != nil {
		return nil, err
	}
	disks := map[shape.DiskKind]string{shape.DiskConfig: p(FileConfigDisk)}
	for k, v := range o.Disks {
		disks[k] = v
	}
	argv, err := qemu.Argv(qemuOptions(o, state, disks))
	if err != nil {
		return nil, err
	}
	consoleStart, err := appendSeparator(p(FileConsole), o)
	if err != nil {
		return nil, err
	}
	qlog, err := os.OpenFile(p(FileQEMULog), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	fmt.Fprintf(qlog, "# %s\n", strings.Join(quoteAll(argv), " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = qlog, qlog
	cmd.Dir = state
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a Ctrl-C on the terminal reaches chrysalis,
		// which powers the guest off cleanly, not QEMU.
		Setpgid: true,
		// Do not outlive chrysalis.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		qlog.Close()
		return nil, fmt.Errorf("starting %s: %w", o.Binary, err)
	}
	vm = &VM{
		opts:     o,
		cmd:      cmd,
		state:    state,
		lock:     lock,
		qemuLog:  qlog,
		done:     make(chan struct{}),
		statusCh: make(chan guest.Status, 64),
		replies:  make(chan *guest.Reply, 1),

		consoleStart: consoleStart,
	}
	lock = nil // owned by vm now
	o.Logf("started %s (pid %d); console: %s", filepath.Base(o.Binary), cmd.Process.Pid, p(FileConsole))
	go vm.reap()
	if err := vm.connect(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), qmpTimeout+killTimeout)
		defer cancel()
		vm.stopNow(stopCtx)
		return nil, err
	}
	vm.readerDone = make(chan struct{})
	go vm.readStatus()
	if err := vm.serveControl(); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), qmpTimeout+killTimeout)
		defer cancel()
		vm.stopNow(stopCtx)
		return nil, err
	}
	return vm, nil
}

// qemuOptions is the QEMU command line's input for a launch with state
// directory state and the disks (the config disk among them).
func qemuOptions(o Options, state string, disks map[shape.DiskKind]string) qemu.Options {
	qo := qemu.Options{
		Mode:         o.Mode,
		Shape:        o.Shape,
		Release:      o.Release,
		Disks:        disks,
		HostAddr:     o.HostAddr,
		HostPort:     o.Port,
		ConsoleLog:   filepath.Join(state, FileConsole),
		StatusSocket: filepath.Join(state, FileStatusSock),
		QMPSocket:    filepath.Join(state, FileQMPSock),
		Binary:       o.Binary,
	}
	if o.Mode == qemu.ModeTDX {
		qo.GPUs, qo.GuestCID, qo.QGS = o.GPUs, o.GuestCID, o.QGS
	}
	return qo
}

// appendSeparator appends this boot's separator line to the console log
// (created if missing) and returns the log's size after it.
func appendSeparator(path string, o Options) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("console log: %w", err)
	}
	defer f.Close()
	mode := ""
	if o.Mode == qemu.ModeTDX {
		mode = " tdx"
	}
	if _, err := fmt.Fprintf(f, "\n%s%s shape %s%s port %d ====\n", ConsoleSeparator, time.Now().UTC().Format(time.RFC3339), o.Shape.Name, mode, o.Port); err != nil {
		return 0, fmt.Errorf("console log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("console log: %w", err)
	}
	return st.Size(), nil
}

func quoteAll(argv []string) []string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = qemu.Quote(a)
	}
	return q
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, FileLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("state directory %s is in use by another launch: choose another with --state", dir)
	}
	return f, nil
}

// reap waits for QEMU, then releases everything the VM holds.
func (vm *VM) reap() {
	err := vm.cmd.Wait()
	vm.mu.Lock()
	vm.exitErr = err
	vm.mu.Unlock()
	vm.qemuLog.Close()
	os.Remove(filepath.Join(vm.state, FileStatusSock))
	os.Remove(filepath.Join(vm.state, FileQMPSock))
	if vm.control != nil {
		vm.control.Close()
	}
	os.Remove(filepath.Join(vm.state, FileControlSock))
	vm.lock.Close()
	close(vm.done)
}

// connect dials the status socket QEMU serves, retrying until QEMU has
// created it.
func (vm *VM) connect(ctx context.Context) error {
	path := filepath.Join(vm.state, FileStatusSock)
	deadline := time.NewTimer(connectTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			vm.mu.Lock()
			vm.conn = c
			vm.mu.Unlock()
			return nil
		}
		select {
		case <-vm.done:
			return vm.failure(fmt.Sprintf("QEMU exited during startup (%v)", vm.exitErr))
		case <-deadline.C:
			return vm.failure(fmt.Sprintf("could not connect to the status channel %s within %s: %v", path, connectTimeout, err))
		case <-ctx.Done():
			return fmt.Errorf("launch cancelled: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// readStatus logs every status line the agent sends and hands it to
// WaitReady. It reads until the channel closes (QEMU exits), so the last
// messages before a poweroff are not lost.
func (vm *VM) readStatus() {
	defer close(vm.readerDone)
	vm.mu.Lock()
	conn := vm.conn
	vm.mu.Unlock()
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		line, err := readLine(r, guest.MaxMessageSize)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				vm.opts.Logf("status: ignoring a line over %d bytes", guest.MaxMessageSize)
				continue
			}
			break
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		stp, reply, err := guest.ParseAgentLine(line)
		if err != nil {
			vm.opts.Logf("status: ignoring malformed line %.200q (%v)", line, err)
			continue
		}
		if reply != nil {
			select {
			case vm.replies <- reply:
			default:
				vm.opts.Logf("status: ignoring an unrequested %s reply", reply.Reply)
			}
			continue
		}
		st := *stp
		vm.opts.Logf("status: %s", describe(st))
		vm.mu.Lock()
		vm.last = st
		vm.mu.Unlock()
		select {
		case vm.statusCh <- st:
		default:
		}
	}
	close(vm.statusCh)
}

func describe(st guest.Status) string {
	var parts []string
	if st.TEE != "" {
		parts = append(parts, "tee="+st.TEE)
	}
	if st.Port != 0 {
		parts = append(parts, fmt.Sprintf("port=%d", st.Port))
	}
	if st.Detail != "" {
		parts = append(parts, fmt.Sprintf("detail=%q", st.Detail))
	}
	if len(parts) == 0 {
		return st.State
	}
	return st.State + " (" + strings.Join(parts, ", ") + ")"
}

// WaitReady waits until the agent reports ready and returns that status.
// It fails if the agent reports failed, QEMU exits, the status channel
// closes, Options.ReadyTimeout passes or ctx is done; the error then ends
// with the last console lines. It does not stop the VM.
func (vm *VM) WaitReady(ctx context.Context) (guest.Status, error) {
	timer := time.NewTimer(vm.opts.ReadyTimeout)
	defer timer.Stop()
	for {
		select {
		case st, ok := <-vm.statusCh:
			if !ok {
				select {
				case <-vm.done:
					return guest.Status{}, vm.failure(fmt.Sprintf("QEMU exited before the guest was ready (%s)", exitText(vm.exitErr)))
				case <-time.After(time.Second):
				}
				return guest.Status{}, vm.failure("the status channel closed before the guest was ready")
			}
			switch st.State {
			case guest.StateReady:
				if vm.opts.Mode == qemu.ModeTDX && st.TEE != TEETDX {
					return guest.Status{}, vm.failure(fmt.Sprintf("the guest reported ready with TEE %q, not %q: it is not running as a trust domain", st.TEE, TEETDX))
				}
				if st.Port != 0 && st.Port != guest.HTTPSPort {
					vm.opts.Logf("warning: guest serves on port %d, but port %d is forwarded", st.Port, guest.HTTPSPort)
				}
				return st, nil
			case guest.StateFailed:
				return guest.Status{}, vm.failure(fmt.Sprintf("the guest reported failure: %s", st.Detail))
			}
		case <-vm.done:
			return guest.Status{}, vm.failure(fmt.Sprintf("QEMU exited before the guest was ready (%s)", exitText(vm.exitErr)))
		case <-timer.C:
			return guest.Status{}, vm.failure(fmt.Sprintf("the guest did not report ready within %s", vm.opts.ReadyTimeout))
		case <-ctx.Done():
			return guest.Status{}, fmt.Errorf("launch cancelled: %w", ctx.Err())
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// failure builds an error with the console tail and, if QEMU has exited,
// its own log.
func (vm *VM) failure(msg string) error {
	var b strings.Builder
	b.WriteString(msg)
	console := filepath.Join(vm.state, FileConsole)
	if lines := tailFrom(console, vm.consoleStart, ConsoleTailLines); len(lines) > 0 {
		fmt.Fprintf(&b, "\nlast %d console lines (%s):", len(lines), console)
		for _, l := range lines {
			b.WriteString("\n  " + l)
		}
	} else {
		fmt.Fprintf(&b, "\nthe console (%s) is empty", console)
	}
	select {
	case <-vm.done:
		qlog := filepath.Join(vm.state, FileQEMULog)
		var ql []string
		for _, l := range tailFrom(qlog, 0, ConsoleTailLines) {
			if !strings.HasPrefix(l, "# ") {
				ql = append(ql, l)
			}
		}
		if len(ql) > 0 {
			fmt.Fprintf(&b, "\nQEMU output (%s):", qlog)
			for _, l := range ql {
				b.WriteString("\n  " + l)
			}
		}
	default:
	}
	return errors.New(b.String())
}

// tailFrom returns up to n last non-empty lines of the file at path
// after byte offset from.
func tailFrom(path string, from int64, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	const max = 64 << 10
	if st, err := f.Stat(); err == nil {
		f.Seek(max64(from, st.Size()-max), io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, max))
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		l = printable(l)
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

var ansiRE = regexp.MustCompile(`\x1b(\[[0-9;=?]*[ -/]*[@-~]|[@-Z\\-_])`)

// printable drops terminal escape sequences (firmware clears the screen)
// and other control characters from a console line.
func printable(l string) string {
	l = ansiRE.ReplaceAllString(l, "")
	return strings.Map(func(r rune) rune {
		if r == '\t' || (r >= 0x20 && r != 0x7f && r != utf8.RuneError) {
			return r
		}
		return -1
	}, l)
}

// Endpoint is the guest API's URL on the host.
func (vm *VM) Endpoint() string {
	return fmt.Sprintf("https://%s:%d", vm.opts.HostAddr, vm.opts.Port)
}

// ConsolePath is the file receiving the guest's serial console.
func (vm *VM) ConsolePath() string { return filepath.Join(vm.state, FileConsole) }

// StateDir is the VM's state directory.
func (vm *VM) StateDir() string { return vm.state }

// PID is QEMU's process ID (and process group ID).
func (vm *VM) PID() int { return vm.cmd.Process.Pid }

// LastStatus is the most recent status the agent reported.
func (vm *VM) LastStatus() guest.Status {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.last
}

// StoppedBy says how Stop ended the VM: "already exited", "guest
// poweroff", "QMP quit" or "SIGKILL" ("" before Stop).
func (vm *VM) StoppedBy() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.stoppedBy
}

// Wait waits for QEMU to exit and returns its exit error (nil for a clean
// exit, as after a guest poweroff).
func (vm *VM) Wait() error {
	<-vm.done
	return vm.exitErr
}

// Done is closed once QEMU has exited.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Stop ends the VM: it asks the agent to power off over the status
// channel and waits up to Options.StopTimeout, then asks QEMU to quit over
// QMP, then kills QEMU's process group. It returns once QEMU is gone and
// its sockets and lock are released; ctx cuts the polite steps short.
// Stop is safe to call more than once.
func (vm *VM) Stop(ctx context.Context) error {
	vm.stopOnce.Do(func() { vm.stopErr = vm.stop(ctx, true) })
	return vm.stopErr
}

// stopNow is Stop without the poweroff request, for VMs that never became
// ready.
func (vm *VM) stopNow(ctx context.Context) {
	vm.stopOnce.Do(func() { vm.stopErr = vm.stop(ctx, false) })
}

func (vm *VM) stop(ctx context.Context, poweroff bool) error {
	by := vm.stopSteps(ctx, poweroff)
	vm.mu.Lock()
	vm.stoppedBy = by
	vm.mu.Unlock()
	select {
	case <-vm.done:
		if vm.readerDone != nil {
			select {
			case <-vm.readerDone:
			case <-time.After(time.Second):
			}
		}
		vm.opts.Logf("VM stopped (%s)", by)
		return nil
	case <-time.After(killTimeout):
		return fmt.Errorf("QEMU (pid %d) did not exit after SIGKILL", vm.PID())
	}
}

func (vm *VM) stopSteps(ctx context.Context, poweroff bool) string {
	select {
	case <-vm.done:
		return "already exited"
	default:
	}
	if poweroff {
		if err := vm.sendPowerOff(); err != nil {
			vm.opts.Logf("could not ask the guest to power off: %v", err)
		} else {
			vm.opts.Logf("asked the guest to power off; waiting up to %s", vm.opts.StopTimeout)
			t := time.NewTimer(vm.opts.StopTimeout)
			select {
			case <-vm.done:
				t.Stop()
				return "guest poweroff"
			case <-t.C:
				vm.opts.Logf("the guest did not power off within %s", vm.opts.StopTimeout)
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
	if ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, qmpTimeout)
		err := qmpQuit(qctx, filepath.Join(vm.state, FileQMPSock))
		if err == nil {
			select {
			case <-vm.done:
				cancel()
				return "QMP quit"
			case <-qctx.Done():
			}
		} else {
			vm.opts.Logf("QMP quit failed: %v", err)
		}
		cancel()
	}
	select {
	case <-vm.done:
		return "QMP quit"
	default:
	}
	vm.opts.Logf("killing QEMU (process group %d)", vm.PID())
	syscall.Kill(-vm.PID(), syscall.SIGKILL)
	return "SIGKILL"
}

func (vm *VM) sendPowerOff() error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.conn == nil {
		return errors.New("no status channel")
	}
	b, _ := json.Marshal(guest.Command{Cmd: guest.CmdPowerOff})
	vm.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, err := vm.conn.Write(append(b, '\n'))
	return err
}

// qmpQuit connects to QEMU's QMP socket, negotiates capabilities and sends
// "quit".
func qmpQuit(ctx context.Context, path string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	r := bufio.NewReader(c)
	greeting, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading QMP greeting: %w", err)
	}
	if !bytes.Contains(greeting, []byte(`"QMP"`)) {
		return fmt.Errorf("unexpected QMP greeting %.100q", greeting)
	}
	for _, cmd := range []string{"qmp_capabilities", "quit"} {
		if _, err := fmt.Fprintf(c, "{\"execute\":%q}\n", cmd); err != nil {
			return err
		}
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				if cmd == "quit" && errors.Is(err, io.EOF) {
					return nil // QEMU closed the socket as it quit
				}
				return fmt.Errorf("QMP %s: %w", cmd, err)
			}
			var resp struct {
				Return json.RawMessage `json:"return"`
				Error  *struct {
					Desc string `json:"desc"`
				} `json:"error"`
			}
			if json.Unmarshal(line, &resp) != nil {
				continue
			}
			if resp.Error != nil {
				return fmt.Errorf("QMP %s: %s", cmd, resp.Error.Desc)
			}
			if resp.Return != nil {
				break
			}
			// An event; keep reading.
		}
	}
	return nil
}
