package image

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeInputs are generated packages for Build tests that stop before (or
// fail inside) the initramfs step.
type fakeInputs struct {
	config   string
	builtin  string
	firmware []byte
	kernel   []byte
	modules  []testModule
}

func goodFakeInputs() fakeInputs {
	k := make([]byte, 0x400)
	copy(k, "MZ")
	copy(k[0x202:], "HdrS")
	fw := append(bytes.Repeat([]byte{0xff}, 100), tdxMetadataGUID...)
	return fakeInputs{
		config:   "CONFIG_INTEL_TDX_GUEST=y\nCONFIG_TSM_MEASUREMENTS=y\n",
		builtin:  "kernel/drivers/virtio/virtio.ko\n",
		firmware: fw,
		kernel:   k,
		modules:  []testModule{{file: "configfs.ko.xz"}, {file: "tsm_report.ko.xz", deps: []string{"configfs"}}},
	}
}

// serve builds the .debs, a lock for them and a mirror serving them.
func (f fakeInputs) serve(t *testing.T) (*Lock, string) {
	t.Helper()
	prefix := "./usr/lib/modules/" + testKver + "/"
	var modEntries []tarEntry
	for _, df := range moduleFiles(t, f.modules) {
		modEntries = append(modEntries, tarEntry{Name: "./" + df.Path, Body: string(df.Data)})
	}
	debs := map[Role][]byte{
		RoleKernel:        makeDeb(t, "xz", []tarEntry{{Name: prefix + "vmlinuz", Body: string(f.kernel)}}),
		RoleKernelModules: makeDeb(t, "xz", modEntries),
		RoleKernelConfig:  makeDeb(t, "xz", []tarEntry{{Name: prefix + "config", Body: f.config}, {Name: prefix + "modules.builtin", Body: f.builtin}}),
		RoleFirmware:      makeDeb(t, "zst", []tarEntry{{Name: "./usr/share/ovmf/OVMF.fd", Body: string(f.firmware)}}),
	}
	names := map[Role]string{RoleKernel: "linux-binary-test", RoleKernelModules: "linux-modules-test", RoleKernelConfig: "linux-base-test", RoleFirmware: "ovmf"}
	m := &mirror{files: map[string][]byte{}}
	l := &Lock{Format: LockFormat, Go: goVersion(t)}
	for _, r := range Roles {
		in := Input{Role: r, Package: names[r], Version: "1.0-1", Arch: "amd64", Suite: "test", Size: int64(len(debs[r])), SHA256: sha256Hex(debs[r])}
		in.Filename = "pool/main/x/" + debFilename(in.Package, in.Version, in.Arch)
		m.files[in.Filename] = debs[r]
		l.Inputs = append(l.Inputs, in)
	}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return l, srv.URL + "/debian"
}

func goVersion(t *testing.T) string {
	t.Helper()
	env, err := goEnvIn(context.Background(), ".")
	if err != nil {
		t.Skip(err)
	}
	return env.Version
}

func TestBuildRejectsBadInputs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(f *fakeInputs)
		recipe func(r *Recipe)
		want   string
	}{
		// Go's own messages (compiler, module resolution) may span lines;
		// the "initramfs" case only checks the prefix.
		{"kernel config lacks TSM_MEASUREMENTS", func(f *fakeInputs) {
			f.config = "CONFIG_INTEL_TDX_GUEST=y\n# CONFIG_TSM_MEASUREMENTS is not set\n"
		}, nil, "kernel 6.1.0-test (linux-base-test): kernel config check failed: CONFIG_TSM_MEASUREMENTS=n (want y)"},
		{"kernel config lacks INTEL_TDX_GUEST", func(f *fakeInputs) {
			f.config = "CONFIG_TSM_MEASUREMENTS=y\n"
		}, nil, "CONFIG_INTEL_TDX_GUEST is missing (want CONFIG_INTEL_TDX_GUEST=y)"},
		{"firmware without TDX metadata", func(f *fakeInputs) {
			f.firmware = []byte("plain OVMF")
		}, nil, "ovmf: usr/share/ovmf/OVMF.fd has no TDX metadata"},
		{"kernel is not a bzImage", func(f *fakeInputs) {
			f.kernel = []byte("ELF")
		}, nil, "linux-binary-test: usr/lib/modules/6.1.0-test/vmlinuz: not a PE/bzImage"},
		{"module missing", nil, func(r *Recipe) { r.Modules = []string{"tdx-guest"} }, "linux-modules-test: kernel modules: module tdx_guest is not in the kernel-modules package"},
		{"module for another kernel", func(f *fakeInputs) {
			f.modules[0].vermagic = "6.2.0-other SMP"
		}, nil, `vermagic "6.2.0-other SMP" is not for kernel 6.1.0-test`},
		{"initramfs build fails late", nil, func(r *Recipe) {
			r.AgentPackage = ModulePath + "/image/testdata/no-such-command"
		}, "initramfs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := goodFakeInputs()
			if tc.edit != nil {
				tc.edit(&f)
			}
			lock, mirrorURL := f.serve(t)
			recipe := DefaultRecipe()
			recipe.KernelConfig = map[string]string{"CONFIG_INTEL_TDX_GUEST": "y", "CONFIG_TSM_MEASUREMENTS": "y"}
			recipe.Modules = []string{"tsm_report"}
			if tc.recipe != nil {
				tc.recipe(&recipe)
			}
			parent := t.TempDir()
			_, err := Build(context.Background(), Options{
				Out: filepath.Join(parent, "release"), Lock: lock, Mirror: mirrorURL,
				CacheDir: t.TempDir(), Recipe: &recipe, SourceCommit: "test",
			})
			if tc.want == "initramfs" {
				if err == nil || !strings.HasPrefix(err.Error(), "initramfs: ") {
					t.Fatalf("err = %v", err)
				}
			} else {
				checkErr(t, err, tc.want)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("failed build left %v", ents)
			}
		})
	}
}

func TestBuildNeedsMirrorOnlyOnMiss(t *testing.T) {
	f := goodFakeInputs()
	lock, _ := f.serve(t)
	t.Setenv(MirrorEnv, "")
	_, err := Build(context.Background(), Options{
		Out: filepath.Join(t.TempDir(), "release"), Lock: lock, AptRoot: filepath.Join("testdata", "apt", "none"),
		CacheDir: t.TempDir(), SourceCommit: "test",
	})
	checkErr(t, err, "linux-binary-test is not in the download cache")
	if !strings.Contains(err.Error(), "pass --mirror http://deb.debian.org/debian") {
		t.Errorf("error does not say how to fix it: %v", err)
	}
}

func TestGoEnvCheckReproducible(t *testing.T) {
	for _, tc := range []struct {
		env  goEnv
		want string
	}{
		{goEnv{GOAMD64: "v1", GOFLAGS: "-buildvcs=false -modcacherw"}, ""},
		{goEnv{GOAMD64: "v3"}, "GOAMD64=v3"},
		{goEnv{GOEXPERIMENT: "jsonv2"}, "GOEXPERIMENT=jsonv2"},
		{goEnv{GOFLAGS: "-race"}, "GOFLAGS contains -race"},
		{goEnv{GOFLAGS: "-mod=mod"}, "GOFLAGS contains -mod=mod"},
		{goEnv{GOFLAGS: "-mod=readonly"}, ""},
		{goEnv{GOFLAGS: "-ldflags=-X=main.x=1"}, "GOFLAGS contains -ldflags"},
	} {
		checkErr(t, tc.env.checkReproducible(), tc.want)
	}
}
