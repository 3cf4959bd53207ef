package tonemu

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"sync"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"
	"github.com/xssnick/tonutils-go/tvm/tuple"
	"github.com/xssnick/tonutils-go/tvm/vm"
)

// mainnetConfigBOC is the TON mainnet configuration (config params root
// cell); see testdata/ORIGIN.md.
//
//go:embed testdata/blockchain_config_mainnet.boc
var mainnetConfigBOC []byte

// MaxDeliveries bounds the transactions one Deliver runs (a message loop
// between accounts would otherwise never end).
const MaxDeliveries = 256

// GetMethodGas is the gas limit of RunGetMethod.
const GetMethodGas = 1_000_000

// MainnetConfigBOC returns a copy of the embedded mainnet configuration BOC.
func MainnetConfigBOC() []byte { return bytes.Clone(mainnetConfigBOC) }

// MainnetConfig is the embedded mainnet configuration, prepared for the
// emulator once per process.
var MainnetConfig = sync.OnceValues(func() (*tvm.PreparedBlockchainConfig, error) {
	root, err := cell.FromBOC(mainnetConfigBOC)
	if err != nil {
		return nil, fmt.Errorf("tonemu: embedded testdata/blockchain_config_mainnet.boc: %w", err)
	}
	cfg, err := tvm.PrepareBlockchainConfig(root)
	if err != nil {
		return nil, fmt.Errorf("tonemu: embedded testdata/blockchain_config_mainnet.boc: %w", err)
	}
	return cfg, nil
})

// Chain is a set of basechain accounts that exchange messages in the
// emulator. All transactions run in a block at the chain time Now, which
// only changes when the caller sets it. It is not safe for concurrent use.
type Chain struct {
	cfg      *tvm.PreparedBlockchainConfig
	machine  *tvm.TVM
	now      uint32
	lt       uint64
	block    *tvm.BlockContext // for blockNow; rebuilt when now changes
	blockNow uint32
	accounts map[string]*tvm.PreparedAccount
}

// Tx is the outcome of one transaction.
type Tx struct {
	// Account is the address the transaction ran on.
	Account *address.Address
	// Accepted is false for an external message the account did not
	// accept; no transaction exists then and the account is unchanged.
	Accepted bool
	// Cell is the transaction cell, Transaction its parsed form (both nil
	// when not Accepted).
	Cell        *cell.Cell
	Transaction *tlb.Transaction
	// Compute is the compute phase when the VM ran (nil when it was
	// skipped or the transaction was not Accepted).
	Compute *tlb.ComputePhaseVM
	// Aborted is the transaction's aborted flag.
	Aborted bool
	// ExitCode and GasUsed are those of the compute phase.
	ExitCode int32
	GasUsed  int64
	// Success: the compute phase and the action phase both succeeded and
	// the transaction was not aborted (no code ran and not aborted for a
	// skipped compute phase).
	Success bool
	// Bounced: the transaction sent a bounce message back to the sender.
	Bounced bool
	// Actions is the action phase (nil when there was none).
	Actions *tlb.ActionPhase
	// Out are the internal messages the transaction created, in order,
	// and OutCells their cells.
	Out      []*tlb.InternalMessage
	OutCells []*cell.Cell
}

// New returns an empty chain at time now (Unix seconds) whose logical
// time starts at lt.
func New(now uint32, lt uint64) (*Chain, error) {
	cfg, err := MainnetConfig()
	if err != nil {
		return nil, err
	}
	c := &Chain{cfg: cfg, machine: tvm.NewTVM(), now: now, lt: lt, accounts: map[string]*tvm.PreparedAccount{}}
	if _, err := c.blockContext(); err != nil {
		return nil, err
	}
	return c, nil
}

// Now is the chain time (Unix seconds).
func (c *Chain) Now() uint32 { return c.now }

// SetNow moves the chain time; the following transactions run in a block
// at that time.
func (c *Chain) SetNow(now uint32) { c.now = now }

