package registrytest

import (
	"fmt"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/chrysalis-cc/chrysalis/measure/registry"
	"github.com/chrysalis-cc/chrysalis/measure/tonemu"
)

// MaxDeliveries bounds the transactions one Deliver runs (a message loop
// between accounts would otherwise never end).
const MaxDeliveries = tonemu.MaxDeliveries

// Chain is a set of basechain accounts that exchange messages in the
// emulator, all in one block at a fixed time: a tonemu.Chain (Now, State,
// Data, Fund, SendInternal, SendExternal, Deliver, RunGetMethod) that also
// deploys and reads the registry. It is not safe for concurrent use.
type Chain struct {
	*tonemu.Chain
}

// Tx is the outcome of one transaction.
type Tx = tonemu.Tx

// NewChain returns an empty chain whose block time is now (Unix seconds).
func NewChain(now uint32) (*Chain, error) {
	c, err := tonemu.New(now, 1_000_000)
	if err != nil {
		return nil, err
	}
	return &Chain{Chain: c}, nil
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
