package payout_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

// TestSummary follows one settlement through the emulated chain and checks
// what the owner would see at each point; every summary is valid in the
// published format (payment.Summary.Validate).
func TestSummary(t *testing.T) {
	e := newEnv(t, "1", defaultPolicy())
	sum := func() payment.Summary {
		t.Helper()
		s := e.ledger.Summary()
		if err := s.Validate(); err != nil {
			t.Fatalf("summary %+v: %v", s, err)
		}
		return s
	}
	if s := sum(); s.Earned != "0" || s.Settled != "0" || s.Pending != "0" || s.Open != nil {
		t.Fatalf("empty ledger: %+v", s)
	}
	e.pay("1.5")
	if s := sum(); s.Earned != "1500000000" || s.Pending != "1500000000" || s.ProxySeqno != 1 {
		t.Fatalf("after a payment: %+v", s)
	}
	e.step("sent")
	s := sum()
	if s.Open == nil || s.Open.Status != string(payout.Sent) || s.InFlight != "1500000000" || s.Pending != "0" || s.Intents["sent"] != 1 {
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
	if s.Settled != "1500000000" || s.InFlight != "0" || s.Open != nil || len(s.LastTx) != 64 || s.Intents["confirmed"] != 1 || s.LastSettled == 0 || s.LedgerError != "" {
		t.Fatalf("settled: %+v", s)
	}
	// Compaction folds the confirmed intent: the summary stays the same,
	// in memory and after a restart.
	if err := e.ledger.Compact(); err != nil {
		t.Fatal(err)
	}
	if st := e.ledger.State(); len(st.Intents) != 0 || st.Finished[payout.Confirmed] != 1 {
		t.Fatalf("after compaction: %d intents, finished %v", len(st.Intents), st.Finished)
	}
	e.open()
	if again := sum(); !sameSummary(s, again) {
		t.Fatalf("summary changed across compaction:\n%+v\n%+v", s, again)
	}
}

func sameSummary(a, b payment.Summary) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestSummaryShowsLedgerError: a compaction that fails (here the snapshot
// would exceed the journal's record limit: a refusal reason of 600 KB is
// held both by the failed intent and by the pause it caused) leaves the
// ledger working and shows in the summary as ledger_error, until a
// compaction succeeds again.
func TestSummaryShowsLedgerError(t *testing.T) {
	e := newEnv(t, "1", defaultPolicy())
	e.pay("2")
	if err := e.ledger.SetCompactEvery(4); err != nil {
		t.Fatal(err)
	}
	// A commit planned by hand, then refused by the proxy at length.
	ch := e.ledger.State().Channel.Address
	in := payout.Intent{ID: payout.IntentID(ch, ton("2")), Status: payout.Planned, Attempt: 1, Target: ton("2").String(), Amount: ton("2").String(),
		SeqnoA: 1, SentA: ton("2").String(), SeqnoB: 1, WithdrawA: "0", SigB: strings.Repeat("ab", 64), At: 1}
	if err := e.ledger.Record(in); err != nil {
		t.Fatal(err)
	}
	in.Status, in.Reason = payout.Failed, strings.Repeat("proxy said no. ", 40_000)
	if err := e.ledger.Record(in); err != nil { // the 4th record: compaction fails
		t.Fatal(err)
	}
	s := e.ledger.Summary()
	if err := e.ledger.CompactError(); err == nil || !strings.Contains(s.LedgerError, "automatic compaction") || !strings.Contains(s.LedgerError, "exceeds") {
		t.Fatalf("compaction error %v, summary ledger_error %q", err, s.LedgerError)
	}
	if err := s.Validate(); err != nil || len(s.LedgerError) > payment.MaxSummaryText || len(s.Paused) > payment.MaxSummaryText || s.Intents["failed"] != 1 {
		t.Fatalf("summary with a ledger error: %v", err)
	}
	var text, metrics bytes.Buffer
	s.WriteText(&text)
	s.WriteMetrics(&metrics)
	if !strings.Contains(text.String(), "\nLEDGER ERROR  ledger ") || !strings.Contains(metrics.String(), "\nchrysalis_payout_ledger_error 1\n") {
		t.Fatalf("text:\n%s\nmetrics:\n%s", text.String(), metrics.String())
	}
	// The ledger keeps recording; once the operator resumes (the pause
	// and its copy of the reason go) the retried compaction succeeds, and
	// a later settlement confirmed past the failed intent's target folds
	// that intent too.
	if err := e.ledger.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.CompactError(); err != nil {
		t.Fatalf("compaction still failing: %v", err)
	}
	e.pay("0.5")
	e.step("sent")
	e.tick(5)
	e.step("confirmed")
	if err := e.ledger.Compact(); err != nil {
		t.Fatal(err)
	}
	if s := e.ledger.Summary(); s.LedgerError != "" || s.Settled != ton("2.5").String() || s.Intents["failed"] != 1 || s.Intents["confirmed"] != 1 {
		t.Fatalf("after recovery: %+v", s)
	}
	if st := e.ledger.State(); len(st.Intents) != 0 || e.ledger.Records() != 1 {
		t.Fatalf("after recovery: %d intents, %d records", len(st.Intents), e.ledger.Records())
	}
}
