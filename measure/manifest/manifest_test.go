package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/golden"
	"github.com/chrysalis-cc/chrysalis/measure/manifest/dsse"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// testShapes are declared here, not looked up in shapes.json, so the
// golden files do not change when the catalog does.
func testShapes() []*shape.VMShape {
	q101 := shape.QEMUProfile{Name: "qemu-10.1", QEMUVersion: "10.1", MRTDPageOrder: shape.MRTDSinglePass,
		PatchesKernelHeader: true, MemoryBackend: shape.MemoryBackendRAM, IOMMUFD: true}
	q102 := q101
	q102.Name, q102.QEMUVersion, q102.PatchesKernelHeader = "qemu-10.2", "10.2", false
	q82 := shape.QEMUProfile{Name: "qemu-8.2-ubuntu", QEMUVersion: "8.2.2", MRTDPageOrder: shape.MRTDTwoPass,
		PatchesKernelHeader: true, MemoryBackend: shape.MemoryBackendNone}
	ovmf := shape.OVMFProfile{Name: "edk2-2025.02", EventLayout: shape.OVMFLayoutPre202505, InitrdOption: shape.InitrdSuffix}
	cfg := []shape.DiskSlot{{Kind: shape.DiskConfig}}
	full := []shape.DiskSlot{{Kind: shape.DiskConfig}, {Kind: shape.DiskModel}, {Kind: shape.DiskModelVerity}, {Kind: shape.DiskPersistent}}
	return []*shape.VMShape{
		{Name: "test-small", VCPUs: 1, MemoryMiB: 1024, NICs: 1, Disks: cfg, QEMU: q101, OVMF: ovmf},
		{Name: "test-gpu", VCPUs: 32, MemoryMiB: 102400, GPUs: 1, NICs: 1, Disks: full, QEMU: q101, OVMF: ovmf},
		{Name: "test-gpu-qemu-10.2", VCPUs: 32, MemoryMiB: 102400, GPUs: 1, NICs: 1, Disks: full, QEMU: q102, OVMF: ovmf},
		{Name: "test-gpu-ubuntu24", VCPUs: 32, MemoryMiB: 102400, GPUs: 1, NICs: 1, Disks: full, QEMU: q82, OVMF: ovmf},
	}
}

func fake(label string) tdxmr.Digest { return tdxmr.Sum384([]byte(label)) }

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func testRelease() (Release, []Input) {
	rel := Release{
		SourceCommit:      "81a31db715277f489d9e0d06cf3182fc532533ed",
		KernelVersion:     "7.3.4+deb13-cloud-amd64",
		Cmdline:           "console=ttyS0 panic=-1 loglevel=4",
		ReleaseJSONSHA256: sha("release.json"),
		Files: []File{
			{Name: "vmlinuz", Size: 7, SHA256: sha("vmlinuz")},
			{Name: "OVMF.fd", Size: 7, SHA256: sha("OVMF.fd")},
			{Name: "cmdline", Size: 33, SHA256: sha("cmdline")},
			{Name: "initrd", Size: 6, SHA256: sha("initrd")},
			{Name: "release.json", Size: 12, SHA256: sha("release.json")},
		},
	}
	inputs := []Input{
		{Role: "kernel", Package: "linux-image-cloud-amd64", Version: "7.3.4-1~bpo13+1", Arch: "amd64", Filename: "linux.deb", Size: 100, SHA256: sha("kernel deb")},
		{Role: "firmware", Package: "ovmf", Version: "2025.02-8+deb13u1", Arch: "all", Filename: "ovmf.deb", Size: 200, SHA256: sha("ovmf deb")},
	}
	return rel, inputs
}

func testValues(shapes []*shape.VMShape) []ShapeValues {
	var out []ShapeValues
	for _, s := range shapes {
		order := s.QEMU.MRTDPageOrder
		kv := KernelVariant(s)
		out = append(out, ShapeValues{
			Shape: s,
			MRTD:  Variant{order, fake("mrtd " + order)},
			RTMR0: fake("rtmr0 " + s.Name),
			RTMR1: Variant{kv, fake("rtmr1 " + kv)},
			RTMR2: Variant{s.OVMF.InitrdOption, fake("rtmr2 " + s.OVMF.InitrdOption)},
			TD:    DefaultTDFields(),
		})
	}
	return out
}

