package payout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/agent/payout/journal"
	"github.com/chrysalis-cc/chrysalis/agent/payout/payouttest"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"
)

func TestLedgerAcceptIsDurableAndMonotonic(t *testing.T) {
	e := newEnv(t, "1", defaultPolicy())
	e.pay("1")
	e.pay("0.5")
	for _, tc := range []struct {
		seq  uint64
		sent string
		want string
	}{{2, "2", "does not exceed"}, {3, "1", "below the accepted"}} {
		ps, _ := e.proxy.State(tc.seq, ton(tc.sent))
		if _, err := e.ledger.Accept(ps, 0); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("seqno %d sent %s: %v", tc.seq, tc.sent, err)
		}
	}
	// Reopen: the accepted state survived (Accept fsyncs before returning).
	e.open()
	if st := e.ledger.State(); st.Accepted.Seqno != 2 || st.Earned().Cmp(ton("1.5")) != 0 {
		t.Fatalf("after reopen: %+v", st.Accepted)
	}
	// Compaction keeps the state.
	if err := e.ledger.Compact(); err != nil {
		t.Fatal(err)
	}
	e.open()
	if st := e.ledger.State(); st.Accepted.Seqno != 2 || e.ledger.Records() != 1 {
		t.Fatalf("after compaction: %+v, %d records", st.Accepted, e.ledger.Records())
	}
}

