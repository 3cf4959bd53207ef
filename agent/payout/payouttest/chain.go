package payouttest

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
	"github.com/chrysalis-cc/chrysalis/measure/tonemu"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// Tx is one executed transaction.
type Tx struct {
	Account   string `json:"account"`
	InMsgHash string `json:"in_msg_hash"`
	BOC       string `json:"boc"`
	// External is true for an external inbound message.
	External bool `json:"external,omitempty"`
	// Value of an internal inbound message, nanoTON.
	Value string `json:"value,omitempty"`
}

// state is what the chain file holds: the emulator's snapshot (time,
// logical time, accounts) and the payout-test bookkeeping around it.
type state struct {
	tonemu.Snapshot
	Queue []string `json:"queue"`
	Txs   []Tx     `json:"txs"`
	// Dropped counts externals the wallet did not accept.
	Dropped int `json:"dropped"`
}

// Chain is the emulated chain. It implements payout.Chain.
type Chain struct {
	path string
	emu  *tonemu.Chain
	st   state
	// Hook is called before every chain call (crash tests).
	Hook payout.Hook
}

// Open opens the chain stored in dir (creating an empty one at time now).
func Open(dir string, now uint32) (*Chain, error) {
	c := &Chain{path: filepath.Join(dir, "chain.json"), Hook: func(string) {}}
	b, err := os.ReadFile(c.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if c.emu, err = tonemu.New(now, 50_000_000_000_000); err != nil {
			return nil, fmt.Errorf("emulated chain: %w", err)
		}
		return c, c.save()
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(b, &c.st); err != nil {
		return nil, fmt.Errorf("emulated chain %s: %w", c.path, err)
	}
	if c.emu, err = tonemu.Restore(c.st.Snapshot); err != nil {
		return nil, fmt.Errorf("emulated chain %s: %w", c.path, err)
	}
	return c, nil
}

func (c *Chain) save() error {
	c.st.Snapshot = c.emu.Snapshot()
	b, err := json.Marshal(c.st)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(c.path, b, 0o600)
}

// State returns an account's state (nil-status accounts included).
func (c *Chain) State(a *address.Address) (*tlb.AccountState, error) {
	acc, err := c.emu.Account(a)
	if err != nil {
		return nil, err
	}
	return acc.State(), nil
}

// execute runs one message on its destination; it returns the out
// messages, or nil if an external was not accepted.
func (c *Chain) execute(msgCell *cell.Cell, dst *address.Address, external bool, value *big.Int) ([]*cell.Cell, error) {
	c.emu.SetLT(c.emu.LT() + 1_000)
	res, err := c.emu.Execute(dst, nil, msgCell, c.emu.LT())
	if err != nil || (external && !res.Accepted) {
		if external {
			c.st.Dropped++
			return nil, nil
		}
		return nil, fmt.Errorf("emulate message to %s: %w", dst.StringRaw(), err)
	}
	t := Tx{Account: payment.RawAddress(dst), InMsgHash: hex.EncodeToString(msgCell.Hash()),
		BOC: base64.StdEncoding.EncodeToString(res.Cell.ToBOC()), External: external}
	if value != nil {
		t.Value = value.String()
	}
	c.st.Txs = append(c.st.Txs, t)
	return res.OutCells, nil
}

// run delivers internal messages until none are left.
func (c *Chain) run(queue []*cell.Cell) error {
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		var msg tlb.Message
		if err := tlb.LoadFromCell(&msg, m.MustBeginParse()); err != nil {
			return err
		}
		im := msg.AsInternal()
		out, err := c.execute(m, im.DstAddr, false, im.Amount.Nano())
		if err != nil {
			return err
		}
		queue = append(queue, out...)
	}
	return nil
}

// Deliver sends an internal message from src (an account outside the
// emulation, e.g. the proxy's wallet or a faucet) and runs everything it
// causes.
func (c *Chain) Deliver(src, dst *address.Address, value *big.Int, bounce bool, body *cell.Cell, si *tlb.StateInit) error {
	c.emu.SetLT(c.emu.LT() + 1_000)
	m := &tlb.InternalMessage{IHRDisabled: true, Bounce: bounce, SrcAddr: src, DstAddr: dst,
		Amount: tlb.FromNanoTON(value), CreatedLT: c.emu.LT(), CreatedAt: c.emu.Now(), StateInit: si, Body: body}
	if body == nil {
		m.Body = cell.BeginCell().EndCell()
	}
	mc, err := tlb.ToCell(m)
	if err != nil {
		return err
	}
	if err := c.run([]*cell.Cell{mc}); err != nil {
		return err
	}
	return c.save()
}