func testManifest(t testing.TB) *Manifest {
	t.Helper()
	rel, inputs := testRelease()
	m, err := New(rel, inputs, testValues(testShapes()))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testKey(t testing.TB) *dsse.PrivateKey {
	seed := sha256.Sum256([]byte("chrysalis manifest test key"))
	k, err := dsse.NewPrivateKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGolden(t *testing.T) {
	m := testManifest(t)
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "manifest.golden.json", enc)

	// Variants: only what the shapes use, sorted by name.
	names := func(vs []Variant) (out []string) {
		for _, v := range vs {
			out = append(out, v.Name)
		}
		return out
	}
	if got := strings.Join(names(m.RTMR1), ","); got != "patched-below4g-1024mib,patched-below4g-2048mib,unpatched" {
		t.Errorf("rtmr1 variants %s", got)
	}
	if got := strings.Join(names(m.MRTD), ","); got != "single-pass,two-pass" {
		t.Errorf("mrtd variants %s", got)
	}

	_, env, err := Sign(m, testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "manifest.dsse.golden.json", env)

	s, err := Verify(env, []*dsse.PublicKey{testKey(t).Public()})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Payload, enc) || len(s.KeyIDs) != 1 || s.KeyIDs[0] != testKey(t).ID {
		t.Errorf("Verify: payload or key ids differ: %v", s.KeyIDs)
	}
	d, _ := m.Digest()
	if sum := sha256.Sum256(enc); d != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("Digest %s", d)
	}

	var sum bytes.Buffer
	if err := s.Manifest.WriteSummary(&sum); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "summary.golden.txt", sum.Bytes())
}

func TestParseRoundTrip(t *testing.T) {
	m := testManifest(t)
	enc, _ := m.Encode()
	got, err := Parse(enc)
	if err != nil {
		t.Fatal(err)
	}
	enc2, _ := got.Encode()
	if !bytes.Equal(enc, enc2) {
		t.Error("Parse/Encode does not round-trip")
	}
	// White space and member order are free.
	var ind bytes.Buffer
	json.Indent(&ind, enc, "", "  ")
	if _, err := Parse(ind.Bytes()); err != nil {
		t.Errorf("indented: %v", err)
	}
	for i, s := range got.Shapes {
		want := m.Shapes[i]
		if s.ImageHash != want.ImageHash || s.ImageHash != Hash(ImageHash(s.QuoteFields())) {
			t.Errorf("shape %s image hash", s.Name)
		}
		sh := testShapes()[i]
		if d, _ := sh.Digest(); d != s.Digest {
			t.Errorf("shape %s digest %s, want %s", s.Name, s.Digest, d)
		}
	}
}

// edit decodes the canonical manifest into generic JSON (numbers kept
// exact), applies f and re-encodes.
func edit(t *testing.T, enc []byte, f func(m map[string]any)) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(enc))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func obj(v any, path ...any) map[string]any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v.(map[string]any)
}

// rehash recomputes shape i's image hash after an edit of its fields.
func rehash(t *testing.T, m map[string]any, i int) {
	b, _ := json.Marshal(obj(m, "shapes", i))
	var s Shape
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	obj(m, "shapes", i)["image_hash"] = Hash(ImageHash(s.QuoteFields())).String()
}

