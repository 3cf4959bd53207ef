package channel

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/big"

	"github.com/xssnick/tonutils-go/tvm/cell"
)

// Operation codes and signed-body tags (contracts/schema.tlb).
const (
	OpTopUp                    = 0x593e3893
	OpInit                     = 0x79ae99b5
	OpCooperativeClose         = 0xd2b1eeeb
	OpCooperativeCommit        = 0x076bfdf1
	OpStartUncooperativeClose  = 0x8175e15d
	OpChallengeQuarantine      = 0x9a77c0db
	OpFinishUncooperativeClose = 0x25432a91

	TagInit                    = 0x481ebc44
	TagCooperativeClose        = 0x8243e9a3
	TagCooperativeCommit       = 0x4a390cac
	TagStartUncooperativeClose = 0x8c623692
	TagChallengeQuarantine     = 0xb8a21379
	TagState                   = 0x43685374

	// Bodies of the contract's payouts and excess returns.
	OpWithdrawNotification = 0xa32f0b3c
	OpClosedNotification   = 0xdddc88ba
	OpExcesses             = 0xd53276db
)

// ErrBadSignature is wrapped by every signature verification failure.
var ErrBadSignature = errors.New("bad signature")

// TopUpBody is the body of a top-up: the attached value minus FeeTopUp is
// added to the deposit of A (isA) or B.
func TopUpBody(isA bool) *cell.Cell {
	return cell.BeginCell().MustStoreUInt(OpTopUp, 32).MustStoreBoolBit(isA).EndCell()
}

// InitBody is the body that initializes a deployed channel, signed by
// either party's key (isA says which). The deploying message must carry
// at least the configured storage fee.
func InitBody(key ed25519.PrivateKey, isA bool, id ID) (*cell.Cell, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("init channel %s: private key of %d bytes", id, len(key))
	}
	signed := cell.BeginCell().MustStoreUInt(TagInit, 32).MustStoreSlice(id[:], 128).EndCell()
	return cell.BeginCell().MustStoreUInt(OpInit, 32).MustStoreBoolBit(isA).
		MustStoreSlice(signed.Sign(key), 512).MustStoreBuilder(signed.ToBuilder()).EndCell(), nil
}

// FinishUncooperativeCloseBody is the body that pays out a quarantined
// state once quarantine and conditional-close periods are over. Anyone
// may send it.
func FinishUncooperativeCloseBody() *cell.Cell {
	return cell.BeginCell().MustStoreUInt(OpFinishUncooperativeClose, 32).EndCell()
}

// --- semi-channel state: what a party signs for each payment ---

// SemiChannel is one party's signed view (semichannel_state#43685374):
// its own SemiState and, optionally, the last state of the counterparty
// it has seen.
type SemiChannel struct {
	ID           ID
	Data         SemiState
	Counterparty *SemiState
}

// Cell serializes the state; its hash is what the party signs.
func (s SemiChannel) Cell() (*cell.Cell, error) {
	b := cell.BeginCell().MustStoreUInt(TagState, 32).MustStoreSlice(s.ID[:], 128)
	if err := storeSemiState(b, "semi-channel", s.Data); err != nil {
		return nil, err
	}
	if s.Counterparty != nil {
		cb := cell.BeginCell()
		if err := storeSemiState(cb, "semi-channel counterparty", *s.Counterparty); err != nil {
			return nil, err
		}
		b.MustStoreMaybeRef(cb.EndCell())
	} else {
		b.MustStoreMaybeRef(nil)
	}
	return b.EndCell(), nil
}

// SignedSemiChannel is a semi-channel state with its owner's signature
// (signed_schs#_): the proxy-signed cumulative payment state when the
// owner is A.
type SignedSemiChannel struct {
	Signature [64]byte
	State     SemiChannel
}

// Sign signs a semi-channel state with the party's key.
func Sign(key ed25519.PrivateKey, s SemiChannel) (SignedSemiChannel, error) {
	if len(key) != ed25519.PrivateKeySize {
		return SignedSemiChannel{}, fmt.Errorf("sign channel %s state seqno %d: private key of %d bytes", s.ID, s.Data.Seqno, len(key))
	}
	c, err := s.Cell()
	if err != nil {
		return SignedSemiChannel{}, err
	}
	out := SignedSemiChannel{State: s}
	copy(out.Signature[:], c.Sign(key))
	return out, nil
}

