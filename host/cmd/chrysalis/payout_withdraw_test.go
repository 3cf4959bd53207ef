package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/tonemu"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// The TON Foundation's well-known address (measure/payment's tests).
const (
	withdrawOwnerEQ  = "EQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqB2N"
	withdrawOwnerRaw = "0:83dfd552e63729b472fcbcc8c45ebcc6691702558b68ec7527e1ba403a0f31a8"
	withdrawNow      = "1780000000"
)

func withdrawCLI(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := payoutWithdrawCmd(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func writeWithdrawSecret(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "secret")
	if err := os.WriteFile(p, []byte(strings.Repeat("07", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPayoutWithdrawDrainsInEmulator writes a seqno-0 withdrawal with the
// CLI and runs the file's bytes on a funded, never used gas wallet in the
// TVM emulator: it deploys the wallet and sends everything to the owner.
func TestPayoutWithdrawDrainsInEmulator(t *testing.T) {
	dir := t.TempDir()
	secret := writeWithdrawSecret(t, dir)
	boc := filepath.Join(dir, "w.boc")
	out, errOut, err := withdrawCLI("--secret", secret, "--owner", withdrawOwnerEQ, "--seqno", "0", "--now", withdrawNow, "--out", boc, "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	var got payoutWithdrawal
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// The gas wallet of secret 07…07 is the one `payout keys` shows.
	keysOut, _, err := cliPayoutKeysJSON(secret)
	if err != nil {
		t.Fatal(err)
	}
	if got.GasWallet != keysOut.GasWallet || got.GasWalletRaw != keysOut.GasWalletRaw || got.Network != "mainnet" ||
		got.Seqno != 0 || !got.StateInit || got.ValidUntil != 1_780_000_600 || got.Out != boc ||
		!strings.HasPrefix(got.Owner, "UQ") || len(got.MessageHash) != 64 {
		t.Fatalf("output %+v; keys %+v", got, keysOut)
	}
	b, err := os.ReadFile(boc)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cell.FromBOC(b)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(msg.Hash()) != got.MessageHash {
		t.Fatalf("message hash %s, file's %x", got.MessageHash, msg.Hash())
	}
	c, err := tonemu.New(1_780_000_100, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	wa, err := address.ParseRawAddr(got.GasWalletRaw)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Fund(wa, tlb.MustFromTON("2")); err != nil {
		t.Fatal(err)
	}
	tx, err := c.Execute(wa, nil, msg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !tx.Success || len(tx.Out) != 1 || tx.Out[0].Bounce || tx.Out[0].DstAddr.StringRaw() != withdrawOwnerRaw {
		t.Fatalf("withdrawal: success %v exit %d, %d messages", tx.Success, tx.ExitCode, len(tx.Out))
	}
	if st := c.State(wa); st.Status != tlb.AccountStatusActive || st.Balance.Nano().Sign() != 0 {
		t.Fatalf("wallet after withdrawal: %s with %s nanoTON", st.Status, st.Balance.Nano())
	}
	if tx.Out[0].Amount.Nano().Cmp(tlb.MustFromTON("1.99").Nano()) < 0 {
		t.Fatalf("owner gets %s of 2 TON", tx.Out[0].Amount)
	}
	// Run after valid_until, the same file is refused.
	c2, _ := tonemu.New(1_780_000_601, 1_000_000)
	if err := c2.Fund(wa, tlb.MustFromTON("2")); err != nil {
		t.Fatal(err)
	}
	if tx, err := c2.Execute(wa, nil, msg, 0); err != nil || tx.Accepted {
		t.Fatalf("expired withdrawal: accepted %v, %v", tx != nil && tx.Accepted, err)
	}
}

func cliPayoutKeysJSON(secret string) (payoutKeys, string, error) {
	var out, errb bytes.Buffer
	var k payoutKeys
	if err := payoutKeysCmd(context.Background(), []string{"--secret", secret, "--json"}, &out, &errb); err != nil {
		return k, errb.String(), err
	}
	return k, errb.String(), json.Unmarshal(out.Bytes(), &k)
}

func TestPayoutWithdrawText(t *testing.T) {
	dir := t.TempDir()
	secret := writeWithdrawSecret(t, dir)
	boc := filepath.Join(dir, "w.boc")
	out, errOut, err := withdrawCLI("--secret", secret, "--owner", withdrawOwnerRaw, "--network", "testnet", "--seqno", "4", "--valid-for", "90s", "--now", withdrawNow, "--out", boc)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	for _, want := range []string{"network       testnet\n", "gas wallet    0Q", "owner         0Q", "seqno         4\n",
		"valid_until   1780000090 (2026-05-28T20:28:10Z)", "sendfile " + boc} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if st, err := os.Stat(boc); err != nil || st.Size() == 0 {
		t.Fatalf("BOC file: %v %v", st, err)
	}
	// Without --now the clock decides valid_until.
	if _, _, err := withdrawCLI("--secret", secret, "--owner", withdrawOwnerEQ, "--seqno", "1", "--out", boc, "--json"); err != nil {
		t.Fatal(err)
	}
}

func TestPayoutWithdrawErrors(t *testing.T) {
	dir := t.TempDir()
	secret := writeWithdrawSecret(t, dir)
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("zz"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "w.boc")
	base := func(over ...string) []string {
		args := map[string]string{"--secret": secret, "--owner": withdrawOwnerEQ, "--seqno": "1", "--now": withdrawNow, "--out": out}
		for i := 0; i+1 < len(over); i += 2 {
			args[over[i]] = over[i+1]
		}
		var a []string
		for _, k := range []string{"--secret", "--owner", "--seqno", "--now", "--out", "--network", "--valid-for"} {
			if v, ok := args[k]; ok && v != "-" {
				a = append(a, k, v)
			}
		}
		return a
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no secret", base("--secret", "-"), "--secret FILE is required"},
		{"no owner", base("--owner", "-"), "--owner ADDR is required"},
		{"no seqno", base("--seqno", "-"), "--seqno N (the gas wallet's current seqno"},
		{"no out", base("--out", "-"), "--out FILE.boc is required"},
		{"extra argument", append(base(), "now"), `unexpected argument "now"`},
		{"unknown flag", append(base(), "--amount", "1"), "flag provided but not defined: -amount"},
		{"network", base("--network", "devnet"), `ton network "devnet"`},
		{"owner typo", base("--owner", strings.Replace(withdrawOwnerEQ, "D39", "D38", 1)), "checksum mismatch"},
		{"owner other network", base("--network", "testnet"), "is a mainnet address, but the worker pays out on testnet"},
		{"owner workchain", base("--owner", "7:"+withdrawOwnerRaw[2:]), "workchain 7"},
		{"owner is the gas wallet", base("--owner", "0:3e1b608b6fd66893dab9e8be8f579ed37157eccfb3015a6c8705ff170be98b74"), "is the gas wallet itself"},
		{"seqno negative", base("--seqno", "-1"), `--seqno "-1": want a wallet seqno`},
		{"seqno too big", base("--seqno", "4294967296"), `--seqno "4294967296"`},
		{"seqno not a number", base("--seqno", "one"), `--seqno "one"`},
		{"valid-for zero", base("--valid-for", "0s"), "--valid-for 0s: want more than 0"},
		{"valid-for too long", base("--valid-for", "25h"), "at most 24h0m0s"},
		{"valid-for fraction", base("--valid-for", "1500ms"), "want whole seconds"},
		{"valid-for garbage", base("--valid-for", "soon"), `invalid value "soon" for flag -valid-for`},
		{"now negative", base("--now", "-5"), "--now -5: want Unix seconds"},
		{"now past 2106", base("--now", "4294967000"), "does not fit the wallet's 32-bit time"},
		{"secret missing", base("--secret", filepath.Join(dir, "absent")), "no such file"},
		{"secret malformed", base("--secret", bad), "want 64 lowercase hex characters"},
		{"out directory missing", base("--out", filepath.Join(dir, "no", "w.boc")), "--out: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := withdrawCLI(tc.args...)
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			if err == nil || stdout != "" || !strings.Contains(msg+stderr, tc.want) {
				t.Fatalf("%v: err %v, stdout %q, stderr %q; want %q", tc.args, err, stdout, stderr, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatalf("%s: wrote %s", tc.name, out)
			}
		})
	}
}
