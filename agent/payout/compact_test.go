package payout_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/agent/payout/journal"
	"github.com/chrysalis-cc/chrysalis/agent/payout/payouttest"
)

// settlementRun drives a ledger through many settlements record by record
// (the records the Settler would write, with externals of realistic size)
// and keeps every record it appends, so the whole history can be replayed
// without compaction.
type settlementRun struct {
	t      *testing.T
	l      *payout.Ledger
	proxy  *payouttest.Proxy
	ch     string
	recs   []journal.Record
	seqB   uint64
	now    uint32
	ext    string
	lastTx string
}

func (r *settlementRun) add(kind string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		r.t.Fatal(err)
	}
	r.recs = append(r.recs, journal.Record{Seq: uint64(len(r.recs) + 1), Kind: kind, Data: b})
}

func (r *settlementRun) pay(nano int64) {
	ps, err := r.proxy.Pay(big.NewInt(nano))
	if err != nil {
		r.t.Fatal(err)
	}
	s, err := r.l.Accept(ps, int64(r.now))
	if err != nil {
		r.t.Fatal(err)
	}
	r.add("accept", payout.Accepted{Seqno: s.State.Data.Seqno, Sent: s.State.Data.Sent.String(), State: ps.State, At: int64(r.now)})
}

func (r *settlementRun) record(in payout.Intent) {
	r.t.Helper()
	if err := r.l.Record(in); err != nil {
		r.t.Fatalf("intent %s %s: %v", in.ID[:8], in.Status, err)
	}
	r.add("intent", in)
}

// plan plans the settlement of everything earned (attempt: as the ledger
// says) and returns it.
func (r *settlementRun) plan() payout.Intent {
	st := r.l.State()
	target := st.Earned()
	id := payout.IntentID(r.ch, target)
	attempt := 1
	if prev := st.Intents[id]; prev != nil {
		attempt = prev.Attempt + 1
	}
	r.seqB++
	r.now++
	in := payout.Intent{ID: id, Status: payout.Planned, Attempt: attempt, Target: target.String(),
		Amount: new(big.Int).Sub(target, st.ConfirmedTotal()).String(), SeqnoA: st.Accepted.Seqno, SentA: target.String(),
		SeqnoB: r.seqB, WithdrawA: "0", SigB: strings.Repeat("b1", 64), At: r.now}
	r.record(in)
	return in
}

// send signs and broadcasts a planned intent.
func (r *settlementRun) send(in payout.Intent) payout.Intent {
	in.Status, in.SigA, in.WalletSeqno, in.ValidUntil = payout.Signed, strings.Repeat("a1", 64), uint32(r.seqB), r.now+120
	in.ExtBOC, in.ExtHash, in.BodyHash = r.ext, hexHash("ext", r.seqB), hexHash("body", r.seqB)
	r.record(in)
	in.Status = payout.Sent
	r.record(in)
	return in
}

func (r *settlementRun) finish(in payout.Intent, st payout.Status) {
	r.now += 10
	in.Status, in.At = st, r.now
	switch st {
	case payout.Confirmed:
		in.WalletTx, in.TxHash, in.TxLT = hexHash("wallet-tx", r.seqB), hexHash("tx", r.seqB), uint64(r.seqB)
		r.lastTx = in.TxHash
	case payout.Bounced:
		in.TxHash, in.ExitCode, in.Reason = hexHash("tx", r.seqB), 40, "channel refused the commit with exit code 40"
	default:
		in.Reason = "wallet seqno unused past valid_until"
	}
	r.record(in)
}

func (r *settlementRun) resume() {
	if err := r.l.Resume(); err != nil {
		r.t.Fatal(err)
	}
	r.add("resume", struct{}{})
}

func hexHash(label string, n uint64) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s-%d", label, n))
	return hex.EncodeToString(h[:])
}

