package payment

import (
	"fmt"
	"io"
	"math/big"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Settlement intent statuses as a Summary names them, in lifecycle order
// (the worker's payout ledger, agent/payout, defines what each means).
var IntentStatuses = []string{"planned", "signed", "sent", "confirmed", "expired", "failed", "bounced"}

// MaxSummaryText bounds a Summary's free-text fields (Paused,
// LedgerError).
const MaxSummaryText = 4 << 10

// Summary is what an owner wants to know about the money, as the worker
// reports it (GET /v1/payment/status, and the status channel's report):
// what the proxy has committed to (earned), what reached the owner on
// chain (settled), what is on its way (in flight) and what still waits
// for a settlement (pending). Amounts are decimal nanoTON, and Earned =
// Settled + InFlight + Pending.
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
	// LastTx is the last confirmed settlement's transaction hash (hex).
	LastTx string `json:"last_tx,omitempty"`
	// Open is the settlement in progress, if any.
	Open *IntentSummary `json:"open,omitempty"`
	// Intents counts settlement intents by status (IntentStatuses),
	// including those the ledger has folded into totals.
	Intents map[string]int `json:"intents"`
	// Paused is the alarm that stopped settlement ("" when running).
	Paused string `json:"paused,omitempty"`
	// Receipts is how many usage receipts the worker has signed on the
	// channel; Claimed the sum of their amounts (what the worker billed,
	// against what the proxy signed for: Earned).
	Receipts uint64 `json:"receipts_issued"`
	Claimed  string `json:"receipts_claimed_nanoton"`
	// LedgerError is the ledger's last compaction failure ("" when none):
	// the ledger keeps working, but its journal grows until an operator
	// looks at the disk.
	LedgerError string `json:"ledger_error,omitempty"`
	// Settler is the running agent's settlement state: why it is off,
	// its chain connection, or its last step ("" when not reported, as
	// in the ledger's own status endpoint).
	Settler string `json:"settler,omitempty"`
}

// IntentSummary is one settlement in progress.
type IntentSummary struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Amount      string `json:"amount_nanoton"`
	WalletSeqno uint32 `json:"wallet_seqno,omitempty"`
	ValidUntil  uint32 `json:"valid_until,omitempty"`
}

var (
	rawAddrRE = regexp.MustCompile(`^-?[0-9]{1,3}:[0-9a-f]{64}$`)
	hash64RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	nanoRE    = regexp.MustCompile(`^(0|[1-9][0-9]{0,35})$`)
)

// DecodeSummary decodes a Summary strictly (no unknown fields, no
// trailing data, at most MaxMessage bytes) and validates it.
func DecodeSummary(b []byte) (Summary, error) {
	var s Summary
	if err := decodeStrict("payment summary", b, &s); err != nil {
		return Summary{}, err
	}
	if err := s.Validate(); err != nil {
		return Summary{}, err
	}
	return s, nil
}

func summaryAmount(name, v string) (*big.Int, error) {
	if !nanoRE.MatchString(v) {
		return nil, fmt.Errorf("payment summary: %s %.48q is not a decimal nanoTON amount", name, v)
	}
	n, _ := new(big.Int).SetString(v, 10)
	return n, nil
}

