package shape

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuiltinShapes(t *testing.T) {
	names := Names()
	for _, want := range []string{"dev-small", "h100-1g-32c-100g"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("built-in shape %q missing from %v", want, names)
		}
	}
	digests := map[string]string{}
	for _, n := range names {
		s, err := Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		d, err := s.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if other, dup := digests[d]; dup {
			t.Errorf("%s and %s share digest %s", n, other, d)
		}
		digests[d] = n
	}
}

func TestDevSmall(t *testing.T) {
	s, err := Lookup("dev-small")
	if err != nil {
		t.Fatal(err)
	}
	if s.VCPUs != 1 || s.MemoryMiB != 1024 || s.GPUs != 0 || s.NICs != 1 || len(s.Disks) != 1 || s.Disks[0].Kind != DiskConfig {
		t.Errorf("dev-small = %+v", s)
	}
	h, err := Lookup("h100-1g-32c-100g")
	if err != nil {
		t.Fatal(err)
	}
	want := []DiskKind{DiskConfig, DiskModel, DiskModelVerity, DiskPersistent}
	if h.VCPUs != 32 || h.MemoryMiB != 100*1024 || h.GPUs != 1 || len(h.Disks) != len(want) {
		t.Fatalf("h100-1g-32c-100g = %+v", h)
	}
	for i, k := range want {
		if h.Disks[i].Kind != k {
			t.Errorf("disks[%d] = %q, want %q", i, h.Disks[i].Kind, k)
		}
	}
	if h.QEMU.Name != "qemu-10.1" || h.QEMU.MRTDPageOrder != MRTDSinglePass || h.OVMF.EventLayout != OVMFLayoutPre202505 {
		t.Errorf("profiles = %+v %+v", h.QEMU, h.OVMF)
	}
}

