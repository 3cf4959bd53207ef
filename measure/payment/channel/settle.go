package channel

import (
	"fmt"
	"math/big"
)

// ApplyCommit checks a commit the way the contract will and returns the
// storage after it and the amounts the contract pays to DestA and DestB.
// It lets a party refuse a commit that would fail on chain before
// spending gas on it. It does not check signatures (SignedCommit.Verify).
func (st *Storage) ApplyCommit(c Commit) (next *Storage, payA, payB *big.Int, err error) {
	if c.ID != st.ID {
		return nil, nil, nil, fmt.Errorf("commit for channel %s sent to channel %s", c.ID, st.ID)
	}
	if c.SeqnoA <= st.CommittedSeqnoA || c.SeqnoB <= st.CommittedSeqnoB {
		return nil, nil, nil, fmt.Errorf("commit on channel %s: seqnos A %d, B %d do not exceed committed %d, %d",
			st.ID, c.SeqnoA, c.SeqnoB, st.CommittedSeqnoA, st.CommittedSeqnoB)
	}
	for _, f := range []struct {
		n string
		v *big.Int
	}{{"sent A", c.SentA}, {"sent B", c.SentB}, {"withdraw A", c.WithdrawA}, {"withdraw B", c.WithdrawB}} {
		if err := checkCoins("commit on channel "+st.ID.String()+" "+f.n, f.v); err != nil {
			return nil, nil, nil, err
		}
	}
	payA = new(big.Int).Sub(nz(c.WithdrawA), nz(st.Balance.WithdrawA))
	payB = new(big.Int).Sub(nz(c.WithdrawB), nz(st.Balance.WithdrawB))
	if payA.Sign() < 0 || payB.Sign() < 0 {
		return nil, nil, nil, fmt.Errorf("commit on channel %s: withdrawals A %v, B %v go below the committed %v, %v",
			st.ID, nz(c.WithdrawA), nz(c.WithdrawB), nz(st.Balance.WithdrawA), nz(st.Balance.WithdrawB))
	}
	n := *st
	n.CommittedSeqnoA, n.CommittedSeqnoB = c.SeqnoA, c.SeqnoB
	n.Balance = Balance{
		DepositA: nz(st.Balance.DepositA), DepositB: nz(st.Balance.DepositB),
		WithdrawA: nz(c.WithdrawA), WithdrawB: nz(c.WithdrawB),
		SentA: nz(c.SentA), SentB: nz(c.SentB),
	}
	if n.Balance.A().Sign() < 0 || n.Balance.B().Sign() < 0 {
		return nil, nil, nil, fmt.Errorf("commit on channel %s: leaves balances A %s, B %s nanoTON; both must stay non-negative",
			st.ID, n.Balance.A(), n.Balance.B())
	}
	if q := st.Quarantine; q != nil && (c.SeqnoA > q.StateA.Seqno || c.SeqnoB > q.StateB.Seqno) {
		n.Quarantine = nil
	}
	return &n, payA, payB, nil
}

// WithdrawB builds the commit that pays B everything it has earned so far
// while the channel stays open: a is A's latest signed state (already
// verified by the caller), b is B's own state for this commit (B's seqno
// must exceed the committed one, so B signs a fresh state per commit).
// It returns the commit and the amount the contract will pay to DestB,
// which is what a threshold compares against.
func (st *Storage) WithdrawB(a, b SemiState) (Commit, *big.Int, error) {
	c := Commit{
		ID:        st.ID,
		SentA:     nz(a.Sent),
		SentB:     nz(b.Sent),
		SeqnoA:    a.Seqno,
		SeqnoB:    b.Seqno,
		WithdrawA: nz(st.Balance.WithdrawA),
	}
	// B's balance if nothing more were withdrawn.
	full := Balance{DepositA: st.Balance.DepositA, DepositB: st.Balance.DepositB,
		WithdrawA: st.Balance.WithdrawA, SentA: c.SentA, SentB: c.SentB}
	c.WithdrawB = full.B()
	_, _, payB, err := st.ApplyCommit(c)
	if err != nil {
		return Commit{}, nil, err
	}
	return c, payB, nil
}
