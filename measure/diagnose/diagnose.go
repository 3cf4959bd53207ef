package diagnose

import (
	"fmt"
	"io"

	"github.com/chrysalis-cc/chrysalis/measure/eventlog"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// Status says how an expected and an actual event relate.
type Status string

const (
	// Match: same digest at the aligned position.
	Match Status = "match"
	// Mismatch: an expected and an actual event at the same position
	// whose digests differ.
	Mismatch Status = "MISMATCH"
	// Missing: expected but not in the log.
	Missing Status = "MISSING"
	// Unexpected: in the log but not expected.
	Unexpected Status = "UNEXPECTED"
)

// Line is one event of a register's diagnosis.
type Line struct {
	Status Status
	// Name is the expected event's label, or the actual event's
	// description when nothing was expected there.
	Name     string
	Expected *tdxmr.Digest
	Actual   *tdxmr.Digest
	// Seq is the actual event's position in the log (-1 if none).
	Seq int
	// Input is what the expected digest comes from.
	Input string
	// Explain says what to check when the line is not a match.
	Explain string
}

// Register is the diagnosis of one RTMR.
type Register struct {
	Index    int
	Expected tdxmr.Digest
	// Replayed is the value the logged events produce.
	Replayed tdxmr.Digest
	// Reported is the value from a quote or the guest, when given.
	Reported *tdxmr.Digest
	Lines    []Line
	// Notes are register-level findings (log does not explain the
	// reported value, ...).
	Notes []string
	OK    bool
}

// Report is a whole diagnosis.
type Report struct {
	Registers []Register
	OK        bool
}

// explanations name what to check per input.
var explanations = map[string]string{
	tdxmr.InputKernel:    "the kernel differs from the release's vmlinuz, or QEMU did (not) patch its setup header (QEMU >= 10.2 does not patch for TDX; the patch depends on memory and initrd size): check the QEMU version and -m",
	tdxmr.InputCmdline:   "the kernel command line differs (-append, or where OVMF puts ` initrd=initrd`: the OVMF profile)",
	tdxmr.InputInitrd:    "the initrd differs from the release's",
	tdxmr.InputFirmware:  "the firmware differs from the release's OVMF.fd, or its event layout differs from the shape's OVMF profile",
	tdxmr.InputMemory:    "the TD HOB differs: memory size (-m / the shape) or the firmware's TDVF sections",
	tdxmr.InputVariables: "the UEFI variable store differs (Secure Boot keys, boot variables)",
	tdxmr.InputQEMU:      "QEMU's ACPI/fw_cfg tables differ: QEMU version, machine options or the device list (CPUs, memory, disks, NICs, GPUs, their order)",
	tdxmr.InputSMBIOS:    "the SMBIOS tables differ (QEMU version, memory size, vCPUs, firmware build strings, host CPUID)",
}

// Explain returns what to check for a mismatch in an event from input.
func Explain(input string) string {
	if e, ok := explanations[input]; ok {
		return e
	}
	return "input " + input + " differs"
}

// Diagnose compares expected registers with a TD's CCEL event log and,
// optionally, the register values it reported (index -> value; e.g. from
// a quote). It fails only when the log cannot be replayed.
func Diagnose(exp []*tdxmr.Register, log *eventlog.Log, reported map[int]tdxmr.Digest) (*Report, error) {
	actual := map[int][]eventlog.Event{}
	for _, e := range log.Events {
		if !e.Extends() {
			continue
		}
		idx, err := eventlog.RTMRIndex(e.Index)
		if err != nil {
			return nil, fmt.Errorf("diagnose: event %d: %w", e.Seq, err)
		}
		if _, ok := e.Digest(eventlog.AlgSHA384); !ok {
			return nil, fmt.Errorf("diagnose: event %d has no sha384 digest", e.Seq)
		}
		actual[idx] = append(actual[idx], e)
	}
	rep := &Report{OK: true}
	for _, r := range exp {
		rr := diagnoseRegister(r, actual[r.Index], reported)
		rep.OK = rep.OK && rr.OK
		rep.Registers = append(rep.Registers, rr)
	}
	return rep, nil
}

func sha384(e eventlog.Event) tdxmr.Digest {
	var d tdxmr.Digest
	b, _ := e.Digest(eventlog.AlgSHA384)
	copy(d[:], b)
	return d
}

func diagnoseRegister(r *tdxmr.Register, act []eventlog.Event, reported map[int]tdxmr.Digest) Register {
	out := Register{Index: r.Index, Expected: r.Value, OK: true}
	ad := make([]tdxmr.Digest, len(act))
	for i, e := range act {
		ad[i] = sha384(e)
		out.Replayed = tdxmr.Extend(out.Replayed, ad[i])
	}
	if v, ok := reported[r.Index]; ok {
		out.Reported = &v
		if v != out.Replayed {
			out.OK = false
			out.Notes = append(out.Notes, fmt.Sprintf("the log replays to %s but the reported RTMR%d is %s: the log does not explain the register (truncated, or events extended outside the log)", out.Replayed, r.Index, v))
		}
	}
	out.Lines = align(r.Events, act, ad)
	for _, l := range out.Lines {
		if l.Status != Match {
			out.OK = false
		}
	}
	if out.Replayed != r.Value && out.OK {
		// Every event matched but the values differ: cannot happen unless
		// the expected register is inconsistent; say so rather than hide it.
		out.OK = false
		out.Notes = append(out.Notes, "all events match but the replayed value differs from the expected one")
	}
	return out
}

// align pairs expected and actual events by a longest common subsequence
// of digests; unmatched events between two anchors are paired in order
// as mismatches, and the rest are missing or unexpected.
func align(exp []tdxmr.Event, act []eventlog.Event, ad []tdxmr.Digest) []Line {
	n, m := len(exp), len(act)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			switch {
			case exp[i].Digest == ad[j]:
				lcs[i][j] = lcs[i+1][j+1] + 1
			case lcs[i+1][j] >= lcs[i][j+1]:
				lcs[i][j] = lcs[i+1][j]
			default:
				lcs[i][j] = lcs[i][j+1]
			}
		}
	}
	var lines []Line
	var ge, ga []int // pending unmatched expected / actual indices
	flush := func() {
		k := 0
		for ; k < len(ge) && k < len(ga); k++ {
			lines = append(lines, pair(exp[ge[k]], act[ga[k]], ad[ga[k]], Mismatch))
		}
		for _, i := range ge[k:] {
			e := exp[i]
			d := e.Digest
			lines = append(lines, Line{Status: Missing, Name: e.Name, Expected: &d, Seq: -1, Input: e.Input, Explain: Explain(e.Input)})
		}
		for _, j := range ga[k:] {
			d := ad[j]
			lines = append(lines, Line{Status: Unexpected, Name: act[j].Describe(), Actual: &d, Seq: act[j].Seq,
				Explain: "the TD logged an event this release and shape do not produce: a different firmware event layout (OVMF profile) or boot path"})
		}
		ge, ga = ge[:0], ga[:0]
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && exp[i].Digest == ad[j]:
			flush()
			lines = append(lines, pair(exp[i], act[j], ad[j], Match))
			i, j = i+1, j+1
		case j >= m || (i < n && lcs[i+1][j] >= lcs[i][j+1]):
			ge = append(ge, i)
			i++
		default:
			ga = append(ga, j)
			j++
		}
	}
	flush()
	return lines
}

