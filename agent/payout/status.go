package payout

import (
	"fmt"
	"io"
	"math/big"
	"strings"

	"github.com/chrysalis-cc/chrysalis/agent/payout/journal"
)

// Summary is what an owner wants to know about the money: what the proxy
// has committed to (earned), what reached the owner on chain (settled),
// what is on its way (in flight) and what still waits for a settlement
// (pending). Amounts are decimal nanoTON.
type Summary struct {
	Channel  string `json:"channel,omitempty"`
	Wallet   string `json:"wallet,omitempty"`
	Earned   string `json:"earned_nanoton"`
	Settled  string `json:"settled_nanoton"`
	InFlight string `json:"in_flight_nanoton"`
	Pending  string `json:"pending_nanoton"`
	// ProxySeqno is the seqno of the highest accepted proxy state.
	ProxySeqno uint64 `json:"proxy_seqno"`
	// LastSettled is the chain time (unix seconds) of the last confirmed
	// settlement, 0 if none.
	LastSettled uint32 `json:"last_settled"`
	// LastTx is the last confirmed settlement's transaction hash.
	LastTx string `json:"last_tx,omitempty"`
	// Open is the settlement in progress, if any.
	Open *IntentSummary `json:"open,omitempty"`
	// Counts of intents by status.
	Intents map[Status]int `json:"intents"`
	// Paused is the alarm that stopped settlement ("" when running).
	Paused string `json:"paused,omitempty"`
	// Receipts is how many usage receipts the worker has signed on the
	// channel; Claimed the sum of their amounts (what the worker billed,
	// against what the proxy signed for: Earned).
	Receipts uint64 `json:"receipts_issued"`
	Claimed  string `json:"receipts_claimed_nanoton"`
}

// IntentSummary is one settlement in progress.
type IntentSummary struct {
	ID          string `json:"id"`
	Status      Status `json:"status"`
	Amount      string `json:"amount_nanoton"`
	WalletSeqno uint32 `json:"wallet_seqno,omitempty"`
	ValidUntil  uint32 `json:"valid_until,omitempty"`
}

// Summarize reduces a ledger state to its Summary.
func Summarize(s *State) Summary {
	out := Summary{
		Earned: s.Earned().String(), Settled: s.ConfirmedTotal().String(),
		InFlight: s.InFlight().String(), Pending: s.Due().String(),
		LastSettled: s.LastSettled, Intents: map[Status]int{}, Paused: s.Paused,
		Receipts: s.Receipts, Claimed: s.ClaimedTotal().String(),
	}
	if s.Channel != nil {
		out.Channel, out.Wallet = s.Channel.Address, s.Channel.Wallet
	}
	if s.Accepted != nil {
		out.ProxySeqno = s.Accepted.Seqno
	}
	var lastAt uint32
	for _, in := range s.SortedIntents() {
		out.Intents[in.Status]++
		if in.Status == Confirmed && in.At >= lastAt {
			lastAt, out.LastTx = in.At, in.TxHash
		}
	}
	if in := s.OpenIntent(); in != nil {
		out.Open = &IntentSummary{ID: in.ID, Status: in.Status, Amount: in.Amount, WalletSeqno: in.WalletSeqno, ValidUntil: in.ValidUntil}
	}
	return out
}

// WriteText prints a summary for people, amounts in TON.
func (s Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	row := func(k, v string) { fmt.Fprintf(&b, "%-13s %s\n", k, v) }
	row("channel", orDash(s.Channel))
	row("gas wallet", orDash(s.Wallet))
	row("earned", tonString(s.Earned)+" TON (proxy state seqno "+fmt.Sprint(s.ProxySeqno)+")")
	row("settled", tonString(s.Settled)+" TON")
	row("in flight", tonString(s.InFlight)+" TON")
	row("pending", tonString(s.Pending)+" TON")
	row("receipts", fmt.Sprintf("%d signed, %s TON claimed", s.Receipts, tonString(orZero(s.Claimed))))
	if s.LastTx != "" {
		row("last tx", fmt.Sprintf("%s (chain time %d)", s.LastTx, s.LastSettled))
	} else {
		row("last tx", "-")
	}
	if s.Open != nil {
		row("settling", fmt.Sprintf("%s TON, %s, wallet seqno %d, valid until %d", tonString(s.Open.Amount), s.Open.Status, s.Open.WalletSeqno, s.Open.ValidUntil))
	}
	if s.Paused != "" {
		row("PAUSED", s.Paused)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMetrics writes the summary in the Prometheus text exposition format.
func (s Summary) WriteMetrics(w io.Writer) error {
	var b strings.Builder
	gauge := func(name, help, v string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", name, help, name, name, v)
	}
	gauge("chrysalis_payout_earned_nanoton", "Cumulative amount the proxy has signed for (nanoTON).", s.Earned)
	gauge("chrysalis_payout_settled_nanoton", "Cumulative amount confirmed on chain to the owner (nanoTON).", s.Settled)
	gauge("chrysalis_payout_in_flight_nanoton", "Amount of the settlement in progress (nanoTON).", s.InFlight)
	gauge("chrysalis_payout_pending_nanoton", "Earned but neither settled nor in flight (nanoTON).", s.Pending)
	gauge("chrysalis_payout_last_settled_timestamp_seconds", "Chain time of the last confirmed settlement.", fmt.Sprint(s.LastSettled))
	paused := "0"
	if s.Paused != "" {
		paused = "1"
	}
	gauge("chrysalis_payout_paused", "1 when settlement is paused by an alarm.", paused)
	counter := func(name, help, v string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %s\n", name, help, name, name, v)
	}
	counter("chrysalis_payout_receipts_total", "Usage receipts signed on the channel.", fmt.Sprint(s.Receipts))
	counter("chrysalis_payout_receipts_claimed_nanoton_total", "Sum of the amounts of the usage receipts signed (nanoTON).", orZero(s.Claimed))
	fmt.Fprintf(&b, "# HELP chrysalis_payout_intents Settlement intents by status.\n# TYPE chrysalis_payout_intents gauge\n")
	for _, st := range []Status{Planned, Signed, Sent, Confirmed, Expired, Failed, Bounced} {
		fmt.Fprintf(&b, "chrysalis_payout_intents{status=%q} %d\n", string(st), s.Intents[st])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// tonString renders decimal nanoTON as TON with 9 decimals.
func tonString(nano string) string {
	n, ok := new(big.Int).SetString(nano, 10)
	if !ok {
		return nano + " nanoTON?"
	}
	neg := n.Sign() < 0
	n.Abs(n)
	q, r := new(big.Int).QuoRem(n, big.NewInt(1_000_000_000), new(big.Int))
	s := fmt.Sprintf("%s.%09d", q, r.Int64())
	if neg {
		s = "-" + s
	}
	return s
}

// ReadSummary summarizes the ledger file at path without writing to it
// (safe beside the running agent).
func ReadSummary(path string) (Summary, error) {
	recs, _, err := journal.ReadFile(path)
	if err != nil {
		return Summary{}, err
	}
	st, err := Replay(recs)
	if err != nil {
		return Summary{}, fmt.Errorf("ledger %s: %w", path, err)
	}
	return Summarize(st), nil
}
