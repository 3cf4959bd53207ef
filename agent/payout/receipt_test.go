package payout_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/chrysalis-cc/chrysalis/agent/api"
	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/agent/payout/journal"
	"github.com/chrysalis-cc/chrysalis/agent/payout/payouttest"
	"github.com/chrysalis-cc/chrysalis/measure/golden"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

const (
	receiptChildEnv = "CHRYSALIS_PAYOUT_RECEIPT_CHILD"
	lockChildEnv    = "CHRYSALIS_PAYOUT_LOCK_CHILD"
	testWallet      = "0:abababababababababababababababababababababababababababababababab"
	// Every test receipt: 100 tokens in at 1 TON/1M, 200 out at 3 TON/1M.
	receiptAmount = 700
)

// The agent passes a ReceiptSigner as api.Config.Signer.
var _ api.Signer = (*payout.ReceiptSigner)(nil)

// usage is the receipt the API would build for request i.
func usage(i int) payment.Receipt {
	h := sha256.Sum256([]byte("request-" + strconv.Itoa(i)))
	return payment.Receipt{RequestID: hex.EncodeToString(h[:]), Model: "test-model", TokensIn: 100, TokensOut: 200,
		PriceInPer1M: "1000000", PriceOutPer1M: "3000000", Amount: strconv.Itoa(receiptAmount), IssuedAt: 1_780_000_000 + int64(i)}
}

