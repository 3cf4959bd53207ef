package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/xssnick/tonutils-go/tlb"
)

// Settlement defaults the measured terms leave to the worker: the value
// attached to a commit (≥ channel.FeeCommit; the contract returns what its
// fees do not use), the gas kept on the wallet on top of it, how often the
// settler steps, and the backoff between failed liteserver connections.
var (
	settleAttach  = tlb.MustFromTON("0.05").Nano()
	settleReserve = tlb.MustFromTON("0.05").Nano()
)

var (
	settlePeriod     = 30 * time.Second
	dialBackoffFirst = 5 * time.Second
	dialBackoffMax   = 5 * time.Minute
)

// dialChain connects the settler to the chain.
type dialChain func(ctx context.Context, t *guest.TONChain) (payout.Chain, error)

// dialLiteservers is the production dialChain: proof-checked liteserver
// queries from the config's trusted block.
func dialLiteservers(ctx context.Context, t *guest.TONChain) (payout.Chain, error) {
	api, err := payment.DialTON(ctx, t.GlobalConfig())
	if err != nil {
		return nil, err
	}
	return payout.LiteChain{API: api}, nil
}

// settlement runs the Settler inside the agent: it connects to the chain
// in the background (retrying with backoff, so a worker without egress
// still serves and keeps earning in its ledger) and then steps every
// settlePeriod until the agent stops.
type settlement struct {
	mu      sync.Mutex
	state   string
	settler *payout.Settler
	cancel  context.CancelFunc
	done    chan struct{}
}

// startSettlement starts settling when the config disk gives chain access
// (t, its ton_chain) with the settler configuration c (all but the
// chain); without it the worker only earns, and says so.
func startSettlement(t *guest.TONChain, c payout.Config, dial dialChain, log *slog.Logger) *settlement {
	st := &settlement{done: make(chan struct{})}
	if t == nil {
		st.state = "off: the config disk has no ton_chain (launch --ton-config); earnings accumulate in the ledger"
		log.Warn("settlement is " + st.state)
		close(st.done)
		return st
	}
	ctx, cancel := context.WithCancel(context.Background())
	st.cancel = cancel
	st.state = fmt.Sprintf("connecting to %d liteservers", len(t.Liteservers))
	go func() {
		defer close(st.done)
		if c.Chain = st.connect(ctx, t, dial, log); c.Chain == nil {
			return
		}
		s, err := payout.NewSettler(c)
		if err != nil {
			st.set("stopped: " + err.Error())
			log.Error("settlement", "err", err)
			return
		}
		st.mu.Lock()
		st.settler = s
		st.mu.Unlock()
		log.Info("settlement running", "gas_wallet", s.Wallet().String(), "period", settlePeriod)
		_ = s.Run(ctx, settlePeriod)
	}()
	return st
}

// connect dials until it succeeds or ctx ends (nil then).
func (st *settlement) connect(ctx context.Context, t *guest.TONChain, dial dialChain, log *slog.Logger) payout.Chain {
	wait := dialBackoffFirst
	for {
		chain, err := dial(ctx, t)
		if err == nil {
			return chain
		}
		st.set(fmt.Sprintf("no chain access (retrying in %s): %v", wait, err))
		log.Warn("settlement: liteservers", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, dialBackoffMax)
	}
}

func (st *settlement) set(s string) {
	st.mu.Lock()
	st.state = s
	st.mu.Unlock()
}

// String is the settlement's state for the status channel: the settler's
// last step once it runs, else why it does not.
func (st *settlement) String() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.settler == nil {
		return st.state
	}
	r := st.settler.Last()
	if r.Action == "" {
		return "running"
	}
	s := r.Action
	if r.Due != nil {
		s += fmt.Sprintf(", due %s nanoTON", r.Due)
	}
	if r.Detail != "" {
		s += ": " + r.Detail
	}
	return s
}

// stop stops the settler and waits for its step to end, so the ledger can
// be closed after it.
func (st *settlement) stop() {
	if st.cancel != nil {
		st.cancel()
	}
	<-st.done
}