func pair(e tdxmr.Event, a eventlog.Event, ad tdxmr.Digest, st Status) Line {
	ed := e.Digest
	l := Line{Status: st, Name: e.Name, Expected: &ed, Actual: &ad, Seq: a.Seq, Input: e.Input}
	if st != Match {
		l.Explain = Explain(e.Input)
		if e.Detail != "" {
			l.Explain += " (expected: " + e.Detail + ")"
		}
	}
	return l
}

// Write prints the report, one labelled line per event.
func (r *Report) Write(w io.Writer) {
	short := func(d *tdxmr.Digest) string {
		if d == nil {
			return "-"
		}
		return d.String()[:16] + "…"
	}
	for _, reg := range r.Registers {
		verdict := "ok"
		if !reg.OK {
			verdict = "DIFFERS"
		}
		fmt.Fprintf(w, "RTMR%d %s\n  expected %s\n  replayed %s\n", reg.Index, verdict, reg.Expected, reg.Replayed)
		if reg.Reported != nil {
			fmt.Fprintf(w, "  reported %s\n", *reg.Reported)
		}
		for _, l := range reg.Lines {
			seq := "  -"
			if l.Seq >= 0 {
				seq = fmt.Sprintf("%3d", l.Seq)
			}
			fmt.Fprintf(w, "  %s %-10s %-36s expected %s actual %s  [%s]\n", seq, l.Status, l.Name, short(l.Expected), short(l.Actual), l.Input)
			if l.Explain != "" {
				fmt.Fprintf(w, "       -> %s\n", l.Explain)
			}
		}
		for _, n := range reg.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
	if r.OK {
		fmt.Fprintln(w, "all registers explained by the release and shape")
	}
}
