package eventlog

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/chrysalis-cc/chrysalis/measure/golden"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCCELReplayMatchesQuote replays go-tdx-guest's real CCEL (GCE c3 TD,
// COS 113) and compares RTMR0-2 with the RTMRs of the quote taken in the
// same TD, parsed by go-tdx-guest's abi package.
func TestCCELReplayMatchesQuote(t *testing.T) {
	table, l, err := ParseCCEL(readTestdata(t, "ccel_table.dat"), readTestdata(t, "ccel_data.dat"))
	if err != nil {
		t.Fatal(err)
	}
	if table.CCType != CCTypeTDX || table.LAML != 0x40000 || table.LASA != 0xbedbf000 || string(table.OEMID[:]) != "INTEL " {
		t.Errorf("table = %s", table)
	}
	got, err := l.ReplayRTMRs()
	if err != nil {
		t.Fatal(err)
	}
	q, err := abi.QuoteToProto(readTestdata(t, "cos-113-tdx-quote.dat"))
	if err != nil {
		t.Fatal(err)
	}
	rtmrs := q.(*pb.QuoteV4).GetTdQuoteBody().GetRtmrs()
	if len(rtmrs) != 4 {
		t.Fatalf("quote has %d RTMRs", len(rtmrs))
	}
	for i := 0; i < 3; i++ {
		if !bytes.Equal(got[i][:], rtmrs[i]) {
			t.Errorf("RTMR%d: replay %s, quote %x", i, got[i], rtmrs[i])
		}
	}
	if got[3] != (tdxmr.Digest{}) {
		t.Errorf("RTMR3 from a CCEL = %s, want zero", got[3])
	}
	if n := len(l.EventsOfRTMR(0)) + len(l.EventsOfRTMR(1)) + len(l.EventsOfRTMR(2)); n != len(l.Events) {
		t.Errorf("EventsOfRTMR covers %d of %d events", n, len(l.Events))
	}

	// The log re-encodes byte for byte, and the rest of the area is 0xFF.
	data := readTestdata(t, "ccel_data.dat")
	enc, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, data[:l.End]) || l.End+l.Padding != len(data) {
		t.Errorf("re-encoding differs (end %d, padding %d, %d bytes)", l.End, l.Padding, len(data))
	}
	// The table re-encodes too.
	if tb := readTestdata(t, "ccel_table.dat"); !bytes.Equal(table.Marshal(), tb) {
		t.Errorf("table re-encoding differs:\n%x\n%x", table.Marshal(), tb)
	}
	// The unpadded log (as copied by some tools) parses to the same.
	l2, err := Parse(data[:l.End])
	if err != nil || len(l2.Events) != len(l.Events) || l2.Padding != 0 {
		t.Errorf("unpadded: %v", err)
	}

	var out bytes.Buffer
	out.WriteString("# go-tdx-guest testing/testdata/ccel/ccel_data.dat, as labelled by eventlog (Event.String)\n")
	for i := range l.Events {
		out.WriteString(l.Events[i].String() + "\n")
	}
	for i, r := range got {
		out.WriteString("RTMR" + string(rune('0'+i)) + " " + r.String() + "\n")
	}
	golden.Check(t, "ccel_events.golden", out.Bytes())
}

