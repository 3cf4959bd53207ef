package payment

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
)

// PaymentState is what the proxy sends the worker after requests (and on
// reconnect): its latest signed cumulative state for the channel. The
// state's Sent is the total the proxy owes the worker, in nanoTON.
type PaymentState struct {
	// Channel is the channel's address, raw form "0:<64 hex>".
	Channel string `json:"channel"`
	// State is the base64 (standard, padded) BOC of the proxy-signed
	// semi-channel state (signed_schs: signature, then a ref to
	// semichannel_state#43685374).
	State string `json:"state"`
}

// NewPaymentState wraps a signed state for transport (proxy side).
func NewPaymentState(cfg channel.Config, s channel.SignedSemiChannel) (PaymentState, error) {
	addr, err := cfg.Address()
	if err != nil {
		return PaymentState{}, err
	}
	boc, err := s.BOC()
	if err != nil {
		return PaymentState{}, err
	}
	return PaymentState{Channel: RawAddress(addr), State: base64.StdEncoding.EncodeToString(boc)}, nil
}

// DecodePaymentState parses a payment state from the wire (the BOC inside
// is parsed by CheckState).
func DecodePaymentState(b []byte) (PaymentState, error) {
	var ps PaymentState
	if err := decodeStrict("payment state", b, &ps); err != nil {
		return PaymentState{}, err
	}
	if _, err := ParseChannelAddress(ps.Channel); err != nil {
		return PaymentState{}, fmt.Errorf("payment state: %w", err)
	}
	if _, err := ps.Signed(); err != nil {
		return PaymentState{}, err
	}
	return ps, nil
}

// Signed parses the signed state (without checking it).
func (ps PaymentState) Signed() (channel.SignedSemiChannel, error) {
	boc, err := base64.StdEncoding.Strict().DecodeString(ps.State)
	if err != nil {
		return channel.SignedSemiChannel{}, fmt.Errorf("payment state for %s: state is not base64: %v", ps.Channel, err)
	}
	s, err := channel.ParseSignedSemiChannelBOC(boc)
	if err != nil {
		return channel.SignedSemiChannel{}, fmt.Errorf("payment state for %s: %w", ps.Channel, err)
	}
	return s, nil
}

// CheckState checks a payment state from the proxy against the channel
// configuration and the highest state accepted so far (prev, nil for the
// first): the channel address and id are this channel's, the signature is
// A's, there are no conditional payments, the seqno is strictly greater
// and the cumulative sent amount (nanoTON) does not decrease. It returns
// the parsed signed state.
func CheckState(prev *channel.SignedSemiChannel, next PaymentState, cfg channel.Config) (channel.SignedSemiChannel, error) {
	addr, err := cfg.Address()
	if err != nil {
		return channel.SignedSemiChannel{}, err
	}
	if want := RawAddress(addr); next.Channel != want {
		return channel.SignedSemiChannel{}, fmt.Errorf("payment state names channel %s, not this channel %s", next.Channel, want)
	}
	s, err := next.Signed()
	if err != nil {
		return channel.SignedSemiChannel{}, err
	}
	d := s.State.Data
	if s.State.ID != cfg.ID {
		return channel.SignedSemiChannel{}, fmt.Errorf("payment state seqno %d is for channel id %s, not %s", d.Seqno, s.State.ID, cfg.ID)
	}
	if err := s.Verify(cfg.KeyA); err != nil {
		return channel.SignedSemiChannel{}, fmt.Errorf("payment state: %w", err)
	}
	if d.ConditionalsHash != ([32]byte{}) {
		return channel.SignedSemiChannel{}, fmt.Errorf("payment state seqno %d carries conditional payments (hash %x): not supported",
			d.Seqno, d.ConditionalsHash[:])
	}
	if d.Sent == nil {
		return channel.SignedSemiChannel{}, fmt.Errorf("payment state seqno %d: no sent amount", d.Seqno)
	}
	if prev != nil {
		p := prev.State.Data
		if d.Seqno <= p.Seqno {
			return channel.SignedSemiChannel{}, fmt.Errorf("payment state seqno %d does not exceed the accepted seqno %d", d.Seqno, p.Seqno)
		}
		if p.Sent != nil && d.Sent.Cmp(p.Sent) < 0 {
			return channel.SignedSemiChannel{}, fmt.Errorf("payment state seqno %d: sent %s nanoTON is below the accepted %s (seqno %d)",
				d.Seqno, d.Sent, p.Sent, p.Seqno)
		}
	}
	return s, nil
}

