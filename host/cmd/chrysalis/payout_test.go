package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chrysalis-cc/chrysalis/host/launch"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

// fakeLauncher stands in for a running `chrysalis launch` (which needs
// QEMU and a guest): it serves the launcher's control socket in dir and
// answers every command with reply; commands returns what it got.
func fakeLauncher(t *testing.T, dir string, reply []byte) (commands func() []string) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(dir, launch.FileControlSock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var mu sync.Mutex
	var got []string
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			mu.Lock()
			got = append(got, strings.TrimSpace(line))
			mu.Unlock()
			c.Write(append(bytes.TrimSpace(reply), '\n'))
			c.Close()
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func guestTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "measure", "guest", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPayoutStatus asks a launcher's guest for its payout summary over
// the control socket, in the three forms, and refuses a guest without a
// payment channel.
func TestPayoutStatus(t *testing.T) {
	state := t.TempDir()
	got := fakeLauncher(t, state, guestTestdata(t, "status-report-payout.json"))

	code, out, errOut := cli("payout", "status", "--state", state)
	for _, want := range []string{
		"earned        1.750000000 TON (proxy state seqno 4)\n", "settled       1.500000000 TON\n", "in flight     0.250000000 TON\n",
		"receipts      3 signed, 0.000002100 TON claimed\n", "settlements   1 sent, 1 confirmed, 1 expired\n",
		"settling      0.250000000 TON, sent, wallet seqno 2, valid until 1780000900\n",
		"LEDGER ERROR  ledger /data/payout/ledger.jsonl: automatic compaction at 4096 records",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("exit %d, output lacks %q:\n%s%s", code, want, out, errOut)
		}
	}
	if c := got(); len(c) != 1 || c[0] != `{"cmd":"status"}` {
		t.Fatalf("the launcher got %q, want one status command", c)
	}
	code, out, _ = cli("payout", "status", "--state", state, "--json")
	s, err := payment.DecodeSummary(bytes.TrimSpace([]byte(out)))
	if code != 0 || err != nil || s.Earned != "1750000000" || s.Intents["expired"] != 1 || s.LedgerError == "" {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	code, out, _ = cli("payout", "status", "--state", state, "--metrics")
	if code != 0 || !strings.Contains(out, "\nchrysalis_payout_in_flight_nanoton 250000000\n") || !strings.Contains(out, "\nchrysalis_payout_ledger_error 1\n") {
		t.Fatalf("--metrics: exit %d\n%s", code, out)
	}

	// A guest without a payment channel.
	plain := t.TempDir()
	fakeLauncher(t, plain, guestTestdata(t, "status-report.json"))
	// A launcher whose guest refuses.
	refusing := t.TempDir()
	e, _ := json.Marshal(guest.ErrorReply(errString("the guest did not answer")))
	fakeLauncher(t, refusing, e)
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"payout", "status", "--state", plain}, "has no payment channel (no measured.payment in its config; earnings \"n/a\")"},
		{[]string{"payout", "status", "--state", refusing}, "payout status: status: the guest did not answer"},
		{[]string{"payout", "status", "--state", t.TempDir()}, "no launcher is running in"},
		{[]string{"payout", "status", "--state", state, "--instance", "64"}, "instance 64 is out of range"},
		{[]string{"payout", "status", "--state", state, "--json", "--metrics"}, "exclude each other"},
		{[]string{"payout", "status", "--ledger", "x"}, "flag provided but not defined: -ledger"},
		{[]string{"payout", "status", "extra"}, `unexpected argument "extra"`},
		{[]string{"payout", "bogus"}, "status"},
	} {
		if code, _, errOut := cli(tc.args...); code == 0 || !strings.Contains(errOut, tc.err) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errOut, tc.err)
		}
	}
	if code, _, errOut := cli("payout", "status", "-h"); code != 0 || !strings.Contains(errOut, "chrysalis payout status [--state DIR]") {
		t.Errorf("-h: exit %d\n%s", code, errOut)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
