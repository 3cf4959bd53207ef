package tdxmr

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/authenticode"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
)

func hexDigest(t testing.TB, s string) Digest {
	t.Helper()
	d, err := ParseDigest(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestConstants checks the literal values of research/measure.md §2.1 and
// §2.5: the EV_EFI_ACTION strings (exact bytes, no NUL), their digests and
// the separator digest; and the tagged-event data of §2.6.
func TestConstants(t *testing.T) {
	for _, tc := range []struct {
		text   string
		len    int
		digest string
	}{
		{ActionCallingEFIApplication, 40, "77a0dab2312b4e1e57a84d865a21e5b2ee8d677a21012ada819d0a98988078d3d740f6346bfe0abaa938ca20439a8d71"},
		{ActionExitBootServices, 29, "214b0bef1379756011344877743fdc2a5382bac6e70362d624ccf3f654407c1b4badf7d8f9295dd3dabdef65b27677e0"},
		{ActionExitBootServicesSuccess, 40, "0a2e01c85deae718a530ad8c6d20a84009babe6c8989269e950d8cf440c6e997695e64d455c4174a652cd080f6230b74"},
		{string(SeparatorData), 4, "394341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0"},
	} {
		if len(tc.text) != tc.len {
			t.Errorf("%q is %d bytes, want %d", tc.text, len(tc.text), tc.len)
		}
		if got := Sum384([]byte(tc.text)); got != hexDigest(t, tc.digest) {
			t.Errorf("SHA-384(%q) = %s, want %s", tc.text, got, tc.digest)
		}
	}
	if ActionCallingEFIApplication != "Calling EFI Application from Boot Option" ||
		ActionExitBootServices != "Exit Boot Services Invocation" ||
		ActionExitBootServicesSuccess != "Exit Boot Services Returned with Success" {
		t.Error("action strings changed")
	}
	if !bytes.Equal(SeparatorData, []byte{0, 0, 0, 0}) {
		t.Error("separator data changed")
	}
	if got := hex.EncodeToString(taggedEventData(TagLoadOptions, tagLoadOptionsText)); got != "ed223b8f1a0000004c4f414445445f494d4147453a3a4c6f61644f7074696f6e7300" {
		t.Errorf("LoadOptions tagged event data %s", got)
	}
	if got := hex.EncodeToString(taggedEventData(TagInitrd, tagInitrdText)); got != "ec223b8f0d0000004c696e757820696e6974726400" {
		t.Errorf("initrd tagged event data %s", got)
	}
	if EvSeparator != 4 || EvEventTag != 6 || EvEFIBootServicesApplication != 0x80000003 || EvEFIAction != 0x80000007 {
		t.Error("event type values changed")
	}
	if EventTypeName(EvEFIAction) != "EV_EFI_ACTION" || EventTypeName(0x99) != "event-type-0x99" {
		t.Error("EventTypeName")
	}
}

func TestDigest(t *testing.T) {
	var zero Digest
	d := Sum384([]byte("x"))
	want := sha512.Sum384(append(make([]byte, 48), d[:]...))
	if got := Extend(zero, d); got != want {
		t.Fatalf("Extend = %s", got)
	}
	if Replay(nil) != zero {
		t.Fatal("Replay(nil) is not zero")
	}
	if got := Replay([]Event{{Digest: d}, {Digest: d}}); got != Extend(Extend(zero, d), d) {
		t.Fatal("Replay")
	}
	js, err := json.Marshal(struct{ D Digest }{d})
	if err != nil || string(js) != `{"D":"`+d.String()+`"}` {
		t.Fatalf("JSON %s %v", js, err)
	}
	var back struct{ D Digest }
	if err := json.Unmarshal(js, &back); err != nil || back.D != d {
		t.Fatalf("round trip %v", err)
	}
	for _, bad := range []string{"", "zz", strings.Repeat("a", 94), strings.Repeat("a", 98)} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) succeeded", bad)
		}
	}
}