// CommitRequest is the worker asking the proxy to co-sign a cooperative
// commit that pays the worker's balance to the owner.
type CommitRequest struct {
	// Channel is the channel's address, raw form.
	Channel string `json:"channel"`
	// Commit is the base64 BOC of the cooperative commit message body
	// (op 0x076bfdf1, ref sig A, ref sig B, cooperative_commit_inner) with
	// B's signature set and A's all zero.
	Commit string `json:"commit"`
}

// CommitResponse is the proxy's signature over the requested commit.
type CommitResponse struct {
	Channel string `json:"channel"`
	// CommitHash is the hex hash of the signed cell
	// (cooperative_commit_inner) the signature covers.
	CommitHash string `json:"commit_hash"`
	// SignatureA is A's ed25519 signature over that cell, base64.
	SignatureA string `json:"signature_a"`
}

// NewCommitRequest signs c with the worker's key B and wraps it.
func NewCommitRequest(cfg channel.Config, keyB ed25519.PrivateKey, c channel.Commit) (CommitRequest, channel.SignedCommit, error) {
	addr, err := cfg.Address()
	if err != nil {
		return CommitRequest{}, channel.SignedCommit{}, err
	}
	if c.ID != cfg.ID {
		return CommitRequest{}, channel.SignedCommit{}, fmt.Errorf("commit for channel id %s on channel %s", c.ID, cfg.ID)
	}
	sigB, err := channel.SignBody(keyB, c)
	if err != nil {
		return CommitRequest{}, channel.SignedCommit{}, err
	}
	sc := channel.SignedCommit{Commit: c, SigB: sigB}
	body, err := sc.Body()
	if err != nil {
		return CommitRequest{}, channel.SignedCommit{}, err
	}
	return CommitRequest{Channel: RawAddress(addr), Commit: base64.StdEncoding.EncodeToString(body.ToBOC())}, sc, nil
}

// DecodeCommitRequest parses a commit request from the wire.
func DecodeCommitRequest(b []byte) (CommitRequest, error) {
	var r CommitRequest
	if err := decodeStrict("commit request", b, &r); err != nil {
		return CommitRequest{}, err
	}
	if _, err := ParseChannelAddress(r.Channel); err != nil {
		return CommitRequest{}, fmt.Errorf("commit request: %w", err)
	}
	if _, err := r.parse(); err != nil {
		return CommitRequest{}, err
	}
	return r, nil
}

func (r CommitRequest) parse() (channel.SignedCommit, error) {
	boc, err := base64.StdEncoding.Strict().DecodeString(r.Commit)
	if err != nil {
		return channel.SignedCommit{}, fmt.Errorf("commit request for %s: commit is not base64: %v", r.Channel, err)
	}
	sc, err := channel.ParseCommitBOC(boc)
	if err != nil {
		return channel.SignedCommit{}, fmt.Errorf("commit request for %s: %w", r.Channel, err)
	}
	if sc.SigA != ([64]byte{}) {
		return channel.SignedCommit{}, fmt.Errorf("commit request for %s: A's signature slot is not empty", r.Channel)
	}
	return sc, nil
}

