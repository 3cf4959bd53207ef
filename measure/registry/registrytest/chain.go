package registrytest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"
	"github.com/xssnick/tonutils-go/tvm/tuple"
	"github.com/xssnick/tonutils-go/tvm/vm"

	"github.com/chrysalis-cc/chrysalis/measure/registry"
)

// MaxDeliveries bounds the transactions one Deliver runs (a message loop
// between accounts would otherwise never end).
const MaxDeliveries = 256

// configPath is measure/registry/testdata/blockchain_config_mainnet.boc,
// found next to this source file (tests run from the module's source tree).
func configPath() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("registrytest: cannot locate its own source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata", "blockchain_config_mainnet.boc"), nil
}

var loadConfig = sync.OnceValues(func() (*tvm.PreparedBlockchainConfig, error) {
	p, err := configPath()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	root, err := cell.FromBOC(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	cfg, err := tvm.PrepareBlockchainConfig(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return cfg, nil
})

// Chain is a set of basechain accounts that exchange messages in the
// emulator, all in one block at a fixed time. It is not safe for
// concurrent use.
type Chain struct {
	cfg      *tvm.PreparedBlockchainConfig
	block    *tvm.BlockContext
	machine  *tvm.TVM
	now      uint32
	lt       uint64
	accounts map[string]*tvm.PreparedAccount
}

// Tx is the outcome of one transaction.
type Tx struct {
	// Account is the address the transaction ran on.
	Account *address.Address
	// Accepted is false for an external message the account did not
	// accept; no transaction exists then and the account is unchanged.
	Accepted bool
	// Transaction is the parsed transaction (nil when not Accepted).
	Transaction *tlb.Transaction
	// ExitCode and GasUsed are those of the compute phase.
	ExitCode int32
	GasUsed  int64
	// Success: the compute phase and the action phase both succeeded and
	// the transaction was not aborted.
	Success bool
	// Bounced: the transaction sent a bounce message back.
	Bounced bool
	// Actions is the action phase (nil when there was none).
	Actions *tlb.ActionPhase
	// Out are the internal messages the transaction created, in order.
	Out []*tlb.InternalMessage
}

// NewChain returns an empty chain whose block time is now (Unix seconds).
func NewChain(now uint32) (*Chain, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, err
	}
	block, err := cfg.NewBlockContext(tvm.BlockOptions{Now: now, RandSeed: make([]byte, 32)})
	if err != nil {
		return nil, err
	}
	return &Chain{cfg: cfg, block: block, machine: tvm.NewTVM(), now: now, lt: 1_000_000, accounts: map[string]*tvm.PreparedAccount{}}, nil
}

// Now is the block time.
func (c *Chain) Now() uint32 { return c.now }

// account returns the account at a, creating a nonexistent one.
func (c *Chain) account(a *address.Address) (*tvm.PreparedAccount, error) {
	key := a.StringRaw()
	if acc, ok := c.accounts[key]; ok {
		return acc, nil
	}
	acc, err := tvm.PrepareAccount(&tlb.ShardAccount{
		Account:       cell.BeginCell().MustStoreBoolBit(false).EndCell(), // account_none
		LastTransHash: make([]byte, 32),
	}, a)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", key, err)
	}
	c.accounts[key] = acc
	return acc, nil
}

// State returns the account's state, nil when it does not exist.
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

// SendInternal runs an internal message on its destination; CreatedLT and
// CreatedAt are set here.
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
	return c.run(m.DstAddr, mc, m.SrcAddr)
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
	return c.run(m.DstAddr, mc, nil)
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
		t, err := c.run(m.DstAddr, mc, m.SrcAddr)
		if err != nil {
			return out, err
		}
		out = append(out, t)
		queue = append(queue, t.Out...)
	}
	return out, nil
}

