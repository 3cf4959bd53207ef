package eventlog

import (
	"bytes"
	"fmt"

	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// NumRTMRs is the number of TDX runtime measurement registers.
const NumRTMRs = 4

// RTMRIndex maps the CC measurement-register index a CCEL records (the
// UEFI CC measurement protocol's MrIndex) to the RTMR it extends:
// 1..4 -> RTMR0..RTMR3. Index 0 is MRTD, which only the TDX module
// extends (at build time) and which never appears in a valid log.
func RTMRIndex(mrIndex uint32) (int, error) {
	switch {
	case mrIndex == 0:
		return 0, fmt.Errorf("MR index 0 is MRTD, which is never extended through the event log")
	case mrIndex <= NumRTMRs:
		return int(mrIndex - 1), nil
	}
	return 0, fmt.Errorf("MR index %d is not a TDX measurement register (1..4 = RTMR0..RTMR3)", mrIndex)
}

// MRIndexForPCR is OVMF's mapping of a TCG PCR to the CC measurement
// register index it logs instead in a TD (edk2 TdTcg2Dxe MapPcrToMrIndex,
// research/measure.md §2.0): PCR 0 -> 0 (MRTD), PCR 1 and 7 -> 1 (RTMR0),
// PCR 2-6 -> 2 (RTMR1), PCR 8-15 -> 3 (RTMR2). Other PCRs have no
// register (ok is false). It lets a TPM log of the same firmware (swtpm)
// be compared with a CCEL.
func MRIndexForPCR(pcr uint32) (mrIndex uint32, ok bool) {
	switch {
	case pcr == 0:
		return 0, true
	case pcr == 1 || pcr == 7:
		return 1, true
	case pcr >= 2 && pcr <= 6:
		return 2, true
	case pcr >= 8 && pcr <= 15:
		return 3, true
	}
	return 0, false
}

// RTMRs are the values of RTMR0..RTMR3.
type RTMRs [NumRTMRs]tdxmr.Digest

// ReplayRTMRs replays a CCEL: each event other than EV_NO_ACTION extends
// RTMR[RTMRIndex(Index)] with its SHA-384 digest, from zero. Events
// logged after ExitBootServices (and so RTMR3's run-time events) are not
// in a CCEL: RTMR3 is normally zero here.
func (l *Log) ReplayRTMRs() (RTMRs, error) {
	var regs RTMRs
	if _, ok := l.SpecID.DigestSize(AlgSHA384); !ok {
		return regs, fmt.Errorf("eventlog: the log has no sha384 digests (header lists %s), so it cannot be replayed into RTMRs", l.algNames())
	}
	for i := range l.Events {
		e := &l.Events[i]
		if !e.Extends() {
			continue
		}
		r, err := RTMRIndex(e.Index)
		if err != nil {
			return regs, fmt.Errorf("eventlog: event #%d at offset %d (%s): %w", e.Seq, e.Offset, e.Type, err)
		}
		d, ok := e.Digest(AlgSHA384)
		if !ok || len(d) != len(tdxmr.Digest{}) {
			return regs, fmt.Errorf("eventlog: event #%d at offset %d (%s) has no sha384 digest", e.Seq, e.Offset, e.Type)
		}
		regs[r] = tdxmr.Extend(regs[r], tdxmr.Digest(d))
	}
	return regs, nil
}

// EventsOfRTMR returns the events that extend RTMR r (0..3), in order.
func (l *Log) EventsOfRTMR(r int) []Event {
	var out []Event
	for _, e := range l.Events {
		if e.Extends() && e.Index == uint32(r)+1 {
			out = append(out, e)
		}
	}
	return out
}

// MaxPCR is the highest PCR a PC Client TPM has.
const MaxPCR = 23

// startupLocality is the signature of the EV_NO_ACTION event that sets
// PCR 0's initial value (PFP §10.4.5.3): signature, then a u8 locality.
const startupLocality = "StartupLocality\x00"

// ReplayPCRs replays a TPM log's bank alg: each event other than
// EV_NO_ACTION extends PCR[Index] (0..23) with its alg digest. PCRs start
// at zero except PCR 0, which starts at the locality of a
// "StartupLocality" event (its last byte) when the log has one. It
// returns the PCRs the log touches.
func (l *Log) ReplayPCRs(alg Alg) (map[uint32][]byte, error) {
	size, ok := l.SpecID.DigestSize(alg)
	if !ok {
		return nil, fmt.Errorf("eventlog: the log has no %s bank (header lists %s)", alg, l.algNames())
	}
	h := alg.New()
	if h == nil {
		return nil, fmt.Errorf("eventlog: cannot replay the %s bank: no implementation of %s", alg, alg)
	}
	pcrs := map[uint32][]byte{}
	for i := range l.Events {
		e := &l.Events[i]
		if !e.Extends() {
			if e.Index == 0 && bytes.HasPrefix(e.Data, []byte(startupLocality)) {
				if len(e.Data) != len(startupLocality)+1 {
					return nil, fmt.Errorf("eventlog: event #%d at offset %d: StartupLocality event has %d bytes, want %d", e.Seq, e.Offset, len(e.Data), len(startupLocality)+1)
				}
				if _, done := pcrs[0]; done {
					return nil, fmt.Errorf("eventlog: event #%d at offset %d: StartupLocality after PCR 0 was set", e.Seq, e.Offset)
				}
				init := make([]byte, size)
				init[size-1] = e.Data[len(startupLocality)]
				pcrs[0] = init
			}
			continue
		}
		if e.Index > MaxPCR {
			return nil, fmt.Errorf("eventlog: event #%d at offset %d (%s) extends PCR %d; a TPM has PCRs 0..%d", e.Seq, e.Offset, e.Type, e.Index, MaxPCR)
		}
		d, ok := e.Digest(alg)
		if !ok || len(d) != size {
			return nil, fmt.Errorf("eventlog: event #%d at offset %d (%s) has no %d-byte %s digest", e.Seq, e.Offset, e.Type, size, alg)
		}
		cur, ok := pcrs[e.Index]
		if !ok {
			cur = make([]byte, size)
		}
		h.Reset()
		h.Write(cur)
		h.Write(d)
		pcrs[e.Index] = h.Sum(nil)
	}
	return pcrs, nil
}

func (l *Log) algNames() string {
	var b bytes.Buffer
	for i, a := range l.SpecID.Algorithms {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.Alg.String())
	}
	return b.String()
}