// Validate checks every field: amounts decimal nanoTON (below 10^36)
// with Earned = Settled + InFlight + Pending, addresses raw, hashes 64
// lowercase hex digits, statuses known, counts non-negative, texts UTF-8
// of at most MaxSummaryText bytes.
func (s *Summary) Validate() error {
	var v [5]*big.Int
	for i, f := range []struct{ name, v string }{
		{"earned_nanoton", s.Earned}, {"settled_nanoton", s.Settled}, {"in_flight_nanoton", s.InFlight},
		{"pending_nanoton", s.Pending}, {"receipts_claimed_nanoton", s.Claimed},
	} {
		n, err := summaryAmount(f.name, f.v)
		if err != nil {
			return err
		}
		v[i] = n
	}
	if sum := new(big.Int).Add(v[1], v[2]); sum.Add(sum, v[3]).Cmp(v[0]) != 0 {
		return fmt.Errorf("payment summary: settled %s + in flight %s + pending %s is not earned %s", s.Settled, s.InFlight, s.Pending, s.Earned)
	}
	for _, f := range []struct{ name, v string }{{"channel", s.Channel}, {"wallet", s.Wallet}} {
		if f.v != "" && !rawAddrRE.MatchString(f.v) {
			return fmt.Errorf("payment summary: %s %.80q is not a raw address", f.name, f.v)
		}
	}
	if s.LastTx != "" && !hash64RE.MatchString(s.LastTx) {
		return fmt.Errorf("payment summary: last_tx %.80q is not 64 lowercase hex digits", s.LastTx)
	}
	if s.Receipts > MaxSafeInt {
		return fmt.Errorf("payment summary: receipts_issued %d exceeds 2^53-1", s.Receipts)
	}
	for k, n := range s.Intents {
		if !knownStatus(k) {
			return fmt.Errorf("payment summary: intent status %.32q is not one of %s", k, strings.Join(IntentStatuses, ", "))
		}
		if n < 0 {
			return fmt.Errorf("payment summary: %d %s intents", n, k)
		}
	}
	for _, f := range []struct{ name, v string }{{"paused", s.Paused}, {"ledger_error", s.LedgerError}, {"settler", s.Settler}} {
		if len(f.v) > MaxSummaryText || !utf8.ValidString(f.v) {
			return fmt.Errorf("payment summary: %s must be UTF-8 of at most %d bytes", f.name, MaxSummaryText)
		}
	}
	if o := s.Open; o != nil {
		if !hash64RE.MatchString(o.ID) {
			return fmt.Errorf("payment summary: open intent id %.80q is not 64 lowercase hex digits", o.ID)
		}
		if o.Status != "planned" && o.Status != "signed" && o.Status != "sent" {
			return fmt.Errorf("payment summary: open intent status %.32q is not planned, signed or sent", o.Status)
		}
		if _, err := summaryAmount("open intent amount_nanoton", o.Amount); err != nil {
			return err
		}
	}
	return nil
}

func knownStatus(s string) bool {
	for _, k := range IntentStatuses {
		if s == k {
			return true
		}
	}
	return false
}

// WriteText prints a summary for people, amounts in TON. Alarms (a
// paused settlement, a ledger error) come as upper-case rows.
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
	var counts []string
	for _, st := range IntentStatuses {
		if n := s.Intents[st]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, st))
		}
	}
	if len(counts) == 0 {
		counts = []string{"none"}
	}
	row("settlements", strings.Join(counts, ", "))
	if s.Settler != "" {
		row("settler", s.Settler)
	}
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
	if s.LedgerError != "" {
		row("LEDGER ERROR", s.LedgerError)
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
	flag := func(set bool) string {
		if set {
			return "1"
		}
		return "0"
	}
	gauge("chrysalis_payout_earned_nanoton", "Cumulative amount the proxy has signed for (nanoTON).", s.Earned)
	gauge("chrysalis_payout_settled_nanoton", "Cumulative amount confirmed on chain to the owner (nanoTON).", s.Settled)
	gauge("chrysalis_payout_in_flight_nanoton", "Amount of the settlement in progress (nanoTON).", s.InFlight)
	gauge("chrysalis_payout_pending_nanoton", "Earned but neither settled nor in flight (nanoTON).", s.Pending)
	gauge("chrysalis_payout_last_settled_timestamp_seconds", "Chain time of the last confirmed settlement.", fmt.Sprint(s.LastSettled))
	gauge("chrysalis_payout_paused", "1 when settlement is paused by an alarm.", flag(s.Paused != ""))
	gauge("chrysalis_payout_ledger_error", "1 when the payout ledger's last compaction failed (its journal grows).", flag(s.LedgerError != ""))
	counter := func(name, help, v string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %s\n", name, help, name, name, v)
	}
	counter("chrysalis_payout_receipts_total", "Usage receipts signed on the channel.", fmt.Sprint(s.Receipts))
	counter("chrysalis_payout_receipts_claimed_nanoton_total", "Sum of the amounts of the usage receipts signed (nanoTON).", orZero(s.Claimed))
	fmt.Fprintf(&b, "# HELP chrysalis_payout_intents Settlement intents by status.\n# TYPE chrysalis_payout_intents gauge\n")
	for _, st := range IntentStatuses {
		fmt.Fprintf(&b, "chrysalis_payout_intents{status=%q} %d\n", st, s.Intents[st])
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

// ClipText cuts s to at most MaxSummaryText bytes of valid UTF-8 (for
// Paused and LedgerError, which carry error messages).
func ClipText(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > MaxSummaryText {
		s = strings.ToValidUTF8(s[:MaxSummaryText], "")
	}
	return s
}