// TestTPMLogReplay replays go-eventlog's Ubuntu 24.04 GCE SEV-SNP vTPM log
// and compares with the PCR values go-eventlog's tests pin for it.
func TestTPMLogReplay(t *testing.T) {
	raw := readTestdata(t, "ubuntu-2404-amd-sevsnp.bin")
	l, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if l.Padding != 0 || l.End != len(raw) {
		t.Errorf("end %d, padding %d, size %d", l.End, l.Padding, len(raw))
	}
	enc, err := l.Marshal()
	if err != nil || !bytes.Equal(enc, raw) {
		t.Errorf("re-encoding differs: %v", err)
	}
	want := map[Alg]map[uint32]string{
		AlgSHA1: {
			0:  "8124f09f069c7d2d9acf5ce4eab928a7103a0bb2",
			1:  "f00d6bbdea9ba55996f237a7f95f2b328a44e3f2",
			2:  "b2a83b0ebf2f8374299a5b2bdfc31ea955ad7236",
			3:  "b2a83b0ebf2f8374299a5b2bdfc31ea955ad7236",
			4:  "175f4319fd7ac683bf49f2e7b837630e4fa8603f",
			5:  "f65b39c7aec83294f796c1ea4acc987f80914efe",
			6:  "b2a83b0ebf2f8374299a5b2bdfc31ea955ad7236",
			7:  "7067b17aa6b3de0d22d17a59dce1e17e649cb56a",
			8:  "5f4a1177c33521b0e48d855cf770520f8ab744de",
			9:  "c6ee69063ab752df6c4ab99a80b12f3e5c432535",
			14: "a482a15e112717d6a915b989a0ea6140a507e3e6",
		},
		AlgSHA256: {
			0:  "50597a27846e91d025eef597abbc89f72bff9af849094db97b0684d8bc4c515e",
			1:  "57344e1cc8c6619413df33013a7cd67915459f967395af41db21c1fa7ca9c307",
			2:  "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
			3:  "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
			4:  "abe8b3fa6aecb36c2fd93c6f6edde661c21b353d007410a2739d69bfa7e1b9be",
			5:  "0b0e1903aeb1bff649b82dba2cdcf5c4ffb75027e54f151ab00b3b989f16a300",
			6:  "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
			7:  "33ad69850fb2c7f30b4f8b4bc10ed93fc954dc07fa726e84f50f3d192dc1c140",
			8:  "6932a3f71dc55ad3c1a6ac2196eeac26a1b7164b6bbfa106625d94088ec3ecc3",
			9:  "ce08798b283c7a0ddc5e9ad1d602304b945b741fc60c20e254eafa0f4782512b",
			14: "306f9d8b94f17d93dc6e7cf8f5c79d652eb4c6c4d13de2dddc24af416e13ecaf",
		},
	}
	for alg, pcrs := range want {
		got, err := l.ReplayPCRs(alg)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(pcrs) {
			t.Errorf("%s: replay touches %d PCRs, want %d", alg, len(got), len(pcrs))
		}
		for i, w := range pcrs {
			if hex.EncodeToString(got[i]) != w {
				t.Errorf("%s PCR%d = %x, want %s", alg, i, got[i], w)
			}
		}
	}
	// The SHA-384 bank replays too (no reference values: just no error).
	if _, err := l.ReplayPCRs(AlgSHA384); err != nil {
		t.Error(err)
	}
	if _, err := l.ReplayPCRs(AlgSHA512); err == nil || !strings.Contains(err.Error(), "no sha512 bank") {
		t.Errorf("sha512 replay: %v", err)
	}
	// A TPM log is not a CCEL: PCR 7 etc. are not MR indices.
	if _, err := l.ReplayRTMRs(); err == nil || !strings.Contains(err.Error(), "MR index 0 is MRTD") {
		t.Errorf("ReplayRTMRs on a TPM log: %v", err)
	}
}

func TestRTMRIndexAndPCRMapping(t *testing.T) {
	for mr, want := range map[uint32]int{1: 0, 2: 1, 3: 2, 4: 3} {
		if got, err := RTMRIndex(mr); err != nil || got != want {
			t.Errorf("RTMRIndex(%d) = %d, %v", mr, got, err)
		}
	}
	for _, mr := range []uint32{0, 5, 0xFFFFFFFF} {
		if _, err := RTMRIndex(mr); err == nil {
			t.Errorf("RTMRIndex(%d) succeeded", mr)
		}
	}
	want := map[uint32]uint32{0: 0, 1: 1, 7: 1, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 8: 3, 9: 3, 10: 3, 11: 3, 12: 3, 13: 3, 14: 3, 15: 3}
	for pcr := uint32(0); pcr < 24; pcr++ {
		got, ok := MRIndexForPCR(pcr)
		w, wok := want[pcr]
		if ok != wok || got != w {
			t.Errorf("MRIndexForPCR(%d) = %d, %v", pcr, got, ok)
		}
	}
}

// synthetic logs

func sha384Event(index uint32, typ EventType, data []byte) Event {
	d := sha512.Sum384(data)
	return Event{Index: index, Type: typ, Digests: []Digest{{AlgSHA384, d[:]}}, Data: data}
}

