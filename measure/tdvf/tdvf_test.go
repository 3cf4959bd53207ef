package tdvf

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand"
	"os"
	"strings"
	"testing"

	gceovmf "github.com/google/gce-tcb-verifier/ovmf"
	gcetdx "github.com/google/gce-tcb-verifier/tdx"

	"github.com/chrysalis-cc/chrysalis/measure/shape"
)

// Environment variables naming the real pinned inputs (wired by CI).
const envOVMF = "CHRYSALIS_TEST_OVMF"

// The pinned OVMF: Debian trixie ovmf 2025.02-8+deb13u1, /usr/share/ovmf/OVMF.fd.
const (
	pinnedOVMFSHA256 = "14954040cc754ade0c625ac3470ea46d4c14318b5b1396de4ef77090203d76db"
	// Single-pass MRTD; equals gce-tcb-verifier v0.3.1 tdx.MRTD with its
	// defaults (research/env.md §5: bdc6fb14…0e11).
	pinnedMRTDSinglePass = "bdc6fb145880f06f30c8b346b8dce2a99d9351b56892df22f80fcf6574caa9f9c31df8e8576d53b4d0cd1c3f28910e11"
	// Two-pass MRTD of the same image (no independent implementation to
	// compare with; see TestMRTDReference for the reference stream).
	pinnedMRTDTwoPass = "456f07902150d008bb913c3e1e84e9297f735a6c83cd2a957a1f0a8bbedb06df188e3837ae48d32c73d473d097dc0db2"
)

func realOVMF(t testing.TB) []byte {
	t.Helper()
	p := os.Getenv(envOVMF)
	if p == "" {
		t.Skipf("%s not set: no real OVMF to test against", envOVMF)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%s: %v", envOVMF, err)
	}
	return b
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGUID(t *testing.T) {
	g := MustParseGUID("96b582de-1fb2-45f7-baea-a366c55a082d")
	want := mustHex(t, "de82b596b21ff745baeaa366c55a082d")
	if !bytes.Equal(g[:], want) {
		t.Fatalf("on-disk bytes %x, want %x", g[:], want)
	}
	if g.String() != "96b582de-1fb2-45f7-baea-a366c55a082d" {
		t.Fatalf("String() = %s", g)
	}
	for _, bad := range []string{"", "96b582de1fb245f7baeaa366c55a082d", "96b582de-1fb2-45f7-baea-a366c55a082g", "96b582de-1fb2-45f7-baea+a366c55a082d"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) succeeded", bad)
		}
	}
}