func TestLedgerRefusesBadTransitions(t *testing.T) {
	e := newEnv(t, "1", defaultPolicy())
	e.pay("2")
	r := e.step("sent")
	in := e.ledger.State().Intents[r.Intent]
	for _, tc := range []struct {
		name string
		mod  func(*payout.Intent)
		want string
	}{
		{"back to planned", func(i *payout.Intent) { i.Status = payout.Planned }, "sent → planned is not a transition"},
		{"confirm beyond earned", func(i *payout.Intent) { i.Status = payout.Confirmed; i.Target = ton("3").String() }, "id does not derive"},
		{"re-sign a different external", func(i *payout.Intent) { i.Status = payout.Sent; i.ExtBOC = "AAAA" }, "changes the signed external"},
		{"change the commit", func(i *payout.Intent) { i.Status = payout.Confirmed; i.SeqnoB++ }, "changes the planned commit"},
		{"unknown status", func(i *payout.Intent) { i.Status = "lost" }, "unknown status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := *in
			tc.mod(&x)
			if err := e.ledger.Record(x); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	// A second intent while one is in flight is refused.
	other := *in
	other.Target = ton("1").String()
	other.ID = payout.IntentID(e.ledger.State().Channel.Address, ton("1"))
	other.Status, other.Attempt, other.SeqnoB = payout.Planned, 1, in.SeqnoB+1
	if err := e.ledger.Record(other); err == nil || !strings.Contains(err.Error(), "one in flight") {
		t.Fatalf("second intent: %v", err)
	}
}

func TestLedgerTornTailAndDamage(t *testing.T) {
	e := newEnv(t, "1", defaultPolicy())
	e.pay("1")
	e.pay("1")
	e.ledger.Close()
	p := filepath.Join(e.dir, "ledger.jsonl")
	b, _ := os.ReadFile(p)
	// A torn last record is cut: the state before it comes back.
	if err := os.WriteFile(p, b[:len(b)-7], 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := payout.OpenLedger(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := l.State(); st.Accepted.Seqno != 1 {
		t.Fatalf("after torn tail: seqno %d", st.Accepted.Seqno)
	}
	l.Close()
	// Damage in the middle is refused.
	b, _ = os.ReadFile(p)
	d := bytes.Replace(b, []byte(`"seqno":1`), []byte(`"seqno":9`), 1)
	if err := os.WriteFile(p, d, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := payout.OpenLedger(p, nil); err == nil {
		t.Fatal("damaged ledger opened")
	}
	e.ledger = nil
}

func TestV5R1RefusesModeWithoutIgnoreErrors(t *testing.T) {
	// Wallet v5r1 throws 137 for an external-initiated send without +2,
	// after it has consumed the seqno: the reason SendMode includes it.
	f, _ := payouttest.NewFixture()
	c, err := payouttest.Open(t.TempDir(), 1_780_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Deliver(payouttest.Addr(0xFA), f.Wallet.Address(), ton("1"), false, nil, nil); err != nil {
		t.Fatal(err)
	}
	for i, mode := range []uint8{wallet.PayGasSeparately, payout.SendMode} {
		msg := &wallet.Message{Mode: mode, InternalMessage: &tlb.InternalMessage{IHRDisabled: true, DstAddr: f.Owner, Amount: tlb.FromNanoTON(ton("0.1"))}}
		ext, err := f.Wallet.External(f.KeyWallet, uint32(i), 1_780_000_100, i == 0, []*wallet.Message{msg})
		if err != nil {
			t.Fatal(err)
		}
		ec, _ := tlb.ToCell(ext)
		if err := c.SendExternal(context.Background(), ec.ToBOC()); err != nil {
			t.Fatal(err)
		}
		if err := c.Tick(1); err != nil {
			t.Fatal(err)
		}
		ws, _ := c.Wallet(context.Background(), f.Wallet.Address())
		if ws.Seqno != uint32(i+1) {
			t.Fatalf("mode %d: seqno %d", mode, ws.Seqno)
		}
		paid := len(c.Received(f.Owner))
		if mode == wallet.PayGasSeparately && paid != 0 || mode == payout.SendMode && paid != 1 {
			t.Fatalf("mode %d: %d payments", mode, paid)
		}
	}
}

func TestSecretKeyRedacts(t *testing.T) {
	seed := bytes.Repeat([]byte{0x5e}, 32)
	k, err := payout.NewSecretKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("key", "k", k)
	j, _ := json.Marshal(struct{ K *payout.SecretKey }{k})
	priv, _ := k.PrivateKey()
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), buf.String(), string(j)} {
		for _, secret := range [][]byte{seed, priv} {
			if strings.Contains(strings.ToLower(s), fmt.Sprintf("%x", secret[:8])) || !strings.Contains(s, "redacted") {
				t.Fatalf("key output leaks or is not redacted: %s", s)
			}
		}
	}
	if _, err := payout.NewSecretKey(seed[:31]); err == nil {
		t.Fatal("short seed accepted")
	}
}

// FuzzLedgerReplay reduces arbitrary record sequences: never a panic, and
// whatever replays keeps confirmed ≤ earned and at most one intent open.
func FuzzLedgerReplay(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "ledger-replay.golden"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	lines := bytes.Split(seed, []byte("\n"))
	f.Add(bytes.Join(lines[:len(lines)/2], []byte("\n")))
	rseed, err := os.ReadFile(filepath.Join("testdata", "ledger-receipts.golden"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rseed)
	// The channel, then receipts 1 and 2 (3 repeats 2's seq: refused).
	_, rline, _ := bytes.Cut(bytes.Split(rseed, []byte("\n"))[1], []byte(" "))
	var rec payout.ReceiptRecord
	if err := json.Unmarshal(rline, &rec); err != nil {
		f.Fatal(err)
	}
	mixed := append([]byte(nil), lines[0]...)
	for _, q := range []uint64{1, 2, 2} {
		rec.Seq = q
		b, _ := json.Marshal(rec)
		mixed = append(append(mixed, "\nreceipt "...), b...)
	}
	f.Add(mixed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs []journal.Record
		for i, line := range bytes.Split(data, []byte("\n")) {
			k, d, ok := bytes.Cut(line, []byte(" "))
			if !ok {
				continue
			}
			recs = append(recs, journal.Record{Seq: uint64(i + 1), Kind: string(k), Data: d})
		}
		st, err := payout.Replay(recs)
		if err != nil {
			return
		}
		if st.ConfirmedTotal().Cmp(st.Earned()) > 0 {
			t.Fatalf("confirmed %s > earned %s", st.ConfirmedTotal(), st.Earned())
		}
		open := 0
		for _, in := range st.Intents {
			if in.Status.Open() {
				open++
			}
		}
		if open > 1 {
			t.Fatalf("%d open intents", open)
		}
		if st.Receipts > 0 && st.Channel == nil {
			t.Fatalf("%d receipts without a channel", st.Receipts)
		}
		// Compaction's snapshot of any state replays to that state.
		snap, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		again, err := payout.Replay([]journal.Record{{Seq: 1, Kind: "snapshot", Data: snap}})
		if err != nil {
			t.Fatalf("snapshot of a replayed state does not replay: %v\n%s", err, snap)
		}
		if b, _ := json.Marshal(again); !bytes.Equal(b, snap) {
			t.Fatalf("snapshot round trip changed the state:\n%s\n%s", snap, b)
		}
		// So does the folded snapshot compaction writes, to the same
		// Summary.
		fsnap, err := json.Marshal(payout.Folded(st))
		if err != nil {
			t.Fatal(err)
		}
		fst, err := payout.Replay([]journal.Record{{Seq: 1, Kind: "snapshot", Data: fsnap}})
		if err != nil {
			t.Fatalf("folded snapshot does not replay: %v\n%s", err, fsnap)
		}
		a, _ := json.Marshal(payout.Summarize(st))
		b, _ := json.Marshal(payout.Summarize(fst))
		if !bytes.Equal(a, b) {
			t.Fatalf("folding changed the summary:\n%s\n%s", a, b)
		}
	})
}
