package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

// payoutWithdrawUsage is the usage text of `chrysalis payout withdraw`.
const payoutWithdrawUsage = `  chrysalis payout withdraw --secret FILE --owner ADDR [--network mainnet|testnet]
                            --seqno N [--valid-for 10m] [--now UNIX] --out FILE.boc [--json]
      the owner's escape hatch: sign, offline and without the agent, an
      external message by which the gas wallet (see payout keys) sends its
      whole balance to ADDR (non-bounceable, send mode 128+2), and write
      it to FILE.boc. N is the wallet's current seqno (its get-method
      seqno; 0 for a wallet funded but never used: the message then also
      deploys it). Stop the worker first, or its next settlement may spend
      the seqno; a refused message costs nothing, build it again with the
      new seqno. Broadcast the file before valid_until with any
      liteclient: sendfile FILE.boc. --now fixes the clock (Unix seconds).
`

// maxWithdrawValidity bounds --valid-for: the message names the current
// seqno, so it is for broadcasting now, not for keeping.
const maxWithdrawValidity = 24 * time.Hour

// payoutWithdrawal is the output of `chrysalis payout withdraw`.
type payoutWithdrawal struct {
	Network string `json:"network"`
	// GasWallet is user-friendly (non-bounceable), GasWalletRaw "0:<hex>".
	GasWallet    string `json:"gas_wallet"`
	GasWalletRaw string `json:"gas_wallet_raw"`
	Owner        string `json:"owner"`
	Seqno        uint32 `json:"seqno"`
	StateInit    bool   `json:"state_init"`
	ValidUntil   uint32 `json:"valid_until"`
	// MessageHash is the hex hash of the external message cell.
	MessageHash string `json:"message_hash"`
	Out         string `json:"out"`
}

func payoutWithdrawCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := groupFlagSet("payout", "withdraw", payoutUsage, stderr)
	secretF := fs.String("secret", "", "payout secret `FILE` (64 hex characters)")
	ownerF := fs.String("owner", "", "the owner's TON `address`, which receives the balance")
	network := fs.String("network", "mainnet", "TON `network`: mainnet or testnet")
	seqnoF := fs.String("seqno", "", "the gas wallet's current seqno `N` (0: never used)")
	validFor := fs.Duration("valid-for", 10*time.Minute, "how long the wallet accepts the message (at most 24h)")
	nowF := fs.Int64("now", 0, "the current time, Unix `seconds` (0: the clock)")
	outF := fs.String("out", "", "where to write the external message, `FILE.boc`")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return mfHelpOK(err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("withdraw: unexpected argument %q", fs.Arg(0))
	}
	for _, req := range []struct{ v, flag string }{
		{*secretF, "--secret FILE"}, {*ownerF, "--owner ADDR"},
		{*seqnoF, "--seqno N (the gas wallet's current seqno: its get-method seqno, 0 if it was never used)"},
		{*outF, "--out FILE.boc"},
	} {
		if req.v == "" {
			return fmt.Errorf("withdraw: %s is required", req.flag)
		}
	}
	n, err := payment.ParseNetwork(*network)
	if err != nil {
		return fmt.Errorf("--network: %w", err)
	}
	owner, err := payment.ParseOwnerAddress(*ownerF, n)
	if err != nil {
		return fmt.Errorf("--owner: %w", err)
	}
	seqno, err := strconv.ParseUint(*seqnoF, 10, 32)
	if err != nil {
		return fmt.Errorf("--seqno %q: want a wallet seqno, 0 to %d", *seqnoF, uint32(math.MaxUint32))
	}
	if *validFor <= 0 || *validFor > maxWithdrawValidity {
		return fmt.Errorf("--valid-for %s: want more than 0 and at most %s", *validFor, maxWithdrawValidity)
	}
	if *validFor%time.Second != 0 {
		return fmt.Errorf("--valid-for %s: want whole seconds", *validFor)
	}
	now := *nowF
	if now < 0 {
		return fmt.Errorf("--now %d: want Unix seconds (0: the clock)", now)
	}
	if now == 0 {
		now = time.Now().Unix()
	}
	until := now + int64(*validFor/time.Second)
	if until > math.MaxUint32 {
		return fmt.Errorf("--now %d: valid_until %d does not fit the wallet's 32-bit time", now, until)
	}
	secret, err := readPayoutSecret("--secret", *secretF)
	if err != nil {
		return err
	}
	w, err := payment.WithdrawMessage(secret, owner, uint32(seqno), uint32(until))
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(*outF, w.BOC, 0o644); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	out := payoutWithdrawal{
		Network: string(n), GasWallet: w.Wallet.String(), GasWalletRaw: payment.RawAddress(w.Wallet),
		Owner: owner.String(), Seqno: w.Seqno, StateInit: w.StateInit, ValidUntil: w.ValidUntil,
		MessageHash: hex.EncodeToString(w.Hash), Out: *outF,
	}
	if *asJSON {
		j, err := canon.Marshal(out)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", j)
		return err
	}
	deploy := ""
	if out.StateInit {
		deploy = " (with the state init: deploys the wallet)"
	}
	_, err = fmt.Fprintf(stdout, "network       %s\ngas wallet    %s\n              %s\nowner         %s\nseqno         %d%s\nvalid_until   %d (%s)\nmessage hash  %s\nwrote %s (%d bytes); broadcast it before valid_until with any liteclient: sendfile %s\n",
		out.Network, out.GasWallet, out.GasWalletRaw, out.Owner, out.Seqno, deploy,
		out.ValidUntil, time.Unix(int64(out.ValidUntil), 0).UTC().Format(time.RFC3339), out.MessageHash, out.Out, len(w.BOC), out.Out)
	return err
}