func TestParseSynthetic(t *testing.T) {
	s := defaultSynth()
	s.extraEntry = true
	f, err := Parse(s.build())
	if err != nil {
		t.Fatal(err)
	}
	if f.DescriptorOffset != s.descOff {
		t.Errorf("DescriptorOffset %#x, want %#x", f.DescriptorOffset, s.descOff)
	}
	if len(f.Table) != 2 || f.Table[1].GUID != MetadataOffsetGUID || f.Table[0].GUID.String() != "00f771de-1a7e-4fcb-890e-68c77e2fb44e" {
		t.Errorf("GUIDed table %+v", f.Table)
	}
	if len(f.Sections) != len(s.sections) {
		t.Fatalf("%d sections, want %d", len(f.Sections), len(s.sections))
	}
	for i, got := range f.Sections {
		w := s.sections[i]
		want := Section{Index: i, DataOffset: w.DataOffset, RawDataSize: w.RawDataSize, MemoryAddress: w.MemoryAddress,
			MemoryDataSize: w.MemoryDataSz, Type: SectionType(w.Type), Attributes: Attributes(w.Attributes)}
		if got != want {
			t.Errorf("section %d = %+v, want %+v", i, got, want)
		}
	}
	if h := f.TDHOB(); h.MemoryAddress != 0x809000 || h.Index != 2 {
		t.Errorf("TDHOB() = %v", h)
	}
	cfv := f.SectionsOf(SectionCFV)
	if len(cfv) != 1 || !bytes.Equal(f.SectionData(cfv[0]), f.Image()[:0x4000]) {
		t.Errorf("CFV data wrong")
	}
	if f.SectionData(f.TDHOB()) != nil {
		t.Errorf("TD HOB has image data")
	}
	if got := f.Sections[1].String(); !strings.Contains(got, "section 1 (BFV)") || !strings.Contains(got, "MR.EXTEND") {
		t.Errorf("String() = %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	const n = synthSize
	tests := []struct {
		name   string
		mutate func(s *synth)
		raw    func(b []byte) []byte // applied after build
		want   string
		kind   error
	}{
		{name: "size not 64K multiple", raw: func(b []byte) []byte { return b[:len(b)-4096] }, want: "not a non-zero multiple of 64 KiB"},
		{name: "empty", raw: func(b []byte) []byte { return nil }, want: "not a non-zero multiple of 64 KiB"},
		{name: "no footer", raw: func(b []byte) []byte { b[n-0x21] ^= 0xff; return b }, want: "no OVMF GUIDed table footer", kind: ErrNoGUIDTable},
		{name: "table length too small", raw: func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[n-0x20-18:], 17)
			return b
		}, want: "GUIDed table length 0x11 is out of range", kind: ErrNoGUIDTable},
		{name: "entry length too small", raw: func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[n-0x20-18-18:], 3)
			return b
		}, want: "has length 3, less than 18"},
		{name: "entry length too large", raw: func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[n-0x20-18-18:], 400)
			return b
		}, want: "has length 400, more than the 22 table bytes"},
		{name: "stray bytes", raw: func(b []byte) []byte {
			l := binary.LittleEndian.Uint16(b[n-0x20-18:])
			binary.LittleEndian.PutUint16(b[n-0x20-18:], l+5)
			return b
		}, want: "5 stray bytes"},
		{name: "non-TDX OVMF", mutate: func(s *synth) { s.noMeta = true; s.extraEntry = true }, want: "no TDX metadata offset entry", kind: ErrNoTDXMetadata},
		{name: "metadata entry data length", mutate: func(s *synth) { s.metaData = []byte{1, 2, 3, 4, 5, 6} }, want: "has 6 data bytes, want 4"},
		{name: "metadata offset past image", mutate: func(s *synth) { s.metaData = binary.LittleEndian.AppendUint32(nil, n+1) }, want: "TDX metadata offset 0x20001"},
		{name: "metadata offset too small", mutate: func(s *synth) { s.metaData = binary.LittleEndian.AppendUint32(nil, 8) }, want: "TDX metadata offset 0x8"},
		{name: "metadata GUID", mutate: func(s *synth) { s.metaGUID = TableFooterGUID }, want: "before the TDVF descriptor"},
		{name: "signature", mutate: func(s *synth) { s.signature = 0x41414141 }, want: "descriptor signature 0x41414141"},
		{name: "version", mutate: func(s *synth) { s.version = 2 }, want: "descriptor version 2, want 1"},
		{name: "one section", mutate: func(s *synth) { s.count = 1 }, want: "has 1 section entries, QEMU requires at least 2"},
		{name: "length mismatch", mutate: func(s *synth) { s.length = 16 + 32*5 + 1 }, want: "descriptor length 0xb1, want 0xb0"},
		{name: "too many sections", mutate: func(s *synth) { s.count = 5000; s.length = 16 + 32*5000 }, want: "runs past the end"},
		{name: "td-shim type", mutate: func(s *synth) { s.sections[3].Type = uint32(SectionPayload) }, want: "section 3 (PAYLOAD), entry at offset 0x9070: section type 5 (PAYLOAD) is td-shim only"},
		{name: "unknown type", mutate: func(s *synth) { s.sections[3].Type = 77 }, want: "unknown section type 77"},
		{name: "unknown attribute", mutate: func(s *synth) { s.sections[0].Attributes = 0x10 }, want: "unknown attribute bits 0x10"},
		{name: "page aug", mutate: func(s *synth) { s.sections[3].Attributes = uint32(AttrPageAug) }, want: "PAGE.AUG is not supported"},
		{name: "address alignment", mutate: func(s *synth) { s.sections[2].MemoryAddress += 0x800 }, want: "section 2 (TD_HOB), entry at offset 0x9050: MemoryAddress 0x809800 is not 4 KiB aligned"},
		{name: "size alignment", mutate: func(s *synth) { s.sections[3].MemoryDataSz = 0x1800 }, want: "MemoryDataSize 0x1800 is not 4 KiB aligned"},
		{name: "zero size", mutate: func(s *synth) { s.sections[3].MemoryDataSz = 0 }, want: "MemoryDataSize is 0"},
		{name: "huge temp mem", mutate: func(s *synth) { s.sections[4].MemoryDataSz = 1 << 40 }, want: "section 4 (TEMP_MEM), entry at offset 0x9090: MemoryDataSize 0x10000000000 brings TD_HOB and TEMP_MEM sections past 0x10000000 bytes"},
		{name: "temp mem total", mutate: func(s *synth) { s.sections[4].MemoryDataSz = 256<<20 - 0x6000 }, want: "section 4 (TEMP_MEM), entry at offset 0x9090: MemoryDataSize 0xfffa000 brings"},
		{name: "gpa overflow", mutate: func(s *synth) { s.sections[3].MemoryAddress = 0xFFFFFFFFFFFFF000; s.sections[3].MemoryDataSz = 0x2000 }, want: "overflows 64 bits"},
		{name: "raw exceeds memory", mutate: func(s *synth) { s.sections[0].MemoryDataSz = 0x3000 }, want: "RawDataSize 0x4000 exceeds MemoryDataSize 0x3000"},
		{name: "fv without data", mutate: func(s *synth) { s.sections[0].RawDataSize = 0 }, want: "section 0 (CFV), entry at offset 0x9010: RawDataSize is 0"},
		{name: "fv past image", mutate: func(s *synth) { s.sections[1].DataOffset = 0x5000 }, want: "run past the end of the 0x20000-byte image"},
		{name: "fv offset overflow", mutate: func(s *synth) { s.sections[1].DataOffset = 0xFFFFF000 }, want: "run past the end"},
		{name: "fv memory larger than raw", mutate: func(s *synth) { s.sections[0].MemoryDataSz = 0x5000 }, want: "MemoryDataSize 0x5000 differs from RawDataSize 0x4000"},
		{name: "hob with raw data", mutate: func(s *synth) { s.sections[2].RawDataSize = 0x100 }, want: "RawDataSize 0x100, want 0: TD_HOB is not loaded from the image"},
		{name: "temp mem with raw data", mutate: func(s *synth) { s.sections[4].RawDataSize = 0x1000 }, want: "TEMP_MEM is not loaded from the image"},
		{name: "hob extended", mutate: func(s *synth) { s.sections[2].Attributes = uint32(AttrMRExtend) }, want: "MR.EXTEND on the TD HOB is not supported"},
		{name: "overlap", mutate: func(s *synth) { s.sections[4].MemoryAddress = 0x805000 }, want: "section 4 (TEMP_MEM), entry at offset 0x9090: guest-physical range [0x805000,0x807000) overlaps section 3 (TEMP_MEM) [0x800000,0x806000)"},
		{name: "overlap fv", mutate: func(s *synth) { s.sections[2].MemoryAddress = 1<<32 - 0x1000 }, want: "overlaps section 1 (BFV)"},
		{name: "no hob", mutate: func(s *synth) { s.sections[2].Type = uint32(SectionTempMem) }, want: "0 TD_HOB sections, want exactly 1"},
		{name: "two hobs", mutate: func(s *synth) { s.sections[3].Type = uint32(SectionTDHOB) }, want: "2 TD_HOB sections"},
		{name: "no bfv", mutate: func(s *synth) { s.sections[1].Type = uint32(SectionCFV) }, want: "no BFV section"},
		{name: "image size mismatch", mutate: func(s *synth) {
			s.sections[1].RawDataSize -= 0x1000
			s.sections[1].MemoryDataSz -= 0x1000
		}, want: "firmware volumes cover 0x1f000 bytes but the image is 0x20000 bytes (image size mismatch)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := defaultSynth()
			if tc.mutate != nil {
				tc.mutate(s)
			}
			b := s.build()
			if tc.raw != nil {
				b = tc.raw(b)
			}
			f, err := Parse(b)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", f.Sections)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FormatError", err)
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Fatalf("error %q is not %v", err, tc.kind)
			}
			if tc.kind == nil && (errors.Is(err, ErrNoGUIDTable) || errors.Is(err, ErrNoTDXMetadata)) {
				t.Fatalf("error %q unexpectedly classified", err)
			}
		})
	}
}

