package channel

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// ID is the 128-bit channel id; both parties sign it into every message.
type ID [16]byte

// String returns the id in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ClosingConfig is the contract's closing configuration (conf#_ in the TL-B).
type ClosingConfig struct {
	// QuarantineDuration is how long, in seconds, a state submitted by an
	// uncooperative close can be challenged.
	QuarantineDuration uint32
	// MisbehaviorFine, in nanoTON, is added to the sent amount of a party
	// caught committing an outdated state.
	MisbehaviorFine *big.Int
	// ConditionalCloseDuration is how long, in seconds after the
	// quarantine, conditionals may still be settled.
	ConditionalCloseDuration uint32
}

// PaymentConfig is the contract's payment configuration for a Toncoin
// channel (payment_conf#_ with payment_type_ton$0).
type PaymentConfig struct {
	// StorageFee, in nanoTON, is kept on the contract on top of the
	// parties' balances; the contract requires more than 0.01 TON.
	StorageFee *big.Int
	// DestA receives A's withdrawals and A's share on close.
	DestA *address.Address
	// DestB receives B's withdrawals and B's share on close: the GPU
	// owner's wallet, so earnings go straight to the owner.
	DestB *address.Address
}

// SemiState is one party's half of the off-chain state (sc_body#_):
// seqno, the cumulative amount the party has sent to the other, and the
// hash of its conditional payments (all zero when there are none).
type SemiState struct {
	Seqno            uint64
	Sent             *big.Int
	ConditionalsHash [32]byte
}

// Balance is the contract's balance record (balance#_), all in nanoTON.
type Balance struct {
	DepositA, DepositB   *big.Int
	WithdrawA, WithdrawB *big.Int
	SentA, SentB         *big.Int
}

// A returns A's balance as the contract computes it:
// depositA + sentB − sentA − withdrawA.
func (b Balance) A() *big.Int {
	r := new(big.Int).Add(nz(b.DepositA), nz(b.SentB))
	return r.Sub(r, new(big.Int).Add(nz(b.SentA), nz(b.WithdrawA)))
}

// B returns B's balance as the contract computes it:
// depositB + sentA − sentB − withdrawB.
func (b Balance) B() *big.Int {
	r := new(big.Int).Add(nz(b.DepositB), nz(b.SentA))
	return r.Sub(r, new(big.Int).Add(nz(b.SentB), nz(b.WithdrawB)))
}

// Quarantine is a state submitted by an uncooperative close
// (quarantined_state#_).
type Quarantine struct {
	StateA, StateB SemiState
	StartedAt      uint32
	CommittedByA   bool
	Challenged     bool
}

// Storage is the contract's persistent data (channel_state#_).
type Storage struct {
	Initialized                      bool
	Balance                          Balance
	KeyA, KeyB                       ed25519.PublicKey
	ID                               ID
	Closing                          ClosingConfig
	CommittedSeqnoA, CommittedSeqnoB uint64
	Quarantine                       *Quarantine
	Payment                          PaymentConfig
}

// Channel states as the contract's get_channel_state reports them.
const (
	StateUninitialized       = 0
	StateOpen                = 1
	StateClosureStarted      = 2
	StateSettlingConditional = 3
	StateAwaitingFinalize    = 4
)

// State mirrors the contract's get_channel_state at unix time now.
func (s *Storage) State(now uint32) int {
	switch {
	case !s.Initialized:
		return StateUninitialized
	case s.Quarantine == nil:
		return StateOpen
	}
	q := uint64(s.Quarantine.StartedAt) + uint64(s.Closing.QuarantineDuration)
	switch {
	case q > uint64(now):
		return StateClosureStarted
	case q+uint64(s.Closing.ConditionalCloseDuration) > uint64(now):
		return StateSettlingConditional
	}
	return StateAwaitingFinalize
}

// Exit codes the contract throws (contracts/errors.tolk) that settlement
// callers are expected to meet.
const (
	ExitAlreadyInited       = 100
	ExitNotAuthorized       = 101
	ExitWrongTag            = 104
	ExitOutdatedState       = 105
	ExitQuarantineActive    = 106
	ExitNoQuarantine        = 107
	ExitSeqnoRegress        = 108
	ExitTooEarlyToClose     = 113
	ExitWrongChannelID      = 114
	ExitNotInited           = 117
	ExitNotEnoughBalance    = 118
	ExitAmountNotCoversFee  = 119
	ExitNotEnoughForStorage = 123
	ExitWithdrawRegress     = 127
)

// Fees the contract charges from the attached value (contracts/fees.tolk).
var (
	// FeeTopUp is kept from every top-up: depositX += value − FeeTopUp.
	FeeTopUp = big.NewInt(30_000_000)
	// FeeCommit must be covered by the value attached to a cooperative
	// commit; the rest comes back as excess.
	FeeCommit = big.NewInt(30_000_000)
	// MinStorageFee is the bound StorageFee must exceed.
	MinStorageFee = big.NewInt(10_000_000)
)

var errNil = errors.New("nil")

func nz(x *big.Int) *big.Int {
	if x == nil {
		return new(big.Int)
	}
	return x
}

// maxCoins is the largest value the Coins (VarUInteger 16) encoding holds.
var maxCoins = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 120), big.NewInt(1))

func checkCoins(name string, x *big.Int) error {
	if x == nil {
		return nil
	}
	if x.Sign() < 0 || x.Cmp(maxCoins) > 0 {
		return fmt.Errorf("%s %s nanoTON is outside 0..2^120-1", name, x)
	}
	return nil
}

func storeCoins(b *cell.Builder, name string, x *big.Int) error {
	if err := checkCoins(name, x); err != nil {
		return err
	}
	if err := b.StoreBigCoins(nz(x)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
