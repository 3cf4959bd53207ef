package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/agent/payout/payouttest"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"
)

func tonChain(t *testing.T) *guest.TONChain {
	b, err := os.ReadFile("../../../measure/guest/testdata/ton-global-config.json")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := guest.ParseTONGlobalConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// lockedChain serialises the emulated chain between the settler's
// goroutine and the test, which advances chain time.
type lockedChain struct {
	mu sync.Mutex
	c  *payouttest.Chain
}

func (l *lockedChain) Now(ctx context.Context) (uint32, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.Now(ctx)
}

func (l *lockedChain) Wallet(ctx context.Context, a *address.Address) (payout.WalletState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.Wallet(ctx, a)
}

func (l *lockedChain) Channel(ctx context.Context, a *address.Address) (*channel.Storage, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.Channel(ctx, a)
}

func (l *lockedChain) SendExternal(ctx context.Context, boc []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.SendExternal(ctx, boc)
}

func (l *lockedChain) FindTx(ctx context.Context, a *address.Address, h []byte, after uint32) (*tlb.Transaction, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.FindTx(ctx, a, h, after)
}

func (l *lockedChain) tick(dt uint32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.Tick(dt)
}

// Without ton_chain the worker earns but does not settle, and says why.
func TestSettlementOff(t *testing.T) {
	cfg := paidConfig(t)
	l, err := payout.OpenLedger(filepath.Join(t.TempDir(), "ledger.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bindPayments(l, cfg, func(context.Context, *guest.TONChain) (payout.Chain, error) {
		t.Error("dialled without ton_chain")
		return nil, errors.New("no")
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if s := p.settle.String(); !strings.Contains(s, "off: the config disk has no ton_chain") {
		t.Errorf("state %q", s)
	}
	if err := p.ledger.Close(); err != nil {
		t.Fatal(err)
	}
	p.settle.stop()
}

// Liteservers that cannot be reached leave the worker serving; the state
// names the error, and stopping does not wait for the backoff.
func TestSettlementRetriesDial(t *testing.T) {
	defer func(d time.Duration) { dialBackoffFirst = d }(dialBackoffFirst)
	dialBackoffFirst = time.Hour
	cfg := paidConfig(t)
	cfg.TONChain = tonChain(t)
	l, err := payout.OpenLedger(filepath.Join(t.TempDir(), "ledger.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dialled := make(chan *guest.TONChain, 1)
	p, err := bindPayments(l, cfg, func(_ context.Context, tc *guest.TONChain) (payout.Chain, error) {
		dialled <- tc
		return nil, errors.New("dial tcp 5.9.10.47:19949: connect: network is unreachable")
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st := p.settle
	if tc := <-dialled; len(tc.Liteservers) != 2 {
		t.Fatalf("dialled %+v", tc)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(st.String(), "network is unreachable") {
		if time.Now().After(deadline) {
			t.Fatalf("state %q", st.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(st.String(), "no chain access (retrying in 1h0m0s)") {
		t.Errorf("state %q", st.String())
	}
	st.stop()
}

// The running agent's wiring end to end on the emulated chain (real
// wallet v5r1 and channel code): the settler built from the measured
// config and the owner's secret settles a proxy state POSTed to the
// agent's endpoints, co-signed by the proxy through the agent's relay,
// and the owner receives it on chain.
func TestSettlementSettles(t *testing.T) {
	defer func(d time.Duration) { settlePeriod = d }(settlePeriod)
	settlePeriod = 20 * time.Millisecond
	cfg := paidConfig(t)
	cfg.TONChain = tonChain(t)
	ck, wk, err := cfg.PayoutKeys()
	if err != nil {
		t.Fatal(err)
	}
	chCfg, _, err := cfg.Measured.Channel()
	if err != nil {
		t.Fatal(err)
	}
	f := &payouttest.Fixture{KeyA: proxyKey, KeyB: ck, KeyWallet: wk, Config: chCfg, Owner: chCfg.Payment.DestB, ProxyWallet: payouttest.Addr(0xA0)}
	if f.ChannelAddr, err = chCfg.Address(); err != nil {
		t.Fatal(err)
	}
	if f.Wallet, err = payout.NewV5R1(wk.Public().(ed25519.PublicKey), wallet.MainnetGlobalID); err != nil {
		t.Fatal(err)
	}
	pc, err := payouttest.Open(t.TempDir(), 1_780_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Deploy(pc, payouttest.TON("100"), payouttest.TON("1")); err != nil {
		t.Fatal(err)
	}
	chain := &lockedChain{c: pc}
	l, err := payout.OpenLedger(filepath.Join(t.TempDir(), "ledger.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bindPayments(l, cfg, func(context.Context, *guest.TONChain) (payout.Chain, error) { return chain, nil }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.ledger.Close()
	defer p.settle.stop()
	mux := http.NewServeMux()
	p.mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	proxy := payouttest.NewProxy(f)
	ps, err := proxy.Pay(payouttest.TON("1.5")) // above the measured threshold of 1 TON
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ps)
	resp, err := http.Post(srv.URL+"/v1/payment/state", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("state: %d", resp.StatusCode)
	}
	// Act as the proxy (answer commits) and as time (blocks) until the
	// ledger shows the settlement confirmed.
	deadline := time.Now().Add(60 * time.Second)
	for payout.Summarize(p.ledger.State()).Settled != "1500000000" {
		if time.Now().After(deadline) {
			t.Fatalf("not settled; settlement %q, summary %+v", p.settle.String(), payout.Summarize(p.ledger.State()))
		}
		if r, err := http.Get(srv.URL + "/v1/payment/commit"); err == nil {
			body, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				req, err := payment.DecodeCommitRequest(body)
				if err != nil {
					t.Fatal(err)
				}
				ans, err := proxy.CoSign(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				ab, _ := json.Marshal(ans)
				if r, err := http.Post(srv.URL+"/v1/payment/commit", "application/json", bytes.NewReader(ab)); err == nil {
					r.Body.Close()
				}
			}
		}
		if err := chain.tick(2); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The channel owes B exactly the state; the owner got it less the
	// contract's forwarding fee, in one payment.
	chain.mu.Lock()
	got := pc.Received(f.Owner)
	st, err := pc.Channel(context.Background(), f.ChannelAddr)
	chain.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if st.Balance.WithdrawB.Cmp(payouttest.TON("1.5")) != 0 {
		t.Errorf("channel withdrawB %s, want 1500000000", st.Balance.WithdrawB)
	}
	if len(got) != 1 {
		t.Fatalf("owner received %d payments, want 1", len(got))
	}
	if fee := new(big.Int).Sub(payouttest.TON("1.5"), got[0]); fee.Sign() < 0 || fee.Cmp(payouttest.TON("0.001")) > 0 {
		t.Errorf("owner received %s nanoTON for a 1.5 TON settlement", got[0])
	}
	if s := p.settle.String(); s == "" || strings.HasPrefix(s, "stopped") {
		t.Errorf("settlement state %q", s)
	}
}
