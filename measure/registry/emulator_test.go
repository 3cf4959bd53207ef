package registry

import (
	"crypto/sha256"
	"math/big"
	"testing"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
	"github.com/xssnick/tonutils-go/tvm/vm"

	"github.com/chrysalis-cc/chrysalis/measure/tonemu"
)

// The harness below is measure/tonemu's chain with one registry account:
// the real compiled contract (Code) runs in full ordinary transactions
// (storage, credit, compute, action, bounce phases) under the mainnet
// configuration, and get-methods run on the resulting account data.

const blockNow = 1_760_000_000

type chain struct {
	t    *testing.T
	emu  *tonemu.Chain
	addr *address.Address
}

// txResult is what a test looks at after one transaction.
type txResult struct {
	exitCode int32
	success  bool // compute phase succeeded and the transaction was not aborted
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
	emu, err := tonemu.New(blockNow, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := Address(gov)
	if err != nil {
		t.Fatal(err)
	}
	c := &chain{t: t, emu: emu, addr: addr}
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
	if st := emu.State(addr); st == nil || st.Status != tlb.AccountStatusActive {
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
	tx, err := c.emu.SendInternal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	if tx.Compute == nil {
		c.t.Fatal("compute phase skipped, want VM")
	}
	return txResult{exitCode: tx.ExitCode, success: tx.Compute.Success && !tx.Aborted, bounced: tx.Bounced, gasUsed: tx.GasUsed}
}

func (c *chain) data() *cell.Cell {
	c.t.Helper()
	d, err := c.emu.Data(c.addr)
	if err != nil {
		c.t.Fatal(err)
	}
	return d
}

// get runs a get-method of the deployed code on the current data and
// returns the stack.
func (c *chain) get(method string, args ...*big.Int) *vm.Stack {
	c.t.Helper()
	s, err := c.emu.RunGetMethod(c.addr, method, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return s
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
