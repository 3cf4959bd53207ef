package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

// payoutKeysUsage is the usage text of `chrysalis payout keys`.
const payoutKeysUsage = `  chrysalis payout keys --secret FILE [--new] [--network mainnet|testnet] [--json]
      the worker's public payout identity from the owner's payout secret:
      worker_key (put it in measured.payment.worker_key; the proxy sets up
      the channel with it) and the gas wallet to fund (a V5R1 wallet that
      pays for settlements). --new first makes FILE: 32 random bytes as
      hex, mode 0600, never over an existing file. The secret goes to the
      guest with ` + "`chrysalis launch --payout-secret FILE`" + `, never in the
      measured config.
`

// payoutKeys is the output of `chrysalis payout keys`.
type payoutKeys struct {
	Network   string `json:"network"`
	WorkerKey string `json:"worker_key"`
	// GasWallet is user-friendly (non-bounceable), GasWalletRaw "0:<hex>".
	GasWallet    string `json:"gas_wallet"`
	GasWalletRaw string `json:"gas_wallet_raw"`
}

func payoutKeysCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := groupFlagSet("payout", "keys", payoutUsage, stderr)
	secretF := fs.String("secret", "", "payout secret `FILE` (64 hex characters)")
	create := fs.Bool("new", false, "create FILE with a fresh random secret first")
	network := fs.String("network", "mainnet", "TON `network`: mainnet or testnet")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return mfHelpOK(err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("keys: unexpected argument %q", fs.Arg(0))
	}
	if *secretF == "" {
		return errors.New("keys: --secret FILE is required")
	}
	n, err := payment.ParseNetwork(*network)
	if err != nil {
		return fmt.Errorf("--network: %w", err)
	}
	if *create {
		if err := newPayoutSecret(*secretF); err != nil {
			return err
		}
	}
	secret, err := readPayoutSecret("--secret", *secretF)
	if err != nil {
		return err
	}
	ck, wk, err := payment.DeriveKeys(secret)
	if err != nil {
		return err
	}
	w, err := payment.GasWalletAddress(wk.Public().(ed25519.PublicKey), n)
	if err != nil {
		return err
	}
	out := payoutKeys{Network: string(n), WorkerKey: hex.EncodeToString(ck.Public().(ed25519.PublicKey)), GasWallet: w.String(), GasWalletRaw: payment.RawAddress(w)}
	if *asJSON {
		j, err := canon.Marshal(out)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", j)
		return err
	}
	_, err = fmt.Fprintf(stdout, "network     %s\nworker_key  %s\ngas wallet  %s\n            %s\n", out.Network, out.WorkerKey, out.GasWallet, out.GasWalletRaw)
	return err
}

// newPayoutSecret writes 32 random bytes as hex to path (0600), refusing
// to replace an existing file: a lost secret is a lost channel key.
func newPayoutSecret(path string) error {
	var s [payment.PayoutSecretSize]byte
	if _, err := rand.Read(s[:]); err != nil {
		return err
	}
	err := atomicfile.Create(path, 0o600, true, func(f *os.File) error {
		_, err := fmt.Fprintf(f, "%s\n", hex.EncodeToString(s[:]))
		return err
	})
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("--new: %s exists; refusing to replace a payout secret", path)
	}
	return err
}

// readPayoutSecret reads a payout secret file (64 lowercase hex
// characters, as --new writes it) for payout keys, payout withdraw and
// launch --payout-secret; errors name flag and the file.
func readPayoutSecret(flag, path string) ([]byte, error) {
	s, err := readPayoutSecretText(flag, path)
	if err != nil {
		return nil, err
	}
	return s.Bytes()
}

// readPayoutSecretText is readPayoutSecret's checked secret as the config
// disk carries it.
func readPayoutSecretText(flag, path string) (guest.Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	s := guest.Secret(strings.TrimSpace(string(b)))
	if _, err := s.Bytes(); err != nil {
		return "", fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return s, nil
}
