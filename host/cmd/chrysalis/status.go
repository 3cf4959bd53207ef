package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/chrysalis-cc/chrysalis/host/launch"
	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

func init() {
	register("status", "ask a running guest for its status over the host-guest channel", runStatus)
	register("logs", "print a running guest's recent log lines", runLogs)
}

const statusUsage = `usage:
  chrysalis status [--state DIR] [--port 8443] [--instance N] [--json]
  chrysalis logs   [--state DIR] [--port 8443] [--instance N] [-n LINES]

Both ask the guest of a running ` + "`chrysalis launch`" + ` (same --state, --port and
--instance) through the launcher's control socket STATE/control.sock,
which forwards the request on the status channel (virtio-serial in dev
mode). status prints the agent's view: state, TEE, RTMR3 source and
events, identity claims, GPUs, engine health, earnings, uptime. logs
prints the agent's last log lines; the full serial console is in
STATE/console.log.

flags:
`

// statusFlags are the flags status and logs share: where the launcher runs.
type statusFlags struct {
	state    *string
	port     *int
	instance *int
}

func newStatusFlags(name string, stderr io.Writer) (*flag.FlagSet, *statusFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, statusUsage)
		fs.PrintDefaults()
	}
	return fs, &statusFlags{
		state:    fs.String("state", "", "the launcher's state `directory` (default: as `chrysalis launch` chooses it)"),
		port:     fs.Int("port", launch.DefaultPort, "the launcher's base `port` (locates the default state directory)"),
		instance: fs.Int("instance", -1, "instance `N` (0..63) under the state directory"),
	}
}

// dir resolves the instance's state directory as `chrysalis launch` does.
func (f *statusFlags) dir() (string, error) {
	state := *f.state
	if state == "" {
		state = defaultState(*f.port, *f.instance)
	}
	state, err := filepath.Abs(state)
	if err != nil {
		return "", err
	}
	if *f.instance != -1 {
		in, err := launch.NewInstance(state, *f.port, qemu.DefaultGuestCID, *f.instance)
		if err != nil {
			return "", fmt.Errorf("--instance: %w", err)
		}
		state = in.StateDir
	}
	return state, nil
}

func parseStatusFlags(fs *flag.FlagSet, args []string) (bool, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return false, nil
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, sf := newStatusFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print the guest's status report as JSON")
	if help, err := parseStatusFlags(fs, args); help || err != nil {
		return err
	}
	dir, err := sf.dir()
	if err != nil {
		return err
	}
	r, err := launch.Query(ctx, dir, guest.Command{Cmd: guest.CmdStatus})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r.Status)
	}
	writeStatus(stdout, r.Status, dir)
	return nil
}

func writeStatus(w io.Writer, s *guest.StatusReport, dir string) {
	var b strings.Builder
	fmt.Fprintf(&b, "state        %s (up %s)\n", s.State, time.Duration(s.UptimeSeconds)*time.Second)
	fmt.Fprintf(&b, "tee          %s (rtmr3 from %s)\n", s.TEE, s.RTMR3Source)
	fmt.Fprintf(&b, "instance     %s\n", s.Instance)
	if s.Model != "" {
		fmt.Fprintf(&b, "model        %s\n", s.Model)
	}
	if s.OwnerAddress != "" {
		fmt.Fprintf(&b, "owner        %s\n", s.OwnerAddress)
	}
	fmt.Fprintf(&b, "guest port   %d\n", s.Port)
	gpu := s.GPU.State
	if len(s.GPU.UUIDs) > 0 {
		gpu += " " + strings.Join(s.GPU.UUIDs, ", ")
	}
	fmt.Fprintf(&b, "gpu          %s\n", gpu)
	fmt.Fprintf(&b, "engine       %s\n", s.Engine)
	fmt.Fprintf(&b, "earnings     %s\n", s.Earnings)
	fmt.Fprintf(&b, "rtmr3        %s\n", s.RTMR3)
	for i, e := range s.Events {
		fmt.Fprintf(&b, "  event %d    %-8s %s\n", i, e.Name, e.Digest)
	}
	fmt.Fprintf(&b, "console      %s\n", filepath.Join(dir, launch.FileConsole))
	io.WriteString(w, b.String())
}

func runLogs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, sf := newStatusFlags("logs", stderr)
	n := fs.Int("n", guest.DefaultLogLines, fmt.Sprintf("how many recent `lines` (1..%d)", guest.MaxLogLines))
	if help, err := parseStatusFlags(fs, args); help || err != nil {
		return err
	}
	if *n < 1 || *n > guest.MaxLogLines {
		return fmt.Errorf("-n %d: want 1..%d lines", *n, guest.MaxLogLines)
	}
	dir, err := sf.dir()
	if err != nil {
		return err
	}
	r, err := launch.Query(ctx, dir, guest.Command{Cmd: guest.CmdLogs, Lines: *n})
	if err != nil {
		return err
	}
	for _, l := range r.Logs {
		fmt.Fprintln(stdout, l)
	}
	fmt.Fprintf(stderr, "(%d lines from the agent; the full console log is %s)\n", len(r.Logs), filepath.Join(dir, launch.FileConsole))
	return nil
}