func TestParseStrict(t *testing.T) {
	enc, _ := testManifest(t).Encode()
	upper := strings.ToUpper(fake("mrtd single-pass").String())
	for _, tc := range []struct {
		name string
		in   []byte
		err  string
	}{
		{"unknown top field", edit(t, enc, func(m map[string]any) { m["extra"] = true }), `unknown field "extra"`},
		{"unknown nested field", edit(t, enc, func(m map[string]any) { obj(m, "shapes", 0, "td")["debug"] = false }), `unknown field "debug"`},
		{"missing field", edit(t, enc, func(m map[string]any) { delete(obj(m, "release"), "source_dirty") }), "field release.source_dirty is missing"},
		{"missing td field", edit(t, enc, func(m map[string]any) { delete(obj(m, "shapes", 1, "td"), "mr_owner") }), "field shapes[1].td.mr_owner is missing"},
		{"null", edit(t, enc, func(m map[string]any) { m["inputs"] = nil }), "field inputs is null"},
		{"upper-case hex", edit(t, enc, func(m map[string]any) { obj(m, "mrtd", 0)["value"] = upper }), "mrtd[0].value is"},
		{"upper-case image hash", edit(t, enc, func(m map[string]any) {
			obj(m, "shapes", 0)["image_hash"] = strings.ToUpper(obj(m, "shapes", 0)["image_hash"].(string))
		}), "want lower-case hex digits"},
		{"duplicate key", []byte(strings.Replace(string(enc), `{"format_version":1`, `{"format_version":1,"format_version":1`, 1)), "duplicate object key"},
		{"trailing data", append(bytes.Clone(enc), "{}"...), "trailing data"},
		{"fraction", []byte(strings.Replace(string(enc), `"format_version":1`, `"format_version":1.0`, 1)), "not an integer"},
		{"oversized", append(bytes.Clone(enc), bytes.Repeat([]byte(" "), MaxSize)...), "limit"},
		{"version", edit(t, enc, func(m map[string]any) { m["format_version"] = 2 }), "format_version 2 is not supported"},
		{"bad commit", edit(t, enc, func(m map[string]any) { obj(m, "release")["source_commit"] = "HEAD" }), `source_commit "HEAD"`},
		{"release.json disagrees", edit(t, enc, func(m map[string]any) { obj(m, "release")["release_json_sha256"] = sha("x") }), "release.files lists release.json"},
		{"files unsorted", edit(t, enc, func(m map[string]any) {
			f := obj(m, "release")["files"].([]any)
			f[0], f[1] = f[1], f[0]
		}), "sorted by name"},
		{"bad input", edit(t, enc, func(m map[string]any) { obj(m, "inputs", 0)["sha256"] = "00" }), "inputs[0]"},
		{"variant value differs", edit(t, enc, func(m map[string]any) {
			obj(m, "shapes", 0)["mrtd"] = fake("other").String()
			rehash(t, m, 0)
		}), "differs from mrtd variant"},
		{"unknown variant", edit(t, enc, func(m map[string]any) { obj(m, "shapes", 0)["rtmr2_variant"] = "prefix" }), `rtmr2_variant "prefix" is not in rtmr2`},
		{"unused variant", edit(t, enc, func(m map[string]any) {
			m["rtmr2"] = append(m["rtmr2"].([]any), map[string]any{"name": "zzz", "value": fake("z").String()})
		}), `rtmr2 variant "zzz" is used by no shape`},
		{"image hash", edit(t, enc, func(m map[string]any) { obj(m, "shapes", 2)["image_hash"] = sha("x") }), "image_hash " + sha("x") + " does not match"},
		{"rtmr0 changed", edit(t, enc, func(m map[string]any) { obj(m, "shapes", 2)["rtmr0"] = fake("x").String() }), "does not match its fields"},
		{"shape digest", edit(t, enc, func(m map[string]any) { obj(m, "shapes", 0)["digest"] = "sha256:" + sha("x") }), "does not match the embedded shape"},
		{"shape edited", edit(t, enc, func(m map[string]any) { obj(m, "shapes", 0, "shape")["vcpus"] = 64 }), "does not match the embedded shape"},
		{"shape renamed", edit(t, enc, func(m map[string]any) { obj(m, "shapes", 0)["name"] = "test-other" }), `embedded shape is named "test-small"`},
		{"duplicate shape", edit(t, enc, func(m map[string]any) {
			m["shapes"] = append(m["shapes"].([]any), m["shapes"].([]any)[0])
		}), "shape name repeats"},
		{"debug TD", edit(t, enc, func(m map[string]any) {
			obj(m, "shapes", 0, "td")["td_attributes"] = "0100001000000000"
			rehash(t, m, 0)
		}), "DEBUG (bit 0) set"},
		{"unknown attribute", edit(t, enc, func(m map[string]any) {
			obj(m, "shapes", 0, "td")["td_attributes"] = "0000001001000000"
			rehash(t, m, 0)
		}), "bits 0x100000000 the TDX module does not define"},
		{"xfam without sse", edit(t, enc, func(m map[string]any) {
			obj(m, "shapes", 0, "td")["xfam"] = "e502060000000000"
			rehash(t, m, 0)
		}), "lacks x87/SSE"},
		{"no shapes", edit(t, enc, func(m map[string]any) { m["shapes"] = []any{} }), "0 shapes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Parse: %v, want %q", err, tc.err)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	rel, inputs := testRelease()
	vals := testValues(testShapes())
	vals[1].MRTD.Value = fake("different")
	if _, err := New(rel, inputs, vals); err == nil || !strings.Contains(err.Error(), `mrtd variant "single-pass" has two values`) {
		t.Errorf("conflicting variant: %v", err)
	}
	vals = testValues(testShapes())
	vals[0].TD.TDAttributes = Bytes8Of(TDAttrDebug | TDAttrSEPTVEDisable)
	if _, err := New(rel, inputs, vals); err == nil || !strings.Contains(err.Error(), "DEBUG") {
		t.Errorf("debug: %v", err)
	}
	vals = testValues(testShapes())
	vals[0].Shape.VCPUs = 0
	if _, err := New(rel, inputs, vals); err == nil || !strings.Contains(err.Error(), "vcpus 0") {
		t.Errorf("invalid shape: %v", err)
	}
	if _, err := New(rel, inputs, nil); err == nil {
		t.Error("no shapes accepted")
	}
}

func TestTDDefaults(t *testing.T) {
	td := DefaultTDFields()
	if td.TDAttributes.String() != "0000001000000000" || td.XFAM.String() != "e702060000000000" || td.XFAM.Uint64() != 0x602e7 {
		t.Errorf("defaults %s %s", td.TDAttributes, td.XFAM)
	}
	for _, s := range testShapes() {
		got, err := TDFieldsFor(s)
		if err != nil || got != td {
			t.Errorf("%s: %+v, %v", s.Name, got, err)
		}
	}
	for _, name := range shape.Names() {
		s, _ := shape.Lookup(name)
		if _, err := TDFieldsFor(s); err != nil {
			t.Errorf("catalog shape %s: %v", name, err)
		}
	}
}

func TestKernelVariant(t *testing.T) {
	for mib, want := range map[int]string{1024: "patched-below4g-1024mib", 2048: "patched-below4g-2048mib", 2816: "patched-below4g-2048mib", 2814: "patched-below4g-2814mib", 102400: "patched-below4g-2048mib"} {
		s := testShapes()[0]
		s.MemoryMiB = mib
		if got := KernelVariant(s); got != want {
			t.Errorf("%d MiB: %s, want %s", mib, got, want)
		}
	}
	if got := KernelVariant(testShapes()[2]); got != "unpatched" {
		t.Errorf("qemu 10.2: %s", got)
	}
}

// TestSignVerifyTamper: the manifest-level checks on top of DSSE.
func TestSignVerifyTamper(t *testing.T) {
	k := testKey(t)
	pinned := []*dsse.PublicKey{k.Public()}
	m := testManifest(t)
	enc, _ := m.Encode()
	_, env, err := Sign(m, k)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := dsse.GenerateKey(nil)
	signRaw := func(typ string, payload []byte) []byte {
		e, err := dsse.Sign(typ, payload, k)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := e.Marshal()
		return b
	}
	var ind bytes.Buffer
	json.Indent(&ind, enc, "", " ")
	bad := edit(t, enc, func(m map[string]any) { obj(m, "shapes", 0)["rtmr0"] = fake("x").String() })
	badCanon, _ := canon.Canonicalize(bad)
	for _, tc := range []struct {
		name string
		env  []byte
		keys []*dsse.PublicKey
		err  string
	}{
		{"good", env, pinned, ""},
		{"wrong key", env, []*dsse.PublicKey{other.Public()}, "is not a pinned key"},
		{"wrong payload type", signRaw("application/json", enc), pinned, `payloadType is "application/json"`},
		{"non-canonical payload", signRaw(PayloadType, ind.Bytes()), pinned, "not canonical JSON"},
		{"invalid manifest", signRaw(PayloadType, badCanon), pinned, "does not match its fields"},
		{"trailing data", append(bytes.Clone(env), '\n', '{', '}'), pinned, "trailing data"},
		{"payload changed", []byte(strings.Replace(string(env), `"payload":"ey`, `"payload":"ez`, 1)), pinned, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Verify(tc.env, tc.keys)
			if tc.err == "" {
				if err != nil || s.Manifest == nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Verify: %v, want %q", err, tc.err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	enc, _ := testManifest(f).Encode()
	f.Add(enc)
	f.Add([]byte(`{"format_version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		out, err := m.Encode()
		if err != nil {
			t.Fatalf("a parsed manifest does not encode: %v", err)
		}
		c, _ := canon.Canonicalize(b)
		if !bytes.Equal(out, c) {
			t.Fatal("Encode differs from the canonical input")
		}
	})
}