// Verify checks the signature against the party's public key.
func (s SignedSemiChannel) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("channel %s state seqno %d: public key of %d bytes", s.State.ID, s.State.Data.Seqno, len(pub))
	}
	c, err := s.State.Cell()
	if err != nil {
		return err
	}
	if !c.Verify(pub, s.Signature[:]) {
		return fmt.Errorf("channel %s state seqno %d: %w for key %x", s.State.ID, s.State.Data.Seqno, ErrBadSignature, []byte(pub))
	}
	return nil
}

// Cell serializes the signed state.
func (s SignedSemiChannel) Cell() (*cell.Cell, error) {
	st, err := s.State.Cell()
	if err != nil {
		return nil, err
	}
	return cell.BeginCell().MustStoreSlice(s.Signature[:], 512).MustStoreRef(st).EndCell(), nil
}

// BOC serializes the signed state for transport.
func (s SignedSemiChannel) BOC() ([]byte, error) {
	c, err := s.Cell()
	if err != nil {
		return nil, err
	}
	return c.ToBOC(), nil
}

// ParseSignedSemiChannel parses a signed state. It does not check the
// signature: call Verify with the expected signer's key.
func ParseSignedSemiChannel(c *cell.Cell) (SignedSemiChannel, error) {
	var out SignedSemiChannel
	s, err := open("signed state", c)
	if err != nil {
		return out, err
	}
	if out.Signature, err = loadSig("signed state", s); err != nil {
		return out, err
	}
	ss, _, err := ref("signed state body", s)
	if err != nil {
		return out, err
	}
	if err := done("signed state", s); err != nil {
		return out, err
	}
	if err := loadTag("signed state body", ss, TagState); err != nil {
		return out, err
	}
	if out.State.ID, err = loadID("signed state body", ss); err != nil {
		return out, err
	}
	if out.State.Data, err = loadSemiState("signed state body", ss); err != nil {
		return out, err
	}
	hasCP, err := loadBool("signed state counterparty flag", ss)
	if err != nil {
		return out, err
	}
	if hasCP {
		cs, _, err := ref("signed state counterparty", ss)
		if err != nil {
			return out, err
		}
		cp, err := loadSemiState("signed state counterparty", cs)
		if err != nil {
			return out, err
		}
		if err := done("signed state counterparty", cs); err != nil {
			return out, err
		}
		out.State.Counterparty = &cp
	}
	return out, done("signed state body", ss)
}

// ParseSignedSemiChannelBOC parses a signed state received as a BOC.
func ParseSignedSemiChannelBOC(b []byte) (SignedSemiChannel, error) {
	c, err := DecodeBOC("signed state", b)
	if err != nil {
		return SignedSemiChannel{}, err
	}
	return ParseSignedSemiChannel(c)
}

// --- cooperative commit and close: both parties sign one body ---

// Commit is a cooperative commit (cooperative_commit_inner#4a390cac): it
// records both parties' cumulative sent amounts and moves the cumulative
// withdrawals; the contract pays WithdrawB − (withdrawn B so far) to
// DestB and the same for A, and the channel stays open. Both seqnos must
// exceed the committed ones.
type Commit struct {
	ID                   ID
	SentA, SentB         *big.Int
	SeqnoA, SeqnoB       uint64
	WithdrawA, WithdrawB *big.Int
}

// Close is a cooperative close (cooperative_close_inner#8243e9a3): it pays
// both balances out and resets the channel.
type Close struct {
	ID             ID
	SentA, SentB   *big.Int
	SeqnoA, SeqnoB uint64
}

// SignedCell returns the cell both parties sign.
func (c Commit) SignedCell() (*cell.Cell, error) {
	b := cell.BeginCell().MustStoreUInt(TagCooperativeCommit, 32).MustStoreSlice(c.ID[:], 128)
	for _, f := range []struct {
		n string
		v *big.Int
	}{{"sent A", c.SentA}, {"sent B", c.SentB}} {
		if err := storeCoins(b, "commit "+f.n, f.v); err != nil {
			return nil, err
		}
	}
	b.MustStoreUInt(c.SeqnoA, 64).MustStoreUInt(c.SeqnoB, 64)
	for _, f := range []struct {
		n string
		v *big.Int
	}{{"withdraw A", c.WithdrawA}, {"withdraw B", c.WithdrawB}} {
		if err := storeCoins(b, "commit "+f.n, f.v); err != nil {
			return nil, err
		}
	}
	return b.EndCell(), nil
}