func ccSpec() SpecID {
	return SpecID{HeaderIndex: 1, VersionMajor: 2, UintnSize: 2, Algorithms: []AlgSize{{AlgSHA384, 48}}}
}

func mustMarshal(t testing.TB, l *Log) []byte {
	t.Helper()
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func synthCCEL(t testing.TB) []byte {
	l := &Log{SpecID: ccSpec(), Events: []Event{
		sha384Event(1, EvEFIHandoffTables2, append([]byte{8}, "TdxTable"...)),
		sha384Event(1, EvSeparator, []byte{0, 0, 0, 0}),
		sha384Event(2, EvEFIAction, []byte(tdxmr.ActionCallingEFIApplication)),
		{Index: 3, Type: EvNoAction, Digests: []Digest{{AlgSHA384, make([]byte, 48)}}, Data: []byte("ignored\x00")},
		sha384Event(3, EvEventTag, append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, TagLinuxInitrd), 13), "Linux initrd\x00"...)),
		sha384Event(4, EvEventTag, []byte("rtmr3")),
	}}
	return mustMarshal(t, l)
}

func TestSyntheticReplay(t *testing.T) {
	raw := append(synthCCEL(t), bytes.Repeat([]byte{0xFF}, 100)...)
	l, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Events) != 6 || l.Padding != 100 {
		t.Fatalf("%d events, padding %d", len(l.Events), l.Padding)
	}
	var want RTMRs
	ext := func(r int, data []byte) { want[r] = tdxmr.Extend(want[r], tdxmr.Sum384(data)) }
	ext(0, l.Events[0].Data)
	ext(0, []byte{0, 0, 0, 0})
	ext(1, []byte(tdxmr.ActionCallingEFIApplication))
	ext(2, l.Events[4].Data)
	ext(3, []byte("rtmr3"))
	got, err := l.ReplayRTMRs()
	if err != nil || got != want {
		t.Fatalf("replay = %v, %v; want %v", got, err, want)
	}
	labels := []string{`"TdxTable"`, "separator", `"Calling EFI Application from Boot Option"`, `"ignored" (8 bytes)`, "Linux initrd", "5 bytes"}
	for i, e := range l.Events {
		if e.Describe() != labels[i] {
			t.Errorf("event %d: Describe = %q, want %q", i, e.Describe(), labels[i])
		}
	}
}

func TestReplayErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   Event
		err  string
	}{
		{"mrtd", sha384Event(0, EvSeparator, nil), "MR index 0 is MRTD"},
		{"index 5", sha384Event(5, EvSeparator, nil), "MR index 5 is not a TDX measurement register"},
	} {
		l, err := Parse(mustMarshal(t, &Log{SpecID: ccSpec(), Events: []Event{tc.ev}}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.ReplayRTMRs(); err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "offset 65") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// A log without a SHA-384 bank cannot give RTMRs.
	d := sha256.Sum256(nil)
	l := &Log{SpecID: SpecID{VersionMajor: 2, UintnSize: 2, Algorithms: []AlgSize{{AlgSHA256, 32}}},
		Events: []Event{{Index: 1, Type: EvSeparator, Digests: []Digest{{AlgSHA256, d[:]}}}}}
	l, err := Parse(mustMarshal(t, l))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReplayRTMRs(); err == nil || !strings.Contains(err.Error(), "no sha384 digests") {
		t.Errorf("sha256-only log: %v", err)
	}
	// An event missing the bank's digest.
	s1 := sha1.Sum(nil)
	l = &Log{SpecID: SpecID{VersionMajor: 2, UintnSize: 2, Algorithms: []AlgSize{{AlgSHA1, 20}, {AlgSHA384, 48}}},
		Events: []Event{{Index: 1, Type: EvSeparator, Digests: []Digest{{AlgSHA1, s1[:]}}}}}
	l, err = Parse(mustMarshal(t, l))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReplayRTMRs(); err == nil || !strings.Contains(err.Error(), "has no sha384 digest") {
		t.Errorf("missing digest: %v", err)
	}
}

func TestStartupLocality(t *testing.T) {
	spec := SpecID{VersionMajor: 2, UintnSize: 2, Algorithms: []AlgSize{{AlgSHA256, 32}}}
	d := sha256.Sum256([]byte("crtm"))
	zero := make([]byte, 32)
	loc := append([]byte(startupLocality), 3)
	l, err := Parse(mustMarshal(t, &Log{SpecID: spec, Events: []Event{
		{Index: 0, Type: EvNoAction, Digests: []Digest{{AlgSHA256, zero}}, Data: loc},
		{Index: 0, Type: EvSCRTMVersion, Digests: []Digest{{AlgSHA256, d[:]}}, Data: []byte{'v', 0, 0, 0}},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	pcrs, err := l.ReplayPCRs(AlgSHA256)
	if err != nil {
		t.Fatal(err)
	}
	init := make([]byte, 32)
	init[31] = 3
	want := sha256.Sum256(append(init, d[:]...))
	if !bytes.Equal(pcrs[0], want[:]) {
		t.Errorf("PCR0 = %x, want %x", pcrs[0], want)
	}
	if got := l.Events[0].Describe(); got != "StartupLocality 3" {
		t.Errorf("Describe = %q", got)
	}
	if got := l.Events[1].Describe(); got != `"v"` {
		t.Errorf("Describe = %q", got)
	}
}

// TestParseErrors: every malformation gives a *FormatError at the right
// offset, never a panic.
func TestParseErrors(t *testing.T) {
	good := synthCCEL(t)
	hdrEnd := 32 + 33 // header record: 32 fixed bytes + 33-byte Spec ID event
	patch := func(off int, b ...byte) []byte {
		c := bytes.Clone(good)
		copy(c[off:], b)
		return c
	}
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	for _, tc := range []struct {
		name string
		in   []byte
		off  int
		err  string
	}{
		{"empty", nil, 0, "empty log"},
		{"short header", good[:10], 8, "header SHA-1 digest needs 20 bytes"},
		{"not no-action", patch(4, u32(4)...), 4, "not a TCG crypto-agile event log"},
		{"nonzero digest", patch(8, 1), 8, "header digest is not zero"},
		{"header size", patch(28, u32(1000)...), 28, "header event size 1000 exceeds"},
		{"legacy", patch(32, []byte("Spec ID Event00\x00")...), 32, "TCG 1.2 SHA-1 log"},
		{"signature", patch(32, 'X'), 32, "header signature"},
		{"major", patch(32+16+4+1, 1), 53, "spec version major 1"},
		{"uintn", patch(32+16+4+3, 3), 55, "uintn size 3"},
		{"zero algs", patch(56, u32(0)...), 56, "lists 0 digest algorithms"},
		{"many algs", patch(56, u32(9)...), 56, "lists 9 digest algorithms"},
		{"alg size", patch(62, 47), 60, "sha384 has digest size 47, want 48"},
		{"zero size", patch(60, 0x55, 0, 0, 0), 60, "digest size 0"},
		{"vendor size", patch(64, 5), 65, "vendor info needs 5 bytes"},
		{"digest count 0", patch(hdrEnd+8, u32(0)...), hdrEnd + 8, "has 0 digests"},
		{"digest count 2", patch(hdrEnd+8, u32(2)...), hdrEnd + 8, "has 2 digests, want 1..1"},
		{"unknown alg", patch(hdrEnd+12, 0x0B), hdrEnd + 12, "sha256 digest, an algorithm the header does not list"},
		{"data size", patch(hdrEnd+14+48, u32(1<<31)...), hdrEnd + 14 + 48, "data size 2147483648"},
		{"truncated event", good[:hdrEnd+20], hdrEnd + 14, "sha384 digest needs 48 bytes"},
		{"truncated index", good[:hdrEnd+2], hdrEnd, "event index needs 4 bytes"},
		{"garbage after end", append(append(bytes.Clone(good), 0xFF, 0xFF, 0xFF, 0xFF, 0xFF), 0), len(good) + 5, "byte 0x00 after the end of the log at offset"},
	} {
		_, err := Parse(tc.in)
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("%s: err = %v, want a *FormatError", tc.name, err)
			continue
		}
		if fe.Offset != tc.off || !strings.Contains(fe.Msg, tc.err) {
			t.Errorf("%s: err = %v, want offset %d and %q", tc.name, err, tc.off, tc.err)
		}
	}
	// Duplicate algorithm in the header and duplicate digest in an event.
	two := &Log{SpecID: SpecID{VersionMajor: 2, UintnSize: 2, Algorithms: []AlgSize{{AlgSHA384, 48}, {AlgSHA256, 32}}},
		Events: []Event{sha384Event(1, EvSeparator, nil)}}
	raw := mustMarshal(t, two)
	dupHdr := bytes.Clone(raw)
	copy(dupHdr[64:], []byte{0x0C, 0, 48, 0})
	if _, err := Parse(dupHdr); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("duplicate header alg: %v", err)
	}
	two.Events[0].Digests = append(two.Events[0].Digests, two.Events[0].Digests[0])
	raw = mustMarshal(t, two)
	if _, err := Parse(raw); err == nil || !strings.Contains(err.Error(), "two sha384 digests") {
		t.Errorf("duplicate digest: %v", err)
	}
	// Every truncation of a valid log either parses (at a record
	// boundary) or fails with a FormatError; none panics.
	for n := 0; n < len(good); n++ {
		if _, err := Parse(good[:n]); err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("truncated to %d: %v", n, err)
			}
		}
	}
	if _, err := Parse(make([]byte, MaxLogSize+1)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized: %v", err)
	}
}

func TestCCELTableErrors(t *testing.T) {
	good := readTestdata(t, "ccel_table.dat")
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	fix := func(b []byte) []byte { // recompute the checksum
		b[9] = 0
		var s byte
		for _, c := range b {
			s += c
		}
		b[9] = -s
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		err  string
	}{
		{"short", good[:40], "CCEL table is 40 bytes"},
		{"long", append(bytes.Clone(good), 0), "table has 57 bytes"},
		{"signature", mod(func(b []byte) []byte { b[0] = 'X'; return fix(b) }), "signature \"XCEL\""},
		{"length", mod(func(b []byte) []byte { b[4] = 60; return fix(b) }), "length field is 60"},
		{"checksum", mod(func(b []byte) []byte { b[9]++; return b }), "checksum is wrong"},
	} {
		if _, err := ParseCCELTable(tc.in); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
	sev := mod(func(b []byte) []byte { b[36] = 1; return fix(b) })
	if _, _, err := ParseCCEL(sev, synthCCEL(t)); err == nil || !strings.Contains(err.Error(), "CC type 1 (SEV), want 2 (TDX)") {
		t.Errorf("SEV table: %v", err)
	}
	small := mod(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[40:], 10); return fix(b) })
	if _, _, err := ParseCCEL(small, synthCCEL(t)); err == nil || !strings.Contains(err.Error(), "LAML says 10") {
		t.Errorf("LAML: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	variable := func(guid []byte, name string, data []byte) []byte {
		b := append([]byte(nil), guid...)
		b = binary.LittleEndian.AppendUint64(b, uint64(len(name)))
		b = binary.LittleEndian.AppendUint64(b, uint64(len(data)))
		for _, c := range name {
			b = binary.LittleEndian.AppendUint16(b, uint16(c))
		}
		return append(b, data...)
	}
	globalGUID, _ := hex.DecodeString("61dfe48bca93d211aa0d00e098032b8c")
	imagePath := func(path string) []byte {
		b := make([]byte, 32)
		binary.LittleEndian.PutUint64(b[8:], 4096)
		var dp []byte
		node := []byte{4, 4, 0, 0}
		for _, c := range path + "\x00" {
			node = binary.LittleEndian.AppendUint16(node, uint16(c))
		}
		binary.LittleEndian.PutUint16(node[2:], uint16(len(node)))
		dp = append(dp, node...)
		dp = append(dp, 0x7f, 0xff, 4, 0)
		binary.LittleEndian.PutUint64(b[24:], uint64(len(dp)))
		return append(b, dp...)
	}
	for _, tc := range []struct {
		typ  EventType
		data []byte
		want string
	}{
		{EvEFIVariableDriverCfg, variable(globalGUID, "SecureBoot", []byte{1}), "global:SecureBoot (1 byte)"},
		{EvEFIVariableBoot, variable(make([]byte, 16), "X", nil), "00000000-0000-0000-0000-000000000000:X (0 bytes)"},
		{EvEFIVariableBoot, variable(globalGUID, "Boot0000", nil)[:40], "40 bytes"},
		{EvSeparator, []byte{0xff, 0xff, 0xff, 0xff}, "separator (error)"},
		{EvSeparator, []byte{1, 0, 0, 0}, "separator 0x00000001"},
		{EvPlatformConfigFlags, []byte("ACPI DATA"), `"ACPI DATA"`},
		{EvPlatformConfigFlags, append([]byte("QEMU FW CFG\x00"), "bootorder\x00\x00\x00"...), "QEMU FW CFG bootorder"},
		{EvEFIPlatformFwBlob2, append([]byte{3}, "Fv("...), `"Fv("`},
		{EvEFIPlatformFwBlob2, []byte{9, 'a'}, "2 bytes"},
		{EvEFIPlatformFwBlob, make([]byte, 16), "blob 0x0 bytes at 0x0"},
		{EvEventTag, append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, TagLinuxLoadOptions), 26), "LOADED_IMAGE::LoadOptions\x00"...), "LOADED_IMAGE::LoadOptions"},
		{EvEventTag, []byte{1, 0, 0, 0, 2, 0, 0, 0, 'h', 'i'}, `tag 0x00000001 "hi"`},
		{EvEventTag, []byte{1, 0, 0, 0, 9, 0, 0, 0}, "8 bytes"},
		{EvEFIBootServicesApp, imagePath(`\EFI\BOOT\X.EFI`), `image of 4096 bytes, \EFI\BOOT\X.EFI`},
		{EvEFIAction, []byte{0x80, 1}, "2 bytes"},
		{EvSCRTMVersion, []byte{'G', 0, 'C', 0, 0, 0}, `"GC"`},
		{EventType(0x1234), []byte{1}, "1 byte"},
	} {
		e := Event{Type: tc.typ, Data: tc.data}
		if got := e.Describe(); got != tc.want {
			t.Errorf("%s %x: Describe = %q, want %q", tc.typ, tc.data, got, tc.want)
		}
	}
	if EventType(0x1234).String() != "EV_UNKNOWN_0x00001234" || EvEFIAction.String() != "EV_EFI_ACTION" {
		t.Errorf("names: %s %s", EventType(0x1234), EvEFIAction)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(synthCCEL(f))
	f.Add(append(synthCCEL(f), 0xFF, 0xFF, 0xFF, 0xFF, 0xFF))
	s1, s256 := sha1.Sum(nil), sha256.Sum256(nil)
	f.Add(mustMarshal(f, &Log{
		SpecID: SpecID{VersionMajor: 2, UintnSize: 2, Algorithms: []AlgSize{{AlgSHA1, 20}, {AlgSHA256, 32}}, VendorInfo: []byte{1}},
		Events: []Event{
			{Index: 0, Type: EvNoAction, Digests: []Digest{{AlgSHA1, make([]byte, 20)}, {AlgSHA256, make([]byte, 32)}}, Data: append([]byte(startupLocality), 3)},
			{Index: 7, Type: EvEFIVariableDriverCfg, Digests: []Digest{{AlgSHA256, s256[:]}, {AlgSHA1, s1[:]}}, Data: make([]byte, 32)},
		},
	}))
	data := readTestdata(f, "ccel_data.dat")
	if l, err := Parse(data); err == nil {
		f.Add(data[:l.End+8])
	}
	f.Add(readTestdata(f, "ubuntu-2404-amd-sevsnp.bin")[:4096])
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(b)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset < 0 || fe.Offset > len(b) {
				t.Fatalf("error %v is not a FormatError inside the input", err)
			}
			return
		}
		enc, err := l.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if !bytes.Equal(enc, b[:l.End]) || l.End+l.Padding != len(b) {
			t.Fatalf("re-encoding differs")
		}
		for i := range l.Events {
			_ = l.Events[i].String()
		}
		_, _ = l.ReplayRTMRs()
		for _, a := range l.SpecID.Algorithms {
			_, _ = l.ReplayPCRs(a.Alg)
		}
	})
}

func FuzzParseCCELTable(f *testing.F) {
	f.Add(readTestdata(f, "ccel_table.dat"))
	f.Add(make([]byte, CCELTableSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := ParseCCELTable(b)
		if err != nil {
			return
		}
		if !bytes.Equal(tb.Marshal(), b) {
			t.Fatalf("re-encoding differs")
		}
		_ = tb.String()
	})
}