func TestLoadOptions(t *testing.T) {
	utf16 := func(s string) []byte {
		var b []byte
		for i := 0; i < len(s); i++ {
			b = append(b, s[i], 0)
		}
		return append(b, 0, 0)
	}
	for _, tc := range []struct {
		name    string
		cmdline string
		initrd  bool
		opt     InitrdOption
		want    []byte
	}{
		{"suffix", "console=ttyS0 panic=-1 envcheck=1", true, InitrdSuffix, utf16("console=ttyS0 panic=-1 envcheck=1 initrd=initrd")},
		{"prefix", "console=ttyS0", true, InitrdPrefix, utf16("initrd=initrd console=ttyS0")},
		{"no initrd", "console=ttyS0", false, InitrdSuffix, utf16("console=ttyS0")},
		{"no initrd, no placement", "console=ttyS0", false, 0, utf16("console=ttyS0")},
		{"empty cmdline suffix", "", true, InitrdSuffix, utf16(" initrd=initrd")},
		{"empty cmdline prefix", "", true, InitrdPrefix, utf16("initrd=initrd ")},
		{"nothing", "", false, InitrdSuffix, nil},
		// Bytes are widened, not decoded: UTF-8 "é" (c3 a9) gives two
		// code units.
		{"non-ascii", "x=\u00e9", false, InitrdSuffix, []byte{'x', 0, '=', 0, 0xc3, 0, 0xa9, 0, 0, 0}},
	} {
		got, err := LoadOptions(tc.cmdline, tc.initrd, tc.opt)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: %x, want %x", tc.name, got, tc.want)
		}
	}
	if _, err := LoadOptions("a\x00b", false, InitrdSuffix); err == nil {
		t.Error("NUL in cmdline accepted")
	}
	if _, err := LoadOptions("a", true, 0); err == nil {
		t.Error("unknown placement accepted")
	}
	// A published vector (a third-party TDX project's README, prefix
	// form): sha384(utf16le("initrd=initrd " + cmdline) || 0000).
	b, _ := LoadOptions("root=LABEL=cloudimg-rootfs ro console=ttyS0", true, InitrdPrefix)
	if got := Sum384(b); got != hexDigest(t, "b8c85d40a1d555a451571e24d7d7c4c331bc15721d6e4b2a5cb5093214c44174822a0916aa4d622d4309644de99cd59c") {
		t.Errorf("LoadOptions digest %s", got)
	}
}

func TestInitrdOptionNames(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want InitrdOption
	}{{"suffix", InitrdSuffix}, {"prefix", InitrdPrefix}, {shape.InitrdSuffix, InitrdSuffix}, {shape.InitrdPrefix, InitrdPrefix}} {
		got, err := ParseInitrdOption(tc.s)
		if err != nil || got != tc.want || got.String() != tc.s {
			t.Errorf("ParseInitrdOption(%q) = %v, %v", tc.s, got, err)
		}
	}
	if _, err := ParseInitrdOption("middle"); err == nil {
		t.Error("ParseInitrdOption(middle) succeeded")
	}
}

func testBoot() Boot {
	initrd := bytes.Repeat([]byte("070701"), 1000)
	return Boot{
		Kernel:       defaultBz().build(),
		Initrd:       initrd,
		Cmdline:      "console=ttyS0 panic=-1",
		MemorySize:   2 * gib,
		KernelSource: KernelPatched,
		InitrdOption: InitrdSuffix,
	}
}

