package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/agent/payout/payouttest"
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
	// The agent keeps the ledger open; status only reads it.
	defer l.Close()
	before, _ := os.ReadFile(path)

	code, out, errOut := cli("payout", "status", "--ledger", path)
	if code != 0 || !strings.Contains(out, "earned        1.250000000 TON (proxy state seqno 2)") || !strings.Contains(out, "pending       1.250000000 TON") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli("payout", "status", "--ledger", path, "--json")
	var s payout.Summary
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil || s.Earned != "1250000000" || s.Settled != "0" || s.ProxySeqno != 2 {
		t.Fatalf("--json: exit %d %s", code, out)
	}
	code, out, _ = cli("payout", "status", "--ledger", path, "--metrics")
	if code != 0 || !strings.Contains(out, "chrysalis_payout_pending_nanoton 1250000000\n") {
		t.Fatalf("--metrics: exit %d %s", code, out)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("status modified the ledger")
	}

	// A torn tail (the agent crashed mid-append) is skipped, not cut.
	torn := filepath.Join(dir, "torn.jsonl")
	os.WriteFile(torn, before[:len(before)-9], 0o600)
	if code, out, errOut := cli("payout", "status", "--ledger", torn); code != 0 || !strings.Contains(out, "1.000000000 TON") {
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
