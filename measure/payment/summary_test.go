package payment

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chrysalis-cc/chrysalis/measure/golden"
)

// testSummary is a settlement in flight after one confirmed, one expired,
// with the ledger's compaction failing.
func testSummary() Summary {
	return Summary{
		Channel: "0:" + strings.Repeat("5b", 32), Wallet: "0:" + strings.Repeat("9e", 32),
		Earned: "1750000000", Settled: "1500000000", InFlight: "250000000", Pending: "0",
		ProxySeqno: 4, LastSettled: 1_780_000_420, LastTx: "c0ffee" + strings.Repeat("00", 29),
		Open:     &IntentSummary{ID: strings.Repeat("5a", 32), Status: "sent", Amount: "250000000", WalletSeqno: 2, ValidUntil: 1_780_000_900},
		Intents:  map[string]int{"confirmed": 1, "expired": 1, "sent": 1},
		Receipts: 3, Claimed: "2100",
		Paused:      "intent 5a5a bounced: channel refused the commit with exit code 40",
		LedgerError: "ledger /data/payout/ledger.jsonl: automatic compaction at 4096 records: no space left on device",
	}
}

// TestSummaryFormats: the text and metrics forms of a summary with every
// row, and of an empty ledger's (golden files).
func TestSummaryFormats(t *testing.T) {
	empty := Summary{Earned: "0", Settled: "0", InFlight: "0", Pending: "0", Claimed: "0", Intents: map[string]int{}}
	var out bytes.Buffer
	for _, s := range []Summary{testSummary(), empty} {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteText(&out); err != nil {
			t.Fatal(err)
		}
		out.WriteString("----\n")
		if err := s.WriteMetrics(&out); err != nil {
			t.Fatal(err)
		}
		out.WriteString("====\n")
	}
	golden.Check(t, "summary.golden", out.Bytes())
}

func TestSummaryValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Summary)
		err  string
	}{
		{"leading zero", func(s *Summary) { s.Earned = "01750000000" }, "earned_nanoton"},
		{"negative", func(s *Summary) { s.Pending = "-0" }, "pending_nanoton"},
		{"empty claimed", func(s *Summary) { s.Claimed = "" }, "receipts_claimed_nanoton"},
		{"huge", func(s *Summary) { s.Claimed = strings.Repeat("9", 37) }, "receipts_claimed_nanoton"},
		{"sum", func(s *Summary) { s.Settled = "1500000001" }, "is not earned"},
		{"channel", func(s *Summary) { s.Channel = "EQ" + strings.Repeat("a", 46) }, "channel"},
		{"last tx", func(s *Summary) { s.LastTx = "abc" }, "last_tx"},
		{"receipts", func(s *Summary) { s.Receipts = MaxSafeInt + 1 }, "receipts_issued"},
		{"status", func(s *Summary) { s.Intents["settled"] = 1 }, `"settled"`},
		{"count", func(s *Summary) { s.Intents["failed"] = -1 }, "-1 failed"},
		{"paused utf8", func(s *Summary) { s.Paused = "\xff" }, "paused"},
		{"ledger error size", func(s *Summary) { s.LedgerError = strings.Repeat("e", MaxSummaryText+1) }, "ledger_error"},
		{"open id", func(s *Summary) { s.Open.ID = "x" }, "open intent id"},
		{"open status", func(s *Summary) { s.Open.Status = "expired" }, "open intent status"},
		{"open amount", func(s *Summary) { s.Open.Amount = "1.5" }, "open intent amount"},
	} {
		s := testSummary()
		tc.mod(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestDecodeSummary(t *testing.T) {
	b, _ := json.Marshal(testSummary())
	s, err := DecodeSummary(b)
	if err != nil || s.Open.ValidUntil != 1_780_000_900 || s.Intents["expired"] != 1 {
		t.Fatalf("round trip: %+v %v", s, err)
	}
	for _, tc := range []struct{ name, in, err string }{
		{"unknown field", strings.Replace(string(b), `"wallet"`, `"purse":1,"wallet"`, 1), "unknown field"},
		{"duplicate key", strings.Replace(string(b), `"wallet"`, `"channel":"x","wallet"`, 1), "duplicate"},
		{"trailing", string(b) + "{}", ""},
		{"float", strings.Replace(string(b), `"proxy_seqno":4`, `"proxy_seqno":4.5`, 1), ""},
		{"invalid", strings.Replace(string(b), `"pending_nanoton":"0"`, `"pending_nanoton":"7"`, 1), "is not earned"},
		{"oversize", `{"paused":"` + strings.Repeat("a", MaxMessage) + `"}`, "limit"},
	} {
		if _, err := DecodeSummary([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestClipText(t *testing.T) {
	for _, in := range []string{"", "short", strings.Repeat("é", MaxSummaryText), strings.Repeat("a", MaxSummaryText-1) + "€", "bad \xff byte"} {
		out := ClipText(in)
		if len(out) > MaxSummaryText || !utf8.ValidString(out) || !strings.HasPrefix(in, out) && utf8.ValidString(in) {
			t.Errorf("ClipText(%.20q…) = %.20q… (%d bytes)", in, out, len(out))
		}
	}
	if ClipText("bad \xff byte") != "bad ? byte" {
		t.Error("invalid UTF-8 not replaced")
	}
}

func FuzzDecodeSummary(f *testing.F) {
	b, _ := json.Marshal(testSummary())
	f.Add(b)
	f.Add([]byte(`{"earned_nanoton":"0","settled_nanoton":"0","in_flight_nanoton":"0","pending_nanoton":"0","receipts_claimed_nanoton":"0","intents":null,"proxy_seqno":0,"last_settled":0,"receipts_issued":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSummary(b)
		if err != nil {
			return
		}
		// A valid summary re-encodes to one that decodes equal, and its
		// text and metrics forms write.
		enc, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := DecodeSummary(enc)
		if err != nil {
			t.Fatalf("re-encoded summary does not decode: %v\n%s", err, enc)
		}
		if enc2, _ := json.Marshal(s2); !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the summary:\n%s\n%s", enc, enc2)
		}
		var w bytes.Buffer
		if s.WriteText(&w) != nil || s.WriteMetrics(&w) != nil {
			t.Fatal("write failed")
		}
	})
}
