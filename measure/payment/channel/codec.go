package channel

import (
	"crypto/ed25519"
	"fmt"
	"math/big"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// Bounds on BOCs accepted from outside. The largest message here (a start
// of uncooperative close) is 5 cells and well under 1 KiB.
const (
	// MaxBOCSize is the largest BOC the Parse*BOC functions accept.
	MaxBOCSize = 4096
	// MaxBOCCells is the most cells such a BOC may hold.
	MaxBOCCells = 16
)

// DecodeBOC parses an outside BOC of one root within MaxBOCSize and
// MaxBOCCells. what names the input in errors.
func DecodeBOC(what string, b []byte) (*cell.Cell, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%s: empty BOC", what)
	}
	if len(b) > MaxBOCSize {
		return nil, fmt.Errorf("%s: BOC of %d bytes exceeds the %d-byte limit", what, len(b), MaxBOCSize)
	}
	c, err := cell.FromBOCWithOptions(b, cell.BOCParseOptions{MaxCells: MaxBOCCells})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return c, nil
}

// open begins parsing an ordinary cell.
func open(what string, c *cell.Cell) (*cell.Slice, error) {
	if c == nil {
		return nil, fmt.Errorf("%s: %w cell", what, errNil)
	}
	if c.IsSpecial() {
		return nil, fmt.Errorf("%s: exotic cell (type %d) where an ordinary cell is expected", what, c.GetType())
	}
	s, err := c.BeginParse()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return s, nil
}

// done checks that a slice was read completely.
func done(what string, s *cell.Slice) error {
	if s.BitsLeft() != 0 || s.RefsNum() != 0 {
		return fmt.Errorf("%s: %d trailing bits and %d trailing refs", what, s.BitsLeft(), s.RefsNum())
	}
	return nil
}

// ref loads the next reference and opens it.
func ref(what string, s *cell.Slice) (*cell.Slice, *cell.Cell, error) {
	c, err := s.LoadRefCell()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: missing reference: %w", what, err)
	}
	rs, err := open(what, c)
	return rs, c, err
}

