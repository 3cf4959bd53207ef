package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/image"
	"github.com/chrysalis-cc/chrysalis/measure/diagnose"
	"github.com/chrysalis-cc/chrysalis/measure/eventlog"
	"github.com/chrysalis-cc/chrysalis/measure/quote"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

func init() {
	register("diagnose", "explain a TD's measurements event by event against a release and shape", runDiagnose)
}

func runDiagnose(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("diagnose", flag.ContinueOnError)
	fs.SetOutput(stderr)
	release := fs.String("release", "release", "release `directory`")
	shapeName := fs.String("shape", "", "VM `shape` the TD was launched with (required)")
	logFile := fs.String("eventlog", "", "the TD's CCEL event log `file` (/sys/firmware/acpi/tables/data/CCEL; required)")
	tableFile := fs.String("ccel-table", "", "optional CCEL ACPI table `file` (/sys/firmware/acpi/tables/CCEL) to check the log against")
	var reported repeated
	fs.Var(&reported, "rtmr", "`N=HEX`: RTMR N as reported by the TD; repeatable")
	fw := addFirmwareFlags(fs)
	quoteFile := fs.String("quote", "", "the TD's quote `file`: its RTMR0-2 are the reported values (the quote is parsed, not verified: use verify for trust)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *shapeName == "" || *logFile == "" || fs.NArg() != 0 {
		return errors.New("usage: chrysalis diagnose --release DIR --shape NAME --eventlog CCEL [--ccel-table TABLE] [--quote Q | --rtmr N=HEX...]")
	}
	rep := map[int]tdxmr.Digest{}
	for _, kv := range reported {
		n, h, ok := strings.Cut(kv, "=")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || i < 0 || i > 2 {
			return fmt.Errorf("--rtmr %q: want N=HEX with N in 0..2", kv)
		}
		d, err := tdxmr.ParseDigest(h)
		if err != nil {
			return fmt.Errorf("--rtmr %s: %w", n, err)
		}
		rep[i] = d
	}
	if *quoteFile != "" {
		if len(reported) != 0 {
			return errors.New("give --quote or --rtmr, not both")
		}
		qb, err := os.ReadFile(*quoteFile)
		if err != nil {
			return fmt.Errorf("--quote: %w", err)
		}
		q, err := quote.Parse(qb)
		if err != nil {
			return fmt.Errorf("--quote %s: %w", *quoteFile, err)
		}
		for i := 0; i < 3; i++ {
			rep[i] = tdxmr.Digest(q.RTMR[i])
		}
		fmt.Fprintf(stdout, "quote MRTD %x (expected MRTD is in `chrysalis measure`)\n", q.MRTD)
	}
	raw, err := os.ReadFile(*logFile)
	if err != nil {
		return fmt.Errorf("--eventlog: %w", err)
	}
	var log *eventlog.Log
	if *tableFile != "" {
		tb, err := os.ReadFile(*tableFile)
		if err != nil {
			return fmt.Errorf("--ccel-table: %w", err)
		}
		if _, log, err = eventlog.ParseCCEL(tb, raw); err != nil {
			return fmt.Errorf("%s: %w", *logFile, err)
		}
	} else if log, err = eventlog.Parse(raw); err != nil {
		return fmt.Errorf("%s: %w", *logFile, err)
	}
	if _, err := image.LoadRelease(*release); err != nil {
		return err
	}
	s, err := shape.Lookup(*shapeName)
	if err != nil {
		return err
	}
	qrel, err := qemu.ReleaseFromDir(*release)
	if err != nil {
		return err
	}
	m, err := measureShape(ctx, *release, qrel, s, fw)
	if err != nil {
		return err
	}
	r, err := diagnose.Diagnose([]*tdxmr.Register{m.RTMR0, m.RTMR1, m.RTMR2}, log, rep)
	if err != nil {
		return err
	}
	r.Write(stdout)
	for _, w := range m.Warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	if !r.OK {
		return errors.New("the TD's measurements differ from the release and shape (see above)")
	}
	return nil
}
