package payout_test

import (
	"context"
	"math/big"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/agent/payout/journal"
	"github.com/chrysalis-cc/chrysalis/agent/payout/payouttest"
	"github.com/chrysalis-cc/chrysalis/measure/golden"
	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
	"github.com/xssnick/tonutils-go/ton/wallet"
)

var ton = payouttest.TON

type env struct {
	t      *testing.T
	dir    string
	f      *payouttest.Fixture
	chain  *payouttest.Chain
	proxy  *payouttest.Proxy
	ledger *payout.Ledger
	s      *payout.Settler
	policy payout.Policy
}

func defaultPolicy() payout.Policy {
	return payout.Policy{Threshold: ton("1"), Interval: 3600, Attach: ton("0.05"), Reserve: ton("0.05"), TTL: 120, Skew: 15}
}

func newEnv(t *testing.T, gas string, p payout.Policy) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), policy: p}
	var err error
	if e.f, err = payouttest.NewFixture(); err != nil {
		t.Fatal(err)
	}
	if e.chain, err = payouttest.Open(e.dir, 1_780_000_000); err != nil {
		t.Fatal(err)
	}
	if err := e.f.Deploy(e.chain, ton("100"), ton(gas)); err != nil {
		t.Fatal(err)
	}
	e.proxy = payouttest.NewProxy(e.f)
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	var err error
	if e.ledger != nil {
		e.ledger.Close()
	}
	if e.ledger, err = payout.OpenLedger(filepath.Join(e.dir, "ledger.jsonl"), nil); err != nil {
		e.t.Fatal(err)
	}
	e.s = e.settler(e.proxy)
}

