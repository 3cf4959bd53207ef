package payout

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/chrysalis-cc/chrysalis/agent/payout/journal"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
)

// Status is where a settlement intent stands (ton-host.md C.1).
type Status string

// Intent statuses: planned (B signed the commit, recorded before asking
// the proxy) → signed (the proxy co-signed and the wallet external is
// built and recorded, before any broadcast) → sent (broadcast at least
// once) → confirmed (the channel paid the owner) | expired (valid_until
// passed with the wallet seqno unused: the external can never execute) |
// failed (the wallet transaction ran but sent nothing, or the proxy
// refused) | bounced (the channel refused the commit; ExitCode says why).
const (
	Planned   Status = "planned"
	Signed    Status = "signed"
	Sent      Status = "sent"
	Confirmed Status = "confirmed"
	Expired   Status = "expired"
	Failed    Status = "failed"
	Bounced   Status = "bounced"
)

// Open reports whether an intent in status s may still move money.
func (s Status) Open() bool { return s == Planned || s == Signed || s == Sent }

func (s Status) valid() bool {
	switch s {
	case Planned, Signed, Sent, Confirmed, Expired, Failed, Bounced:
		return true
	}
	return false
}

// next lists the allowed transitions; a terminal status other than
// confirmed may be re-planned (same id: same channel and target).
var next = map[Status][]Status{
	"":      {Planned},
	Planned: {Signed, Failed},
	Signed:  {Sent, Confirmed, Expired, Failed, Bounced},
	Sent:    {Sent, Confirmed, Expired, Failed, Bounced},
	Expired: {Planned},
	Failed:  {Planned},
	Bounced: {Planned},
}