func loadU(what string, s *cell.Slice, bits uint) (uint64, error) {
	v, err := s.LoadUInt(bits)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

func loadBool(what string, s *cell.Slice) (bool, error) {
	v, err := s.LoadBoolBit()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

func loadBytes(what string, s *cell.Slice, n int) ([]byte, error) {
	v, err := s.LoadSlice(uint(n * 8))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

func loadCoins(what string, s *cell.Slice) (*big.Int, error) {
	v, err := s.LoadBigCoins()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

func loadTag(what string, s *cell.Slice, want uint32) error {
	v, err := loadU(what, s, 32)
	if err != nil {
		return err
	}
	if uint32(v) != want {
		return fmt.Errorf("%s: tag %#08x, want %#08x", what, v, want)
	}
	return nil
}

func loadID(what string, s *cell.Slice) (ID, error) {
	var id ID
	b, err := loadBytes(what+" channel id", s, 16)
	if err != nil {
		return id, err
	}
	copy(id[:], b)
	return id, nil
}

func loadSig(what string, s *cell.Slice) ([64]byte, error) {
	var sig [64]byte
	b, err := loadBytes(what+" signature", s, 64)
	if err != nil {
		return sig, err
	}
	copy(sig[:], b)
	return sig, nil
}

// loadStdAddr reads a MsgAddress and requires a standard internal address.
func loadStdAddr(what string, s *cell.Slice) (*address.Address, error) {
	a, err := s.LoadAddr()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkStdAddr(what, a); err != nil {
		return nil, err
	}
	return a, nil
}

func checkStdAddr(what string, a *address.Address) error {
	if a == nil {
		return fmt.Errorf("%s: %w address", what, errNil)
	}
	if a.Type() != address.StdAddress || a.Anycast() != nil {
		return fmt.Errorf("%s: address %s is not a standard internal address", what, a.StringRaw())
	}
	if wc := a.Workchain(); wc != 0 && wc != -1 {
		return fmt.Errorf("%s: address %s is on workchain %d, want 0 or -1", what, a.StringRaw(), wc)
	}
	return nil
}

func storeKey(b *cell.Builder, what string, k ed25519.PublicKey) error {
	if len(k) != ed25519.PublicKeySize {
		return fmt.Errorf("%s: public key of %d bytes, want %d", what, len(k), ed25519.PublicKeySize)
	}
	return b.StoreSlice(k, 256)
}

// --- SemiState (sc_body#_ seqno:uint64 sent:Coins conditionals_hash:uint256) ---

func storeSemiState(b *cell.Builder, what string, st SemiState) error {
	if err := b.StoreUInt(st.Seqno, 64); err != nil {
		return fmt.Errorf("%s seqno: %w", what, err)
	}
	if err := storeCoins(b, what+" sent", st.Sent); err != nil {
		return err
	}
	return b.StoreSlice(st.ConditionalsHash[:], 256)
}

func loadSemiState(what string, s *cell.Slice) (SemiState, error) {
	var st SemiState
	var err error
	if st.Seqno, err = loadU(what+" seqno", s, 64); err != nil {
		return st, err
	}
	if st.Sent, err = loadCoins(what+" sent", s); err != nil {
		return st, err
	}
	h, err := loadBytes(what+" conditionals hash", s, 32)
	if err != nil {
		return st, err
	}
	copy(st.ConditionalsHash[:], h)
	return st, nil
}

// --- Balance ---

func (b Balance) cell() (*cell.Cell, error) {
	cb := cell.BeginCell()
	for _, f := range []struct {
		n string
		v *big.Int
	}{{"depositA", b.DepositA}, {"depositB", b.DepositB}, {"withdrawA", b.WithdrawA},
		{"withdrawB", b.WithdrawB}, {"sentA", b.SentA}, {"sentB", b.SentB}} {
		if err := storeCoins(cb, "balance "+f.n, f.v); err != nil {
			return nil, err
		}
	}
	return cb.EndCell(), nil
}

func loadBalance(s *cell.Slice) (Balance, error) {
	var b Balance
	for _, f := range []struct {
		n string
		p **big.Int
	}{{"depositA", &b.DepositA}, {"depositB", &b.DepositB}, {"withdrawA", &b.WithdrawA},
		{"withdrawB", &b.WithdrawB}, {"sentA", &b.SentA}, {"sentB", &b.SentB}} {
		v, err := loadCoins("balance "+f.n, s)
		if err != nil {
			return b, err
		}
		*f.p = v
	}
	return b, done("balance", s)
}

// --- ClosingConfig ---

func (c ClosingConfig) cell() (*cell.Cell, error) {
	b := cell.BeginCell().MustStoreUInt(uint64(c.QuarantineDuration), 32)
	if err := storeCoins(b, "misbehavior fine", c.MisbehaviorFine); err != nil {
		return nil, err
	}
	return b.MustStoreUInt(uint64(c.ConditionalCloseDuration), 32).EndCell(), nil
}

func loadClosing(s *cell.Slice) (ClosingConfig, error) {
	var c ClosingConfig
	q, err := loadU("closing config quarantine duration", s, 32)
	if err != nil {
		return c, err
	}
	if c.MisbehaviorFine, err = loadCoins("closing config misbehavior fine", s); err != nil {
		return c, err
	}
	d, err := loadU("closing config conditional close duration", s, 32)
	if err != nil {
		return c, err
	}
	c.QuarantineDuration, c.ConditionalCloseDuration = uint32(q), uint32(d)
	return c, done("closing config", s)
}

// --- PaymentConfig (Toncoin only) ---

func (p PaymentConfig) cell() (*cell.Cell, error) {
	if p.StorageFee == nil {
		return nil, fmt.Errorf("payment config: storage fee not set")
	}
	if err := checkStdAddr("payment config dest A", p.DestA); err != nil {
		return nil, err
	}
	if err := checkStdAddr("payment config dest B", p.DestB); err != nil {
		return nil, err
	}
	b := cell.BeginCell()
	if err := storeCoins(b, "payment config storage fee", p.StorageFee); err != nil {
		return nil, err
	}
	b.MustStoreAddr(p.DestA).MustStoreAddr(p.DestB)
	// payment_type_ton$0
	return b.MustStoreUInt(0, 1).EndCell(), nil
}

func loadPayment(s *cell.Slice) (PaymentConfig, error) {
	var p PaymentConfig
	var err error
	if p.StorageFee, err = loadCoins("payment config storage fee", s); err != nil {
		return p, err
	}
	if p.DestA, err = loadStdAddr("payment config dest A", s); err != nil {
		return p, err
	}
	if p.DestB, err = loadStdAddr("payment config dest B", s); err != nil {
		return p, err
	}
	ton, err := loadBool("payment config currency", s)
	if err != nil {
		return p, err
	}
	if ton {
		return p, fmt.Errorf("payment config: currency is a jetton or extra currency; only Toncoin channels are supported")
	}
	return p, done("payment config", s)
}

// --- Quarantine ---

func (q Quarantine) cell() (*cell.Cell, error) {
	b := cell.BeginCell()
	if err := storeSemiState(b, "quarantine state A", q.StateA); err != nil {
		return nil, err
	}
	if err := storeSemiState(b, "quarantine state B", q.StateB); err != nil {
		return nil, err
	}
	return b.MustStoreUInt(uint64(q.StartedAt), 32).MustStoreBoolBit(q.CommittedByA).
		MustStoreBoolBit(q.Challenged).EndCell(), nil
}

func loadQuarantine(s *cell.Slice) (*Quarantine, error) {
	var q Quarantine
	var err error
	if q.StateA, err = loadSemiState("quarantine state A", s); err != nil {
		return nil, err
	}
	if q.StateB, err = loadSemiState("quarantine state B", s); err != nil {
		return nil, err
	}
	t, err := loadU("quarantine start", s, 32)
	if err != nil {
		return nil, err
	}
	q.StartedAt = uint32(t)
	if q.CommittedByA, err = loadBool("quarantine committed-by-A", s); err != nil {
		return nil, err
	}
	if q.Challenged, err = loadBool("quarantine challenged", s); err != nil {
		return nil, err
	}
	return &q, done("quarantine", s)
}

// --- Storage ---

// Cell serializes the storage as the contract keeps it.
func (st *Storage) Cell() (*cell.Cell, error) {
	bal, err := st.Balance.cell()
	if err != nil {
		return nil, err
	}
	cl, err := st.Closing.cell()
	if err != nil {
		return nil, err
	}
	pc, err := st.Payment.cell()
	if err != nil {
		return nil, err
	}
	b := cell.BeginCell().MustStoreBoolBit(st.Initialized).MustStoreRef(bal)
	if err := storeKey(b, "storage key A", st.KeyA); err != nil {
		return nil, err
	}
	if err := storeKey(b, "storage key B", st.KeyB); err != nil {
		return nil, err
	}
	b.MustStoreSlice(st.ID[:], 128).MustStoreRef(cl).
		MustStoreUInt(st.CommittedSeqnoA, 64).MustStoreUInt(st.CommittedSeqnoB, 64)
	if st.Quarantine != nil {
		q, err := st.Quarantine.cell()
		if err != nil {
			return nil, err
		}
		b.MustStoreMaybeRef(q)
	} else {
		b.MustStoreMaybeRef(nil)
	}
	return b.MustStoreRef(pc).EndCell(), nil
}

// ParseStorage parses a channel contract's data cell (from the chain or
// from the emulator).
func ParseStorage(c *cell.Cell) (*Storage, error) {
	s, err := open("channel storage", c)
	if err != nil {
		return nil, err
	}
	var st Storage
	if st.Initialized, err = loadBool("channel storage inited", s); err != nil {
		return nil, err
	}
	bs, _, err := ref("channel storage balance", s)
	if err != nil {
		return nil, err
	}
	if st.Balance, err = loadBalance(bs); err != nil {
		return nil, fmt.Errorf("channel storage: %w", err)
	}
	ka, err := loadBytes("channel storage key A", s, 32)
	if err != nil {
		return nil, err
	}
	kb, err := loadBytes("channel storage key B", s, 32)
	if err != nil {
		return nil, err
	}
	st.KeyA, st.KeyB = ed25519.PublicKey(ka), ed25519.PublicKey(kb)
	if st.ID, err = loadID("channel storage", s); err != nil {
		return nil, err
	}
	cs, _, err := ref("channel storage closing config", s)
	if err != nil {
		return nil, err
	}
	if st.Closing, err = loadClosing(cs); err != nil {
		return nil, fmt.Errorf("channel storage: %w", err)
	}
	if st.CommittedSeqnoA, err = loadU("channel storage committed seqno A", s, 64); err != nil {
		return nil, err
	}
	if st.CommittedSeqnoB, err = loadU("channel storage committed seqno B", s, 64); err != nil {
		return nil, err
	}
	hasQ, err := loadBool("channel storage quarantine flag", s)
	if err != nil {
		return nil, err
	}
	if hasQ {
		qs, _, err := ref("channel storage quarantine", s)
		if err != nil {
			return nil, err
		}
		if st.Quarantine, err = loadQuarantine(qs); err != nil {
			return nil, fmt.Errorf("channel storage: %w", err)
		}
	}
	ps, _, err := ref("channel storage payment config", s)
	if err != nil {
		return nil, err
	}
	if st.Payment, err = loadPayment(ps); err != nil {
		return nil, fmt.Errorf("channel storage: %w", err)
	}
	if err := done("channel storage", s); err != nil {
		return nil, err
	}
	return &st, nil
}

// ParseStorageBOC parses a channel's data cell from an outside BOC.
func ParseStorageBOC(b []byte) (*Storage, error) {
	c, err := DecodeBOC("channel storage", b)
	if err != nil {
		return nil, err
	}
	return ParseStorage(c)
}