// settler is a settler of the fixture's channel on e's ledger and chain,
// asking co for the proxy's co-signatures.
func (e *env) settler(co payout.CoSigner) *payout.Settler {
	e.t.Helper()
	kb, _ := payout.NewSecretKey(e.f.KeyB.Seed())
	kw, _ := payout.NewSecretKey(e.f.KeyWallet.Seed())
	s, err := payout.NewSettler(payout.Config{
		Ledger: e.ledger, Chain: e.chain, CoSigner: co, Channel: e.f.Config,
		ChannelKey: kb, WalletKey: kw, NetworkGlobalID: wallet.MainnetGlobalID, Policy: e.policy,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) pay(amount string) {
	e.t.Helper()
	ps, err := e.proxy.Pay(ton(amount))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.ledger.Accept(ps, 0); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) step(want string) payout.Report {
	e.t.Helper()
	r, err := e.s.Step(context.Background())
	if err != nil {
		e.t.Fatalf("step: %v", err)
	}
	if r.Action != want {
		e.t.Fatalf("step: %s (%s), want %s", r.Action, r.Detail, want)
	}
	return r
}

func (e *env) tick(dt uint32) {
	e.t.Helper()
	if err := e.chain.Tick(dt); err != nil {
		e.t.Fatal(err)
	}
}

// check asserts the money invariants: the owner received one payment per
// confirmed intent, each the intent's amount less a forwarding fee below
// 0.001 TON; the channel's withdrawB equals the ledger's confirmed total,
// which never exceeds what was earned.
func (e *env) check() {
	e.t.Helper()
	st := e.ledger.State()
	ch, err := e.chain.Channel(context.Background(), e.f.ChannelAddr)
	if err != nil {
		e.t.Fatal(err)
	}
	if ch.Balance.WithdrawB.Cmp(st.ConfirmedTotal()) != 0 {
		e.t.Fatalf("channel withdrawB %s, ledger confirmed %s", ch.Balance.WithdrawB, st.ConfirmedTotal())
	}
	if st.ConfirmedTotal().Cmp(st.Earned()) > 0 {
		e.t.Fatalf("confirmed %s exceeds earned %s", st.ConfirmedTotal(), st.Earned())
	}
	var confirmed []*payout.Intent
	for _, in := range st.SortedIntents() {
		if in.Status == payout.Confirmed {
			confirmed = append(confirmed, in)
		}
	}
	got := e.chain.Received(e.f.Owner)
	if len(got) != len(confirmed) {
		e.t.Fatalf("owner received %d payments, ledger confirmed %d intents", len(got), len(confirmed))
	}
	for i, in := range confirmed {
		amt, _ := new(big.Int).SetString(in.Amount, 10)
		fee := new(big.Int).Sub(amt, got[i])
		if fee.Sign() < 0 || fee.Cmp(ton("0.001")) > 0 {
			e.t.Fatalf("payment %d: owner received %s for an intent of %s", i, got[i], amt)
		}
	}
}

func TestSettlerPaysOwnerByThresholdAndInterval(t *testing.T) {
	e := newEnv(t, "1", defaultPolicy())
	e.step("idle")
	e.pay("0.4")
	e.step("waiting") // 0.4 TON < 1 TON threshold, interval not elapsed
	e.pay("0.7")      // cumulative 1.1 TON
	r := e.step("sent")
	st := e.ledger.State()
	in := st.Intents[r.Intent]
	if in.Status != payout.Sent || in.WalletSeqno != 0 || in.Target != ton("1.1").String() || in.Amount != ton("1.1").String() {
		t.Fatalf("intent after send: %+v", in)
	}
	if st.Due().Sign() != 0 || st.InFlight().Cmp(ton("1.1")) != 0 {
		t.Fatalf("due %s in flight %s", st.Due(), st.InFlight())
	}
	e.pay("0.2")
	if d := e.ledger.State().Due(); d.Cmp(ton("0.2")) != 0 {
		t.Fatalf("due %s with 1.1 in flight of 1.3 earned", d)
	}
	e.step("resent") // still queued, valid_until ahead: the same BOC again
	if e.chain.Queued() != 2 {
		t.Fatalf("%d queued externals", e.chain.Queued())
	}
	e.tick(5) // the first copy runs (state init + commit), the second is refused (seqno used)
	if e.chain.Dropped() != 1 {
		t.Fatalf("dropped %d externals, want the duplicate", e.chain.Dropped())
	}
	e.step("confirmed")
	e.check()
	e.step("waiting") // 0.2 TON due, below threshold, interval not over
	if err := e.chain.Advance(3600); err != nil {
		t.Fatal(err)
	}
	e.step("sent") // interval elapsed: settle the 0.2 TON
	e.tick(5)
	e.step("confirmed")
	e.check()
	st = e.ledger.State()
	if st.ConfirmedTotal().Cmp(ton("1.3")) != 0 || st.Due().Sign() != 0 {
		t.Fatalf("confirmed %s due %s", st.ConfirmedTotal(), st.Due())
	}
	ws, _ := e.chain.Wallet(context.Background(), e.f.Wallet.Address())
	if !ws.Active || ws.Seqno != 2 {
		t.Fatalf("wallet %+v, want active with seqno 2", ws)
	}
	t.Logf("gas wallet balance after two settlements: %s nanoTON (from 1 TON)", ws.Balance)
	// A restart reproduces the same state from the journal.
	e.open()
	if got := e.ledger.State(); got.ConfirmedTotal().Cmp(ton("1.3")) != 0 || got.LastSeqnoB != 2 {
		t.Fatalf("after reopen: confirmed %s last seqno B %d", got.ConfirmedTotal(), got.LastSeqnoB)
	}
	e.step("idle")
	// The journal, as "kind data" lines, is a golden file and the seed of
	// FuzzLedgerReplay.
	j, recs, _, err := journal.Open(filepath.Join(e.dir, "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	var b []byte
	for _, r := range recs {
		b = append(append(append(append(b, r.Kind...), ' '), r.Data...), '\n')
	}
	golden.Check(t, "ledger-replay.golden", b)
}

func TestSettlerExpiresAndReplans(t *testing.T) {
	e := newEnv(t, "1", defaultPolicy())
	e.pay("2")
	r := e.step("sent")
	if err := e.chain.DropQueue(); err != nil { // the broadcast was lost
		t.Fatal(err)
	}
	if err := e.chain.Advance(100); err != nil {
		t.Fatal(err)
	}
	e.step("resent") // before valid_until: the same bytes again
	first := e.ledger.State().Intents[r.Intent]
	if err := e.chain.DropQueue(); err != nil {
		t.Fatal(err)
	}
	if err := e.chain.Advance(40); err != nil { // valid_until + skew passed
		t.Fatal(err)
	}
	e.step("expired")
	// Re-planned under the same id (same target), a fresh B seqno, the
	// same wallet seqno (the old external can never run).
	r2 := e.step("sent")
	in := e.ledger.State().Intents[r2.Intent]
	if r2.Intent != r.Intent || in.Attempt != 2 || in.SeqnoB != first.SeqnoB+1 || in.WalletSeqno != first.WalletSeqno || in.ExtBOC == first.ExtBOC {
		t.Fatalf("re-plan: %+v after %+v", in, first)
	}
	e.tick(5)
	e.step("confirmed")
	e.check()
}

func TestSettlerUnderfunded(t *testing.T) {
	e := newEnv(t, "0.08", defaultPolicy()) // below attach 0.05 + reserve 0.05
	e.pay("5")
	r := e.step("underfunded")
	if !strings.Contains(r.Detail, "ACTION REQUIRED") || !strings.Contains(r.Detail, e.f.Wallet.Address().String()) {
		t.Fatalf("report %q", r.Detail)
	}
	if len(e.ledger.State().Intents) != 0 {
		t.Fatal("an intent was recorded without funds to send it")
	}
	if err := e.chain.Deliver(payouttest.Addr(0xFA), e.f.Wallet.Address(), ton("1"), false, nil, nil); err != nil {
		t.Fatal(err)
	}
	e.step("sent")
	e.tick(5)
	e.step("confirmed")
	e.check()
}

// TestSettlerBounce: while our commit is in flight, a commit with higher
// seqnos that withdraws nothing lands first (both keys: a second worker
// instance, say); the channel refuses ours (seqno regress) and the value
// bounces back. The intent is marked bounced with the exit code, the
// settler pauses, and nothing was paid.
func TestSettlerBounce(t *testing.T) {
	e := newEnv(t, "1", defaultPolicy())
	e.pay("2")
	r := e.step("sent")
	c := channel.Commit{ID: e.f.Config.ID, SentA: ton("2"), SentB: new(big.Int), SeqnoA: 5, SeqnoB: 5,
		WithdrawA: new(big.Int), WithdrawB: new(big.Int)}
	sa, _ := channel.SignBody(e.f.KeyA, c)
	sb, _ := channel.SignBody(e.f.KeyB, c)
	body, err := channel.SignedCommit{Commit: c, SigA: sa, SigB: sb}.Body()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.chain.Deliver(e.f.ProxyWallet, e.f.ChannelAddr, ton("0.05"), true, body, nil); err != nil {
		t.Fatal(err)
	}
	e.tick(5)
	b := e.step("bounced")
	in := e.ledger.State().Intents[r.Intent]
	if in.Status != payout.Bounced || in.ExitCode != channel.ExitSeqnoRegress {
		t.Fatalf("intent %+v", in)
	}
	t.Logf("bounce: %s", b.Detail)
	e.step("paused")
	e.check()
	if len(e.chain.Received(e.f.Owner)) != 0 {
		t.Fatal("owner paid despite the bounce")
	}
}

func TestSettlerProxyRefuses(t *testing.T) {
	e := newEnv(t, "1", defaultPolicy())
	e.pay("2")
	e.proxy.Refuse = true
	e.step("failed")
	e.step("paused")
	if err := e.ledger.Resume(); err != nil {
		t.Fatal(err)
	}
	e.proxy.Refuse = false
	e.step("sent")
	e.tick(5)
	e.step("confirmed")
	e.check()
}