func TestParseForeign(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	random := make([]byte, 1<<20)
	rnd.Read(random)
	pe := make([]byte, 64<<10)
	copy(pe, "MZ")
	binary.LittleEndian.PutUint32(pe[0x3c:], 0x80)
	copy(pe[0x80:], "PE\x00\x00")
	for _, tc := range []struct {
		name string
		b    []byte
		kind error
	}{
		{"zeros", make([]byte, 4<<20), ErrNoGUIDTable},
		{"random", random, ErrNoGUIDTable},
		{"pe", pe, ErrNoGUIDTable},
	} {
		_, err := Parse(tc.b)
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.kind)
		}
	}
	// The fuzz seeds are valid once padded.
	for _, seed := range [][]byte{fuzzSeed(nil), fuzzSeed(func(s *synth) { s.extraEntry = true })} {
		if _, err := Parse(padTo64K(seed)); err != nil {
			t.Fatalf("fuzz seed: %v", err)
		}
	}
	// Every truncation of a valid image fails cleanly.
	img := defaultSynth().build()
	for cut := 0; cut < len(img); cut += 509 {
		if _, err := Parse(img[:cut]); err == nil {
			t.Fatalf("Parse of %d-byte prefix succeeded", cut)
		}
		if _, err := Parse(img[len(img)-cut:]); err == nil && cut != 0 {
			t.Fatalf("Parse of %d-byte suffix succeeded", cut)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/OVMF.fd"
	if err := os.WriteFile(p, make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": tdvf: ") || !errors.Is(err, ErrNoGUIDTable) {
		t.Fatalf("Load error %v", err)
	}
	if _, err := Load(dir + "/missing.fd"); err == nil || !strings.Contains(err.Error(), "missing.fd") {
		t.Fatalf("Load of missing file: %v", err)
	}
	if err := os.WriteFile(p, defaultSynth().build(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err != nil {
		t.Fatal(err)
	}
}

func TestPageOrder(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want PageOrder
	}{
		{"single-pass", SinglePass},
		{"two-pass", TwoPass},
		{shape.MRTDSinglePass, SinglePass},
		{shape.MRTDTwoPass, TwoPass},
	} {
		got, err := ParsePageOrder(tc.s)
		if err != nil || got != tc.want {
			t.Errorf("ParsePageOrder(%q) = %v, %v", tc.s, got, err)
		}
		if got.String() != tc.s {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.s)
		}
	}
	for _, bad := range []string{"", "single", "Two-Pass", "PageOrder(0)"} {
		if _, err := ParsePageOrder(bad); err == nil {
			t.Errorf("ParsePageOrder(%q) succeeded", bad)
		}
	}
	f, _ := Parse(defaultSynth().build())
	if _, err := f.MRTD(PageOrder(0)); err == nil {
		t.Errorf("MRTD with invalid order succeeded")
	}
}

// referenceStream builds the MRTD byte stream independently, straight from
// research/measure.md §1.2/§1.3: one []byte per operation.
func referenceStream(img []byte, secs []rawSection, twoPass bool) []byte {
	pageAdd := func(gpa uint64) []byte {
		r := make([]byte, 128)
		copy(r, "MEM.PAGE.ADD")
		binary.LittleEndian.PutUint64(r[16:24], gpa)
		return r
	}
	extend := func(gpa uint64, data []byte) []byte {
		r := make([]byte, 128, 384)
		copy(r, "MR.EXTEND")
		binary.LittleEndian.PutUint64(r[16:24], gpa)
		return append(r, data...)
	}
	var ops [][]byte
	for _, s := range secs {
		content := make([]byte, s.MemoryDataSz)
		copy(content, img[s.DataOffset:s.DataOffset+s.RawDataSize])
		var adds, exts [][]byte
		for pg := uint64(0); pg < s.MemoryDataSz; pg += 4096 {
			adds = append(adds, pageAdd(s.MemoryAddress+pg))
			var e [][]byte
			if s.Attributes&1 != 0 {
				for c := uint64(0); c < 4096; c += 256 {
					e = append(e, extend(s.MemoryAddress+pg+c, content[pg+c:pg+c+256]))
				}
			}
			if twoPass {
				exts = append(exts, e...)
			} else {
				ops = append(ops, adds[len(adds)-1])
				ops = append(ops, e...)
			}
		}
		if twoPass {
			ops = append(ops, adds...)
			ops = append(ops, exts...)
		}
	}
	return bytes.Join(ops, nil)
}

func TestMRTDReference(t *testing.T) {
	variants := map[string]func(s *synth){
		"default":          func(s *synth) {},
		"extended temp":    func(s *synth) { s.sections[4].Attributes = uint32(AttrMRExtend) },
		"extended cfv":     func(s *synth) { s.sections[0].Attributes = uint32(AttrMRExtend) },
		"hob first":        func(s *synth) { s.sections[0], s.sections[2] = s.sections[2], s.sections[0] },
		"nothing extended": func(s *synth) { s.sections[1].Attributes = 0 },
	}
	// gce-tcb-verifier cannot measure an extended TEMP_MEM section (it
	// has no host buffer for it); QEMU extends its zero pages.
	noGCE := map[string]bool{"extended temp": true}
	for name, mut := range variants {
		t.Run(name, func(t *testing.T) {
			s := defaultSynth()
			mut(s)
			img := s.build()
			f, err := Parse(img)
			if err != nil {
				t.Fatal(err)
			}
			for _, order := range PageOrders {
				var buf bytes.Buffer
				if err := f.WriteMeasurement(&buf, order); err != nil {
					t.Fatal(err)
				}
				ref := referenceStream(img, s.sections, order == TwoPass)
				if !bytes.Equal(buf.Bytes(), ref) {
					t.Fatalf("%v: stream differs from reference (%d vs %d bytes)", order, buf.Len(), len(ref))
				}
				got, _ := f.MRTD(order)
				if want := sha512.Sum384(ref); got != want {
					t.Fatalf("%v: MRTD %x, want %x", order, got, want)
				}
			}
			// Cross-check single-pass with gce-tcb-verifier.
			if !noGCE[name] {
				gce, err := gcetdx.MRTD(gcetdx.LaunchOptionsDefault(""), img)
				if err != nil {
					t.Fatalf("gce-tcb-verifier: %v", err)
				}
				if got, _ := f.MRTD(SinglePass); got != gce {
					t.Fatalf("single-pass MRTD %x, gce-tcb-verifier %x", got, gce)
				}
			}
			// The orders differ exactly when some section is extended.
			m := f.MRTDs()
			extended := false
			for _, sec := range f.Sections {
				extended = extended || sec.ExtendsMR()
			}
			if (m[SinglePass] != m[TwoPass]) != extended {
				t.Fatalf("single-pass %x, two-pass %x, extended=%v", m[SinglePass], m[TwoPass], extended)
			}
		})
	}
}

func TestRecordLayout(t *testing.T) {
	s := defaultSynth()
	f, err := Parse(s.build())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	f.WriteMeasurement(&buf, SinglePass)
	b := buf.Bytes()
	// First op: PAGE.ADD of the CFV's first page (4 GiB - 128 KiB).
	want := make([]byte, 128)
	copy(want, "MEM.PAGE.ADD")
	copy(want[16:], []byte{0x00, 0x00, 0xfe, 0xff, 0, 0, 0, 0})
	if !bytes.Equal(b[:128], want) {
		t.Fatalf("first record\n%x\nwant\n%x", b[:128], want)
	}
	// The CFV (4 pages, not extended) is 4 PAGE.ADDs; then the BFV's first
	// page: PAGE.ADD, then MR.EXTEND of its first chunk with image bytes.
	bfv := b[4*128:]
	if string(bfv[:12]) != "MEM.PAGE.ADD" || binary.LittleEndian.Uint64(bfv[16:]) != 0xfffe4000 {
		t.Fatalf("BFV PAGE.ADD record %x", bfv[:128])
	}
	ext := bfv[128:]
	if string(ext[:9]) != "MR.EXTEND" || binary.LittleEndian.Uint64(ext[16:]) != 0xfffe4000 || !bytes.Equal(ext[9:16], make([]byte, 7)) || !bytes.Equal(ext[24:128], make([]byte, 104)) {
		t.Fatalf("MR.EXTEND record %x", ext[:128])
	}
	if !bytes.Equal(ext[128:384], f.Image()[0x4000:0x4100]) {
		t.Fatalf("MR.EXTEND chunk is not the image bytes")
	}
	// Size: every page adds 128 bytes, every extended page 16 * 384.
	var pages, extPages uint64
	for _, sec := range f.Sections {
		pages += sec.Pages()
		if sec.ExtendsMR() {
			extPages += sec.Pages()
		}
	}
	if got, want := uint64(len(b)), pages*128+extPages*16*384; got != want {
		t.Fatalf("stream is %d bytes, want %d", got, want)
	}
}

func TestRealOVMF(t *testing.T) {
	img := realOVMF(t)
	f, err := Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range f.Sections {
		t.Logf("%v", s)
	}
	m := f.MRTDs()
	t.Logf("MRTD single-pass %x", m[SinglePass])
	t.Logf("MRTD two-pass    %x", m[TwoPass])
	gce, err := gcetdx.MRTD(gcetdx.LaunchOptionsDefault(""), img)
	if err != nil {
		t.Fatalf("gce-tcb-verifier: %v", err)
	}
	if m[SinglePass] != gce {
		t.Errorf("single-pass MRTD %x, gce-tcb-verifier %x", m[SinglePass], gce)
	}
	if m[TwoPass] == m[SinglePass] {
		t.Errorf("two-pass MRTD equals single-pass")
	}
	// gce-tcb-verifier's own region extraction agrees with our sections.
	regions, err := gceovmf.ExtractMaterialGuestPhysicalRegions(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(regions) != len(f.Sections) {
		t.Fatalf("gce has %d regions, we have %d sections", len(regions), len(f.Sections))
	}
	for i, r := range regions {
		s := f.Sections[i]
		if uint64(r.GPR.Start) != s.MemoryAddress || r.GPR.Length != s.MemoryDataSize || uint32(r.TDVFAttributes) != uint32(s.Attributes) {
			t.Errorf("region %d: gce %+v, ours %v", i, r.GPR, s)
		}
	}
	if sum := sha256.Sum256(img); hex.EncodeToString(sum[:]) == pinnedOVMFSHA256 {
		single, two := m[SinglePass], m[TwoPass]
		if got := hex.EncodeToString(single[:]); got != pinnedMRTDSinglePass {
			t.Errorf("pinned OVMF single-pass MRTD %s, want %s", got, pinnedMRTDSinglePass)
		}
		if got := hex.EncodeToString(two[:]); got != pinnedMRTDTwoPass {
			t.Errorf("pinned OVMF two-pass MRTD %s, want %s", got, pinnedMRTDTwoPass)
		}
	} else {
		t.Logf("%s is not the pinned OVMF (sha256 %x); pinned-value check skipped", os.Getenv(envOVMF), sum)
	}
}

// fuzzSeed is the last 4 KiB of a valid 64 KiB image whose GUIDed table,
// TDVF descriptor and sections all lie in those 4 KiB; padTo64K turns it
// back into a valid image. Small inputs keep the fuzzer fast.
func fuzzSeed(mut func(s *synth)) []byte {
	const n = 64 << 10
	const fourG = 1 << 32
	s := defaultSynth()
	s.size = n
	s.descOff = n - 0x800
	s.sections[0] = rawSection{0, 0x4000, fourG - n, 0x4000, uint32(SectionCFV), 0}
	s.sections[1] = rawSection{0x4000, n - 0x4000, fourG - n + 0x4000, n - 0x4000, uint32(SectionBFV), uint32(AttrMRExtend)}
	if mut != nil {
		mut(s)
	}
	return s.build()[n-4096:]
}

func FuzzParse(f *testing.F) {
	f.Add(fuzzSeed(nil))
	f.Add(fuzzSeed(func(s *synth) { s.extraEntry = true }))
	f.Add(fuzzSeed(func(s *synth) { s.noMeta = true }))
	f.Add(fuzzSeed(func(s *synth) { s.sections[4].Attributes = uint32(AttrMRExtend) }))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, img := range [][]byte{b, padTo64K(b)} {
			fw, err := Parse(img)
			if err != nil {
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("error %T is not a *FormatError: %v", err, err)
				}
				continue
			}
			// A firmware that parses can be measured.
			for _, o := range PageOrders {
				if _, err := fw.MRTD(o); err != nil {
					t.Fatal(err)
				}
			}
			for _, sec := range fw.Sections {
				_ = fw.SectionData(sec)
			}
		}
	})
}

// padTo64K right-aligns b in a zero image whose size is the next multiple
// of 64 KiB, so the fuzzer's bytes land where the GUIDed table lives.
func padTo64K(b []byte) []byte {
	n := (len(b) + FirmwareAlignment - 1) / FirmwareAlignment * FirmwareAlignment
	if n == 0 {
		n = FirmwareAlignment
	}
	out := make([]byte, n)
	copy(out[n-len(b):], b)
	return out
}

func BenchmarkMRTD(b *testing.B) {
	img := []byte(nil)
	if p := os.Getenv(envOVMF); p != "" {
		var err error
		if img, err = os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
	} else {
		img = defaultSynth().build()
	}
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := Parse(img)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.MRTD(SinglePass); err != nil {
			b.Fatal(err)
		}
	}
}