// LT is the chain's logical time: the latest one a message was created at
// or a transaction ended at.
func (c *Chain) LT() uint64 { return c.lt }

// SetLT sets the logical time.
func (c *Chain) SetLT(lt uint64) { c.lt = lt }

// Config is the prepared mainnet configuration the chain runs under.
func (c *Chain) Config() *tvm.PreparedBlockchainConfig { return c.cfg }

// TVM is the chain's emulator, for compute-only runs on an account's code.
func (c *Chain) TVM() *tvm.TVM { return c.machine }

func (c *Chain) blockContext() (*tvm.BlockContext, error) {
	if c.block != nil && c.blockNow == c.now {
		return c.block, nil
	}
	b, err := c.cfg.NewBlockContext(tvm.BlockOptions{Now: c.now, RandSeed: make([]byte, 32)})
	if err != nil {
		return nil, fmt.Errorf("block context at %d: %w", c.now, err)
	}
	c.block, c.blockNow = b, c.now
	return b, nil
}

func noneAccount(a *address.Address) (*tvm.PreparedAccount, error) {
	acc, err := tvm.PrepareAccount(&tlb.ShardAccount{
		Account:       cell.BeginCell().MustStoreBoolBit(false).EndCell(), // account_none
		LastTransHash: make([]byte, 32),
	}, a)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", a.StringRaw(), err)
	}
	return acc, nil
}

// Account returns the prepared account at a: the stored one, or a
// nonexistent (account_none) one, which it stores.
func (c *Chain) Account(a *address.Address) (*tvm.PreparedAccount, error) {
	key := a.StringRaw()
	if acc, ok := c.accounts[key]; ok {
		return acc, nil
	}
	acc, err := noneAccount(a)
	if err != nil {
		return nil, err
	}
	c.accounts[key] = acc
	return acc, nil
}

// SetAccount replaces the account at a (a test rewinding an account to an
// earlier state).
func (c *Chain) SetAccount(a *address.Address, acc *tvm.PreparedAccount) {
	c.accounts[a.StringRaw()] = acc
}

// State returns the account's state, nil when the chain has never seen it.
func (c *Chain) State(a *address.Address) *tlb.AccountState {
	acc, ok := c.accounts[a.StringRaw()]
	if !ok {
		return nil
	}
	return acc.State()
}

// Data returns the data cell of an active account.
func (c *Chain) Data(a *address.Address) (*cell.Cell, error) {
	st := c.State(a)
	if st == nil || st.Status != tlb.AccountStatusActive || st.StateInit == nil || st.StateInit.Data == nil {
		return nil, fmt.Errorf("account %s is not active or has no data", a.StringRaw())
	}
	return st.StateInit.Data, nil
}

// faucet is the source of Fund's messages: an address nobody deploys.
var faucet = func() *address.Address {
	h := sha256.Sum256([]byte("registrytest faucet"))
	return address.NewAddress(0, 0, h[:])
}()

// Fund credits amount to a (creating it uninitialised when it does not
// exist) with a non-bounceable message and an empty body, the way a wallet
// address is funded before its first external message.
func (c *Chain) Fund(a *address.Address, amount tlb.Coins) error {
	tx, err := c.SendInternal(&tlb.InternalMessage{
		IHRDisabled: true, Bounce: false, SrcAddr: faucet, DstAddr: a,
		Amount: amount, Body: cell.BeginCell().EndCell(),
	})
	if err != nil {
		return err
	}
	if tx.Bounced {
		return fmt.Errorf("funding %s bounced (exit code %d)", a.StringRaw(), tx.ExitCode)
	}
	return nil
}