// SignedCell returns the cell both parties sign.
func (c Close) SignedCell() (*cell.Cell, error) {
	b := cell.BeginCell().MustStoreUInt(TagCooperativeClose, 32).MustStoreSlice(c.ID[:], 128)
	if err := storeCoins(b, "close sent A", c.SentA); err != nil {
		return nil, err
	}
	if err := storeCoins(b, "close sent B", c.SentB); err != nil {
		return nil, err
	}
	return b.MustStoreUInt(c.SeqnoA, 64).MustStoreUInt(c.SeqnoB, 64).EndCell(), nil
}

type signable interface{ SignedCell() (*cell.Cell, error) }

// SignBody signs a Commit or Close with one party's key.
func SignBody(key ed25519.PrivateKey, m signable) ([64]byte, error) {
	var sig [64]byte
	if len(key) != ed25519.PrivateKeySize {
		return sig, fmt.Errorf("sign %T: private key of %d bytes", m, len(key))
	}
	c, err := m.SignedCell()
	if err != nil {
		return sig, err
	}
	copy(sig[:], c.Sign(key))
	return sig, nil
}

// VerifyBody checks one party's signature over a Commit or Close.
func VerifyBody(pub ed25519.PublicKey, m signable, sig [64]byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("verify %T: public key of %d bytes", m, len(pub))
	}
	c, err := m.SignedCell()
	if err != nil {
		return err
	}
	if !c.Verify(pub, sig[:]) {
		return fmt.Errorf("%T: %w for key %x", m, ErrBadSignature, []byte(pub))
	}
	return nil
}

func twoSigBody(op uint32, m signable, sigA, sigB [64]byte) (*cell.Cell, error) {
	inner, err := m.SignedCell()
	if err != nil {
		return nil, err
	}
	ra := cell.BeginCell().MustStoreSlice(sigA[:], 512).EndCell()
	rb := cell.BeginCell().MustStoreSlice(sigB[:], 512).EndCell()
	return cell.BeginCell().MustStoreUInt(uint64(op), 32).MustStoreRef(ra).MustStoreRef(rb).
		MustStoreBuilder(inner.ToBuilder()).EndCell(), nil
}

// SignedCommit is a Commit with both signatures: the message body.
type SignedCommit struct {
	Commit
	SigA, SigB [64]byte
}

// Body returns the internal message body for the channel contract.
func (s SignedCommit) Body() (*cell.Cell, error) {
	return twoSigBody(OpCooperativeCommit, s.Commit, s.SigA, s.SigB)
}

// Verify checks both signatures.
func (s SignedCommit) Verify(keyA, keyB ed25519.PublicKey) error {
	if err := VerifyBody(keyA, s.Commit, s.SigA); err != nil {
		return fmt.Errorf("commit on channel %s, signer A: %w", s.ID, err)
	}
	if err := VerifyBody(keyB, s.Commit, s.SigB); err != nil {
		return fmt.Errorf("commit on channel %s, signer B: %w", s.ID, err)
	}
	return nil
}

// SignedClose is a Close with both signatures: the message body.
type SignedClose struct {
	Close
	SigA, SigB [64]byte
}

// Body returns the internal message body for the channel contract.
func (s SignedClose) Body() (*cell.Cell, error) {
	return twoSigBody(OpCooperativeClose, s.Close, s.SigA, s.SigB)
}

func loadTwoSigs(what string, s *cell.Slice, op uint32) (a, b [64]byte, err error) {
	if err = loadTag(what+" op", s, op); err != nil {
		return
	}
	for i, dst := range []*[64]byte{&a, &b} {
		rs, _, e := ref(fmt.Sprintf("%s signature %c", what, 'A'+i), s)
		if e != nil {
			return a, b, e
		}
		if *dst, e = loadSig(what, rs); e != nil {
			return a, b, e
		}
		if e = done(what+" signature", rs); e != nil {
			return a, b, e
		}
	}
	return
}