// boundLedger opens a ledger at path bound to the fixture's channel.
func boundLedger(t testing.TB, f *payouttest.Fixture, path string) *payout.Ledger {
	t.Helper()
	l, err := payout.OpenLedger(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.Bind(f.Config, testWallet); err != nil {
		t.Fatal(err)
	}
	return l
}

func newSigner(t testing.TB, f *payouttest.Fixture, l *payout.Ledger) *payout.ReceiptSigner {
	t.Helper()
	kb, err := payout.NewSecretKey(f.KeyB.Seed())
	if err != nil {
		t.Fatal(err)
	}
	s, err := payout.NewReceiptSigner(l, kb, payment.RawAddress(f.ChannelAddr))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReceiptSignerNumbersDurably signs receipts, restarts, signs more
// (some concurrently) and checks the numbering never repeats or skips and
// every receipt verifies under key B for the channel.
func TestReceiptSignerNumbersDurably(t *testing.T) {
	f, err := payouttest.NewFixture()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l := boundLedger(t, f, path)
	s := newSigner(t, f, l)
	for i := 1; i <= 3; i++ {
		sr, err := s.Sign(usage(i))
		if err != nil {
			t.Fatal(err)
		}
		if sr.Receipt.Seq != uint64(i) || sr.Receipt.Version != payment.ReceiptVersion {
			t.Fatalf("receipt %d: seq %d version %d", i, sr.Receipt.Seq, sr.Receipt.Version)
		}
		if err := payment.VerifyReceipt(sr, f.Config.KeyB, f.ChannelAddr); err != nil {
			t.Fatal(err)
		}
	}
	// Restart: the numbering continues from the journal.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = boundLedger(t, f, path)
	s = newSigner(t, f, l)
	const workers, each = 8, 10
	var mu sync.Mutex
	var seqs []int
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				sr, err := s.Sign(usage(100 + w*each + i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seqs = append(seqs, int(sr.Receipt.Seq))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	sort.Ints(seqs)
	for i, q := range seqs {
		if q != 4+i {
			t.Fatalf("concurrent seqs %v: want 4..%d without gaps or repeats", seqs, 3+workers*each)
		}
	}
	n := 3 + workers*each
	st := l.State()
	if st.Receipts != uint64(n) || st.ReceiptsClaimed != strconv.Itoa(n*receiptAmount) {
		t.Fatalf("state: %d receipts, %s claimed; want %d, %d", st.Receipts, st.ReceiptsClaimed, n, n*receiptAmount)
	}
	sum := payout.Summarize(st)
	if sum.Receipts != uint64(n) || sum.Claimed != strconv.Itoa(n*receiptAmount) {
		t.Fatalf("summary: %+v", sum)
	}
}

// TestReceiptSignerRefuses: no receipt before the ledger is bound, for
// another channel or with a key other than B; a receipt that fails to
// sign or to journal does not consume its seq.
func TestReceiptSignerRefuses(t *testing.T) {
	f, err := payouttest.NewFixture()
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := payout.NewSecretKey(f.KeyB.Seed())
	other, _ := payout.NewSecretKey(bytes.Repeat([]byte{7}, 32))
	chRaw := payment.RawAddress(f.ChannelAddr)
	dir := t.TempDir()

	unbound, err := payout.OpenLedger(filepath.Join(dir, "unbound.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unbound.Close()
	s, err := payout.NewReceiptSigner(unbound, kb, chRaw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(usage(1)); err == nil || !strings.Contains(err.Error(), "not bound") {
		t.Fatalf("sign on an unbound ledger: %v", err)
	}

	l := boundLedger(t, f, filepath.Join(dir, "ledger.jsonl"))
	for _, tc := range []struct {
		name string
		key  payout.KeyProvider
		ch   string
		want string
	}{
		{"other channel", kb, "0:" + strings.Repeat("12", 32), "is bound to channel"},
		{"not key B", other, chRaw, "not channel"},
		{"bad address", kb, "EQ-nonsense", "receipt signer"},
		{"no key", nil, chRaw, "required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := payout.NewReceiptSigner(l, tc.key, tc.ch); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewReceiptSigner: %v, want %q", err, tc.want)
			}
		})
	}
	// Bound after the signer was made: the first Sign checks key B.
	late := boundLedgerLater(t, f, filepath.Join(dir, "late.jsonl"), other, chRaw)
	if _, err := late.Sign(usage(1)); err == nil || !strings.Contains(err.Error(), "key B") {
		t.Fatalf("sign with a wrong key on a later-bound ledger: %v", err)
	}

	s = newSigner(t, f, l)
	bad := usage(1)
	bad.Amount = "701" // not what the tokens and prices make
	if _, err := s.Sign(bad); err == nil || !strings.Contains(err.Error(), "amount") {
		t.Fatalf("bad receipt: %v", err)
	}
	if sr, err := s.Sign(usage(2)); err != nil || sr.Receipt.Seq != 1 {
		t.Fatalf("after a refused receipt: seq %d, %v (want 1)", sr.Receipt.Seq, err)
	}
	// The journal fails (closed here): the receipt is not returned and
	// its seq is not consumed.
	l.Close()
	if _, err := s.Sign(usage(3)); err == nil || !strings.Contains(err.Error(), "journal") {
		t.Fatalf("sign on a closed ledger: %v", err)
	}
	if st := l.State(); st.Receipts != 1 {
		t.Fatalf("failed append consumed a seq: %d receipts", st.Receipts)
	}
	l = boundLedger(t, f, filepath.Join(dir, "ledger.jsonl"))
	if sr, err := newSigner(t, f, l).Sign(usage(3)); err != nil || sr.Receipt.Seq != 2 {
		t.Fatalf("after reopen: seq %d, %v (want 2)", sr.Receipt.Seq, err)
	}
}

func boundLedgerLater(t *testing.T, f *payouttest.Fixture, path string, key payout.KeyProvider, ch string) *payout.ReceiptSigner {
	t.Helper()
	l, err := payout.OpenLedger(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s, err := payout.NewReceiptSigner(l, key, ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Bind(f.Config, testWallet); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReplayRefusesBadReceipts: replay refuses a receipt that skips or
// repeats a seq, names another channel, or carries malformed fields.
func TestReplayRefusesBadReceipts(t *testing.T) {
	gold, err := os.ReadFile(filepath.Join("testdata", "ledger-replay.golden"))
	if err != nil {
		t.Fatal(err)
	}
	chLine, _, _ := bytes.Cut(gold, []byte("\n"))
	_, chData, _ := bytes.Cut(chLine, []byte(" "))
	var ch payout.ChannelRecord
	if err := json.Unmarshal(chData, &ch); err != nil {
		t.Fatal(err)
	}
	rec := func(seq uint64, mod func(*payout.ReceiptRecord)) string {
		u := usage(int(seq))
		r := payout.ReceiptRecord{Seq: seq, Channel: ch.Address, RequestID: u.RequestID, TokensIn: u.TokensIn,
			TokensOut: u.TokensOut, Amount: u.Amount, IssuedAt: u.IssuedAt}
		if mod != nil {
			mod(&r)
		}
		b, _ := json.Marshal(r)
		return "receipt " + string(b)
	}
	replay := func(lines ...string) (*payout.State, error) {
		var recs []journal.Record
		for i, ln := range lines {
			k, d, _ := strings.Cut(ln, " ")
			recs = append(recs, journal.Record{Seq: uint64(i + 1), Kind: k, Data: json.RawMessage(d)})
		}
		return payout.Replay(recs)
	}
	channelLine := string(chLine)
	st, err := replay(channelLine, rec(1, nil), rec(2, nil))
	if err != nil || st.Receipts != 2 || st.ReceiptsClaimed != "1400" {
		t.Fatalf("good receipts: %v, %+v", err, st)
	}
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"before the channel", []string{rec(1, nil)}, "before the channel"},
		{"gap", []string{channelLine, rec(1, nil), rec(3, nil)}, "not consecutive (the last receipt is 1)"},
		{"repeat", []string{channelLine, rec(1, nil), rec(1, nil)}, "not consecutive"},
		{"from zero", []string{channelLine, rec(0, nil)}, "not consecutive"},
		{"other channel", []string{channelLine, rec(1, func(r *payout.ReceiptRecord) { r.Channel = "0:" + strings.Repeat("12", 32) })}, "for channel"},
		{"request id", []string{channelLine, rec(1, func(r *payout.ReceiptRecord) { r.RequestID = "ABC" })}, "request id"},
		{"amount", []string{channelLine, rec(1, func(r *payout.ReceiptRecord) { r.Amount = "-5" })}, "amount"},
		{"huge amount", []string{channelLine, rec(1, func(r *payout.ReceiptRecord) { r.Amount = "18446744073709551616" })}, "64 bits"},
		{"issued at", []string{channelLine, rec(1, func(r *payout.ReceiptRecord) { r.IssuedAt = 0 })}, "issued_at"},
		{"tokens", []string{channelLine, rec(1, func(r *payout.ReceiptRecord) { r.TokensOut = 1 << 60 })}, "2^53-1"},
		{"unknown field", []string{channelLine, `receipt {"seq":1,"extra":1}`}, "unknown field"},
		{"snapshot receipts without total", []string{`snapshot {"channel":` + string(chData) + `,"confirmed":"0","last_seqno_b":0,"last_settled":0,"intents":{},"receipts":3}`}, "receipts claimed"},
		{"snapshot receipts without channel", []string{`snapshot {"confirmed":"0","last_seqno_b":0,"last_settled":0,"intents":{},"receipts":3,"receipts_claimed":"5"}`}, "without a channel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := replay(tc.lines...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("replay: %v, want %q", err, tc.want)
			}
		})
	}
	// A snapshot from before receipts were journaled reads as none.
	st, err = replay(`snapshot {"confirmed":"0","last_seqno_b":0,"last_settled":0,"intents":{}}`)
	if err != nil || st.Receipts != 0 || st.ClaimedTotal().Sign() != 0 {
		t.Fatalf("old snapshot: %v %+v", err, st)
	}
}

// TestAutoCompaction: with a threshold of 8 the journal never holds more
// than 8 records, an open intent and every total survive, and a restart
// replays to the same State. The journal (kind data lines) is a golden
// file and a FuzzLedgerReplay seed.
func TestAutoCompaction(t *testing.T) {
	e := newEnv(t, "1", defaultPolicy())
	e.pay("2")
	e.step("sent") // an intent in flight
	if err := e.ledger.SetCompactEvery(1); err == nil {
		t.Fatal("threshold 1 accepted")
	}
	if err := e.ledger.SetCompactEvery(8); err != nil {
		t.Fatal(err)
	}
	s := newSigner(t, e.f, e.ledger)
	for i := 1; i <= 20; i++ {
		if _, err := s.Sign(usage(i)); err != nil {
			t.Fatal(err)
		}
		if n := e.ledger.Records(); n > 8 || n < 1 {
			t.Fatalf("after receipt %d: %d records", i, n)
		}
	}
	if err := e.ledger.CompactError(); err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(e.ledger.State())
	e.open()
	after, _ := json.Marshal(e.ledger.State())
	if !bytes.Equal(before, after) {
		t.Fatalf("state changed across compaction and restart:\n%s\n%s", before, after)
	}
	st := e.ledger.State()
	if st.OpenIntent() == nil || st.Receipts != 20 || st.Earned().Cmp(ton("2")) != 0 {
		t.Fatalf("after compaction: open %v, %d receipts, earned %s", st.OpenIntent(), st.Receipts, st.Earned())
	}
	// The settlement still completes from the compacted journal.
	e.tick(5)
	e.step("confirmed")
	e.check()
	recs, _, err := journal.ReadFile(filepath.Join(e.dir, "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Kind != "snapshot" {
		t.Fatalf("journal starts with %s, want a snapshot", recs[0].Kind)
	}
	// Golden: a fresh bound ledger, receipts across a compaction.
	gp := filepath.Join(t.TempDir(), "ledger.jsonl")
	l := boundLedger(t, e.f, gp)
	if err := l.SetCompactEvery(4); err != nil {
		t.Fatal(err)
	}
	gs := newSigner(t, e.f, l)
	for i := 1; i <= 5; i++ {
		if _, err := gs.Sign(usage(i)); err != nil {
			t.Fatal(err)
		}
	}
	if recs, _, err = journal.ReadFile(gp); err != nil {
		t.Fatal(err)
	}
	var g []byte
	for _, r := range recs {
		g = append(append(append(append(g, r.Kind...), ' '), r.Data...), '\n')
	}
	golden.Check(t, "ledger-receipts.golden", g)
}

// TestLedgerLock: one Ledger per journal, in this process and across
// processes; Close releases it.
func TestLedgerLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := payout.OpenLedger(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = payout.OpenLedger(path, nil)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another agent") {
		t.Fatalf("second OpenLedger in process: %v", err)
	}
	child := func() (string, int) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), lockChildEnv+"="+path)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := child(); code != 4 || !strings.Contains(out, "another agent") || !strings.Contains(out, path) {
		t.Fatalf("second process while held: exit %d: %s", code, out)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if out, code := child(); code != 0 {
		t.Fatalf("second process after Close: exit %d: %s", code, out)
	}
	l, err = payout.OpenLedger(path, nil)
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	l.Close()
}

// lockChild opens the ledger at path: exit 0 when it opened, 4 when it
// was refused (the error on stdout).
func lockChild(path string) int {
	l, err := payout.OpenLedger(path, nil)
	if err != nil {
		fmt.Println(err)
		return 4
	}
	l.Close()
	return 0
}

// receiptChild signs 12 receipts on the ledger in dir with compaction
// every 5 records, printing each returned seq, and SIGKILLs itself at the
// killAt-th hook call, or at the k-th call of a step when killStep is
// "step#k", after printing the step's name.
func receiptChild(dir string, killAt int, killStep string) error {
	n := 0
	seen := map[string]int{}
	hook := func(step string) {
		n++
		seen[step]++
		if n == killAt || killStep == step+"#"+strconv.Itoa(seen[step]) {
			fmt.Printf("kill %s\n", step)
			os.Stdout.Sync()
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	f, err := payouttest.NewFixture()
	if err != nil {
		return err
	}
	l, err := payout.OpenLedger(filepath.Join(dir, "ledger.jsonl"), hook)
	if err != nil {
		return err
	}
	if err := l.SetCompactEvery(5); err != nil {
		return err
	}
	if err := l.Bind(f.Config, testWallet); err != nil {
		return err
	}
	kb, _ := payout.NewSecretKey(f.KeyB.Seed())
	s, err := payout.NewReceiptSigner(l, kb, payment.RawAddress(f.ChannelAddr))
	if err != nil {
		return err
	}
	for i := range 12 {
		sr, err := s.Sign(usage(i))
		if err != nil {
			return err
		}
		fmt.Printf("seq %d\n", sr.Receipt.Seq)
	}
	return l.Close()
}

// TestCompactionCrashSafety kills a receipt-signing process at every hook
// step in turn, compaction's four (before, temporary file written,
// renamed, after) included, and checks after each kill that the journal
// replays, no returned receipt is lost, at most the one being returned is
// journaled beyond them, and the totals match the receipts.
func TestCompactionCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level crash test")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.jsonl")
	returned := uint64(0)
	steps := map[string]int{}
	// Every position of a run in turn, then every compaction step at its
	// first, second and third occurrence in a run.
	var kills []string
	for i := 1; i <= 40; i++ {
		kills = append(kills, strconv.Itoa(i))
	}
	for k := 1; k <= 3; k++ {
		for _, s := range []string{"ledger-before-compact", "journal-compact-written", "journal-compact-renamed", "ledger-after-compact"} {
			kills = append(kills, s+"#"+strconv.Itoa(k))
		}
	}
	for _, killAt := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), receiptChildEnv+"="+dir, receiptChildEnv+"_KILL_AT="+killAt)
		out, err := cmd.Output()
		killed := ""
		if err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok || !ee.Sys().(syscall.WaitStatus).Signaled() {
				t.Fatalf("child (kill at %s): %v\n%s%s", killAt, err, out, stderrOf(err))
			}
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), " ")
			switch k {
			case "seq":
				q, _ := strconv.ParseUint(v, 10, 64)
				if q != returned+1 {
					t.Fatalf("kill at %s: child returned seq %d after %d", killAt, q, returned)
				}
				returned = q
			case "kill":
				killed = v
				steps[v]++
			}
		}
		recs, torn, err := journal.ReadFile(path)
		if err != nil {
			t.Fatalf("kill at %s (%s): %v", killAt, killed, err)
		}
		st, err := payout.Replay(recs)
		if err != nil {
			t.Fatalf("kill at %s (%s): %v", killAt, killed, err)
		}
		// Journaled but never returned: only a kill after the append and
		// before Sign returned (the append's hook or the compaction it
		// triggered).
		if killed == "ledger-after-receipt" || strings.Contains(killed, "compact") {
			if st.Receipts != returned+1 {
				t.Fatalf("kill at %s (%s): journal holds %d receipts, want the %d returned and the one being returned", killAt, killed, st.Receipts, returned)
			}
			returned++ // the lost receipt's seq is consumed
		}
		if m, _ := filepath.Glob(filepath.Join(dir, ".ledger.jsonl.tmp-*")); killed == "journal-compact-written" && len(m) == 0 {
			t.Fatalf("kill at %s: no temporary file left behind", killAt)
		}
		if st.Receipts != returned || torn != 0 {
			t.Fatalf("kill at %s (%s): journal holds %d receipts (torn %d), %d returned", killAt, killed, st.Receipts, torn, returned)
		}
		if st.ReceiptsClaimed != strconv.FormatUint(st.Receipts*receiptAmount, 10) {
			t.Fatalf("kill at %s (%s): %d receipts claim %s", killAt, killed, st.Receipts, st.ReceiptsClaimed)
		}
		if st.Channel == nil && returned > 0 {
			t.Fatalf("kill at %s: channel lost", killAt)
		}
	}
	for _, s := range []string{"ledger-before-compact", "journal-compact-written", "journal-compact-renamed", "ledger-after-compact"} {
		if steps[s] == 0 {
			t.Errorf("no kill at %s (kills: %v)", s, steps)
		}
	}
	// A clean run removes the temporary file a kill left and continues.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), receiptChildEnv+"="+dir, receiptChildEnv+"_KILL_AT=0")
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("clean run: %v\n%s%s", err, out, stderrOf(err))
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".ledger.jsonl.tmp-*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
	t.Logf("kills by step: %v; %d receipts returned", steps, returned)
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// BenchmarkReceiptSign is the cost of one receipt: an ed25519 signature,
// a journal append and its fsync (on the test's temporary directory), and
// a compaction every DefaultCompactEvery receipts.
func BenchmarkReceiptSign(b *testing.B) {
	f, err := payouttest.NewFixture()
	if err != nil {
		b.Fatal(err)
	}
	l := boundLedger(b, f, filepath.Join(b.TempDir(), "ledger.jsonl"))
	s := newSigner(b, f, l)
	r := usage(1)
	for b.Loop() {
		if _, err := s.Sign(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiptSignParallel signs from GOMAXPROCS goroutines: they
// queue on the ledger's lock, each behind the others' fsyncs.
func BenchmarkReceiptSignParallel(b *testing.B) {
	f, err := payouttest.NewFixture()
	if err != nil {
		b.Fatal(err)
	}
	l := boundLedger(b, f, filepath.Join(b.TempDir(), "ledger.jsonl"))
	s := newSigner(b, f, l)
	r := usage(1)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Sign(r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
