package payout_test

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/measure/golden"
)

// TestSummary follows one settlement through the emulated chain and checks
// what the owner would see at each point, then the text and metrics forms.
func TestSummary(t *testing.T) {
	e := newEnv(t, "1", defaultPolicy())
	sum := func() payout.Summary { return payout.Summarize(e.ledger.State()) }
	if s := sum(); s.Earned != "0" || s.Settled != "0" || s.Pending != "0" || s.Open != nil {
		t.Fatalf("empty ledger: %+v", s)
	}
	e.pay("1.5")
	if s := sum(); s.Earned != "1500000000" || s.Pending != "1500000000" || s.ProxySeqno != 1 {
		t.Fatalf("after a payment: %+v", s)
	}
	e.step("sent")
	s := sum()
	if s.Open == nil || s.Open.Status != payout.Sent || s.InFlight != "1500000000" || s.Pending != "0" {
		t.Fatalf("in flight: %+v", s)
	}
	e.tick(5)
	e.step("confirmed")
	rs := newSigner(t, e.f, e.ledger)
	for i := 1; i <= 3; i++ {
		if _, err := rs.Sign(usage(i)); err != nil {
			t.Fatal(err)
		}
	}
	s = sum()
	if s.Receipts != 3 || s.Claimed != "2100" {
		t.Fatalf("receipts: %d, claimed %s", s.Receipts, s.Claimed)
	}
	if s.Settled != "1500000000" || s.InFlight != "0" || s.Open != nil || s.LastTx == "" || s.Intents[payout.Confirmed] != 1 || s.LastSettled == 0 {
		t.Fatalf("settled: %+v", s)
	}
	var text, metrics bytes.Buffer
	if err := s.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteMetrics(&metrics); err != nil {
		t.Fatal(err)
	}
	// Addresses, hashes and chain times differ per run: mask them.
	mask := regexp.MustCompile(`0:[0-9a-f]{64}|[0-9a-f]{64}|chain time \d+|timestamp_seconds \d+`)
	golden.Check(t, "summary.golden", mask.ReplaceAll(append(text.Bytes(), metrics.Bytes()...), []byte("X")))
}
