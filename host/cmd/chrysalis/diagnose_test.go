package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/measure/eventlog"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// TestDiagnoseRealRelease writes the CCEL a TD of the release would log
// (the expected events, encoded as a real crypto-agile log), then one with
// a different kernel, and checks diagnose's verdicts.
func TestDiagnoseRealRelease(t *testing.T) {
	ovmf := os.Getenv("CHRYSALIS_TEST_OVMF")
	if ovmf == "" {
		t.Skip("CHRYSALIS_TEST_OVMF not set: no built release")
	}
	relDir := filepath.Dir(ovmf)
	qrel, err := qemu.ReleaseFromDir(relDir)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := shape.Lookup("dev-small")
	m, err := measureShape(context.Background(), relDir, qrel, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	write := func(tamper string) string {
		l := eventlog.Log{SpecID: eventlog.SpecID{HeaderIndex: 1, VersionMajor: 2, UintnSize: 2,
			Algorithms: []eventlog.AlgSize{{Alg: eventlog.AlgSHA384, Size: 48}}}}
		for _, r := range []*tdxmr.Register{m.RTMR0, m.RTMR1, m.RTMR2} {
			for _, e := range r.Events {
				d := e.Digest
				if e.Name == tamper {
					d[0] ^= 0xff
				}
				l.Events = append(l.Events, eventlog.Event{Index: uint32(r.Index + 1), Type: eventlog.EventType(e.Type),
					Digests: []eventlog.Digest{{Alg: eventlog.AlgSHA384, Sum: d[:]}}, Data: []byte(e.Name)})
			}
		}
		b, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "ccel")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	code, out, errs := cli("diagnose", "--release", relDir, "--shape", "dev-small", "--eventlog", write(""), "--rtmr", "1="+m.RTMR1.Value.String())
	if code != 0 || !strings.Contains(out, "all registers explained") {
		t.Fatalf("untampered: %d\n%s%s", code, out, errs)
	}
	code, out, errs = cli("diagnose", "--release", relDir, "--shape", "dev-small", "--eventlog", write("kernel"))
	if code != 1 || !strings.Contains(out, "MISMATCH   kernel") || !strings.Contains(out, "setup header") || !strings.Contains(errs, "differ") {
		t.Fatalf("tampered kernel: %d\n%s%s", code, out, errs)
	}
	// A quote whose RTMRs the log does not explain (go-tdx-guest's sample,
	// from another TD) is reported register by register.
	code, out, _ = cli("diagnose", "--release", relDir, "--shape", "dev-small", "--eventlog", write(""), "--quote", "../../../measure/quote/testdata/tdx_prod_quote_SPR_E4.dat")
	if code != 1 || !strings.Contains(out, "does not explain the register") {
		t.Fatalf("foreign quote: %d\n%s", code, out)
	}
	code, _, errs = cli("diagnose", "--release", relDir, "--shape", "dev-small", "--eventlog", filepath.Join(relDir, "cmdline"))
	if code != 1 || !strings.Contains(errs, "cmdline") {
		t.Fatalf("garbage log: %d %s", code, errs)
	}
}