func (c *Chain) run(dst *address.Address, msgCell *cell.Cell, src *address.Address) (*Tx, error) {
	acc, err := c.account(dst)
	if err != nil {
		return nil, err
	}
	pm, err := tvm.PrepareMessage(msgCell)
	if err != nil {
		return nil, fmt.Errorf("message to %s: %w", dst.StringRaw(), err)
	}
	res, err := c.machine.EmulateTransaction(c.block, acc, pm, tvm.TransactionOptions{})
	if err != nil {
		return nil, fmt.Errorf("emulating a message to %s: %w", dst.StringRaw(), err)
	}
	out := &Tx{Account: dst, ExitCode: int32(res.ExitCode), GasUsed: res.GasUsed}
	if res.TransactionCell == nil { // an external the account did not accept
		return out, nil
	}
	out.Accepted = true
	c.accounts[dst.StringRaw()] = res.NextAccount
	if res.EndLT > c.lt {
		c.lt = res.EndLT
	}
	tx, err := res.ParseTransaction()
	if err != nil {
		return nil, err
	}
	out.Transaction = tx
	d, ok := tx.Description.(tlb.TransactionDescriptionOrdinary)
	if !ok {
		return nil, fmt.Errorf("transaction on %s: description %T, want ordinary", dst.StringRaw(), tx.Description)
	}
	out.Actions = d.ActionPhase
	switch p := d.ComputePhase.Phase.(type) {
	case tlb.ComputePhaseVM:
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
	}
	return out, nil
}

// RunGetMethod runs a get-method of an active account on its current code
// and data and returns the result stack.
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
	res, err := c.machine.ExecuteGetMethod(st.StateInit.Code, st.StateInit.Data, tuple.Tuple{}, vm.GasWithLimit(1_000_000), stack, tvm.ExecutionConfig{Config: c.cfg})
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", method, a.StringRaw(), err)
	}
	if res.ExitCode != 0 && res.ExitCode != 1 {
		return nil, fmt.Errorf("%s on %s: exit code %d", method, a.StringRaw(), res.ExitCode)
	}
	return res.Stack, nil
}

// DeployRegistry deploys the real registry contract (registry.StateInit)
// for governance the way a governance wallet would: an internal message
// from governance carrying the state init, 1 TON and an empty body. It
// returns the registry's address.
func (c *Chain) DeployRegistry(governance *address.Address) (*address.Address, error) {
	addr, err := registry.Address(governance)
	if err != nil {
		return nil, err
	}
	si, err := registry.StateInit(governance)
	if err != nil {
		return nil, err
	}
	tx, err := c.SendInternal(&tlb.InternalMessage{
		IHRDisabled: true, Bounce: false, SrcAddr: governance, DstAddr: addr,
		Amount: tlb.MustFromTON("1"), StateInit: si, Body: cell.BeginCell().EndCell(),
	})
	if err != nil {
		return nil, err
	}
	if !tx.Success || tx.ExitCode != 0 {
		return nil, fmt.Errorf("deploying the registry at %s: exit code %d, success %v", addr.StringRaw(), tx.ExitCode, tx.Success)
	}
	if st := c.State(addr); st == nil || st.Status != tlb.AccountStatusActive {
		return nil, fmt.Errorf("deploying the registry at %s: account not active", addr.StringRaw())
	}
	return addr, nil
}

// RegistryState decodes the registry account's data with registry.ParseData
// after checking its code is the registry's.
func (c *Chain) RegistryState(a *address.Address) (*registry.State, error) {
	st := c.State(a)
	if st == nil || st.Status != tlb.AccountStatusActive || st.StateInit == nil || st.StateInit.Code == nil {
		return nil, fmt.Errorf("registry %s is not active", a.StringRaw())
	}
	if got, want := [32]byte(st.StateInit.Code.Hash()), registry.CodeHash(); got != want {
		return nil, fmt.Errorf("account %s runs code %x, not the registry's %x", a.StringRaw(), got, want)
	}
	return registry.ParseData(st.StateInit.Data)
}
