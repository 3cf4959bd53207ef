package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/agent/payout/payouttest"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

func TestPayoutStatus(t *testing.T) {
	f, err := payouttest.NewFixture()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.jsonl")
	l, err := payout.OpenLedger(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Bind(f.Config, "0:"+strings.Repeat("ab", 32)); err != nil {
		t.Fatal(err)
	}
	p := payouttest.NewProxy(f)
	for _, amt := range []string{"1", "0.25"} {
		ps, err := p.Pay(payouttest.TON(amt))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Accept(ps, 1); err != nil {
			t.Fatal(err)
		}
	}
	kb, err := payout.NewSecretKey(f.KeyB.Seed())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := payout.NewReceiptSigner(l, kb, payment.RawAddress(f.ChannelAddr))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("request"))
	if _, err := rs.Sign(payment.Receipt{RequestID: hex.EncodeToString(h[:]), Model: "m", TokensIn: 1000, TokensOut: 1000,
		PriceInPer1M: "1000000", PriceOutPer1M: "2000000", Amount: "3000", IssuedAt: 1_780_000_000}); err != nil {
		t.Fatal(err)
	}
	// The agent keeps the ledger open; status only reads it.
	defer l.Close()
	before, _ := os.ReadFile(path)

	code, out, errOut := cli("payout", "status", "--ledger", path)
	if code != 0 || !strings.Contains(out, "earned        1.250000000 TON (proxy state seqno 2)") || !strings.Contains(out, "pending       1.250000000 TON") ||
		!strings.Contains(out, "receipts      1 signed, 0.000003000 TON claimed") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli("payout", "status", "--ledger", path, "--json")
	var s payout.Summary
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil || s.Earned != "1250000000" || s.Settled != "0" || s.ProxySeqno != 2 || s.Receipts != 1 || s.Claimed != "3000" {
		t.Fatalf("--json: exit %d %s", code, out)
	}
	code, out, _ = cli("payout", "status", "--ledger", path, "--metrics")
	if code != 0 || !strings.Contains(out, "chrysalis_payout_pending_nanoton 1250000000\n") || !strings.Contains(out, "chrysalis_payout_receipts_total 1\n") {
		t.Fatalf("--metrics: exit %d %s", code, out)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("status modified the ledger")
	}

	// A torn tail (the agent crashed mid-append of the receipt) is
	// skipped, not cut.
	torn := filepath.Join(dir, "torn.jsonl")
	os.WriteFile(torn, before[:len(before)-9], 0o600)
	if code, out, errOut := cli("payout", "status", "--ledger", torn); code != 0 || !strings.Contains(out, "receipts      0 signed") || !strings.Contains(out, "1.250000000 TON") {
		t.Fatalf("torn: exit %d %s %s", code, out, errOut)
	}
	if b, _ := os.ReadFile(torn); len(b) != len(before)-9 {
		t.Fatal("status cut the torn tail")
	}
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"payout", "status"}, "--ledger FILE is required"},
		{[]string{"payout", "status", "--ledger", filepath.Join(dir, "none")}, "no such file"},
		{[]string{"payout", "status", "--ledger", path, "--json", "--metrics"}, "exclude each other"},
		{[]string{"payout", "bogus"}, "status"},
	} {
		if code, _, errOut := cli(tc.args...); code == 0 || !strings.Contains(errOut, tc.err) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errOut, tc.err)
		}
	}
}
