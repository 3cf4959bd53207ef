package payout

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

// ReceiptSigner signs the worker's usage receipts (one per served request)
// with the channel key B, numbering them from the ledger: every receipt is
// journaled (fsynced) before Sign returns it, so a restart continues the
// numbering where the last signed receipt left it and never reuses a
// sequence number. Its method set is agent/api's Signer.
//
// Sign holds the ledger's lock across the signature and the append, so
// concurrent requests are numbered one after another. Cost: every receipt
// waits for one fsync of the journal (the disk's flush latency, from tens
// of microseconds on NVMe to milliseconds on network storage), and
// requests that finish together queue behind each other's fsync; one in
// DefaultCompactEvery also pays a compaction.
type ReceiptSigner struct {
	l       *Ledger
	key     KeyProvider
	channel string
	// checked: the bound channel and key B were verified (under l.mu).
	checked bool
}

// NewReceiptSigner returns the signer for the channel at channelRaw (raw
// form "0:<64 hex>") with the channel key B. The ledger must be bound to
// that channel (Bind, done by NewSettler) before the first Sign; when it
// is bound already, the channel and key B are checked here.
func NewReceiptSigner(l *Ledger, key KeyProvider, channelRaw string) (*ReceiptSigner, error) {
	if l == nil || key == nil {
		return nil, errors.New("receipt signer: a ledger and the channel key are required")
	}
	if _, err := payment.ParseChannelAddress(channelRaw); err != nil {
		return nil, fmt.Errorf("receipt signer: %w", err)
	}
	s := &ReceiptSigner{l: l, key: key, channel: channelRaw}
	if _, err := s.privateKey(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	bound := l.st.Channel != nil
	l.mu.Unlock()
	if bound {
		if err := s.checkBound(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *ReceiptSigner) privateKey() (ed25519.PrivateKey, error) {
	k, err := s.key.PrivateKey()
	if err != nil {
		return nil, fmt.Errorf("receipt signer: channel key: %w", err)
	}
	if len(k) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("receipt signer: channel key of %d bytes, want %d", len(k), ed25519.PrivateKeySize)
	}
	return k, nil
}

// checkBound verifies the ledger's channel is s.channel and its key B is
// s.key's; the caller must not hold the ledger's lock.
func (s *ReceiptSigner) checkBound() error {
	k, err := s.privateKey()
	if err != nil {
		return err
	}
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if err := s.checkLocked(k); err != nil {
		return err
	}
	s.checked = true
	return nil
}

func (s *ReceiptSigner) checkLocked(k ed25519.PrivateKey) error {
	c := s.l.st.Channel
	if c == nil {
		return fmt.Errorf("receipt signer: ledger %s is not bound to a channel yet (Bind it first)", s.l.path)
	}
	if c.Address != s.channel {
		return fmt.Errorf("receipt signer: ledger %s is bound to channel %s, not %s", s.l.path, c.Address, s.channel)
	}
	cfg, err := c.Config()
	if err != nil {
		return err
	}
	if !k.Public().(ed25519.PublicKey).Equal(cfg.KeyB) {
		return fmt.Errorf("receipt signer: the key is not channel %s's key B", c.Address)
	}
	return nil
}

// Sign fills in the version, the channel and the next sequence number,
// signs r, journals it (fsynced) and only then returns it. On any error
// the sequence number is not consumed: the next receipt takes it.
func (s *ReceiptSigner) Sign(r payment.Receipt) (payment.SignedReceipt, error) {
	k, err := s.privateKey()
	if err != nil {
		return payment.SignedReceipt{}, err
	}
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if !s.checked {
		if err := s.checkLocked(k); err != nil {
			return payment.SignedReceipt{}, err
		}
		s.checked = true
	}
	r.Version, r.Channel, r.Seq = payment.ReceiptVersion, s.channel, l.st.Receipts+1
	sr, err := payment.SignReceipt(k, r)
	if err != nil {
		return payment.SignedReceipt{}, err
	}
	rec := ReceiptRecord{Seq: r.Seq, Channel: r.Channel, RequestID: r.RequestID, TokensIn: r.TokensIn,
		TokensOut: r.TokensOut, Amount: r.Amount, IssuedAt: r.IssuedAt}
	if err := l.append(kindReceipt, rec); err != nil {
		return payment.SignedReceipt{}, fmt.Errorf("receipt %d: journal: %w", r.Seq, err)
	}
	return sr, nil
}
