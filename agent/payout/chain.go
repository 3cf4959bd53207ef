package payout

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/big"

	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// ErrTxNotFound is returned by Chain.FindTx when no transaction of the
// account carries the message.
var ErrTxNotFound = errors.New("transaction not found")

// WalletState is the gas wallet as the chain sees it.
type WalletState struct {
	// Active is false before the wallet's first external (which must
	// carry the StateInit).
	Active bool
	// Seqno is the seqno the wallet's next external must carry.
	Seqno   uint32
	Balance *big.Int
}

// Chain is what the Settler reads from and sends to the chain.
type Chain interface {
	// Now is the chain's time (unix seconds): the guest's clock is
	// host-controlled, so every deadline is judged by this.
	Now(ctx context.Context) (uint32, error)
	// Wallet reads the gas wallet.
	Wallet(ctx context.Context, addr *address.Address) (WalletState, error)
	// Channel reads the channel contract's storage, verified against the
	// pinned code and its own address (channel.VerifyAccount).
	Channel(ctx context.Context, addr *address.Address) (*channel.Storage, error)
	// SendExternal broadcasts an external message (a BOC).
	SendExternal(ctx context.Context, boc []byte) error
	// FindTx finds the account's transaction whose inbound message cell
	// has hash msgHash, looking no further back than chain time after.
	FindTx(ctx context.Context, addr *address.Address, msgHash []byte, after uint32) (*tlb.Transaction, error)
}

// CoSigner asks the proxy to co-sign a commit (over the RA-TLS connection
// in production).
type CoSigner interface {
	CoSign(ctx context.Context, req payment.CommitRequest) (payment.CommitResponse, error)
}

// ErrRefused, wrapped by a CoSigner, means the proxy refused the commit
// for good (not a transport failure): the intent fails.
var ErrRefused = errors.New("proxy refused to co-sign")

// KeyProvider supplies an ed25519 private key.
type KeyProvider interface {
	PrivateKey() (ed25519.PrivateKey, error)
}

// SecretKey is a key supplied by the owner as secret bytes (a 32-byte
// seed). It never prints, logs or marshals its secret.
type SecretKey struct {
	key ed25519.PrivateKey
}

// NewSecretKey takes a 32-byte ed25519 seed.
func NewSecretKey(seed []byte) (*SecretKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("payout key: %d bytes of secret, want a %d-byte ed25519 seed", len(seed), ed25519.SeedSize)
	}
	return &SecretKey{key: ed25519.NewKeyFromSeed(seed)}, nil
}

// PrivateKey returns the key.
func (k *SecretKey) PrivateKey() (ed25519.PrivateKey, error) {
	if k == nil || k.key == nil {
		return nil, errors.New("payout key: not set")
	}
	return k.key, nil
}

// Public returns the public key.
func (k *SecretKey) Public() ed25519.PublicKey { return k.key.Public().(ed25519.PublicKey) }

func (k *SecretKey) redacted() string {
	if k == nil || k.key == nil {
		return "SecretKey(unset)"
	}
	return fmt.Sprintf("SecretKey(redacted, public %x)", []byte(k.Public()))
}

// String redacts the secret.
func (k *SecretKey) String() string { return k.redacted() }

// GoString redacts the secret.
func (k *SecretKey) GoString() string { return k.redacted() }

// LogValue redacts the secret in slog output.
func (k *SecretKey) LogValue() slog.Value { return slog.StringValue(k.redacted()) }

// MarshalJSON redacts the secret.
func (k *SecretKey) MarshalJSON() ([]byte, error) { return []byte(`"` + k.redacted() + `"`), nil }

// V5R1 is the gas wallet: a standard wallet v5r1 (subwallet 0) on the
// basechain.
type V5R1 struct {
	cfg       wallet.ConfigV5R1Final
	pub       ed25519.PublicKey
	subwallet uint32
	addr      *address.Address
}

// NewV5R1 derives the gas wallet for a public key on a network
// (wallet.MainnetGlobalID or wallet.TestnetGlobalID).
func NewV5R1(pub ed25519.PublicKey, networkGlobalID int32) (*V5R1, error) {
	w, err := wallet.FromPubKeyWithOptions(pub, wallet.ConfigV5R1Final{NetworkGlobalID: networkGlobalID, Workchain: 0})
	if err != nil {
		return nil, fmt.Errorf("gas wallet: %w", err)
	}
	return &V5R1{cfg: wallet.ConfigV5R1Final{NetworkGlobalID: networkGlobalID}, pub: pub, subwallet: w.GetSubwalletID(), addr: w.WalletAddress()}, nil
}

// Address is the wallet's address.
func (w *V5R1) Address() *address.Address { return w.addr }

// StateInit is the wallet's StateInit (sent with its first external).
func (w *V5R1) StateInit() (*tlb.StateInit, error) {
	return wallet.GetStateInit(w.pub, w.cfg, w.subwallet)
}

// External builds and signs the wallet's external message carrying msgs
// with the given seqno and valid_until (chain time; tonutils-go's own
// builder would take valid_until from the local clock).
func (w *V5R1) External(key ed25519.PrivateKey, seqno, validUntil uint32, withStateInit bool, msgs []*wallet.Message) (*tlb.ExternalMessage, error) {
	if !key.Public().(ed25519.PublicKey).Equal(w.pub) {
		return nil, errors.New("gas wallet: the key does not match the wallet")
	}
	actions, err := wallet.PackV5OutActions(msgs)
	if err != nil {
		return nil, fmt.Errorf("gas wallet: %w", err)
	}
	id := wallet.V5R1ID{NetworkGlobalID: w.cfg.NetworkGlobalID, WorkChain: 0, SubwalletNumber: uint16(w.subwallet)}
	payload := cell.BeginCell().MustStoreUInt(0x7369676e, 32).MustStoreUInt(uint64(id.Serialized()), 32).
		MustStoreUInt(uint64(validUntil), 32).MustStoreUInt(uint64(seqno), 32).MustStoreBuilder(actions)
	body := cell.BeginCell().MustStoreBuilder(payload).MustStoreSlice(payload.EndCell().Sign(key), 512).EndCell()
	ext := &tlb.ExternalMessage{DstAddr: w.addr, Body: body}
	if withStateInit {
		if ext.StateInit, err = w.StateInit(); err != nil {
			return nil, fmt.Errorf("gas wallet: %w", err)
		}
	}
	return ext, nil
}

// V5R1Seqno reads the seqno from a v5r1 wallet's data
// (is_signature_allowed:1 seqno:32 ...).
func V5R1Seqno(data *cell.Cell) (uint32, error) {
	if data == nil {
		return 0, errors.New("wallet v5r1 data: missing")
	}
	s, err := data.BeginParse()
	if err != nil {
		return 0, fmt.Errorf("wallet v5r1 data: %w", err)
	}
	if _, err := s.LoadBoolBit(); err != nil {
		return 0, fmt.Errorf("wallet v5r1 data: %w", err)
	}
	v, err := s.LoadUInt(32)
	if err != nil {
		return 0, fmt.Errorf("wallet v5r1 data: %w", err)
	}
	return uint32(v), nil
}