// SendInternal runs an internal message on its destination. It advances
// the logical time by 10 and sets the message's CreatedLT to it and its
// CreatedAt to Now; the emulator picks the transaction's logical time.
func (c *Chain) SendInternal(m *tlb.InternalMessage) (*Tx, error) {
	if m.DstAddr == nil || m.SrcAddr == nil {
		return nil, errors.New("internal message without source or destination")
	}
	c.lt += 10
	m.CreatedLT = c.lt
	m.CreatedAt = c.now
	mc, err := tlb.ToCell(m)
	if err != nil {
		return nil, fmt.Errorf("internal message to %s: %w", m.DstAddr.StringRaw(), err)
	}
	return c.Execute(m.DstAddr, m.SrcAddr, mc, 0)
}

// SendExternal runs an inbound external message on its destination.
func (c *Chain) SendExternal(m *tlb.ExternalMessage) (*Tx, error) {
	if m.DstAddr == nil {
		return nil, errors.New("external message without destination")
	}
	mc, err := tlb.ToCell(m)
	if err != nil {
		return nil, fmt.Errorf("external message to %s: %w", m.DstAddr.StringRaw(), err)
	}
	return c.Execute(m.DstAddr, nil, mc, 0)
}

// Deliver runs every internal message tx created on its destination, then
// the messages those transactions create, breadth first, and returns the
// transactions in order. It stops with an error after MaxDeliveries.
func (c *Chain) Deliver(tx *Tx) ([]*Tx, error) {
	queue := append([]*tlb.InternalMessage(nil), tx.Out...)
	var out []*Tx
	for len(queue) > 0 {
		if len(out) == MaxDeliveries {
			return out, fmt.Errorf("more than %d deliveries: a message loop?", MaxDeliveries)
		}
		m := queue[0]
		queue = queue[1:]
		mc, err := tlb.ToCell(m)
		if err != nil {
			return out, err
		}
		t, err := c.Execute(m.DstAddr, m.SrcAddr, mc, 0)
		if err != nil {
			return out, err
		}
		out = append(out, t)
		queue = append(queue, t.Out...)
	}
	return out, nil
}

// Execute runs one message (a Message cell) on dst as one transaction at
// logical time lt (0: the emulator's choice) in a block at Now. src is the
// sender of an internal message (it decides Tx.Bounced), nil otherwise.
// An accepted transaction replaces dst's account and moves LT on to its
// end; an external the account does not accept leaves both unchanged and
// returns a Tx with Accepted false.
func (c *Chain) Execute(dst, src *address.Address, msg *cell.Cell, lt uint64) (*Tx, error) {
	acc, err := c.Account(dst)
	if err != nil {
		return nil, err
	}
	pm, err := tvm.PrepareMessage(msg)
	if err != nil {
		return nil, fmt.Errorf("message to %s: %w", dst.StringRaw(), err)
	}
	block, err := c.blockContext()
	if err != nil {
		return nil, err
	}
	res, err := c.machine.EmulateTransaction(block, acc, pm, tvm.TransactionOptions{LogicalTime: int64(lt)})
	if err != nil {
		return nil, fmt.Errorf("emulating a message to %s: %w", dst.StringRaw(), err)
	}
	out := &Tx{Account: dst, ExitCode: int32(res.ExitCode), GasUsed: res.GasUsed}
	if res.TransactionCell == nil { // an external the account did not accept
		return out, nil
	}
	out.Accepted = true
	out.Cell = res.TransactionCell
	c.accounts[dst.StringRaw()] = res.NextAccount
	if res.EndLT > c.lt {
		c.lt = res.EndLT
	}
	tx, err := res.ParseTransaction()
	if err != nil {
		return nil, fmt.Errorf("transaction on %s: %w", dst.StringRaw(), err)
	}
	out.Transaction = tx
	d, ok := tx.Description.(tlb.TransactionDescriptionOrdinary)
	if !ok {
		return nil, fmt.Errorf("transaction on %s: description %T, want ordinary", dst.StringRaw(), tx.Description)
	}
	out.Actions = d.ActionPhase
	out.Aborted = d.Aborted
	switch p := d.ComputePhase.Phase.(type) {
	case tlb.ComputePhaseVM:
		out.Compute = &p
		out.ExitCode = p.Details.ExitCode
		out.GasUsed = p.Details.GasUsed.Int64()
		out.Success = p.Success && !d.Aborted && (d.ActionPhase == nil || d.ActionPhase.Success)
	case tlb.ComputePhaseSkipped:
		// No code ran (a plain transfer to an uninitialised account).
		out.Success = !d.Aborted
	default:
		return nil, fmt.Errorf("transaction on %s: compute phase %T", dst.StringRaw(), d.ComputePhase.Phase)
	}
	for _, o := range res.OutMessages {
		im, ok := o.Msg.Msg.(*tlb.InternalMessage)
		if !ok {
			continue
		}
		if im.Bounced && src != nil && im.DstAddr.Equals(src) {
			out.Bounced = true
		}
		out.Out = append(out.Out, im)
		out.OutCells = append(out.OutCells, o.Cell)
	}
	return out, nil
}

