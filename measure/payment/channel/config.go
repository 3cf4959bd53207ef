package channel

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"

	"github.com/chrysalis-cc/chrysalis/measure/payment/channel/contract"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// Config fixes a channel: with the contract code it determines the
// channel's address. A is the proxy (payer), B the worker; Payment.DestB
// is the GPU owner's wallet.
type Config struct {
	KeyA, KeyB ed25519.PublicKey
	ID         ID
	Closing    ClosingConfig
	Payment    PaymentConfig
}

// Validate checks the configuration against what the contract accepts at
// init.
func (c Config) Validate() error {
	if len(c.KeyA) != ed25519.PublicKeySize || len(c.KeyB) != ed25519.PublicKeySize {
		return fmt.Errorf("channel %s: keys of %d and %d bytes, want %d", c.ID, len(c.KeyA), len(c.KeyB), ed25519.PublicKeySize)
	}
	if bytes.Equal(c.KeyA, c.KeyB) {
		return fmt.Errorf("channel %s: A and B share the key %x", c.ID, []byte(c.KeyA))
	}
	if c.Payment.StorageFee == nil || c.Payment.StorageFee.Cmp(MinStorageFee) <= 0 {
		return fmt.Errorf("channel %s: storage fee %v nanoTON must exceed %s", c.ID, c.Payment.StorageFee, MinStorageFee)
	}
	if err := checkStdAddr("channel "+c.ID.String()+" dest A", c.Payment.DestA); err != nil {
		return err
	}
	if err := checkStdAddr("channel "+c.ID.String()+" dest B", c.Payment.DestB); err != nil {
		return err
	}
	return checkCoins("channel "+c.ID.String()+" misbehavior fine", c.Closing.MisbehaviorFine)
}

// InitialStorage is the storage a channel is deployed with: not yet
// initialized, zero balances and seqnos, no quarantine.
func (c Config) InitialStorage() *Storage {
	return &Storage{
		KeyA:    c.KeyA,
		KeyB:    c.KeyB,
		ID:      c.ID,
		Closing: c.Closing,
		Payment: c.Payment,
	}
}

// Data returns the initial data cell.
func (c Config) Data() (*cell.Cell, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c.InitialStorage().Cell()
}

// StateInit returns the channel's StateInit: the pinned contract code and
// the initial data.
func (c Config) StateInit() (*tlb.StateInit, error) {
	code, err := contract.Code()
	if err != nil {
		return nil, err
	}
	data, err := c.Data()
	if err != nil {
		return nil, err
	}
	return &tlb.StateInit{Code: code, Data: data}, nil
}

// Address returns the channel's address on workchain 0, bounceable.
func (c Config) Address() (*address.Address, error) {
	si, err := c.StateInit()
	if err != nil {
		return nil, err
	}
	sc, err := tlb.ToCell(si)
	if err != nil {
		return nil, fmt.Errorf("channel %s: state init: %w", c.ID, err)
	}
	return address.NewAddress(0, 0, sc.Hash()).Bounce(true), nil
}

// VerifyAccount checks an account read from the chain: its code must be
// the pinned contract and its address must be the one the storage's own
// configuration derives, so keys, id, closing and payment configuration
// cannot have been swapped. It returns the parsed storage.
func VerifyAccount(addr *address.Address, code, data *cell.Cell) (*Storage, error) {
	if addr == nil || code == nil || data == nil {
		return nil, fmt.Errorf("verify channel account: address, code and data are all required")
	}
	if !bytes.Equal(code.Hash(), contract.CodeHash()) {
		return nil, fmt.Errorf("verify channel account %s: code hash %s is not the pinned %s",
			addr.StringRaw(), hex.EncodeToString(code.Hash()), contract.CodeHashHex)
	}
	st, err := ParseStorage(data)
	if err != nil {
		return nil, fmt.Errorf("verify channel account %s: %w", addr.StringRaw(), err)
	}
	want, err := st.Config().Address()
	if err != nil {
		return nil, fmt.Errorf("verify channel account %s: %w", addr.StringRaw(), err)
	}
	if addr.Workchain() != want.Workchain() || !bytes.Equal(addr.Data(), want.Data()) {
		return nil, fmt.Errorf("verify channel account %s: its storage derives address %s", addr.StringRaw(), want.StringRaw())
	}
	return st, nil
}

// Config returns the configuration the storage was deployed with.
func (st *Storage) Config() Config {
	return Config{KeyA: st.KeyA, KeyB: st.KeyB, ID: st.ID, Closing: st.Closing, Payment: st.Payment}
}