// ParseCommitBody parses a cooperative commit body (as exchanged between
// the parties for co-signing, or sent on chain). It does not verify the
// signatures: call Verify. An all-zero signature marks one not yet given.
func ParseCommitBody(c *cell.Cell) (SignedCommit, error) {
	var out SignedCommit
	s, err := open("commit", c)
	if err != nil {
		return out, err
	}
	if out.SigA, out.SigB, err = loadTwoSigs("commit", s, OpCooperativeCommit); err != nil {
		return out, err
	}
	if err = loadTag("commit body", s, TagCooperativeCommit); err != nil {
		return out, err
	}
	if out.ID, err = loadID("commit", s); err != nil {
		return out, err
	}
	if out.SentA, err = loadCoins("commit sent A", s); err != nil {
		return out, err
	}
	if out.SentB, err = loadCoins("commit sent B", s); err != nil {
		return out, err
	}
	if out.SeqnoA, err = loadU("commit seqno A", s, 64); err != nil {
		return out, err
	}
	if out.SeqnoB, err = loadU("commit seqno B", s, 64); err != nil {
		return out, err
	}
	if out.WithdrawA, err = loadCoins("commit withdraw A", s); err != nil {
		return out, err
	}
	if out.WithdrawB, err = loadCoins("commit withdraw B", s); err != nil {
		return out, err
	}
	return out, done("commit", s)
}

// ParseCommitBOC parses a cooperative commit body received as a BOC.
func ParseCommitBOC(b []byte) (SignedCommit, error) {
	c, err := DecodeBOC("commit", b)
	if err != nil {
		return SignedCommit{}, err
	}
	return ParseCommitBody(c)
}

// --- uncooperative close ---

func quarantineBody(op, tag uint32, what string, key ed25519.PrivateKey, byA bool, id ID, a, b SignedSemiChannel) (*cell.Cell, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%s on channel %s: private key of %d bytes", what, id, len(key))
	}
	ac, err := a.Cell()
	if err != nil {
		return nil, fmt.Errorf("%s on channel %s, state A: %w", what, id, err)
	}
	bc, err := b.Cell()
	if err != nil {
		return nil, fmt.Errorf("%s on channel %s, state B: %w", what, id, err)
	}
	inner := cell.BeginCell().MustStoreUInt(uint64(tag), 32).MustStoreSlice(id[:], 128).
		MustStoreRef(ac).MustStoreRef(bc).EndCell()
	return cell.BeginCell().MustStoreUInt(uint64(op), 32).MustStoreBoolBit(byA).
		MustStoreSlice(inner.Sign(key), 512).MustStoreBuilder(inner.ToBuilder()).EndCell(), nil
}

// StartUncooperativeCloseBody starts an uncooperative close with both
// parties' latest signed states (a signed by A, b signed by B); the
// sender signs the message with its own key (byA says which party).
// After Closing.QuarantineDuration + ConditionalCloseDuration,
// FinishUncooperativeCloseBody pays the balances out.
func StartUncooperativeCloseBody(key ed25519.PrivateKey, byA bool, id ID, a, b SignedSemiChannel) (*cell.Cell, error) {
	return quarantineBody(OpStartUncooperativeClose, TagStartUncooperativeClose, "start uncooperative close", key, byA, id, a, b)
}

// ChallengeQuarantineBody replaces a quarantined state with newer signed
// states during the quarantine; only the party that did not start the
// close may challenge.
func ChallengeQuarantineBody(key ed25519.PrivateKey, byA bool, id ID, a, b SignedSemiChannel) (*cell.Cell, error) {
	return quarantineBody(OpChallengeQuarantine, TagChallengeQuarantine, "challenge quarantine", key, byA, id, a, b)
}

// --- payouts ---

// Notification is the body of a payout the contract sends to DestA/DestB.
type Notification struct {
	// Closed is true for a close payout, false for a withdrawal.
	Closed bool
	ID     ID
}

// ParseNotification parses the body of a payout from a channel.
func ParseNotification(c *cell.Cell) (Notification, error) {
	var n Notification
	s, err := open("payout notification", c)
	if err != nil {
		return n, err
	}
	op, err := loadU("payout notification op", s, 32)
	if err != nil {
		return n, err
	}
	switch op {
	case OpWithdrawNotification:
	case OpClosedNotification:
		n.Closed = true
	default:
		return n, fmt.Errorf("payout notification: op %#08x is neither withdraw (%#08x) nor closed (%#08x)", op, OpWithdrawNotification, OpClosedNotification)
	}
	if n.ID, err = loadID("payout notification", s); err != nil {
		return n, err
	}
	return n, done("payout notification", s)
}
