package diagnose

import (
	"bytes"
	"crypto/sha512"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/eventlog"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

func dig(s string) tdxmr.Digest { return tdxmr.Digest(sha512.Sum384([]byte(s))) }

func expected(idx int, names ...string) *tdxmr.Register {
	r := &tdxmr.Register{Index: idx}
	inputs := map[string]string{"kernel": tdxmr.InputKernel, "cmdline": tdxmr.InputCmdline, "initrd": tdxmr.InputInitrd}
	for _, n := range names {
		in := inputs[n]
		if in == "" {
			in = tdxmr.InputFirmware
		}
		r.Events = append(r.Events, tdxmr.Event{Register: idx, Name: n, Digest: dig(n), Input: in})
	}
	r.Value = tdxmr.Replay(r.Events)
	return r
}

// logOf builds a CCEL-style log (MR index = RTMR + 1) with the given
// (rtmr, digest-source) events.
func logOf(evs ...[2]string) *eventlog.Log {
	l := &eventlog.Log{SpecID: eventlog.SpecID{Algorithms: []eventlog.AlgSize{{Alg: eventlog.AlgSHA384, Size: 48}}}}
	for i, e := range evs {
		d := dig(e[1])
		idx := uint32(e[0][0]-'0') + 1
		l.Events = append(l.Events, eventlog.Event{Seq: i, Index: idx, Type: 0x80000001, Digests: []eventlog.Digest{{Alg: eventlog.AlgSHA384, Sum: d[:]}}})
	}
	return l
}

func statuses(r Register) string {
	var s []string
	for _, l := range r.Lines {
		if l.Status == Unexpected {
			// Unexpected events carry the log's own description.
			s = append(s, string(l.Status))
			continue
		}
		s = append(s, string(l.Status)+":"+l.Name)
	}
	return strings.Join(s, " ")
}

func TestDiagnose(t *testing.T) {
	exp := []*tdxmr.Register{expected(1, "kernel", "calling", "separator"), expected(2, "cmdline", "initrd")}
	for _, tc := range []struct {
		name string
		log  *eventlog.Log
		want []string // per register
		ok   bool
	}{
		{"all match", logOf([2]string{"1", "kernel"}, [2]string{"1", "calling"}, [2]string{"1", "separator"}, [2]string{"2", "cmdline"}, [2]string{"2", "initrd"}),
			[]string{"match:kernel match:calling match:separator", "match:cmdline match:initrd"}, true},
		{"other kernel", logOf([2]string{"1", "evil kernel"}, [2]string{"1", "calling"}, [2]string{"1", "separator"}, [2]string{"2", "cmdline"}, [2]string{"2", "initrd"}),
			[]string{"MISMATCH:kernel match:calling match:separator", "match:cmdline match:initrd"}, false},
		{"extra event", logOf([2]string{"1", "kernel"}, [2]string{"1", "calling"}, [2]string{"1", "shim"}, [2]string{"1", "separator"}, [2]string{"2", "cmdline"}, [2]string{"2", "initrd"}),
			[]string{"match:kernel match:calling UNEXPECTED match:separator", "match:cmdline match:initrd"}, false},
		{"missing initrd", logOf([2]string{"1", "kernel"}, [2]string{"1", "calling"}, [2]string{"1", "separator"}, [2]string{"2", "cmdline"}),
			[]string{"match:kernel match:calling match:separator", "match:cmdline MISSING:initrd"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Diagnose(exp, tc.log, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK != tc.ok {
				t.Errorf("OK = %v", rep.OK)
			}
			for i, w := range tc.want {
				if got := statuses(rep.Registers[i]); got != w {
					t.Errorf("RTMR%d: %s, want %s", rep.Registers[i].Index, got, w)
				}
			}
			var buf bytes.Buffer
			rep.Write(&buf)
			if !tc.ok && !strings.Contains(buf.String(), "->") {
				t.Errorf("no explanation printed:\n%s", buf.String())
			}
		})
	}
}

func TestReportedValueNotExplained(t *testing.T) {
	exp := []*tdxmr.Register{expected(2, "cmdline")}
	rep, err := Diagnose(exp, logOf([2]string{"2", "cmdline"}), map[int]tdxmr.Digest{2: dig("something else")})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.Registers[0].Notes) == 0 || !strings.Contains(rep.Registers[0].Notes[0], "does not explain") {
		t.Fatalf("report %+v", rep.Registers[0])
	}
}

func TestExplainNamesInput(t *testing.T) {
	for _, in := range []string{tdxmr.InputKernel, tdxmr.InputQEMU, tdxmr.InputMemory} {
		if !strings.Contains(Explain(in), " ") || Explain(in) == "input "+in+" differs" {
			t.Errorf("no specific explanation for %s", in)
		}
	}
}
