package api

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

// Signer signs one receipt per served request. It fills in the version,
// the channel and the sequence number; the API fills in the rest.
type Signer interface {
	Sign(r payment.Receipt) (payment.SignedReceipt, error)
}

// Prices are nanoTON per one million tokens.
type Prices struct {
	InPer1M, OutPer1M uint64
}

// KeySigner signs receipts with the worker's ed25519 key for one payment
// channel, numbering them from a starting sequence number without gaps
// (a number is used only by a receipt that was signed).
type KeySigner struct {
	key     ed25519.PrivateKey
	channel string

	mu   sync.Mutex
	next uint64
}

// NewKeySigner returns a signer for channel (raw form "0:<64 hex>") whose
// first receipt has sequence number next (≥ 1).
func NewKeySigner(key ed25519.PrivateKey, channel string, next uint64) (*KeySigner, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("receipt signer: private key of %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if _, err := payment.ParseChannelAddress(channel); err != nil {
		return nil, fmt.Errorf("receipt signer: %w", err)
	}
	if next == 0 || next > payment.MaxSafeInt {
		return nil, fmt.Errorf("receipt signer: first sequence number %d: want 1 to 2^53-1", next)
	}
	return &KeySigner{key: key, channel: channel, next: next}, nil
}

// Public is the key receipts verify with.
func (k *KeySigner) Public() ed25519.PublicKey { return k.key.Public().(ed25519.PublicKey) }

// Sign implements Signer.
func (k *KeySigner) Sign(r payment.Receipt) (payment.SignedReceipt, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	r.Version, r.Channel, r.Seq = payment.ReceiptVersion, k.channel, k.next
	sr, err := payment.SignReceipt(k.key, r)
	if err != nil {
		return payment.SignedReceipt{}, err
	}
	k.next++
	return sr, nil
}

// receiptFor builds the unsigned receipt of one served request.
func (a *API) receiptFor(requestID string, in, out uint64) (payment.Receipt, error) {
	amt, err := payment.ReceiptAmount(in, out, a.cfg.Prices.InPer1M, a.cfg.Prices.OutPer1M)
	if err != nil {
		return payment.Receipt{}, err
	}
	h := sha256.Sum256([]byte(requestID))
	return payment.Receipt{
		RequestID:     hex.EncodeToString(h[:]),
		Model:         a.cfg.Model,
		TokensIn:      in,
		TokensOut:     out,
		PriceInPer1M:  fmt.Sprint(a.cfg.Prices.InPer1M),
		PriceOutPer1M: fmt.Sprint(a.cfg.Prices.OutPer1M),
		Amount:        fmt.Sprint(amt),
		IssuedAt:      a.cfg.Now().Unix(),
	}, nil
}