func TestLookupReturnsCopy(t *testing.T) {
	a, _ := Lookup("h100-1g-32c-100g")
	a.Disks[0].Kind = DiskPersistent
	a.VCPUs = 1
	b, _ := Lookup("h100-1g-32c-100g")
	if b.Disks[0].Kind != DiskConfig || b.VCPUs != 32 {
		t.Fatal("Lookup exposed the catalog's shape to mutation")
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("nope")
	if err == nil || !strings.Contains(err.Error(), `unknown shape "nope"`) || !strings.Contains(err.Error(), "dev-small") {
		t.Fatalf("err = %v", err)
	}
}

func TestSerials(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range DiskKinds {
		s := k.Serial()
		if s == "" || len(s) > MaxSerialLen || seen[s] {
			t.Errorf("%s: serial %q empty, too long or repeated", k, s)
		}
		seen[s] = true
	}
	if DiskConfig.Serial() != "chrysalis-config" || !DiskConfig.ReadOnly() || DiskPersistent.ReadOnly() {
		t.Error("config/persistent serial or read-only flag wrong")
	}
}

func TestDigestStable(t *testing.T) {
	s, _ := Lookup("dev-small")
	c, err := s.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"disks":[{"kind":"config"}],"gpus":0,"memory_mib":1024,"name":"dev-small","nics":1,` +
		`"ovmf":{"event_layout":"pre-202505","initrd_option":"suffix","name":"edk2-2025.02"},` +
		`"qemu":{"iommufd":true,"memory_backend":"memory-backend-ram","mrtd_page_order":"single-pass","name":"qemu-10.1","patches_kernel_header":true,"qemu_version":"10.1"},` +
		`"vcpus":1}`
	if string(c) != want {
		t.Errorf("canonical =\n%s\nwant\n%s", c, want)
	}
	d1, _ := s.Digest()
	s2 := s.Clone()
	s2.QEMU.PatchesKernelHeader = false
	d2, _ := s2.Digest()
	if d1 == d2 || !strings.HasPrefix(d1, DigestPrefix) || len(d1) != len(DigestPrefix)+64 {
		t.Errorf("digests %s %s", d1, d2)
	}
}

func TestValidate(t *testing.T) {
	base := func() *VMShape { s, _ := Lookup("h100-1g-32c-100g"); return s }
	tests := []struct {
		name string
		mut  func(*VMShape)
		want string
	}{
		{"ok", func(*VMShape) {}, ""},
		{"name", func(s *VMShape) { s.Name = "Bad Name" }, "name"},
		{"vcpus0", func(s *VMShape) { s.VCPUs = 0 }, "vcpus 0"},
		{"vcpusbig", func(s *VMShape) { s.VCPUs = 513 }, "vcpus 513"},
		{"memsmall", func(s *VMShape) { s.MemoryMiB = 128 }, "memory_mib 128"},
		{"memodd", func(s *VMShape) { s.MemoryMiB = 1025 }, "memory_mib 1025 must be a multiple"},
		{"gpus", func(s *VMShape) { s.GPUs = 9 }, "gpus 9"},
		{"gpusneg", func(s *VMShape) { s.GPUs = -1 }, "gpus -1"},
		{"nics0", func(s *VMShape) { s.NICs = 0 }, "nics 0"},
		{"nodisks", func(s *VMShape) { s.Disks = nil }, "disks has 0 slots"},
		{"configfirst", func(s *VMShape) { s.Disks[0], s.Disks[3] = s.Disks[3], s.Disks[0] }, "disks[0].kind"},
		{"unknownkind", func(s *VMShape) { s.Disks[3].Kind = "swap" }, `disks[3].kind "swap"`},
		{"dupkind", func(s *VMShape) { s.Disks[3].Kind = DiskConfig }, `disks[3].kind "config" repeats disks[0]`},
		{"veritynomodel", func(s *VMShape) { s.Disks = []DiskSlot{{DiskConfig}, {DiskModelVerity}} }, "must directly follow"},
		{"modelnoverity", func(s *VMShape) { s.Disks = []DiskSlot{{DiskConfig}, {DiskModel}} }, "without a"},
		{"mrtd", func(s *VMShape) { s.QEMU.MRTDPageOrder = "abab" }, "mrtd_page_order"},
		{"qver", func(s *VMShape) { s.QEMU.QEMUVersion = "ten" }, "qemu_version"},
		{"membackend", func(s *VMShape) { s.QEMU.MemoryBackend = "memfd" }, "memory_backend"},
		{"layout", func(s *VMShape) { s.OVMF.EventLayout = "x" }, "event_layout"},
		{"initrd", func(s *VMShape) { s.OVMF.InitrdOption = "x" }, "initrd_option"},
		{"ovmfname", func(s *VMShape) { s.OVMF.Name = "" }, "ovmf profile: name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base()
			tt.mut(s)
			err := s.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if _, err := s.Digest(); err == nil {
				t.Fatal("Digest of an invalid shape succeeded")
			}
		})
	}
}

const userFile = `{
  "version": 1,
  "qemu_profiles": [{"name": "my-qemu", "qemu_version": "9.2", "mrtd_page_order": "single-pass",
    "patches_kernel_header": true, "memory_backend": "none", "iommufd": false}],
  "shapes": [
    {"name": "mine", "vcpus": 2, "memory_mib": 2048, "gpus": 0, "nics": 1, "disks": [{"kind": "config"}],
     "qemu_profile": "my-qemu", "ovmf_profile": "edk2-2025.02"},
    {"name": "mine2", "vcpus": 2, "memory_mib": 2048, "gpus": 0, "nics": 1, "disks": [{"kind": "config"}],
     "qemu_profile": "qemu-10.1", "ovmf_profile": "edk2-2025.05+"}
  ]
}`

func TestLoadUserFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "shapes.json")
	if err := os.WriteFile(p, []byte(userFile), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Names(); len(got) != 2 || got[0] != "mine" {
		t.Fatalf("names %v", got)
	}
	s, err := c.Lookup("mine")
	if err != nil {
		t.Fatal(err)
	}
	if s.QEMU.Name != "my-qemu" || s.QEMU.MemoryBackend != MemoryBackendNone {
		t.Errorf("qemu profile %+v", s.QEMU)
	}
	s2, _ := c.Lookup("mine2")
	if s2.QEMU.Name != "qemu-10.1" || s2.OVMF.EventLayout != OVMFLayout202505 {
		t.Errorf("built-in profile not resolved: %+v", s2)
	}
	if _, err := c.Lookup("dev-small"); err == nil {
		t.Error("user catalog should hold only its own shapes")
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file err = %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	good := func() map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(userFile), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	shape0 := func(m map[string]any) map[string]any { return m["shapes"].([]any)[0].(map[string]any) }
	tests := []struct {
		name string
		mut  func(m map[string]any)
		raw  string
		want string
	}{
		{name: "version", mut: func(m map[string]any) { m["version"] = 2 }, want: "version 2 is not supported"},
		{name: "noversion", mut: func(m map[string]any) { delete(m, "version") }, want: `missing field "version"`},
		{name: "unknowntop", mut: func(m map[string]any) { m["extra"] = 1 }, want: `unknown field "extra"`},
		{name: "unknownshape", mut: func(m map[string]any) { shape0(m)["color"] = "red" }, want: `unknown field "color"`},
		{name: "missinggpus", mut: func(m map[string]any) { delete(shape0(m), "gpus") }, want: `shapes[0] ("mine"): missing field "gpus"`},
		{name: "nullnics", mut: func(m map[string]any) { shape0(m)["nics"] = nil }, want: `missing field "nics"`},
		{name: "missingprofilefield", mut: func(m map[string]any) {
			delete(m["qemu_profiles"].([]any)[0].(map[string]any), "iommufd")
		}, want: `qemu_profiles[0] ("my-qemu"): missing field "iommufd"`},
		{name: "danglingqemu", mut: func(m map[string]any) { shape0(m)["qemu_profile"] = "qemu-1.0" }, want: `qemu_profile "qemu-1.0" is not defined`},
		{name: "danglingovmf", mut: func(m map[string]any) { shape0(m)["ovmf_profile"] = "x" }, want: `ovmf_profile "x" is not defined`},
		{name: "dupshape", mut: func(m map[string]any) { m["shapes"].([]any)[1].(map[string]any)["name"] = "mine" }, want: `shapes[1]: name "mine" is defined twice`},
		{name: "builtinshape", mut: func(m map[string]any) { shape0(m)["name"] = "dev-small" }, want: "is a built-in shape"},
		{name: "builtinprofile", mut: func(m map[string]any) {
			m["qemu_profiles"].([]any)[0].(map[string]any)["name"] = "qemu-10.1"
		}, want: "is a built-in profile"},
		{name: "invalidshape", mut: func(m map[string]any) { shape0(m)["vcpus"] = 0 }, want: `shapes[0]: shape "mine": vcpus 0`},
		{name: "fraction", mut: func(m map[string]any) { shape0(m)["vcpus"] = 1.5 }, want: "not an integer"},
		{name: "noshapes", mut: func(m map[string]any) { m["shapes"] = []any{} }, want: `"shapes" is empty`},
		{name: "dupkey", raw: `{"version":1,"version":1,"shapes":[]}`, want: "duplicate object key"},
		{name: "trailing", raw: userFile + "{}", want: "trailing data"},
		{name: "notjson", raw: `version: 1`, want: "invalid character"},
		{name: "array", raw: `[]`, want: "cannot unmarshal"},
		{name: "badutf8", raw: "{\"version\":1,\"x\":\"\xff\"}", want: "invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.raw)
			if tt.mut != nil {
				m := good()
				tt.mut(m)
				var err error
				if b, err = json.Marshal(m); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Parse(b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	big := make([]byte, MaxFileSize+1)
	if _, err := Parse(big); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversize err = %v", err)
	}
}

func TestBuiltinProfiles(t *testing.T) {
	if _, ok := Builtin().QEMUProfile("qemu-8.2-ubuntu"); !ok {
		t.Error("qemu-8.2-ubuntu profile missing")
	}
	if p, ok := Builtin().OVMFProfile("edk2-2025.05+"); !ok || p.EventLayout != OVMFLayout202505 {
		t.Error("edk2-2025.05+ profile missing")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(builtinJSON)
	f.Add([]byte(userFile))
	f.Add([]byte(`{"version":1,"shapes":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		for _, n := range c.Names() {
			s, err := c.Lookup(n)
			if err != nil {
				t.Fatalf("listed shape %q not found: %v", n, err)
			}
			if err := s.Validate(); err != nil {
				t.Fatalf("parsed shape %q is invalid: %v", n, err)
			}
			if _, err := s.Digest(); err != nil {
				t.Fatalf("digest of %q: %v", n, err)
			}
		}
	})
}
