package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/chrysalis-cc/chrysalis/host/launch"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

func init() {
	register("payout", "the worker's payout keys (keys) and its earnings and settlements, asked of the running guest (status)", runPayout)
}

const payoutStatusUsage = `  chrysalis payout status [--state DIR] [--port 8443] [--instance N] [--json | --metrics]
      the payout summary of the guest of a running ` + "`chrysalis launch`" + ` (same
      --state, --port and --instance as ` + "`chrysalis status`" + `), asked over the
      launcher's control socket and the status channel: earned (the
      highest proxy-signed cumulative state), settled (confirmed on chain
      to the owner), in flight, pending, settlements by status, the usage
      receipts signed and the amount they claim, the last settlement
      transaction, and the alarms: a paused settlement, a ledger error
      (its compaction failed). --metrics prints the Prometheus text form.
      Fails when the guest has no payment channel.
`

func payoutUsage(w io.Writer) {
	fmt.Fprint(w, "usage:\n"+payoutStatusUsage+payoutKeysUsage+payoutWithdrawUsage)
}

// payoutSubcommands are the payout group's subcommands.
var payoutSubcommands = []subcommand{
	{"status", payoutStatus},
	{"keys", payoutKeysCmd},
	{"withdraw", payoutWithdrawCmd},
}

func runPayout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, payoutUsage, payoutSubcommands, args, stdout, stderr)
}

func payoutStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, sf := newStatusFlags("payout status", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage:\n"+payoutStatusUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	metrics := fs.Bool("metrics", false, "print Prometheus metrics")
	if help, err := parseStatusFlags(fs, args); help || err != nil {
		if err != nil {
			return fmt.Errorf("payout status: %w", err)
		}
		return nil
	}
	if *asJSON && *metrics {
		return errors.New("payout status: --json and --metrics exclude each other")
	}
	dir, err := sf.dir()
	if err != nil {
		return fmt.Errorf("payout status: %w", err)
	}
	r, err := launch.Query(ctx, dir, guest.Command{Cmd: guest.CmdStatus})
	if err != nil {
		return fmt.Errorf("payout status: %w", err)
	}
	s := r.Status.Payout
	if s == nil {
		return fmt.Errorf("payout status: the guest in %s has no payment channel (no measured.payment in its config; earnings %q)", dir, r.Status.Earnings)
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	case *metrics:
		return s.WriteMetrics(stdout)
	}
	return s.WriteText(stdout)
}
