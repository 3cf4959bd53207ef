package payout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/agent/payout/journal"
	"github.com/chrysalis-cc/chrysalis/agent/payout/payouttest"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/xssnick/tonutils-go/ton/wallet"
)

const childEnv = "CHRYSALIS_PAYOUT_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(lockChildEnv); path != "" {
		os.Exit(lockChild(path))
	}
	if dir := os.Getenv(receiptChildEnv); dir != "" {
		k := os.Getenv(receiptChildEnv + "_KILL_AT")
		killAt, _ := strconv.Atoi(k)
		if err := receiptChild(dir, killAt, k); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	if dir := os.Getenv(childEnv); dir != "" {
		killAt, _ := strconv.Atoi(os.Getenv(childEnv + "_KILL_AT"))
		if err := crashChild(dir, killAt); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// world is what the parent hands the child: the proxy's issued states
// (the child's proxy co-signs only those) and the payment states to
// deliver, in order.
type world struct {
	Issued map[uint64]string      `json:"issued"`
	Inbox  []payment.PaymentState `json:"inbox"`
}

// crashChild is the payout process: it accepts the proxy's states and
// steps the settler, and SIGKILLs itself at the killAt-th durable step or
// chain call (0: never).
func crashChild(dir string, killAt int) error {
	n := 0
	hook := func(string) {
		n++
		if n == killAt {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	var w world
	b, err := os.ReadFile(filepath.Join(dir, "world.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	f, err := payouttest.NewFixture()
	if err != nil {
		return err
	}
	chain, err := payouttest.Open(dir, 0)
	if err != nil {
		return err
	}
	chain.Hook = hook
	proxy := payouttest.NewProxy(f)
	for k, v := range w.Issued {
		s, _ := new(big.Int).SetString(v, 10)
		proxy.Issued[k] = s
	}
	l, err := payout.OpenLedger(filepath.Join(dir, "ledger.jsonl"), hook)
	if err != nil {
		return err
	}
	kb, _ := payout.NewSecretKey(f.KeyB.Seed())
	kw, _ := payout.NewSecretKey(f.KeyWallet.Seed())
	s, err := payout.NewSettler(payout.Config{Ledger: l, Chain: chain, CoSigner: proxy, Channel: f.Config,
		ChannelKey: kb, WalletKey: kw, NetworkGlobalID: wallet.MainnetGlobalID, Policy: crashPolicy(), Hook: hook})
	if err != nil {
		return err
	}
	for _, ps := range w.Inbox {
		st := l.State()
		if sg, err := ps.Signed(); err == nil && st.Accepted != nil && sg.State.Data.Seqno <= st.Accepted.Seqno {
			continue // delivered before the last crash
		}
		if _, err := l.Accept(ps, 0); err != nil {
			return err
		}
	}
	for range 3 {
		if _, err := s.Step(context.Background()); err != nil {
			return err
		}
	}
	return nil
}

func crashPolicy() payout.Policy {
	return payout.Policy{Threshold: ton("1"), Interval: 600, Attach: ton("0.05"), Reserve: ton("0.05"), TTL: 120, Skew: 15}
}

// TestCrashSafety kills the payout process with SIGKILL at every step of
// its work, over many trials with payments and chain progress between
// them, and checks after every trial that nothing was paid twice and, at
// the end, that everything earned reached the owner.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level crash test")
	}
	start := time.Now()
	dir := t.TempDir()
	f, err := payouttest.NewFixture()
	if err != nil {
		t.Fatal(err)
	}
	chain, err := payouttest.Open(dir, 1_780_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Deploy(chain, ton("1000"), ton("50")); err != nil {
		t.Fatal(err)
	}
	proxy := payouttest.NewProxy(f)
	w := world{Issued: map[uint64]string{}}
	save := func() {
		for k, v := range proxy.Issued {
			w.Issued[k] = v.String()
		}
		b, _ := json.Marshal(w)
		if err := os.WriteFile(filepath.Join(dir, "world.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	kills := 0
	run := func(killAt int) {
		t.Helper()
		save()
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), childEnv+"="+dir, childEnv+"_KILL_AT="+strconv.Itoa(killAt))
		out, err := cmd.CombinedOutput()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
					kills++
					return
				}
			}
			t.Fatalf("child (kill at %d): %v\n%s", killAt, err, out)
		}
	}
	rng := rand.New(rand.NewPCG(7, 11))
	trials := 150
	if s := os.Getenv("CHRYSALIS_CRASH_TRIALS"); s != "" {
		trials, _ = strconv.Atoi(s)
	}
	for i := range trials {
		switch x := rng.IntN(10); {
		case x < 4:
			ps, err := proxy.Pay(new(big.Int).Mul(big.NewInt(int64(rng.IntN(30)+1)), ton("0.05")))
			if err != nil {
				t.Fatal(err)
			}
			w.Inbox = append(w.Inbox, ps)
		case x < 5:
			if err := chain.Advance(uint32(rng.IntN(200))); err != nil { // time passes: expiries
				t.Fatal(err)
			}
		}
		// Kill at every position in turn (1..30), or let it finish.
		run(i%31 + 1)
		if rng.IntN(3) > 0 {
			if err := reopen(&chain, dir).Tick(5); err != nil {
				t.Fatal(err)
			}
		}
		checkCrashInvariants(t, reopen(&chain, dir), dir, f, proxy, false)
	}
	// Drain: no more payments or kills; let it settle everything.
	var last *payout.State
	for i := 0; ; i++ {
		if i > 30 {
			t.Fatalf("not settled after 30 clean rounds: earned %s confirmed %s due %s paused %q open %+v",
				last.Earned(), last.ConfirmedTotal(), last.Due(), last.Paused, last.OpenIntent())
		}
		run(0)
		if err := reopen(&chain, dir).Tick(5); err != nil {
			t.Fatal(err)
		}
		if err := chain.Advance(700); err != nil { // past the interval
			t.Fatal(err)
		}
		j, recs, _, err := journal.Open(filepath.Join(dir, "ledger.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		st, err := payout.Replay(recs)
		if err != nil {
			t.Fatal(err)
		}
		last = st
		if st.OpenIntent() == nil && st.ConfirmedTotal().Cmp(proxy.Sent) == 0 {
			break
		}
	}
	checkCrashInvariants(t, chain, dir, f, proxy, true)
	t.Logf("%d trials, %d SIGKILLs, %d wallet externals dropped by the chain, %s paid, %s wall",
		trials, kills, chain.Dropped(), proxy.Sent, time.Since(start).Round(time.Millisecond))
}

// reopen reloads the chain from disk (the child changed it).
func reopen(c **payouttest.Chain, dir string) *payouttest.Chain {
	n, err := payouttest.Open(dir, 0)
	if err != nil {
		panic(err)
	}
	*c = n
	return n
}

func checkCrashInvariants(t *testing.T, chain *payouttest.Chain, dir string, f *payouttest.Fixture, proxy *payouttest.Proxy, done bool) {
	t.Helper()
	j, recs, _, err := journal.Open(filepath.Join(dir, "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	st, err := payout.Replay(recs)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := chain.Channel(context.Background(), f.ChannelAddr)
	if err != nil {
		t.Fatal(err)
	}
	// No double payment: the channel's cumulative withdrawal is what the
	// ledger confirmed, and what the owner received matches it payment
	// for payment.
	if ch.Balance.WithdrawB.Cmp(st.ConfirmedTotal()) != 0 && !(st.OpenIntent() != nil && ch.Balance.WithdrawB.String() == st.OpenIntent().Target) {
		t.Fatalf("channel withdrawB %s, ledger confirmed %s", ch.Balance.WithdrawB, st.ConfirmedTotal())
	}
	if st.ConfirmedTotal().Cmp(st.Earned()) > 0 || st.Earned().Cmp(proxy.Sent) > 0 {
		t.Fatalf("confirmed %s, earned %s, proxy sent %s", st.ConfirmedTotal(), st.Earned(), proxy.Sent)
	}
	recv := chain.Received(f.Owner)
	sum := new(big.Int)
	for _, v := range recv {
		sum.Add(sum, v)
	}
	fees := new(big.Int).Sub(ch.Balance.WithdrawB, sum)
	if fees.Sign() < 0 || fees.Cmp(new(big.Int).Mul(big.NewInt(int64(len(recv))), ton("0.001"))) > 0 {
		t.Fatalf("owner received %s in %d payments for withdrawB %s", sum, len(recv), ch.Balance.WithdrawB)
	}
	// Every external the wallet executed is one the ledger recorded
	// before broadcast, each created exactly one message, and the wallet
	// seqno counts exactly those.
	ours := map[string]bool{}
	for _, r := range recs {
		if r.Kind == "intent" {
			var in payout.Intent
			if err := json.Unmarshal(r.Data, &in); err != nil {
				t.Fatal(err)
			}
			if in.ExtHash != "" {
				ours[in.ExtHash] = true
			}
		}
	}
	walletRaw := payment.RawAddress(f.Wallet.Address())
	ext := 0
	for _, x := range chain.Txs() {
		if x.Account != walletRaw || !x.External {
			continue
		}
		ext++
		if !ours[x.InMsgHash] {
			t.Fatalf("the wallet executed external %s that the ledger never recorded", x.InMsgHash)
		}
	}
	ws, err := chain.Wallet(context.Background(), f.Wallet.Address())
	if err != nil {
		t.Fatal(err)
	}
	if int(ws.Seqno) != ext {
		t.Fatalf("wallet seqno %d after %d externals of ours", ws.Seqno, ext)
	}
	if ext != len(recv) {
		t.Fatalf("%d wallet externals, %d payouts to the owner", ext, len(recv))
	}
	if st.Paused != "" {
		t.Fatalf("settlement paused: %s", st.Paused)
	}
	if done {
		for _, in := range st.Intents {
			if in.Status != payout.Confirmed && in.Status != payout.Expired {
				t.Fatalf("intent %s left %s", in.ID, in.Status)
			}
		}
		if ch.Balance.WithdrawB.Cmp(proxy.Sent) != 0 || st.ConfirmedTotal().Cmp(proxy.Sent) != 0 {
			t.Fatalf("earned %s, withdrawn %s, confirmed %s: earnings lost", proxy.Sent, ch.Balance.WithdrawB, st.ConfirmedTotal())
		}
	}
}
