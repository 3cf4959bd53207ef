package payout

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// LiteChain implements Chain on tonutils-go's API client (liteservers).
// Build the client with ton.ProofCheckPolicySecure anchored to a measured
// config; the liteserver list itself is untrusted host input. Not tested
// against a live network here: the Settler's tests run the same contracts
// in the emulator (payouttest).
type LiteChain struct {
	API ton.APIClientWrapped
}

// Now is the liteserver's time.
func (c LiteChain) Now(ctx context.Context) (uint32, error) {
	return c.API.GetTime(ctx)
}

func (c LiteChain) account(ctx context.Context, a *address.Address) (*tlb.Account, error) {
	b, err := c.API.CurrentMasterchainInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("masterchain info: %w", err)
	}
	acc, err := c.API.WaitForBlock(b.SeqNo).GetAccount(ctx, b, a)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", a.StringRaw(), err)
	}
	return acc, nil
}

// Wallet reads the gas wallet's balance and seqno (from its data).
func (c LiteChain) Wallet(ctx context.Context, a *address.Address) (WalletState, error) {
	acc, err := c.account(ctx, a)
	if err != nil {
		return WalletState{}, err
	}
	if acc.State == nil {
		return WalletState{Balance: new(big.Int)}, nil
	}
	ws := WalletState{Balance: acc.State.Balance.Nano()}
	if !acc.IsActive || acc.State.Status != tlb.AccountStatusActive {
		return ws, nil
	}
	ws.Active = true
	ws.Seqno, err = V5R1Seqno(acc.Data)
	return ws, err
}

// Channel reads and verifies the channel's storage.
func (c LiteChain) Channel(ctx context.Context, a *address.Address) (*channel.Storage, error) {
	acc, err := c.account(ctx, a)
	if err != nil {
		return nil, err
	}
	if !acc.IsActive || acc.State == nil || acc.State.Status != tlb.AccountStatusActive {
		return nil, fmt.Errorf("channel %s is not deployed", a.StringRaw())
	}
	return channel.VerifyAccount(a, acc.Code, acc.Data)
}

// SendExternal broadcasts the external message in boc.
func (c LiteChain) SendExternal(ctx context.Context, boc []byte) error {
	mc, err := cell.FromBOC(boc)
	if err != nil {
		return fmt.Errorf("send external: %w", err)
	}
	var ext tlb.ExternalMessage
	if err := tlb.LoadFromCell(&ext, mc.MustBeginParse()); err != nil {
		return fmt.Errorf("send external: %w", err)
	}
	return c.API.SendExternalMessage(ctx, &ext)
}

// FindTx finds the account's transaction by inbound message cell hash.
func (c LiteChain) FindTx(ctx context.Context, a *address.Address, msgHash []byte, after uint32) (*tlb.Transaction, error) {
	tx, err := c.API.FindLastTransactionByInMsgHashAfterTime(ctx, a, msgHash, time.Unix(int64(after), 0))
	if errors.Is(err, ton.ErrTxWasNotFound) {
		return nil, ErrTxNotFound
	}
	return tx, err
}

var _ Chain = LiteChain{}