// Intent is one settlement: a cooperative commit moving the channel's
// cumulative withdrawB to Target, sent from the gas wallet. Amounts are
// decimal nanoTON. Every transition is journaled as the whole intent.
type Intent struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	// Attempt counts the plans of this id (re-planned after expiry).
	Attempt int `json:"attempt"`
	// Target is the cumulative withdrawB after the commit; Amount is
	// Target − confirmed when planned: what the owner will receive.
	Target string `json:"target_withdraw_b"`
	Amount string `json:"amount"`
	// The commit: A's state (seqno, cumulative sent), B's fresh seqno,
	// A's withdrawals as on chain, and both signatures (hex).
	SeqnoA    uint64 `json:"seqno_a"`
	SentA     string `json:"sent_a"`
	SeqnoB    uint64 `json:"seqno_b"`
	WithdrawA string `json:"withdraw_a"`
	SigB      string `json:"sig_b"`
	SigA      string `json:"sig_a,omitempty"`
	// The wallet external, recorded before it is ever broadcast.
	WalletSeqno uint32 `json:"wallet_seqno,omitempty"`
	ValidUntil  uint32 `json:"valid_until,omitempty"`
	ExtBOC      string `json:"ext_boc,omitempty"`
	ExtHash     string `json:"ext_hash,omitempty"`
	BodyHash    string `json:"body_hash,omitempty"`
	// Chain results.
	WalletTx string `json:"wallet_tx,omitempty"`
	TxHash   string `json:"tx_hash,omitempty"`
	TxLT     uint64 `json:"tx_lt,omitempty"`
	ExitCode int32  `json:"exit_code,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// At is chain time of the transition.
	At uint32 `json:"at"`
}

// IntentID is the deterministic id of the settlement that moves the
// channel's cumulative withdrawB to target: a restart re-derives the same
// id, so it can never create a second intent for the same money.
func IntentID(channelRaw string, target *big.Int) string {
	h := sha256.Sum256([]byte("chrysalis/payout-intent/v1\x00" + channelRaw + "\x00" + target.String()))
	return hex.EncodeToString(h[:])
}

// Commit rebuilds the commit the intent signs.
func (in *Intent) Commit(id channel.ID) (channel.Commit, error) {
	var c channel.Commit
	var err error
	if c.SentA, err = amount("intent "+in.ID+" sent_a", in.SentA); err != nil {
		return c, err
	}
	if c.WithdrawA, err = amount("intent "+in.ID+" withdraw_a", in.WithdrawA); err != nil {
		return c, err
	}
	if c.WithdrawB, err = amount("intent "+in.ID+" target", in.Target); err != nil {
		return c, err
	}
	c.ID, c.SeqnoA, c.SeqnoB, c.SentB = id, in.SeqnoA, in.SeqnoB, new(big.Int)
	return c, nil
}

// Accepted is the highest proxy-signed payment state accepted.
type Accepted struct {
	Seqno uint64 `json:"seqno"`
	Sent  string `json:"sent"`
	// State is the base64 BOC of the signed state (the proof of what the
	// proxy owes, usable for an uncooperative close).
	State string `json:"state"`
	At    int64  `json:"at"`
}

// ChannelRecord pins the channel and the gas wallet in the ledger; a
// ledger never silently changes either.
type ChannelRecord struct {
	// Storage is the base64 BOC of the channel's initial storage (it
	// carries keys, id, closing and payment configuration).
	Storage string `json:"storage"`
	Address string `json:"address"`
	Wallet  string `json:"wallet"`
}

// State is the ledger reduced from its records.
type State struct {
	Channel  *ChannelRecord `json:"channel,omitempty"`
	Accepted *Accepted      `json:"accepted,omitempty"`
	// LastSeqnoB is the highest seqno B has signed a commit with.
	LastSeqnoB uint64 `json:"last_seqno_b"`
	// Confirmed is the cumulative withdrawB confirmed on chain.
	Confirmed string `json:"confirmed"`
	// LastSettled is the chain time of the last confirmation; LastTx its
	// channel transaction (hex).
	LastSettled uint32 `json:"last_settled"`
	LastTx      string `json:"last_tx,omitempty"`
	// Intents holds every intent a record may still change: the open one
	// and the finished ones that may be planned again (a target above
	// Confirmed). Compaction folds the others, which no record can ever
	// change, into Finished.
	Intents map[string]*Intent `json:"intents"`
	// Finished counts the intents folded out of Intents by status (only
	// confirmed, expired, failed and bounced).
	Finished map[Status]int `json:"finished,omitempty"`
	// Paused holds the alarm that stopped settlement ("" when running).
	Paused string `json:"paused,omitempty"`
	// Receipts is how many usage receipts were signed on the channel:
	// they are numbered 1..Receipts without gaps, so the next one is
	// Receipts+1.
	Receipts uint64 `json:"receipts,omitempty"`
	// ReceiptsClaimed is the sum of their amounts (decimal nanoTON; ""
	// reads as 0 in a snapshot written before receipts were journaled).
	ReceiptsClaimed string `json:"receipts_claimed,omitempty"`
}

// ReceiptRecord is the journal's note of one signed usage receipt,
// appended (fsynced) before the receipt leaves the worker.
type ReceiptRecord struct {
	Seq       uint64 `json:"seq"`
	Channel   string `json:"channel"`
	RequestID string `json:"request_id_sha256"`
	TokensIn  uint64 `json:"tokens_in"`
	TokensOut uint64 `json:"tokens_out"`
	Amount    string `json:"amount_nanoton"`
	IssuedAt  int64  `json:"issued_at"`
}

// Record kinds.
const (
	kindChannel  = "channel"
	kindAccept   = "accept"
	kindIntent   = "intent"
	kindPause    = "pause"
	kindResume   = "resume"
	kindSnapshot = "snapshot"
	kindReceipt  = "receipt"
)

func amount(what, s string) (*big.Int, error) {
	if s == "" || len(s) > 37 || (len(s) > 1 && s[0] == '0') || strings.Trim(s, "0123456789") != "" {
		return nil, fmt.Errorf("%s %q: want a decimal nanoTON amount below 2^120", what, s)
	}
	v, _ := new(big.Int).SetString(s, 10)
	if v.BitLen() > 120 {
		return nil, fmt.Errorf("%s %q: want a decimal nanoTON amount below 2^120", what, s)
	}
	return v, nil
}

func (s *State) clone() *State {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // State holds only marshalable fields
	}
	var c State
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	if c.Intents == nil {
		c.Intents = map[string]*Intent{}
	}
	return &c
}

func newState() *State {
	return &State{Confirmed: "0", ReceiptsClaimed: "0", Intents: map[string]*Intent{}}
}

// ClaimedTotal is the cumulative amount of every receipt signed.
func (s *State) ClaimedTotal() *big.Int {
	if s.ReceiptsClaimed == "" {
		return new(big.Int)
	}
	v, _ := amount("", s.ReceiptsClaimed)
	return v
}

// OpenIntent returns the intent that may still move money, or nil.
func (s *State) OpenIntent() *Intent {
	for _, in := range s.Intents {
		if in.Status.Open() {
			return in
		}
	}
	return nil
}

// Earned is the accepted cumulative sent amount (0 before any).
func (s *State) Earned() *big.Int {
	if s.Accepted == nil {
		return new(big.Int)
	}
	v, _ := amount("", s.Accepted.Sent)
	return v
}

// ConfirmedTotal is the cumulative amount confirmed paid to the owner.
func (s *State) ConfirmedTotal() *big.Int {
	v, _ := amount("", s.Confirmed)
	return v
}

// InFlight is what the open intent would add to the confirmed total.
func (s *State) InFlight() *big.Int {
	in := s.OpenIntent()
	if in == nil {
		return new(big.Int)
	}
	t, _ := amount("", in.Target)
	return t.Sub(t, s.ConfirmedTotal())
}

// Due is earned − confirmed − in flight: what a new intent would settle.
func (s *State) Due() *big.Int {
	d := s.Earned()
	d.Sub(d, s.ConfirmedTotal())
	return d.Sub(d, s.InFlight())
}

// SortedIntents returns the intents ordered by target.
func (s *State) SortedIntents() []*Intent {
	out := make([]*Intent, 0, len(s.Intents))
	for _, in := range s.Intents {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := amount("", out[i].Target)
		b, _ := amount("", out[j].Target)
		if c := a.Cmp(b); c != 0 {
			return c < 0
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// apply reduces one record into s (which it may leave half-changed on
// error: callers apply to a clone).
func (s *State) apply(kind string, data []byte) error {
	dec := func(v any) error {
		d := json.NewDecoder(bytes.NewReader(data))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return fmt.Errorf("%s record: %w", kind, err)
		}
		return nil
	}
	switch kind {
	case kindSnapshot:
		var n State
		if err := dec(&n); err != nil {
			return err
		}
		if n.Intents == nil {
			n.Intents = map[string]*Intent{}
		}
		if n.ReceiptsClaimed == "" && n.Receipts == 0 {
			n.ReceiptsClaimed = "0"
		}
		if n.LastTx == "" {
			n.LastTx = lastConfirmedTx(n.Intents)
		}
		if err := n.check(); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		*s = n
		return nil
	case kindChannel:
		var c ChannelRecord
		if err := dec(&c); err != nil {
			return err
		}
		if s.Channel != nil {
			return fmt.Errorf("channel record: the ledger is already bound to channel %s", s.Channel.Address)
		}
		cfg, err := c.Config()
		if err != nil {
			return err
		}
		a, err := cfg.Address()
		if err != nil {
			return err
		}
		if payment.RawAddress(a) != c.Address {
			return fmt.Errorf("channel record: storage derives address %s, record says %s", payment.RawAddress(a), c.Address)
		}
		s.Channel = &c
		return nil
	case kindAccept:
		var a Accepted
		if err := dec(&a); err != nil {
			return err
		}
		if s.Channel == nil {
			return errors.New("accept record before the channel record")
		}
		sent, err := amount("accept record sent", a.Sent)
		if err != nil {
			return err
		}
		if s.Accepted != nil {
			if a.Seqno <= s.Accepted.Seqno || sent.Cmp(s.Earned()) < 0 {
				return fmt.Errorf("accept record seqno %d sent %s does not advance on seqno %d sent %s", a.Seqno, a.Sent, s.Accepted.Seqno, s.Accepted.Sent)
			}
		}
		s.Accepted = &a
		return nil
	case kindPause:
		var p struct {
			Reason string `json:"reason"`
		}
		if err := dec(&p); err != nil {
			return err
		}
		if p.Reason == "" {
			return errors.New("pause record without a reason")
		}
		s.Paused = p.Reason
		return nil
	case kindResume:
		var p struct{}
		if err := dec(&p); err != nil {
			return err
		}
		s.Paused = ""
		return nil
	case kindIntent:
		var in Intent
		if err := dec(&in); err != nil {
			return err
		}
		return s.applyIntent(&in)
	case kindReceipt:
		var r ReceiptRecord
		if err := dec(&r); err != nil {
			return err
		}
		return s.applyReceipt(&r)
	}
	return fmt.Errorf("unknown record kind %q", kind)
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// applyReceipt checks a receipt record and counts it. It changes s only
// when the record applies, and touches nothing but the receipt totals, so
// append can apply it to a shallow copy.
func (s *State) applyReceipt(r *ReceiptRecord) error {
	if s.Channel == nil {
		return fmt.Errorf("receipt %d: before the channel record", r.Seq)
	}
	if r.Channel != s.Channel.Address {
		return fmt.Errorf("receipt %d: for channel %q, the ledger is bound to %s", r.Seq, r.Channel, s.Channel.Address)
	}
	if r.Seq != s.Receipts+1 {
		return fmt.Errorf("receipt %d: not consecutive (the last receipt is %d)", r.Seq, s.Receipts)
	}
	if r.Seq > payment.MaxSafeInt || r.TokensIn > payment.MaxSafeInt || r.TokensOut > payment.MaxSafeInt {
		return fmt.Errorf("receipt %d: seq or token count exceeds 2^53-1", r.Seq)
	}
	if !hex64.MatchString(r.RequestID) {
		return fmt.Errorf("receipt %d: request id %q is not a lowercase hex SHA-256", r.Seq, r.RequestID)
	}
	if r.IssuedAt <= 0 || r.IssuedAt > payment.MaxSafeInt {
		return fmt.Errorf("receipt %d: issued_at %d is not a unix time", r.Seq, r.IssuedAt)
	}
	a, err := amount(fmt.Sprintf("receipt %d amount", r.Seq), r.Amount)
	if err != nil {
		return err
	}
	if a.BitLen() > 64 {
		return fmt.Errorf("receipt %d: amount %s exceeds 64 bits", r.Seq, a)
	}
	total := a.Add(a, s.ClaimedTotal())
	if total.BitLen() > 120 {
		return fmt.Errorf("receipt %d: claimed total %s exceeds 2^120", r.Seq, total)
	}
	s.Receipts, s.ReceiptsClaimed = r.Seq, total.String()
	return nil
}

func (s *State) applyIntent(in *Intent) error {
	if s.Channel == nil {
		return errors.New("intent record before the channel record")
	}
	if !in.Status.valid() {
		return fmt.Errorf("intent %s: unknown status %q", in.ID, in.Status)
	}
	target, err := amount("intent "+in.ID+" target", in.Target)
	if err != nil {
		return err
	}
	if want := IntentID(s.Channel.Address, target); in.ID != want {
		return fmt.Errorf("intent %s: id does not derive from channel %s and target %s", in.ID, s.Channel.Address, in.Target)
	}
	for _, f := range []struct{ n, v string }{{"amount", in.Amount}, {"sent_a", in.SentA}, {"withdraw_a", in.WithdrawA}} {
		if _, err := amount("intent "+in.ID+" "+f.n, f.v); err != nil {
			return err
		}
	}
	prev := s.Intents[in.ID]
	from := Status("")
	if prev != nil {
		from = prev.Status
	}
	ok := false
	for _, n := range next[from] {
		ok = ok || n == in.Status
	}
	if !ok {
		return fmt.Errorf("intent %s: %s → %s is not a transition", in.ID, orNone(from), in.Status)
	}
	confirmed := s.ConfirmedTotal()
	if in.Status == Planned {
		if o := s.OpenIntent(); o != nil {
			return fmt.Errorf("intent %s: planned while intent %s is %s (one in flight at a time)", in.ID, o.ID, o.Status)
		}
		if s.Paused != "" {
			return fmt.Errorf("intent %s: planned while paused (%s)", in.ID, s.Paused)
		}
		if target.Cmp(confirmed) <= 0 || target.Cmp(s.Earned()) > 0 {
			return fmt.Errorf("intent %s: target %s is not above confirmed %s and within earned %s", in.ID, target, confirmed, s.Earned())
		}
		if in.SeqnoB <= s.LastSeqnoB {
			return fmt.Errorf("intent %s: seqno B %d does not exceed the last signed %d", in.ID, in.SeqnoB, s.LastSeqnoB)
		}
		if prev != nil && in.Attempt != prev.Attempt+1 || prev == nil && in.Attempt != 1 {
			return fmt.Errorf("intent %s: attempt %d out of order", in.ID, in.Attempt)
		}
		s.LastSeqnoB = in.SeqnoB
	} else {
		// The commit is fixed once planned.
		if prev.SeqnoA != in.SeqnoA || prev.SeqnoB != in.SeqnoB || prev.SentA != in.SentA ||
			prev.WithdrawA != in.WithdrawA || prev.SigB != in.SigB || prev.Attempt != in.Attempt || prev.Amount != in.Amount {
			return fmt.Errorf("intent %s: %s → %s changes the planned commit", in.ID, from, in.Status)
		}
		if from != Planned && (prev.ExtBOC != in.ExtBOC || prev.WalletSeqno != in.WalletSeqno || prev.ValidUntil != in.ValidUntil || prev.SigA != in.SigA) {
			return fmt.Errorf("intent %s: %s → %s changes the signed external", in.ID, from, in.Status)
		}
	}
	if in.Status == Signed && (in.ExtBOC == "" || in.ExtHash == "" || in.SigA == "" || in.ValidUntil == 0) {
		return fmt.Errorf("intent %s: signed without the external, its hash, A's signature or valid_until", in.ID)
	}
	if in.Status == Confirmed {
		if target.Cmp(confirmed) <= 0 {
			return fmt.Errorf("intent %s: confirmed target %s does not exceed confirmed %s", in.ID, target, confirmed)
		}
		if target.Cmp(s.Earned()) > 0 {
			return fmt.Errorf("intent %s: confirmed target %s exceeds earned %s", in.ID, target, s.Earned())
		}
		s.Confirmed = target.String()
		s.LastSettled, s.LastTx = in.At, in.TxHash
	}
	if in.Status == Bounced || in.Status == Failed {
		s.Paused = fmt.Sprintf("intent %s %s: %s", in.ID, in.Status, in.Reason)
	}
	cp := *in
	s.Intents[in.ID] = &cp
	return nil
}

// lastConfirmedTx is the transaction of the latest confirmed intent (by
// chain time, then target) among intents: the LastTx of a snapshot
// written before the ledger kept it.
func lastConfirmedTx(intents map[string]*Intent) string {
	st := State{Intents: intents}
	var at uint32
	tx := ""
	for _, in := range st.SortedIntents() {
		if in.Status == Confirmed && in.At >= at {
			at, tx = in.At, in.TxHash
		}
	}
	return tx
}

// folded returns a copy of s as compaction writes it: every intent that
// no record can change any more is removed from Intents and counted in
// Finished. That is a finished intent whose target is at or below the
// confirmed total: a confirmed intent has no transition, and planning
// (the only way out of expired, failed and bounced) needs a target above
// it, while the confirmed total never decreases. The finished intents
// that may still be planned again keep their id, status, attempt and
// commit, but not the signed external and the signatures, which can never
// be used again (they are dropped; a new plan signs afresh). The open
// intent is kept whole. Summarize gives the same Summary for s and for
// its folded copy.
func (s *State) folded() *State {
	c := s.clone()
	confirmed := c.ConfirmedTotal()
	for id, in := range c.Intents {
		if in.Status.Open() {
			continue
		}
		t, err := amount("", in.Target)
		if err == nil && t.Cmp(confirmed) <= 0 {
			if c.Finished == nil {
				c.Finished = map[Status]int{}
			}
			c.Finished[in.Status]++
			delete(c.Intents, id)
			continue
		}
		in.ExtBOC, in.SigA, in.SigB, in.BodyHash = "", "", "", ""
	}
	return c
}

func orNone(s Status) string {
	if s == "" {
		return "(none)"
	}
	return string(s)
}

// check verifies a state's invariants (after a snapshot).
func (s *State) check() error {
	c, err := amount("confirmed", s.Confirmed)
	if err != nil {
		return err
	}
	if s.Accepted != nil {
		if _, err := amount("accepted sent", s.Accepted.Sent); err != nil {
			return err
		}
	}
	if c.Cmp(s.Earned()) > 0 {
		return fmt.Errorf("confirmed %s exceeds earned %s", c, s.Earned())
	}
	open := 0
	for id, in := range s.Intents {
		if in == nil || in.ID != id || !in.Status.valid() {
			return fmt.Errorf("intent %s malformed", id)
		}
		if in.Status.Open() {
			open++
		}
	}
	if open > 1 {
		return fmt.Errorf("%d intents in flight", open)
	}
	for st, n := range s.Finished {
		if !st.valid() || st.Open() || n < 1 {
			return fmt.Errorf("finished: %d intents %q (want a positive count of confirmed, expired, failed or bounced)", n, st)
		}
	}
	if s.LastTx != "" && !hex64.MatchString(s.LastTx) {
		return fmt.Errorf("last_tx %q is not a transaction hash", s.LastTx)
	}
	return s.checkReceipts()
}

func (s *State) checkReceipts() error {
	if s.Receipts > payment.MaxSafeInt {
		return fmt.Errorf("receipts %d exceeds 2^53-1", s.Receipts)
	}
	if s.Receipts > 0 && s.Channel == nil {
		return fmt.Errorf("%d receipts without a channel", s.Receipts)
	}
	if _, err := amount("receipts claimed", s.ReceiptsClaimed); err != nil {
		return err
	}
	return nil
}

// Config parses the channel configuration the record pins.
func (c ChannelRecord) Config() (channel.Config, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(c.Storage)
	if err != nil {
		return channel.Config{}, fmt.Errorf("channel record %s: storage is not base64", c.Address)
	}
	st, err := channel.ParseStorageBOC(b)
	if err != nil {
		return channel.Config{}, fmt.Errorf("channel record %s: %w", c.Address, err)
	}
	cfg := st.Config()
	if err := cfg.Validate(); err != nil {
		return channel.Config{}, fmt.Errorf("channel record %s: %w", c.Address, err)
	}
	return cfg, nil
}

// Hook is called at every durable step and every chain call with the
// step's name; tests use it to kill the process at each one.
type Hook func(step string)

// DefaultCompactEvery is the journal length (records since the last
// compaction) at which a Ledger compacts itself unless told otherwise.
const DefaultCompactEvery = 4096

// Ledger is the durable payout state. It is safe for concurrent use, but
// only the Settler changes intents. One Ledger at a time holds a journal:
// OpenLedger takes an exclusive lock that Close releases.
type Ledger struct {
	mu   sync.Mutex
	path string
	j    *journal.Journal
	lock *os.File
	st   *State
	hook Hook
	n    int // records since the last compaction
	// every is the automatic compaction threshold; retryAt the record
	// count of the next attempt after a failed one; compactErr that
	// failure (nil after a success).
	every, retryAt int
	compactErr     error
}

// OpenLedger opens (creating) the ledger at path and replays it. A record
// that does not apply is an error: the ledger never guesses what money it
// held. It first takes an exclusive, non-blocking lock on path+".lock"
// (flock): a second OpenLedger on the same path, in this process or
// another, fails until Close. Temporary files a crashed compaction left
// beside the journal are removed.
func OpenLedger(path string, hook Hook) (*Ledger, error) {
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	removeStaleTemps(path)
	j, recs, _, err := journal.Open(path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	st, err := Replay(recs)
	if err != nil {
		j.Close()
		lock.Close()
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	if hook == nil {
		hook = func(string) {}
	}
	j.SetHook(hook)
	return &Ledger{path: path, j: j, lock: lock, st: st, hook: hook, n: len(recs), every: DefaultCompactEvery}, nil
}

// lockFile opens (creating) name and locks it exclusively without waiting.
func lockFile(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock file %s is held: another agent has this ledger open (stop it first; one ledger serves one agent)", name)
		}
		return nil, fmt.Errorf("lock file %s: %w", name, err)
	}
	return f, nil
}

// removeStaleTemps deletes the temporary files of a compaction that a
// crash interrupted before its rename (the caller holds the lock, so no
// compaction is under way).
func removeStaleTemps(path string) {
	m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*"))
	for _, f := range m {
		os.Remove(f)
	}
}

// Replay reduces journal records into a State, checking every record.
func Replay(recs []journal.Record) (*State, error) {
	st := newState()
	for _, r := range recs {
		if err := st.apply(r.Kind, r.Data); err != nil {
			return nil, fmt.Errorf("record %d (%s): %w", r.Seq, r.Kind, err)
		}
	}
	if err := st.check(); err != nil {
		return nil, err
	}
	return st, nil
}

// Close closes the journal and releases the lock.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.j.Close()
	if l.lock != nil {
		if cerr := l.lock.Close(); err == nil {
			err = cerr
		}
		l.lock = nil
	}
	return err
}

// State returns a copy of the current state.
func (l *Ledger) State() *State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.clone()
}

// append applies a record to a copy of the state and, if it applies,
// journals it (fsynced) and makes the copy current; then, at this safe
// point (the record durable, the state current, the lock held), it
// compacts the journal if it has reached the threshold. A failed
// compaction does not fail the append (the record is durable): it is
// kept for CompactError and retried after another threshold/8 records.
func (l *Ledger) append(kind string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var n *State
	if kind == kindReceipt {
		// A receipt changes only the receipt totals: a shallow copy
		// spares a deep clone of every intent per served request.
		c := *l.st
		n = &c
		if err := n.apply(kind, data); err != nil {
			return err
		}
	} else {
		n = l.st.clone()
		if err := n.apply(kind, data); err != nil {
			return err
		}
		if err := n.check(); err != nil {
			return err
		}
	}
	l.hook("ledger-before-" + kind)
	if _, err := l.j.Append(kind, json.RawMessage(data)); err != nil {
		return err
	}
	l.hook("ledger-after-" + kind)
	l.st = n
	l.n++
	if l.n >= l.every && l.n >= l.retryAt {
		if err := l.compact(); err != nil {
			l.compactErr = fmt.Errorf("ledger %s: automatic compaction at %d records: %w", l.path, l.n, err)
			l.retryAt = l.n + max(1, l.every/8)
		}
	}
	return nil
}

// Bind pins the channel and gas wallet, or checks them against the ones
// pinned.
func (l *Ledger) Bind(cfg channel.Config, walletRaw string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	addr, err := cfg.Address()
	if err != nil {
		return err
	}
	raw := payment.RawAddress(addr)
	if c := l.st.Channel; c != nil {
		if c.Address != raw || c.Wallet != walletRaw {
			return fmt.Errorf("ledger is bound to channel %s and wallet %s, not %s and %s", c.Address, c.Wallet, raw, walletRaw)
		}
		return nil
	}
	st, err := cfg.InitialStorage().Cell()
	if err != nil {
		return err
	}
	return l.append(kindChannel, ChannelRecord{Storage: base64.StdEncoding.EncodeToString(st.ToBOC()), Address: raw, Wallet: walletRaw})
}

// Accept checks a payment state from the proxy against the highest one
// accepted and records it durably before returning. now is unix seconds,
// recorded for reference only.
func (l *Ledger) Accept(ps payment.PaymentState, now int64) (channel.SignedSemiChannel, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st.Channel == nil {
		return channel.SignedSemiChannel{}, errors.New("ledger: accept before the channel is bound")
	}
	cfg, err := l.st.Channel.Config()
	if err != nil {
		return channel.SignedSemiChannel{}, err
	}
	var prev *channel.SignedSemiChannel
	if a := l.st.Accepted; a != nil {
		p, err := (payment.PaymentState{Channel: l.st.Channel.Address, State: a.State}).Signed()
		if err != nil {
			return channel.SignedSemiChannel{}, fmt.Errorf("ledger: accepted state: %w", err)
		}
		prev = &p
	}
	s, err := payment.CheckState(prev, ps, cfg)
	if err != nil {
		return channel.SignedSemiChannel{}, err
	}
	a := Accepted{Seqno: s.State.Data.Seqno, Sent: s.State.Data.Sent.String(), State: ps.State, At: now}
	if err := l.append(kindAccept, a); err != nil {
		return channel.SignedSemiChannel{}, err
	}
	return s, nil
}

// Record journals an intent transition (validated by the same reducer
// that replays the file).
func (l *Ledger) Record(in Intent) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.append(kindIntent, in)
}

// Pause stops settlement with an alarm until Resume.
func (l *Ledger) Pause(reason string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.append(kindPause, struct {
		Reason string `json:"reason"`
	}{reason})
}

// Resume clears a pause (an operator's decision after an alarm).
func (l *Ledger) Resume() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.append(kindResume, struct{}{})
}

// Compact rewrites the journal as one snapshot record of the current
// state through a temporary file and a rename: a crash at any point
// leaves either the old journal or the snapshot, and both replay to the
// same Summary. The snapshot keeps every total and the open intent whole,
// and folds the finished intents no record can change any more into
// counts (State.Finished), so its size does not grow with the number of
// settlements.
func (l *Ledger) Compact() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.compact()
}

func (l *Ledger) compact() error {
	l.hook("ledger-before-compact")
	f := l.st.folded()
	if _, err := l.j.Compact(kindSnapshot, f); err != nil {
		return err
	}
	l.hook("ledger-after-compact")
	l.st = f
	l.n, l.retryAt, l.compactErr = 1, 0, nil
	return nil
}

// SetCompactEvery sets the automatic compaction threshold: once the
// journal holds records records since its last compaction, the append
// that reached it compacts (default DefaultCompactEvery). Each compaction
// writes the whole state and fsyncs it: a low threshold trades that cost,
// paid by one request in every records, for a shorter replay.
func (l *Ledger) SetCompactEvery(records int) error {
	if records < 2 {
		return fmt.Errorf("ledger %s: compaction threshold %d records: want at least 2", l.path, records)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.every = records
	return nil
}

// CompactError is the last automatic compaction's failure, nil when the
// last one succeeded or none failed. The ledger keeps working without
// compaction (its journal grows); an operator should look at the disk.
func (l *Ledger) CompactError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.compactErr
}

// Records is how many records the journal holds since its last compaction.
func (l *Ledger) Records() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
