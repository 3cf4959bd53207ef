package guest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Command
		err  string
	}{
		{in: `{"cmd":"poweroff"}`, want: Command{Cmd: CmdPowerOff}},
		{in: `{"cmd":"status"}`, want: Command{Cmd: CmdStatus}},
		{in: ` {"cmd":"logs","lines":50} ` + "\n", want: Command{Cmd: CmdLogs, Lines: 50}},
		{in: `{"cmd":"logs"}`, want: Command{Cmd: CmdLogs}},
		{in: `{"cmd":"reboot"}`, err: `"reboot" is unknown`},
		{in: `{"cmd":""}`, err: `"" is unknown`},
		{in: `null`, err: "is unknown"},
		{in: `{"cmd":"status","lines":3}`, err: "lines is only valid"},
		{in: `{"cmd":"logs","lines":-1}`, err: "lines -1 must be 0..1000"},
		{in: `{"cmd":"logs","lines":1001}`, err: "lines 1001"},
		{in: `{"cmd":"status","x":1}`, err: "unknown field"},
		{in: `{"cmd":"status"}{"cmd":"status"}`, err: "trailing data"},
		{in: `{"cmd":"status"}]`, err: "trailing data"},
		{in: `{"cmd":"status"`, err: "unexpected EOF"},
		{in: `{"cmd":"` + strings.Repeat("a", MaxCommandSize) + `"}`, err: "limit"},
	} {
		got, err := ParseCommand([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseCommand(%.60q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

func TestParseAgentLine(t *testing.T) {
	st, r, err := ParseAgentLine(readTestdata(t, "status-ready.json"))
	if err != nil || r != nil || st == nil || st.State != StateReady || st.Port != HTTPSPort {
		t.Fatalf("status line: %+v %+v %v", st, r, err)
	}
	st, r, err = ParseAgentLine(readTestdata(t, "status-report.json"))
	if err != nil || st != nil || r.Reply != ReplyStatus || r.Status.Instance != "e2e-worker" || len(r.Status.Events) != 2 || r.Status.GPU.UUIDs[0] != "GPU-3a1b2c3d-0000-1111-2222-333344445555" {
		t.Fatalf("status reply: %+v %+v %v", st, r, err)
	}
	_, r, err = ParseAgentLine(readTestdata(t, "status-report-payout.json"))
	if err != nil || r.Status.Payout == nil || r.Status.Payout.Earned != "1750000000" || r.Status.Payout.Open.Status != "sent" ||
		r.Status.Payout.Intents["expired"] != 1 || !strings.Contains(r.Status.Payout.LedgerError, "no space left") {
		t.Fatalf("status reply with payout: %+v %v", r, err)
	}
	_, r, err = ParseAgentLine(readTestdata(t, "logs-reply.json"))
	if err != nil || r.Reply != ReplyLogs || len(r.Logs) != 1 || !strings.Contains(r.Logs[0], "msg=ready") {
		t.Fatalf("logs reply: %+v %v", r, err)
	}
	_, r, err = ParseAgentLine(readTestdata(t, "error-reply.json"))
	if err != nil || r.Reply != ReplyError || !strings.Contains(r.Error, "reboot") {
		t.Fatalf("error reply: %+v %v", r, err)
	}
	// An empty logs reply (a fresh ring) is valid.
	if _, r, err := ParseAgentLine([]byte(`{"reply":"logs"}`)); err != nil || r.Reply != ReplyLogs {
		t.Fatalf("empty logs: %+v %v", r, err)
	}

	report := string(readTestdata(t, "status-report.json"))
	payout := string(readTestdata(t, "status-report-payout.json"))
	digest := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
	for _, tc := range []struct{ name, in, err string }{
		{"not json", `hello`, "invalid character"},
		{"no state", `{"tee":"tdx"}`, "state"},
		{"bad state", `{"state":"dancing"}`, `"dancing" is not one of`},
		{"status unknown field", `{"state":"ready","extra":1}`, "unknown field"},
		{"status port", `{"state":"ready","port":70000}`, "port 70000"},
		{"reply kind", `{"reply":"weather"}`, `"weather" is not one of`},
		{"status reply without report", `{"reply":"status"}`, "exactly a status report"},
		{"error reply empty", `{"reply":"error"}`, "non-empty error"},
		{"error reply with logs", `{"reply":"error","error":"x","logs":["a"]}`, "non-empty error"},
		{"logs with error", `{"reply":"logs","logs":["a"],"error":"x"}`, "only log lines"},
		{"long log line", `{"reply":"logs","logs":["` + strings.Repeat("a", MaxLogLineBytes+1) + `"]}`, "log line 0"},
		{"report unknown field", strings.Replace(report, `"engine"`, `"motor":1,"engine"`, 1), "unknown field"},
		{"report digest", strings.Replace(report, digest, strings.ToUpper(digest), 1), "event 0 (config) digest"},
		{"report event name", strings.Replace(report, `"name":"config"`, `"name":"Config"`, 1), "event 0 name"},
		{"report gpu state", strings.Replace(report, `"state":"attested"`, `"state":"melted"`, 1), "gpu state"},
		{"report gpu uuid", strings.Replace(report, `GPU-3a1b`, `CPU-3a1b`, 1), "GPU UUID"},
		{"report no gpus", strings.Replace(report, `"uuids":["GPU-3a1b2c3d-0000-1111-2222-333344445555"]`, `"uuids":[]`, 1), "0 attested GPUs"},
		{"report engine", strings.Replace(report, `"engine":"unknown"`, `"engine":""`, 1), "engine must be"},
		{"report uptime", strings.Replace(report, `"uptime_s":12`, `"uptime_s":-1`, 1), "uptime -1"},
		{"report instance", strings.Replace(report, `"e2e-worker"`, `"a/b"`, 1), "instance"},
		{"report rtmr3", strings.Replace(report, `"rtmr3":"aa`, `"rtmr3":"a`, 1), "rtmr3"},
		{"payout unknown field", strings.Replace(payout, `"proxy_seqno"`, `"proxy_seq":1,"proxy_seqno"`, 1), "unknown field"},
		{"payout amount", strings.Replace(payout, `"pending_nanoton":"0"`, `"pending_nanoton":"-1"`, 1), "payout: payment summary: pending_nanoton"},
		{"payout sum", strings.Replace(payout, `"pending_nanoton":"0"`, `"pending_nanoton":"1"`, 1), "is not earned"},
		{"payout status", strings.Replace(payout, `"expired":1`, `"lost":1`, 1), `intent status "lost"`},
		{"payout open", strings.Replace(payout, `"status":"sent"`, `"status":"confirmed"`, 1), "open intent status"},
		{"payout tx", strings.Replace(payout, `"last_tx":"c0ffee`, `"last_tx":"C0FFEE`, 1), "last_tx"},
		{"payout wallet", strings.Replace(payout, `"wallet":"0:9e`, `"wallet":"EQ9e`, 1), "wallet"},
		{"payout long error", strings.Replace(payout, `"ledger_error":"`, `"ledger_error":"`+strings.Repeat("x", 5000), 1), "ledger_error must be"},
		{"payout null", strings.Replace(payout, `"payout":{`, `"payout":null,"x":{`, 1), "unknown field"},
		{"trailing", report + `{}`, "after top-level value"},
		{"oversize", `{"reply":"logs","logs":["` + strings.Repeat("a", MaxMessageSize) + `"]}`, "limit"},
	} {
		if _, _, err := ParseAgentLine([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestEncodeReply(t *testing.T) {
	b, err := EncodeReply(&Reply{Reply: ReplyLogs, Logs: []string{"a", "b"}})
	if err != nil || string(b) != `{"reply":"logs","logs":["a","b"]}`+"\n" {
		t.Fatalf("EncodeReply = %q, %v", b, err)
	}
	if _, err := EncodeReply(&Reply{Reply: ReplyStatus}); err == nil {
		t.Error("status reply without a report encoded")
	}
	// Many maximal lines of control characters escape to more than the
	// line limit: the encoder refuses rather than sending an unreadable
	// line.
	var logs []string
	for range MaxLogLines {
		logs = append(logs, strings.Repeat("\x01", MaxLogLineBytes))
	}
	if _, err := EncodeReply(&Reply{Reply: ReplyLogs, Logs: logs}); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversize reply: %v", err)
	}
	e := ErrorReply(&json.SyntaxError{})
	if e.Reply != ReplyError || e.Error == "" {
		t.Errorf("ErrorReply = %+v", e)
	}
	long := ErrorReply(errString(strings.Repeat("é", MaxErrorBytes)))
	if _, err := EncodeReply(long); err != nil {
		t.Errorf("long error reply: %v", err)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{`{"cmd":"poweroff"}`, `{"cmd":"status"}`, `{"cmd":"logs","lines":20}`, `{"cmd":"x"}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommand(b)
		if err != nil {
			return
		}
		// A parsed command round-trips to an equal command.
		enc, _ := json.Marshal(c)
		c2, err := ParseCommand(enc)
		if err != nil || c2 != c {
			t.Fatalf("round trip of %q: %+v, %v", enc, c2, err)
		}
	})
}

func FuzzParseAgentLine(f *testing.F) {
	for _, n := range []string{"status-report.json", "status-report-payout.json", "logs-reply.json", "error-reply.json", "status-ready.json"} {
		f.Add(readTestdata(f, n))
	}
	f.Add([]byte(`{"reply":"logs"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, r, err := ParseAgentLine(b)
		if err != nil {
			if st != nil || r != nil {
				t.Fatal("error with a result")
			}
			return
		}
		if (st == nil) == (r == nil) {
			t.Fatalf("want exactly one result, got %+v %+v", st, r)
		}
		if r != nil {
			// Whatever parses re-encodes within the limits and parses again.
			enc, err := EncodeReply(r)
			if err != nil {
				// Only the size limit may stop it (escaping can grow a
				// line).
				if !strings.Contains(err.Error(), "limit") {
					t.Fatalf("valid reply does not encode: %v", err)
				}
				return
			}
			if _, err := ParseReply(bytes.TrimSpace(enc)); err != nil {
				t.Fatalf("re-encoded reply does not parse: %v", err)
			}
		}
	})
}
