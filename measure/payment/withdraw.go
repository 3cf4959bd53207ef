package payment

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// WithdrawMode is the send mode of the owner's withdrawal: carry the
// wallet's whole remaining balance (the forwarding fee comes out of it),
// plus "ignore errors", which wallet v5r1 requires of every
// external-initiated send. The account is not destroyed (no +32): a
// destroyed wallet would restart at seqno 0 when funded again, and an
// old seqno-0 message could then be replayed until its valid_until.
const WithdrawMode = wallet.CarryAllRemainingBalance + wallet.IgnoreErrors

// Withdrawal is the owner's escape hatch for the worker's gas wallet: an
// external message, signed with the gas wallet key derived from the
// owner's payout secret, by which the wallet sends its whole balance to
// the owner. Anyone may broadcast it; it only ever pays the owner.
type Withdrawal struct {
	// Wallet is the gas wallet (GasWalletAddress: non-bounceable, with the
	// network's testnet flag).
	Wallet *address.Address
	// Owner receives the balance, non-bounceable.
	Owner OwnerAddress
	// Seqno and ValidUntil (Unix seconds) are those the wallet checks.
	Seqno, ValidUntil uint32
	// StateInit: the message carries the wallet's StateInit (seqno 0), so
	// it also deploys a wallet that was funded but never used.
	StateInit bool
	// BOC is the external message (a bag of cells); Hash is its message
	// cell's hash, by which explorers find the inbound message.
	BOC  []byte
	Hash []byte
}

// WithdrawMessage builds and signs the Withdrawal of the gas wallet that
// DeriveKeys derives from secret, on owner's network, to owner. seqno is
// the wallet's current seqno (0 for a wallet never used: the StateInit is
// attached then); validUntil (Unix seconds, > 0) is when the wallet stops
// accepting the message.
func WithdrawMessage(secret []byte, owner OwnerAddress, seqno, validUntil uint32) (Withdrawal, error) {
	if owner.Network != Mainnet && owner.Network != Testnet {
		return Withdrawal{}, fmt.Errorf("withdraw: owner address network %q: want mainnet or testnet", owner.Network)
	}
	if owner.Workchain != 0 && owner.Workchain != -1 {
		return Withdrawal{}, fmt.Errorf("withdraw: owner address workchain %d is not the basechain (0) or masterchain (-1)", owner.Workchain)
	}
	if validUntil == 0 {
		return Withdrawal{}, errors.New("withdraw: valid_until must be a positive Unix time")
	}
	_, key, err := DeriveKeys(secret)
	if err != nil {
		return Withdrawal{}, fmt.Errorf("withdraw: %w", err)
	}
	w, err := GasWalletAddress(key.Public().(ed25519.PublicKey), owner.Network)
	if err != nil {
		return Withdrawal{}, fmt.Errorf("withdraw: %w", err)
	}
	if owner.Workchain == 0 && string(owner.Hash[:]) == string(w.Data()) {
		return Withdrawal{}, fmt.Errorf("withdraw: owner address %s is the gas wallet itself", owner)
	}
	msg := &wallet.Message{Mode: WithdrawMode, InternalMessage: &tlb.InternalMessage{
		IHRDisabled: true, Bounce: false, DstAddr: owner.Address(), Amount: tlb.ZeroCoins,
	}}
	ext, err := v5r1External(key, owner.Network, seqno, validUntil, seqno == 0, []*wallet.Message{msg})
	if err != nil {
		return Withdrawal{}, err
	}
	c, err := tlb.ToCell(ext)
	if err != nil {
		return Withdrawal{}, fmt.Errorf("withdraw: external message: %w", err)
	}
	return Withdrawal{Wallet: w, Owner: owner, Seqno: seqno, ValidUntil: validUntil, StateInit: seqno == 0, BOC: c.ToBOC(), Hash: c.Hash()}, nil
}

// v5r1External signs an external message of the gas wallet of key on
// network n (wallet v5r1, basechain, subwallet 0) carrying msgs.
// tonutils-go's own builder takes valid_until from the local clock; an
// offline signer needs to choose it.
func v5r1External(key ed25519.PrivateKey, n Network, seqno, validUntil uint32, withStateInit bool, msgs []*wallet.Message) (*tlb.ExternalMessage, error) {
	cfg := wallet.ConfigV5R1Final{NetworkGlobalID: n.GlobalID(), Workchain: 0}
	w, err := wallet.FromPrivateKeyWithOptions(key, cfg)
	if err != nil {
		return nil, fmt.Errorf("gas wallet: %w", err)
	}
	actions, err := wallet.PackV5OutActions(msgs)
	if err != nil {
		return nil, fmt.Errorf("gas wallet actions: %w", err)
	}
	id := wallet.V5R1ID{NetworkGlobalID: cfg.NetworkGlobalID, WorkChain: cfg.Workchain, SubwalletNumber: uint16(w.GetSubwalletID())}
	payload := cell.BeginCell().
		MustStoreUInt(0x7369676e, 32). // "sign": an external signed request
		MustStoreUInt(uint64(id.Serialized()), 32).
		MustStoreUInt(uint64(validUntil), 32).
		MustStoreUInt(uint64(seqno), 32).
		MustStoreBuilder(actions)
	body := cell.BeginCell().MustStoreBuilder(payload).MustStoreSlice(payload.EndCell().Sign(key), 512).EndCell()
	ext := &tlb.ExternalMessage{DstAddr: w.WalletAddress(), Body: body}
	if withStateInit {
		if ext.StateInit, err = wallet.GetStateInit(key.Public().(ed25519.PublicKey), cfg, w.GetSubwalletID()); err != nil {
			return nil, fmt.Errorf("gas wallet state init: %w", err)
		}
	}
	return ext, nil
}
