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
	"runtime"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// MainnetConfigPath is the mainnet blockchain configuration the channel
// package keeps in its testdata (found relative to this source file).
func MainnetConfigPath() string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(f), "..", "..", "..", "measure", "payment", "channel", "testdata", "blockchain_config_mainnet.boc")
}

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

type state struct {
	Now      uint32            `json:"now"`
	LT       uint64            `json:"lt"`
	Accounts map[string]string `json:"accounts"`
	Queue    []string          `json:"queue"`
	Txs      []Tx              `json:"txs"`
	// Dropped counts externals the wallet did not accept.
	Dropped int `json:"dropped"`
}

// Chain is the emulated chain. It implements payout.Chain.
type Chain struct {
	path string
	vm   *tvm.TVM
	cfg  *tvm.PreparedBlockchainConfig
	st   state
	// Hook is called before every chain call (crash tests).
	Hook payout.Hook
}

// Open opens the chain stored in dir (creating an empty one at time now).
func Open(dir string, now uint32) (*Chain, error) {
	raw, err := os.ReadFile(MainnetConfigPath())
	if err != nil {
		return nil, fmt.Errorf("emulated chain: %w", err)
	}
	root, err := cell.FromBOC(raw)
	if err != nil {
		return nil, err
	}
	cfg, err := tvm.PrepareBlockchainConfig(root)
	if err != nil {
		return nil, err
	}
	c := &Chain{path: filepath.Join(dir, "chain.json"), vm: tvm.NewTVM(), cfg: cfg, Hook: func(string) {}}
	b, err := os.ReadFile(c.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.st = state{Now: now, LT: 50_000_000_000_000, Accounts: map[string]string{}}
		return c, c.save()
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(b, &c.st); err != nil {
		return nil, fmt.Errorf("emulated chain %s: %w", c.path, err)
	}
	return c, nil
}

func (c *Chain) save() error {
	b, err := json.Marshal(c.st)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(c.path, b, 0o600)
}

func (c *Chain) account(a *address.Address) (*tvm.PreparedAccount, error) {
	s, ok := c.st.Accounts[payment.RawAddress(a)]
	if !ok {
		return tvm.PrepareAccount(&tlb.ShardAccount{
			Account:       cell.BeginCell().MustStoreBoolBit(false).EndCell(),
			LastTransHash: make([]byte, 32),
		}, a)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	sc, err := cell.FromBOC(b)
	if err != nil {
		return nil, err
	}
	var sa tlb.ShardAccount
	if err := tlb.LoadFromCell(&sa, sc.MustBeginParse()); err != nil {
		return nil, fmt.Errorf("account %s: %w", a.StringRaw(), err)
	}
	return tvm.PrepareAccount(&sa, a)
}

// State returns an account's state (nil-status accounts included).
func (c *Chain) State(a *address.Address) (*tlb.AccountState, error) {
	acc, err := c.account(a)
	if err != nil {
		return nil, err
	}
	return acc.State(), nil
}

// execute runs one message on its destination; it returns the out
// messages, or nil if an external was not accepted.
func (c *Chain) execute(msgCell *cell.Cell, dst *address.Address, external bool, value *big.Int) ([]*cell.Cell, error) {
	acc, err := c.account(dst)
	if err != nil {
		return nil, err
	}
	pm, err := tvm.PrepareMessage(msgCell)
	if err != nil {
		return nil, err
	}
	block, err := c.cfg.NewBlockContext(tvm.BlockOptions{Now: c.st.Now, RandSeed: make([]byte, 32)})
	if err != nil {
		return nil, err
	}
	c.st.LT += 1_000
	res, err := c.vm.EmulateTransaction(block, acc, pm, tvm.TransactionOptions{LogicalTime: int64(c.st.LT)})
	if err != nil || (external && !res.Accepted) {
		if external {
			c.st.Dropped++
			return nil, nil
		}
		return nil, fmt.Errorf("emulate message to %s: %w", dst.StringRaw(), err)
	}
	if res.EndLT > c.st.LT {
		c.st.LT = res.EndLT
	}
	c.st.Accounts[payment.RawAddress(dst)] = base64.StdEncoding.EncodeToString(res.NextAccount.ShardAccountCell().ToBOC())
	t := Tx{Account: payment.RawAddress(dst), InMsgHash: hex.EncodeToString(msgCell.Hash()),
		BOC: base64.StdEncoding.EncodeToString(res.TransactionCell.ToBOC()), External: external}
	if value != nil {
		t.Value = value.String()
	}
	c.st.Txs = append(c.st.Txs, t)
	var out []*cell.Cell
	for _, om := range res.OutMessages {
		if om.Msg.AsInternal() != nil {
			out = append(out, om.Cell)
		}
	}
	return out, nil
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
	c.st.LT += 1_000
	m := &tlb.InternalMessage{IHRDisabled: true, Bounce: bounce, SrcAddr: src, DstAddr: dst,
		Amount: tlb.FromNanoTON(value), CreatedLT: c.st.LT, CreatedAt: c.st.Now, StateInit: si, Body: body}
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
	c.st.Now += dt
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
	return c.st.Now, nil
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
	c.st.Now += dt
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