// Open is the proxy's check of a request: this channel, this id, B's
// signature valid. The proxy must then apply its own policy (SentA equals
// the sent amount of a state it signed with seqno SeqnoA, SentB and
// WithdrawA as on chain, WithdrawB what ApplyCommit allows) before it
// signs with SignCommit.
func (r CommitRequest) Open(cfg channel.Config) (channel.SignedCommit, error) {
	addr, err := cfg.Address()
	if err != nil {
		return channel.SignedCommit{}, err
	}
	if want := RawAddress(addr); r.Channel != want {
		return channel.SignedCommit{}, fmt.Errorf("commit request names channel %s, not %s", r.Channel, want)
	}
	sc, err := r.parse()
	if err != nil {
		return channel.SignedCommit{}, err
	}
	if sc.ID != cfg.ID {
		return channel.SignedCommit{}, fmt.Errorf("commit request for channel id %s on channel %s", sc.ID, cfg.ID)
	}
	if err := channel.VerifyBody(cfg.KeyB, sc.Commit, sc.SigB); err != nil {
		return channel.SignedCommit{}, fmt.Errorf("commit request on channel %s, signer B: %w", cfg.ID, err)
	}
	return sc, nil
}

// SignCommit is the proxy's answer: A's signature over c.
func SignCommit(cfg channel.Config, keyA ed25519.PrivateKey, c channel.Commit) (CommitResponse, error) {
	addr, err := cfg.Address()
	if err != nil {
		return CommitResponse{}, err
	}
	inner, err := c.SignedCell()
	if err != nil {
		return CommitResponse{}, err
	}
	sig, err := channel.SignBody(keyA, c)
	if err != nil {
		return CommitResponse{}, err
	}
	return CommitResponse{Channel: RawAddress(addr), CommitHash: hex.EncodeToString(inner.Hash()),
		SignatureA: base64.StdEncoding.EncodeToString(sig[:])}, nil
}

// DecodeCommitResponse parses a commit response from the wire.
func DecodeCommitResponse(b []byte) (CommitResponse, error) {
	var r CommitResponse
	if err := decodeStrict("commit response", b, &r); err != nil {
		return CommitResponse{}, err
	}
	if _, err := ParseChannelAddress(r.Channel); err != nil {
		return CommitResponse{}, fmt.Errorf("commit response: %w", err)
	}
	if !hex64RE.MatchString(r.CommitHash) {
		return CommitResponse{}, fmt.Errorf("commit response for %s: commit hash %q is not 64 lowercase hex", r.Channel, r.CommitHash)
	}
	if _, err := r.sig(); err != nil {
		return CommitResponse{}, err
	}
	return r, nil
}

func (r CommitResponse) sig() ([64]byte, error) {
	var sig [64]byte
	b, err := base64.StdEncoding.Strict().DecodeString(r.SignatureA)
	if err != nil || len(b) != 64 {
		return sig, fmt.Errorf("commit response for %s: signature is not 64 bytes of base64", r.Channel)
	}
	copy(sig[:], b)
	return sig, nil
}

// Complete checks the proxy's response against the commit the worker
// asked for (channel, hash, A's signature) and returns the commit with
// both signatures: the message body to send.
func (r CommitResponse) Complete(cfg channel.Config, sc channel.SignedCommit) (channel.SignedCommit, error) {
	addr, err := cfg.Address()
	if err != nil {
		return channel.SignedCommit{}, err
	}
	if want := RawAddress(addr); r.Channel != want {
		return channel.SignedCommit{}, fmt.Errorf("commit response names channel %s, not %s", r.Channel, want)
	}
	inner, err := sc.SignedCell()
	if err != nil {
		return channel.SignedCommit{}, err
	}
	if h, _ := hex.DecodeString(r.CommitHash); !bytes.Equal(h, inner.Hash()) {
		return channel.SignedCommit{}, fmt.Errorf("commit response on channel %s signs commit %s, not the requested %x", cfg.ID, r.CommitHash, inner.Hash())
	}
	sig, err := r.sig()
	if err != nil {
		return channel.SignedCommit{}, err
	}
	if err := channel.VerifyBody(cfg.KeyA, sc.Commit, sig); err != nil {
		return channel.SignedCommit{}, fmt.Errorf("commit response on channel %s, signer A: %w", cfg.ID, err)
	}
	sc.SigA = sig
	return sc, nil
}