// TestCompactionScales runs 5000 settlements (with expiries, proxy
// refusals and bounces among them, 26,000 records) through a ledger that
// compacts itself every 64 records, and checks: the snapshot stays small
// where a snapshot of every intent would exceed the journal's record
// limit; the reopened ledger's Summary equals the one of replaying every
// record without compaction, and the counts the run made; and any record
// that could follow is accepted or refused alike by the compacted and the
// full history, so no deterministic intent id is reused: a folded
// (finished) id can never be planned again, the expired intent that may
// still be planned keeps its attempt count.
func TestCompactionScales(t *testing.T) {
	if testing.Short() {
		t.Skip("26,000 fsynced records")
	}
	f, err := payouttest.NewFixture()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l := boundLedger(t, f, path)
	if err := l.SetCompactEvery(64); err != nil {
		t.Fatal(err)
	}
	ext := make([]byte, 1200) // a wallet external is about 1.2 KB
	for i := range ext {
		ext[i] = byte(i * 7)
	}
	r := &settlementRun{t: t, l: l, proxy: payouttest.NewProxy(f), ch: l.State().Channel.Address, now: 1_780_000_000,
		ext: base64.StdEncoding.EncodeToString(ext)}
	r.add("channel", *l.State().Channel)
	const settlements = 5000
	want := map[string]int{}
	for i := 1; i <= settlements; i++ {
		r.pay(1_000_000 + int64(i))
		switch {
		case i%50 == 0: // the proxy refuses; the operator resumes; more
			// is earned before the next plan, so this id stays failed
			in := r.plan()
			in.Status, in.Reason = payout.Failed, "proxy refused"
			r.record(in)
			r.resume()
			r.pay(3)
			want["failed"]++
		case i%97 == 0: // the channel bounces; the operator resumes; the
			// same id is planned again (attempt 2) and confirmed
			r.finish(r.send(r.plan()), payout.Bounced)
			r.resume()
		case i%10 == 0: // expires; more is earned: a new id settles
			r.finish(r.send(r.plan()), payout.Expired)
			r.pay(2)
			want["expired"]++
		case i%15 == 0: // expires; planned again with the same id
			r.finish(r.send(r.plan()), payout.Expired)
		}
		r.finish(r.send(r.plan()), payout.Confirmed)
		want["confirmed"]++
		if err := l.CompactError(); err != nil {
			t.Fatalf("settlement %d: %v", i, err)
		}
	}
	// Left at the end: an expired intent that may be planned again, and
	// one in flight.
	r.pay(7)
	expired := r.send(r.plan())
	r.finish(expired, payout.Expired)
	r.pay(5)
	open := r.send(r.plan())
	want["expired"]++
	want["sent"]++
	if len(r.recs) < 26_000 {
		t.Fatalf("only %d records", len(r.recs))
	}

	full, err := payout.Replay(r.recs)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(full); len(b) <= journal.MaxRecord {
		t.Fatalf("a snapshot of every intent is %d bytes: the test does not reach the record limit", len(b))
	}
	ref := payout.Summarize(full)
	if err := l.Compact(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	recs, _, err := journal.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || len(recs[0].Data) > 8<<10 {
		t.Fatalf("compacted journal: %d records, the snapshot %d bytes", len(recs), len(recs[0].Data))
	}
	l2, err := payout.OpenLedger(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	got := l2.Summary()
	if !sameSummary(got, ref) {
		t.Fatalf("compacted summary differs from the full replay:\n%+v\n%+v", got, ref)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	for k, n := range want {
		if got.Intents[k] != n {
			t.Errorf("%s intents: %d, want %d (summary %v)", k, got.Intents[k], n, got.Intents)
		}
	}
	if got.LastTx != r.lastTx || got.Open == nil || got.Open.ID != open.ID || got.ProxySeqno != full.Accepted.Seqno {
		t.Fatalf("summary: %+v", got)
	}
	st := l2.State()
	if len(st.Intents) != 2 || st.Intents[expired.ID] == nil || st.Intents[expired.ID].ExtBOC != "" || st.Intents[open.ID].ExtBOC != r.ext {
		t.Fatalf("compacted state keeps %d intents", len(st.Intents))
	}

	// Records that could follow, judged by the full history and by the
	// compacted snapshot alike. The full history is the unfolded state as
	// one snapshot record (FuzzLedgerReplay: it replays to that state).
	fb, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	unfolded := []journal.Record{{Seq: 1, Kind: "snapshot", Data: fb}}
	folded := []journal.Record{recs[0]}
	var probes []struct {
		name string
		in   payout.Intent
		ok   bool
	}
	probe := func(name string, in payout.Intent, ok bool) {
		probes = append(probes, struct {
			name string
			in   payout.Intent
			ok   bool
		}{name, in, ok})
	}
	// Close the open intent first so that plans may follow.
	gone := open
	gone.Status, gone.At, gone.Reason = payout.Expired, r.now+500, "expired"
	for _, target := range []int64{1_000_001, 1_000_002 + 1_000_001, 3_000_000_000} {
		tg := big.NewInt(target)
		id := payout.IntentID(r.ch, tg)
		for attempt := 1; attempt <= 3; attempt++ {
			in := payout.Intent{ID: id, Status: payout.Planned, Attempt: attempt, Target: tg.String(), Amount: "1", SeqnoA: 1, SentA: tg.String(),
				SeqnoB: r.seqB + 1, WithdrawA: "0", SigB: "00", At: r.now + 600}
			probe(fmt.Sprintf("plan folded target %d attempt %d", target, attempt), in, false)
		}
	}
	for _, st := range []payout.Status{payout.Sent, payout.Confirmed, payout.Expired} {
		c := payout.Intent{ID: payout.IntentID(r.ch, big.NewInt(1_000_001)), Status: st, Attempt: 1, Target: "1000001", Amount: "1000001",
			SeqnoA: 1, SentA: "1000001", WithdrawA: "0", SeqnoB: 1, SigB: strings.Repeat("b1", 64)}
		probe("folded intent to "+string(st), c, false)
	}
	replan := expired
	replan.Status, replan.Attempt, replan.SeqnoB, replan.At = payout.Planned, expired.Attempt+1, r.seqB+1, r.now+600
	replan.ExtBOC, replan.ExtHash, replan.BodyHash, replan.SigA, replan.WalletSeqno, replan.ValidUntil, replan.Reason = "", "", "", "", 0, 0, ""
	probe("plan the expired intent again", replan, true)
	stale := replan
	stale.Attempt = 1
	probe("plan the expired intent again as attempt 1", stale, false)
	oldB := replan
	oldB.SeqnoB = r.seqB
	probe("plan with a used seqno B", oldB, false)
	for _, p := range probes {
		d, _ := json.Marshal(gone)
		e, _ := json.Marshal(p.in)
		tail := []journal.Record{{Kind: "intent", Data: d}, {Kind: "intent", Data: e}}
		_, errFull := payout.Replay(append(append([]journal.Record(nil), unfolded...), tail...))
		_, errSnap := payout.Replay(append(append([]journal.Record(nil), folded...), tail...))
		if (errFull == nil) != p.ok || (errSnap == nil) != p.ok {
			t.Errorf("%s: full history %v, snapshot %v; want accepted %v", p.name, errFull, errSnap, p.ok)
		}
	}
}
