package image

import (
	"reflect"
	"strings"
	"testing"
)

const testKver = "6.1.0-test"

// testModule is a generated module: name, file name and depends.
type testModule struct {
	file     string
	deps     []string
	vermagic string
}

func moduleFiles(t *testing.T, mods []testModule) []DebFile {
	t.Helper()
	var out []DebFile
	for _, m := range mods {
		vm := m.vermagic
		if vm == "" {
			vm = testKver + " SMP preempt mod_unload "
		}
		ko := makeModuleELF(t, ModuleName(m.file), vm, m.deps...)
		out = append(out, DebFile{
			Path: "usr/lib/modules/" + testKver + "/kernel/x/" + m.file,
			Mode: 0o644,
			Data: compress(t, "xz", ko),
		})
	}
	return out
}

func TestParseModinfo(t *testing.T) {
	ko := makeModuleELF(t, "dm_verity", "6.1 SMP", "dm-bufio", "dm_mod")
	info, err := ParseModinfo(ko)
	if err != nil {
		t.Fatal(err)
	}
	if got := info["depends"]; !reflect.DeepEqual(got, []string{"dm-bufio,dm_mod"}) {
		t.Errorf("depends = %q", got)
	}
	if got := info["name"]; !reflect.DeepEqual(got, []string{"dm_verity"}) {
		t.Errorf("name = %q", got)
	}
	if _, err := ParseModinfo([]byte("\x7fELF garbage")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"dm-mod.ko.xz":                   "dm_mod",
		"kernel/drivers/md/dm-mod.ko.xz": "dm_mod",
		"virtio-rng":                     "virtio_rng",
		"tsm_report.ko":                  "tsm_report",
		"x.ko.zst":                       "x",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

var testModules = []testModule{
	{file: "configfs.ko.xz"},
	{file: "tsm_report.ko.xz", deps: []string{"configfs"}},
	{file: "tdx-guest.ko.xz", deps: []string{"tsm_report"}},
	{file: "dm-mod.ko.xz"},
	{file: "dm-bufio.ko.xz", deps: []string{"dm_mod"}},
	{file: "reed_solomon.ko.xz"},
	{file: "dm-verity.ko.xz", deps: []string{"reed_solomon", "dm_mod", "dm-bufio"}},
	{file: "failover.ko.xz"},
	{file: "net_failover.ko.xz", deps: []string{"failover"}},
	{file: "virtio_net.ko.xz", deps: []string{"net_failover", "virtio_ring"}}, // virtio_ring is built in
	{file: "unused.ko.xz", deps: []string{"missing"}},
}

func TestResolveModules(t *testing.T) {
	builtin := map[string]bool{"virtio_ring": true, "virtio_console": true}
	for _, tc := range []struct {
		name        string
		mods        []testModule
		want        []string
		wantOrder   []string
		wantBuiltin []string
		wantErr     string
	}{
		{
			name:      "chain",
			mods:      testModules,
			want:      []string{"tdx-guest"},
			wantOrder: []string{"configfs.ko.xz", "tsm_report.ko.xz", "tdx-guest.ko.xz"},
		},
		{
			name:      "deps first, sorted, deduplicated, dashes normalised",
			mods:      testModules,
			want:      []string{"dm-verity", "dm_mod", "configfs", "tdx_guest"},
			wantOrder: []string{"dm-mod.ko.xz", "dm-bufio.ko.xz", "reed_solomon.ko.xz", "dm-verity.ko.xz", "configfs.ko.xz", "tsm_report.ko.xz", "tdx-guest.ko.xz"},
		},
		{
			name:        "builtin dependency and builtin request are skipped",
			mods:        testModules,
			want:        []string{"virtio_net", "virtio_console"},
			wantOrder:   []string{"failover.ko.xz", "net_failover.ko.xz", "virtio_net.ko.xz"},
			wantBuiltin: []string{"virtio_console"},
		},
		{
			name:    "missing module",
			mods:    testModules,
			want:    []string{"vsock"},
			wantErr: "kernel modules: module vsock is not in the kernel-modules package",
		},
		{
			name:    "missing dependency",
			mods:    testModules,
			want:    []string{"unused"},
			wantErr: "kernel modules: missing (needed by unused): module missing is not in the kernel-modules package",
		},
		{
			name:    "cycle",
			mods:    []testModule{{file: "a.ko.xz", deps: []string{"b"}}, {file: "b.ko.xz", deps: []string{"c"}}, {file: "c.ko.xz", deps: []string{"a"}}},
			want:    []string{"a"},
			wantErr: "dependency cycle a -> b -> c -> a",
		},
		{
			name:    "vermagic of another kernel",
			mods:    []testModule{{file: "a.ko.xz", vermagic: "5.10.0-other SMP"}},
			want:    []string{"a"},
			wantErr: `vermagic "5.10.0-other SMP" is not for kernel 6.1.0-test`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := NewModuleSet(testKver, moduleFiles(t, tc.mods), builtin)
			if err != nil {
				t.Fatal(err)
			}
			mods, bi, err := set.Resolve(tc.want)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr != "" {
				return
			}
			var order []string
			for _, m := range mods {
				order = append(order, m.File)
			}
			if !reflect.DeepEqual(order, tc.wantOrder) {
				t.Errorf("order = %v\nwant    %v", order, tc.wantOrder)
			}
			if !reflect.DeepEqual(bi, tc.wantBuiltin) {
				t.Errorf("builtin = %v, want %v", bi, tc.wantBuiltin)
			}
			if lo := string(LoadOrder(mods)); lo != strings.Join(tc.wantOrder, "\n")+"\n" {
				t.Errorf("load.order = %q", lo)
			}
			// Same input, same output.
			again, _, _ := set.Resolve(tc.want)
			if !reflect.DeepEqual(again, mods) {
				t.Error("Resolve is not deterministic")
			}
		})
	}
}

func TestModuleSetDuplicateNames(t *testing.T) {
	files := moduleFiles(t, []testModule{{file: "dm-mod.ko.xz"}})
	files = append(files, DebFile{Path: "usr/lib/modules/x/kernel/y/dm_mod.ko.xz"})
	if _, err := NewModuleSet(testKver, files, nil); err == nil || !strings.Contains(err.Error(), "are both module dm_mod") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseModulesBuiltin(t *testing.T) {
	got := ParseModulesBuiltin([]byte("kernel/drivers/virtio/virtio.ko\nkernel/drivers/char/virtio_console.ko\n\n"))
	want := map[string]bool{"virtio": true, "virtio_console": true}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
}

func TestCheckKernelConfig(t *testing.T) {
	cfg := []byte("#\n# comment\nCONFIG_INTEL_TDX_GUEST=y\nCONFIG_TSM_REPORTS=m\n# CONFIG_TSM_MEASUREMENTS is not set\nCONFIG_LOCALVERSION=\"\"\n")
	for _, tc := range []struct {
		name string
		want map[string]string
		err  string
	}{
		{"ok", map[string]string{"CONFIG_INTEL_TDX_GUEST": "y", "CONFIG_TSM_REPORTS": "m"}, ""},
		{"not set", map[string]string{"CONFIG_TSM_MEASUREMENTS": "y"}, "CONFIG_TSM_MEASUREMENTS=n (want y)"},
		{"missing", map[string]string{"CONFIG_NOPE": "y"}, "CONFIG_NOPE is missing (want CONFIG_NOPE=y)"},
		{"module not builtin", map[string]string{"CONFIG_TSM_REPORTS": "y", "CONFIG_INTEL_TDX_GUEST": "y"}, "kernel config check failed: CONFIG_TSM_REPORTS=m (want y)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckKernelConfig(cfg, tc.want)
			checkErr(t, err, tc.err)
			if tc.err == "" && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v", got)
			}
		})
	}
}
