package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
)

func init() {
	register("payout", "the worker's payout keys (keys) and its earnings and settlements from its payout ledger (status)", runPayout)
}

func payoutUsage(w io.Writer) {
	fmt.Fprint(w, `usage:
  chrysalis payout status --ledger FILE [--json | --metrics]
      summarize a payout ledger (agent/payout): earned (the highest
      proxy-signed cumulative state), settled (confirmed on chain to the
      owner), in flight, pending, the usage receipts signed and the amount
      they claim, the last settlement transaction and any alarm that
      paused settlement. Reads the file without writing to it,
      so it is safe beside a running agent. --metrics prints the Prometheus
      text form the agent's /metrics serves.
`+payoutKeysUsage)
}

func runPayout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, payoutUsage, []subcommand{{"status", payoutStatus}, {"keys", payoutKeysCmd}}, args, stdout, stderr)
}

func payoutStatus(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := groupFlagSet("payout", "status", payoutUsage, stderr)
	ledger := fs.String("ledger", "", "payout ledger `FILE` (JSON lines journal)")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	metrics := fs.Bool("metrics", false, "print Prometheus metrics")
	if err := fs.Parse(args); err != nil {
		return mfHelpOK(err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("status: unexpected argument %q", fs.Arg(0))
	}
	if *ledger == "" {
		return errors.New("status: --ledger FILE is required")
	}
	if *asJSON && *metrics {
		return errors.New("status: --json and --metrics exclude each other")
	}
	s, err := payout.ReadSummary(*ledger)
	if err != nil {
		return fmt.Errorf("status: %w", err)
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