// Tick applies the queued externals (in order, each with everything it
// causes) and then advances chain time by dt seconds.
func (c *Chain) Tick(dt uint32) error {
	q := c.st.Queue
	c.st.Queue = nil
	for _, e := range q {
		b, err := base64.StdEncoding.DecodeString(e)
		if err != nil {
			return err
		}
		mc, err := cell.FromBOC(b)
		if err != nil {
			return err
		}
		var ext tlb.ExternalMessage
		if err := tlb.LoadFromCell(&ext, mc.MustBeginParse()); err != nil {
			return err
		}
		out, err := c.execute(mc, ext.DstAddr, true, nil)
		if err != nil {
			return err
		}
		if err := c.run(out); err != nil {
			return err
		}
	}
	c.emu.SetNow(c.emu.Now() + dt)
	return c.save()
}

// Queued is how many externals wait for the next Tick.
func (c *Chain) Queued() int { return len(c.st.Queue) }

// Txs returns every transaction so far.
func (c *Chain) Txs() []Tx { return append([]Tx(nil), c.st.Txs...) }

// Dropped counts externals the wallet refused (stale seqno, expired).
func (c *Chain) Dropped() int { return c.st.Dropped }

// --- payout.Chain ---

// Now is the chain time.
func (c *Chain) Now(context.Context) (uint32, error) {
	c.Hook("emu-now")
	return c.emu.Now(), nil
}

// Wallet reads a v5r1 wallet.
func (c *Chain) Wallet(_ context.Context, a *address.Address) (payout.WalletState, error) {
	c.Hook("emu-wallet")
	s, err := c.State(a)
	if err != nil {
		return payout.WalletState{}, err
	}
	ws := payout.WalletState{Balance: new(big.Int)}
	if !s.IsValid {
		return ws, nil
	}
	ws.Balance = s.Balance.Nano()
	if s.Status != tlb.AccountStatusActive {
		return ws, nil
	}
	ws.Active = true
	ws.Seqno, err = payout.V5R1Seqno(s.StateInit.Data)
	return ws, err
}

// Channel reads and verifies the channel's storage.
func (c *Chain) Channel(_ context.Context, a *address.Address) (*channel.Storage, error) {
	c.Hook("emu-channel")
	s, err := c.State(a)
	if err != nil {
		return nil, err
	}
	if !s.IsValid || s.Status != tlb.AccountStatusActive {
		return nil, fmt.Errorf("channel %s is not deployed", a.StringRaw())
	}
	return channel.VerifyAccount(a, s.StateInit.Code, s.StateInit.Data)
}

// SendExternal queues an external for the next Tick.
func (c *Chain) SendExternal(_ context.Context, boc []byte) error {
	c.Hook("emu-send")
	if _, err := cell.FromBOC(boc); err != nil {
		return fmt.Errorf("send external: %w", err)
	}
	c.st.Queue = append(c.st.Queue, base64.StdEncoding.EncodeToString(boc))
	return c.save()
}

// FindTx finds a transaction by inbound message cell hash.
func (c *Chain) FindTx(_ context.Context, a *address.Address, msgHash []byte, _ uint32) (*tlb.Transaction, error) {
	c.Hook("emu-find")
	raw, h := payment.RawAddress(a), hex.EncodeToString(msgHash)
	for i := len(c.st.Txs) - 1; i >= 0; i-- {
		t := c.st.Txs[i]
		if t.Account == raw && t.InMsgHash == h {
			return ParseTx(t)
		}
	}
	return nil, payout.ErrTxNotFound
}

// ParseTx decodes a recorded transaction.
func ParseTx(t Tx) (*tlb.Transaction, error) {
	b, err := base64.StdEncoding.DecodeString(t.BOC)
	if err != nil {
		return nil, err
	}
	tc, err := cell.FromBOC(b)
	if err != nil {
		return nil, err
	}
	var tx tlb.Transaction
	if err := tlb.LoadFromCell(&tx, tc.MustBeginParse()); err != nil {
		return nil, err
	}
	tx.Hash = tc.Hash()
	return &tx, nil
}

var _ payout.Chain = (*Chain)(nil)

// Advance moves chain time on without applying the queue.
func (c *Chain) Advance(dt uint32) error {
	c.emu.SetNow(c.emu.Now() + dt)
	return c.save()
}

// DropQueue loses every queued external (a broadcast that never reached
// a validator).
func (c *Chain) DropQueue() error {
	c.st.Queue = nil
	return c.save()
}

// Received lists the values (nanoTON) of the messages an account received.
func (c *Chain) Received(a *address.Address) []*big.Int {
	var out []*big.Int
	raw := payment.RawAddress(a)
	for _, t := range c.st.Txs {
		if t.Account == raw && t.Value != "" {
			v, _ := new(big.Int).SetString(t.Value, 10)
			out = append(out, v)
		}
	}
	return out
}