// RunGetMethod runs a get-method of an active account on its current code
// and data (GetMethodGas gas) and returns the result stack.
func (c *Chain) RunGetMethod(a *address.Address, method string, args ...*big.Int) (*vm.Stack, error) {
	st := c.State(a)
	if st == nil || st.Status != tlb.AccountStatusActive || st.StateInit == nil {
		return nil, fmt.Errorf("%s on %s: account is not active", method, a.StringRaw())
	}
	stack := vm.NewStack()
	for _, v := range args {
		if err := stack.PushInt(v); err != nil {
			return nil, err
		}
	}
	if err := stack.PushInt(new(big.Int).SetUint64(tlb.MethodNameHash(method))); err != nil {
		return nil, err
	}
	res, err := c.machine.ExecuteGetMethod(st.StateInit.Code, st.StateInit.Data, tuple.Tuple{}, vm.GasWithLimit(GetMethodGas), stack, tvm.ExecutionConfig{Config: c.cfg})
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", method, a.StringRaw(), err)
	}
	if res.ExitCode != 0 && res.ExitCode != 1 {
		return nil, fmt.Errorf("%s on %s: exit code %d", method, a.StringRaw(), res.ExitCode)
	}
	return res.Stack, nil
}

// Snapshot is a chain's state in a form encoding/json can store.
type Snapshot struct {
	Now uint32 `json:"now"`
	LT  uint64 `json:"lt"`
	// Accounts maps raw addresses ("0:<hex>") to the standard base64 BOC
	// of the account's ShardAccount cell.
	Accounts map[string]string `json:"accounts"`
}

// Snapshot exports the chain's state.
func (c *Chain) Snapshot() Snapshot {
	s := Snapshot{Now: c.now, LT: c.lt, Accounts: make(map[string]string, len(c.accounts))}
	keys := make([]string, 0, len(c.accounts))
	for k := range c.accounts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.Accounts[k] = base64.StdEncoding.EncodeToString(c.accounts[k].ShardAccountCell().ToBOC())
	}
	return s
}

// Restore rebuilds a chain from a Snapshot. Errors name the account.
func Restore(s Snapshot) (*Chain, error) {
	c, err := New(s.Now, s.LT)
	if err != nil {
		return nil, err
	}
	for k, v := range s.Accounts {
		a, err := address.ParseRawAddr(k)
		if err != nil {
			return nil, fmt.Errorf("snapshot account %q: %w", k, err)
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("snapshot account %s: %w", k, err)
		}
		sc, err := cell.FromBOC(b)
		if err != nil {
			return nil, fmt.Errorf("snapshot account %s: %w", k, err)
		}
		var sa tlb.ShardAccount
		if err := tlb.LoadFromCell(&sa, sc.MustBeginParse()); err != nil {
			return nil, fmt.Errorf("snapshot account %s: %w", k, err)
		}
		acc, err := tvm.PrepareAccount(&sa, a)
		if err != nil {
			return nil, fmt.Errorf("snapshot account %s: %w", k, err)
		}
		c.accounts[a.StringRaw()] = acc
	}
	return c, nil
}
