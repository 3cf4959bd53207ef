package registry

import (
	"crypto/sha256"
	"fmt"
	"math/big"
	"os"
	"sync"
	"testing"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"
	"github.com/xssnick/tonutils-go/tvm/tuple"
	"github.com/xssnick/tonutils-go/tvm/vm"
)

// The harness below runs the real compiled contract (Code) in
// tonutils-go's TVM: full ordinary transactions (storage, credit, compute,
// action, bounce phases) against the mainnet configuration in testdata,
// and get-methods on the resulting account data.

const blockNow = 1_760_000_000

var loadMainnetConfig = sync.OnceValues(func() (*tvm.PreparedBlockchainConfig, error) {
	b, err := os.ReadFile("testdata/blockchain_config_mainnet.boc")
	if err != nil {
		return nil, err
	}
	root, err := cell.FromBOC(b)
	if err != nil {
		return nil, fmt.Errorf("testdata/blockchain_config_mainnet.boc: %w", err)
	}
	return tvm.PrepareBlockchainConfig(root)
})

type chain struct {
	t       *testing.T
	cfg     *tvm.PreparedBlockchainConfig
	block   *tvm.BlockContext
	machine *tvm.TVM
	addr    *address.Address
	acc     *tvm.PreparedAccount
	lt      uint64
}

// txResult is what a test looks at after one transaction.
type txResult struct {
	exitCode int32
	success  bool // compute phase succeeded and the action phase too
	bounced  bool // a bounce message went back to the sender
	gasUsed  int64
}

func testAddr(tag byte) *address.Address {
	h := sha256.Sum256([]byte{tag})
	return address.NewAddress(0, 0, h[:])
}

// deploy creates the registry for gov the way a wallet would: an internal
// message from gov carrying the state init and an empty body.
func deploy(t *testing.T, gov *address.Address) *chain {
	t.Helper()
	cfg, err := loadMainnetConfig()
	if err != nil {
		t.Fatal(err)
	}
	block, err := cfg.NewBlockContext(tvm.BlockOptions{Now: blockNow, RandSeed: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := Address(gov)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := tvm.PrepareAccount(&tlb.ShardAccount{
		Account:       cell.BeginCell().MustStoreBoolBit(false).EndCell(),
		LastTransHash: make([]byte, 32),
	}, addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &chain{t: t, cfg: cfg, block: block, machine: tvm.NewTVM(), addr: addr, acc: acc, lt: 1_000_000}
	si, err := StateInit(gov)
	if err != nil {
		t.Fatal(err)
	}
	r := c.sendMsg(&tlb.InternalMessage{
		IHRDisabled: true, Bounce: false, SrcAddr: gov, DstAddr: addr,
		Amount: tlb.MustFromTON("1"), StateInit: si, Body: cell.BeginCell().EndCell(),
	})
	if !r.success || r.exitCode != 0 {
		t.Fatalf("deploy: exit code %d, success %v", r.exitCode, r.success)
	}
	if st := c.acc.State(); st == nil || st.Status != tlb.AccountStatusActive {
		t.Fatalf("deploy: account not active: %+v", st)
	}
	return c
}

func (c *chain) send(from *address.Address, body *cell.Cell) txResult {
	c.t.Helper()
	return c.sendMsg(&tlb.InternalMessage{
		IHRDisabled: true, Bounce: true, SrcAddr: from, DstAddr: c.addr,
		Amount: tlb.MustFromTON("0.05"), Body: body,
	})
}

func (c *chain) sendMsg(m *tlb.InternalMessage) txResult {
	c.t.Helper()
	c.lt += 10
	m.CreatedLT = c.lt
	m.CreatedAt = blockNow
	mc, err := tlb.ToCell(m)
	if err != nil {
		c.t.Fatal(err)
	}
	pm, err := tvm.PrepareMessage(mc)
	if err != nil {
		c.t.Fatal(err)
	}
	res, err := c.machine.EmulateTransaction(c.block, c.acc, pm, tvm.TransactionOptions{})
	if err != nil {
		c.t.Fatalf("emulate: %v", err)
	}
	c.acc = res.NextAccount
	c.lt = res.EndLT
	tx, err := res.ParseTransaction()
	if err != nil {
		c.t.Fatal(err)
	}
	d, ok := tx.Description.(tlb.TransactionDescriptionOrdinary)
	if !ok {
		c.t.Fatalf("transaction description %T, want ordinary", tx.Description)
	}
	vmPhase, ok := d.ComputePhase.Phase.(tlb.ComputePhaseVM)
	if !ok {
		c.t.Fatalf("compute phase %T, want VM", d.ComputePhase.Phase)
	}
	out := txResult{exitCode: vmPhase.Details.ExitCode, success: vmPhase.Success && !d.Aborted, gasUsed: vmPhase.Details.GasUsed.Int64()}
	for _, o := range res.OutMessages {
		if im, ok := o.Msg.Msg.(*tlb.InternalMessage); ok && im.Bounced && im.DstAddr.Equals(m.SrcAddr) {
			out.bounced = true
		}
	}
	return out
}

func (c *chain) data() *cell.Cell {
	c.t.Helper()
	st := c.acc.State()
	if st == nil || st.StateInit == nil || st.StateInit.Data == nil {
		c.t.Fatal("account has no data")
	}
	return st.StateInit.Data
}

// get runs a get-method of the deployed code on the current data and
// returns the stack.
func (c *chain) get(method string, args ...*big.Int) *vm.Stack {
	c.t.Helper()
	st := c.acc.State()
	stack := vm.NewStack()
	for _, a := range args {
		if err := stack.PushInt(a); err != nil {
			c.t.Fatal(err)
		}
	}
	if err := stack.PushInt(new(big.Int).SetUint64(tlb.MethodNameHash(method))); err != nil {
		c.t.Fatal(err)
	}
	res, err := c.machine.ExecuteGetMethod(st.StateInit.Code, st.StateInit.Data, tuple.Tuple{}, vm.GasWithLimit(1_000_000), stack, tvm.ExecutionConfig{Config: c.cfg})
	if err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	if res.ExitCode != 0 && res.ExitCode != 1 {
		c.t.Fatalf("%s: exit code %d", method, res.ExitCode)
	}
	return res.Stack
}

func (c *chain) allowed(method string, h [32]byte) bool {
	c.t.Helper()
	v, err := c.get(method, new(big.Int).SetBytes(h[:])).PopInt()
	if err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	switch v.Int64() {
	case -1:
		return true
	case 0:
		return false
	}
	c.t.Fatalf("%s returned %s, want -1 or 0", method, v)
	return false
}

func (c *chain) state() *State {
	c.t.Helper()
	s, err := ParseData(c.data())
	if err != nil {
		c.t.Fatalf("ParseData of the contract's own data: %v", err)
	}
	return s
}