func TestRTMR1(t *testing.T) {
	b := testBoot()
	r, err := RTMR1(b)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range r.Events {
		names = append(names, e.Name)
		if e.Register != 1 || e.MRIndex() != 2 {
			t.Errorf("%s: register %d MR index %d", e.Name, e.Register, e.MRIndex())
		}
	}
	if got := strings.Join(names, ","); got != "kernel,calling-efi-application,separator,exit-boot-services-invocation,exit-boot-services-returned" {
		t.Fatalf("events %s", got)
	}
	// The kernel event is the Authenticode SHA-384 of the patched kernel.
	patched, _, _ := PatchKernel(b.Kernel, b.load())
	want, _ := authenticode.SHA384(patched)
	if r.Events[0].Digest != want || r.Events[0].Type != EvEFIBootServicesApplication || r.Events[0].Input != InputKernel || r.Events[0].Data != nil {
		t.Fatalf("kernel event %v", r.Events[0])
	}
	if r.Events[1].Type != EvEFIAction || string(r.Events[1].Data) != ActionCallingEFIApplication || r.Events[2].Type != EvSeparator {
		t.Fatalf("events %v", r.Events)
	}
	// The register is the replay of the five digests.
	var reg Digest
	for _, d := range []Digest{want,
		hexDigest(t, "77a0dab2312b4e1e57a84d865a21e5b2ee8d677a21012ada819d0a98988078d3d740f6346bfe0abaa938ca20439a8d71"),
		hexDigest(t, "394341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0"),
		hexDigest(t, "214b0bef1379756011344877743fdc2a5382bac6e70362d624ccf3f654407c1b4badf7d8f9295dd3dabdef65b27677e0"),
		hexDigest(t, "0a2e01c85deae718a530ad8c6d20a84009babe6c8989269e950d8cf440c6e997695e64d455c4174a652cd080f6230b74"),
	} {
		reg = Extend(reg, d)
	}
	if r.Value != reg || r.Index != 1 {
		t.Fatalf("RTMR1 %s, want %s", r.Value, reg)
	}

	// Unpatched: the file's own Authenticode digest.
	b.KernelSource = KernelUnpatched
	un, err := RTMR1(b)
	if err != nil {
		t.Fatal(err)
	}
	fileDigest, _ := authenticode.SHA384(b.Kernel)
	if un.Events[0].Digest != fileDigest || un.Value == r.Value {
		t.Fatalf("unpatched kernel event %v", un.Events[0])
	}
	// The patched digest depends on memory below 2.75 GiB only, and on
	// the initrd size; the unpatched one on neither.
	digestFor := func(mem uint64, initrd []byte, src KernelSource) Digest {
		bb := testBoot()
		bb.MemorySize, bb.Initrd, bb.KernelSource = mem, initrd, src
		d, _, err := KernelDigest(bb)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	small, big := make([]byte, 100), make([]byte, 100000)
	if digestFor(2*gib, small, KernelPatched) != digestFor(64*gib, small, KernelPatched) {
		t.Error("patched digest differs between 2 GiB and 64 GiB")
	}
	if digestFor(1*gib, small, KernelPatched) == digestFor(2*gib, small, KernelPatched) {
		t.Error("patched digest equal for 1 GiB and 2 GiB")
	}
	if digestFor(2*gib, small, KernelPatched) == digestFor(2*gib, big, KernelPatched) {
		t.Error("patched digest does not depend on the initrd size")
	}
	if digestFor(1*gib, small, KernelUnpatched) != digestFor(64*gib, big, KernelUnpatched) {
		t.Error("unpatched digest depends on memory or initrd")
	}

	// Both candidates at once.
	c, err := RTMR1Candidates(b)
	if err != nil || c[KernelPatched].Value != r.Value || c[KernelUnpatched].Value != un.Value {
		t.Fatalf("RTMR1Candidates: %v", err)
	}
	// Old Canonical TDVF: no separator.
	b.NoReadyToBootSeparator = true
	ns, _ := RTMR1(b)
	if len(ns.Events) != 4 || ns.Events[2].Name != "exit-boot-services-invocation" {
		t.Fatalf("no-separator events %v", ns.Events)
	}
	// Bad kernels.
	b.Kernel = []byte("not a kernel")
	if _, err := RTMR1(b); err == nil {
		t.Fatal("RTMR1 of a non-PE kernel succeeded")
	}
	b.Kernel = defaultBz().build()[:0x1000] // setup header intact, sections cut off
	b.KernelSource = KernelUnpatched
	if _, err := RTMR1(b); err == nil || !strings.Contains(err.Error(), "tdxmr: kernel: authenticode:") {
		t.Fatalf("RTMR1 of a truncated kernel: %v", err)
	}
	if _, err := RTMR1Candidates(b); err == nil || !strings.Contains(err.Error(), "tdxmr: patched kernel: tdxmr: kernel: authenticode: offset 0x148: section 0") {
		t.Fatalf("RTMR1Candidates of a truncated kernel: %v", err)
	}
	b.KernelSource = 0
	if _, err := RTMR1(b); err == nil {
		t.Fatal("RTMR1 with unknown kernel source succeeded")
	}
}

func TestRTMR2(t *testing.T) {
	b := testBoot()
	r, err := RTMR2(b)
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := LoadOptions(b.Cmdline, true, InitrdSuffix)
	if len(r.Events) != 2 || r.Events[0].Name != "load-options" || r.Events[1].Name != "initrd" {
		t.Fatalf("events %v", r.Events)
	}
	if r.Events[0].Digest != Sum384(opts) || r.Events[0].Input != InputCmdline || r.Events[0].Type != EvEventTag || r.Events[0].MRIndex() != 3 {
		t.Fatalf("load options event %v", r.Events[0])
	}
	if r.Events[1].Digest != Sum384(b.Initrd) || r.Events[1].Input != InputInitrd {
		t.Fatalf("initrd event %v", r.Events[1])
	}
	if r.Value != Extend(Extend(Digest{}, Sum384(opts)), Sum384(b.Initrd)) || r.Index != 2 {
		t.Fatal("RTMR2 value")
	}
	// Prefix placement changes only the first event.
	b.InitrdOption = InitrdPrefix
	p, _ := RTMR2(b)
	if p.Events[0].Digest == r.Events[0].Digest || p.Events[1].Digest != r.Events[1].Digest {
		t.Fatal("prefix placement")
	}
	// No initrd (nil or empty): one event, no initrd= in the options.
	for _, initrd := range [][]byte{nil, {}} {
		b.Initrd = initrd
		n, _ := RTMR2(b)
		plain, _ := LoadOptions(b.Cmdline, false, 0)
		if len(n.Events) != 1 || n.Events[0].Digest != Sum384(plain) {
			t.Fatalf("no initrd: %v", n.Events)
		}
	}
	// Nothing at all: no events, zero register.
	b.Cmdline = ""
	z, _ := RTMR2(b)
	if len(z.Events) != 0 || z.Value != (Digest{}) {
		t.Fatalf("empty: %v", z.Events)
	}
	b.Cmdline = "a\x00"
	if _, err := RTMR2(b); err == nil {
		t.Fatal("NUL cmdline accepted")
	}
	b.Cmdline, b.Initrd, b.InitrdOption = "x", []byte{1}, 0
	if _, err := RTMR2(b); err == nil {
		t.Fatal("unknown placement accepted")
	}
}

// TestRealKernel computes RTMR1 for the real kernel (CHRYSALIS_TEST_KERNEL)
// under both kernel sources; the unpatched kernel event must equal the
// file's Authenticode SHA-384.
func TestRealKernel(t *testing.T) {
	p := os.Getenv("CHRYSALIS_TEST_KERNEL")
	if p == "" {
		t.Skip("CHRYSALIS_TEST_KERNEL not set: no real kernel to test against")
	}
	k, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	initrd := bytes.Repeat([]byte{0x42}, 0xA962C0)
	for _, src := range KernelSources {
		for _, mem := range []uint64{1 * gib, 2 * gib, 16 * gib} {
			b := Boot{Kernel: k, Initrd: initrd, Cmdline: "console=ttyS0", MemorySize: mem, KernelSource: src, InitrdOption: InitrdSuffix}
			r, err := RTMR1(b)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s mem %d GiB: kernel %s RTMR1 %s", src, mem/gib, r.Events[0].Digest, r.Value)
			if src == KernelUnpatched {
				want, _ := authenticode.SHA384(k)
				if r.Events[0].Digest != want {
					t.Errorf("unpatched kernel event %s, want %x", r.Events[0].Digest, want)
				}
			}
		}
	}
	// The real kernel's header matches what the model assumes for a
	// modern EFI-stub kernel: protocol >= 2.12 with
	// XLF_CAN_BE_LOADED_ABOVE_4G, loaded high.
	_, patch, err := PatchKernel(k, KernelLoad{MemorySize: 3 * gib, Cmdline: "console=ttyS0", Initrd: true, InitrdSize: 0xA962C0})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("protocol %#x setup %#x fields %+v", patch.Protocol, patch.SetupSize, patch.Fields)
	if patch.Protocol < 0x20c || patch.InitrdAddr != 0x7F541000 {
		t.Errorf("protocol %#x initrd addr %#x, want >= 0x20c and 0x7F541000 (dstack #1185)", patch.Protocol, patch.InitrdAddr)
	}
}

func BenchmarkRTMR1(b *testing.B) {
	boot := testBoot()
	if p := os.Getenv("CHRYSALIS_TEST_KERNEL"); p != "" {
		k, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		boot.Kernel = k
	}
	b.SetBytes(int64(len(boot.Kernel)))
	for i := 0; i < b.N; i++ {
		if _, err := RTMR1(boot); err != nil {
			b.Fatal(err)
		}
	}
}
