package image

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/u-root/mkuimage/cpio"
)

func TestNormalizeRecord(t *testing.T) {
	base := map[string]cpio.Info{}
	for _, r := range []cpio.Record{cpio.Directory("tmp", 0o777), cpio.CharDev("dev/console", 0o600, 5, 1)} {
		base[r.Name] = cpio.MakeReproducible(r).Info
	}
	for _, tc := range []struct {
		in   cpio.Record
		mode uint64
	}{
		{cpio.Directory("tmp", 0o777), cpio.S_IFDIR | 0o777}, // u-root constant: unchanged
		{cpio.Directory("bin", 0o700), cpio.S_IFDIR | 0o755}, // umask 077 build dir
		{cpio.Directory("x", 0o2775), cpio.S_IFDIR | 0o755},  // setgid dropped
		{cpio.StaticFile("bin/agent", "", 0o700), cpio.S_IFREG | 0o755},
		{cpio.StaticFile("lib/modules/a.ko.xz", "", 0o600), cpio.S_IFREG | 0o644},
		{cpio.StaticFile("f", "", 0o4755), cpio.S_IFREG | 0o755}, // setuid dropped
		{cpio.CharDev("dev/console", 0o600, 5, 1), cpio.S_IFCHR | 0o600},
		{cpio.Symlink("bin/uinit", "agent"), cpio.S_IFLNK | 0o777},
	} {
		got := normalizeRecord(tc.in, base)
		if got.Mode != tc.mode {
			t.Errorf("%s: mode %#o, want %#o", tc.in.Name, got.Mode, tc.mode)
		}
	}
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestBuildRealRelease builds the release from the real Debian mirror
// (through the shared download cache, $CHRYSALIS_TEST_CACHE or the default
// one) twice, into different directories, the second time with another
// umask and time zone, and checks the contents and that both are
// byte-identical.
func TestBuildRealRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("full release build (downloads ~43 MB once, compiles u-root init and the agent)")
	}
	cache := os.Getenv("CHRYSALIS_TEST_CACHE")
	if cache == "" {
		var err error
		if cache, err = DefaultCacheDir(); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	dirA := filepath.Join(t.TempDir(), "a", "release")
	relA, err := Build(ctx, Options{Out: dirA, CacheDir: cache, Log: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}

	// Kernel config was checked and recorded.
	for k, v := range map[string]string{"CONFIG_INTEL_TDX_GUEST": "y", "CONFIG_TSM_MEASUREMENTS": "y"} {
		if relA.KernelConfig[k] != v {
			t.Errorf("kernel_config[%s] = %q, want %q", k, relA.KernelConfig[k], v)
		}
	}
	if relA.KernelVersion == "" || relA.GoVersion == "" || relA.URootVersion == "" || relA.MkuimageVersion == "" {
		t.Errorf("release metadata incomplete: %+v", relA)
	}
	cmdline, _ := os.ReadFile(filepath.Join(dirA, FileCmdline))
	if string(cmdline) != Cmdline {
		t.Errorf("cmdline = %q", cmdline)
	}

	// Initramfs contents.
	initrd, err := os.ReadFile(filepath.Join(dirA, FileInitrd))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(initrd)))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]cpio.Record{}
	for _, r := range recs {
		byName[r.Name] = r
		if r.MTime != 0 || r.UID != 0 || r.GID != 0 {
			t.Errorf("%s: mtime %d uid %d gid %d", r.Name, r.MTime, r.UID, r.GID)
		}
	}
	content := func(name string) string {
		r, ok := byName[name]
		if !ok {
			t.Errorf("initramfs has no %s", name)
			return ""
		}
		b, err := io.ReadAll(io.NewSectionReader(r, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	symlink := func(name, target string) {
		if r, ok := byName[name]; !ok || r.Mode&cpio.S_IFMT != cpio.S_IFLNK {
			t.Errorf("%s is not a symlink", name)
		} else if got := content(name); got != target {
			t.Errorf("%s -> %s, want %s", name, got, target)
		}
	}
	symlink("init", "bbin/init")
	symlink("bbin/init", "bb")
	symlink("bin/uinit", "agent")
	if r, ok := byName[InitramfsAgent]; !ok || r.Mode != cpio.S_IFREG|0o755 || r.FileSize == 0 {
		t.Errorf("%s: %+v", InitramfsAgent, r.Info)
	}
	for _, none := range []string{"bin/sh", "bin/defaultsh", "etc/uinit.flags"} {
		if _, ok := byName[none]; ok {
			t.Errorf("initramfs has %s (the production image has no shell)", none)
		}
	}
	lo := content(InitramfsLoadOrder)
	if lo != strings.Join(relA.Modules, "\n")+"\n" {
		t.Errorf("load.order = %q, release.json modules = %v", lo, relA.Modules)
	}
	for _, want := range []string{"configfs.ko.xz", "tsm_report.ko.xz", "tdx-guest.ko.xz", "dm-verity.ko.xz", "dm-bufio.ko.xz", "failover.ko.xz", "vmw_vsock_virtio_transport_common.ko.xz"} {
		if !strings.Contains(lo, want+"\n") {
			t.Errorf("load.order lacks %s", want)
		}
	}
	for _, m := range relA.Modules {
		r, ok := byName[InitramfsModuleDir+"/"+m]
		if !ok || r.Mode != cpio.S_IFREG|0o644 || !strings.HasPrefix(content(InitramfsModuleDir+"/"+m), "\xfd7zXZ\x00") {
			t.Errorf("module %s missing or not xz (mode %#o)", m, r.Mode)
		}
	}
	if strings.Index(lo, "configfs.ko.xz") > strings.Index(lo, "tsm_report.ko.xz") {
		t.Error("configfs is not loaded before tsm_report")
	}

	// Same release again from another directory, umask and time zone.
	old := setUmask(0o077)
	t.Setenv("TZ", "Pacific/Kiritimati")
	dirB := filepath.Join(t.TempDir(), "elsewhere", "b")
	relB, err := Build(ctx, Options{Out: dirB, CacheDir: cache})
	setUmask(old)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range append(ReleaseFiles, FileSHA256SUMS) {
		a, _ := os.ReadFile(filepath.Join(dirA, n))
		b, _ := os.ReadFile(filepath.Join(dirB, n))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the two builds", n)
		}
	}
	if relB.Stats.Downloads != 0 {
		t.Errorf("second build downloaded %d packages", relB.Stats.Downloads)
	}
	loaded, err := LoadRelease(dirB)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Sums[FileInitrd] != relA.Sums[FileInitrd] {
		t.Error("LoadRelease disagrees with Build about the initrd")
	}
	t.Logf("initrd %d bytes sha256 %s; vmlinuz sha256 %s", len(initrd), relA.Sums[FileInitrd], relA.Sums[FileKernel])
}

func TestBuildRefusesOtherGoVersion(t *testing.T) {
	l, err := ReadLock("inputs.lock")
	if err != nil {
		t.Fatal(err)
	}
	l.Go = "go1.20.1"
	_, err = Build(context.Background(), Options{Out: filepath.Join(t.TempDir(), "r"), Lock: l, CacheDir: t.TempDir()})
	checkErr(t, err, "but inputs.lock pins go1.20.1")
}
