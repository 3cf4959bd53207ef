package payout

import (
	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

// Summarize reduces a ledger state to its Summary (measure/payment owns
// the format: the host reads it over the status channel). Intents
// counts the intents the state holds and those compaction folded into
// Finished.
func Summarize(s *State) payment.Summary {
	out := payment.Summary{
		Earned: s.Earned().String(), Settled: s.ConfirmedTotal().String(),
		InFlight: s.InFlight().String(), Pending: s.Due().String(),
		LastSettled: s.LastSettled, LastTx: s.LastTx, Intents: map[string]int{}, Paused: payment.ClipText(s.Paused),
		Receipts: s.Receipts, Claimed: s.ClaimedTotal().String(),
	}
	if s.Channel != nil {
		out.Channel, out.Wallet = s.Channel.Address, s.Channel.Wallet
	}
	if s.Accepted != nil {
		out.ProxySeqno = s.Accepted.Seqno
	}
	for st, n := range s.Finished {
		out.Intents[string(st)] += n
	}
	for _, in := range s.Intents {
		out.Intents[string(in.Status)]++
	}
	if in := s.OpenIntent(); in != nil {
		out.Open = &payment.IntentSummary{ID: in.ID, Status: string(in.Status), Amount: in.Amount, WalletSeqno: in.WalletSeqno, ValidUntil: in.ValidUntil}
	}
	return out
}

// Summary is the current state's Summary with the ledger's compaction
// failure, if any, in LedgerError.
func (l *Ledger) Summary() payment.Summary {
	// Every change replaces l.st (append works on a copy), so the state
	// read under the lock stays consistent after it.
	l.mu.Lock()
	st, cerr := l.st, l.compactErr
	l.mu.Unlock()
	s := Summarize(st)
	if cerr != nil {
		s.LedgerError = payment.ClipText(cerr.Error())
	}
	return s
}
