package image

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fakeRelease fills stage like Build does, with small stand-in files.
func fakeRelease(marker string) func(stage string) error {
	return func(stage string) error {
		for name, body := range map[string]string{
			FileKernel:   "MZ kernel " + marker,
			FileFirmware: "firmware " + marker,
			FileInitrd:   "070701 initrd " + marker,
			FileCmdline:  Cmdline,
		} {
			if err := writeFileMode(filepath.Join(stage, name), []byte(body), 0o600); err != nil {
				return err
			}
		}
		rel := &Release{
			Format: ReleaseFormat, SourceCommit: "unknown", GoVersion: "go1.26.8",
			KernelVersion: "6.1.0-test", Cmdline: Cmdline, Modules: []string{"a.ko.xz"},
			KernelConfig: map[string]string{"CONFIG_INTEL_TDX_GUEST": "y"},
		}
		return Seal(stage, rel)
	}
}

// dirNames lists dir's entries.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteReleaseDir(t *testing.T) {
	old := setUmask(0o077)
	defer setUmask(old)
	parent := t.TempDir()
	dest := filepath.Join(parent, "release")
	must(t, writeReleaseDir(dest, fakeRelease("one")))
	if got := dirNames(t, parent); len(got) != 1 || got[0] != "release" {
		t.Fatalf("parent holds %v", got)
	}
	st, _ := os.Stat(dest)
	if st.Mode().Perm() != 0o755 {
		t.Errorf("release dir mode %v", st.Mode().Perm())
	}
	for _, n := range append(ReleaseFiles, FileSHA256SUMS) {
		st, err := os.Stat(filepath.Join(dest, n))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644 whatever the umask", n, st.Mode().Perm())
		}
	}
	rel, err := LoadRelease(dest)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Cmdline != Cmdline || len(rel.Files) != 4 || rel.Sums[FileReleaseJSON] == "" {
		t.Fatalf("loaded %+v", rel)
	}
	sums, _ := os.ReadFile(filepath.Join(dest, FileSHA256SUMS))
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		names = append(names, l[66:])
	}
	if strings.Join(names, " ") != "OVMF.fd cmdline initrd release.json vmlinuz" {
		t.Errorf("SHA256SUMS order: %v", names)
	}

	// Replace: the new release takes the place of the old one.
	must(t, writeReleaseDir(dest, fakeRelease("two")))
	k, _ := os.ReadFile(filepath.Join(dest, FileKernel))
	if string(k) != "MZ kernel two" {
		t.Errorf("kernel after replace = %q", k)
	}
	if got := dirNames(t, parent); len(got) != 1 {
		t.Fatalf("parent holds %v after replace", got)
	}
	if _, err := LoadRelease(dest); err != nil {
		t.Fatal(err)
	}
}

func TestWriteReleaseDirFailureLeavesNothing(t *testing.T) {
	boom := errors.New("injected failure")
	for _, tc := range []struct {
		name string
		fill func(stage string) error
		hook func(stage string) error
	}{
		{"fill fails midway", func(stage string) error {
			must(t, os.WriteFile(filepath.Join(stage, FileKernel), []byte("partial"), 0o644))
			return boom
		}, nil},
		{"fails just before the rename", fakeRelease("x"), func(string) error { return boom }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			beforeCommitHook = tc.hook
			defer func() { beforeCommitHook = nil }()

			// No previous release: nothing may appear.
			parent := t.TempDir()
			dest := filepath.Join(parent, "release")
			if err := writeReleaseDir(dest, tc.fill); !errors.Is(err, boom) {
				t.Fatalf("err = %v", err)
			}
			if got := dirNames(t, parent); len(got) != 0 {
				t.Fatalf("left behind: %v", got)
			}

			// A previous release stays as it was.
			beforeCommitHook = nil
			must(t, writeReleaseDir(dest, fakeRelease("old")))
			beforeCommitHook = tc.hook
			if err := writeReleaseDir(dest, tc.fill); !errors.Is(err, boom) {
				t.Fatalf("err = %v", err)
			}
			if got := dirNames(t, parent); len(got) != 1 || got[0] != "release" {
				t.Fatalf("parent holds %v", got)
			}
			k, _ := os.ReadFile(filepath.Join(dest, FileKernel))
			if string(k) != "MZ kernel old" {
				t.Errorf("old release changed: %q", k)
			}
			if _, err := LoadRelease(dest); err != nil {
				t.Errorf("old release no longer loads: %v", err)
			}
		})
	}
}

func TestWriteReleaseDirRefusesNonRelease(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "home")
	must(t, os.MkdirAll(filepath.Join(dest, "docs"), 0o755))
	must(t, os.WriteFile(filepath.Join(dest, "notes.txt"), []byte("keep me"), 0o644))
	err := writeReleaseDir(dest, fakeRelease("x"))
	checkErr(t, err, "is not a release (no release.json); remove it or choose another --out")
	if b, _ := os.ReadFile(filepath.Join(dest, "notes.txt")); string(b) != "keep me" {
		t.Fatal("existing directory was touched")
	}
	file := filepath.Join(parent, "file")
	must(t, os.WriteFile(file, nil, 0o644))
	checkErr(t, writeReleaseDir(file, fakeRelease("x")), "exists and is not a directory")
	if got := dirNames(t, parent); len(got) != 2 {
		t.Fatalf("parent holds %v", got)
	}
	// An empty directory may be used.
	empty := filepath.Join(parent, "empty")
	must(t, os.Mkdir(empty, 0o755))
	must(t, writeReleaseDir(empty, fakeRelease("x")))
}

var errNoExchange = syscall.ENOSYS

func TestCommitDirFallback(t *testing.T) {
	// The rename-aside path, used where RENAME_EXCHANGE is missing.
	parent := t.TempDir()
	dest := filepath.Join(parent, "release")
	must(t, writeReleaseDir(dest, fakeRelease("old")))
	stage := filepath.Join(parent, ".release.staging-test")
	must(t, os.Mkdir(stage, 0o755))
	must(t, fakeRelease("new")(stage))
	renameExchange = func(string, string) error { return errNoExchange }
	defer func() { renameExchange = defaultRenameExchange }()
	must(t, commitDir(stage, dest))
	k, _ := os.ReadFile(filepath.Join(dest, FileKernel))
	if string(k) != "MZ kernel new" {
		t.Errorf("kernel = %q", k)
	}
	if got := dirNames(t, parent); len(got) != 1 {
		t.Fatalf("parent holds %v", got)
	}
}

func TestLoadReleaseTamper(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(dir string)
		want   string
	}{
		{"initrd modified", func(d string) { appendFile(t, filepath.Join(d, FileInitrd), "x") }, "initrd does not match SHA256SUMS"},
		{"kernel replaced", func(d string) { os.WriteFile(filepath.Join(d, FileKernel), []byte("other"), 0o644) }, "vmlinuz does not match SHA256SUMS"},
		{"release.json modified", func(d string) { appendFile(t, filepath.Join(d, FileReleaseJSON), " ") }, "release.json does not match SHA256SUMS"},
		{"file missing", func(d string) { os.Remove(filepath.Join(d, FileFirmware)) }, "OVMF.fd: no such file"},
		{"sums missing a line", func(d string) {
			p := filepath.Join(d, FileSHA256SUMS)
			b, _ := os.ReadFile(p)
			lines := strings.SplitAfter(string(b), "\n")
			os.WriteFile(p, []byte(strings.Join(lines[1:], "")), 0o644)
		}, "SHA256SUMS does not list OVMF.fd"},
		{"sums extra line", func(d string) {
			appendFile(t, filepath.Join(d, FileSHA256SUMS), strings.Repeat("0", 64)+"  extra\n")
		}, `SHA256SUMS lists unexpected file "extra"`},
		{"sums garbage", func(d string) { os.WriteFile(filepath.Join(d, FileSHA256SUMS), []byte("hello\n"), 0o644) }, "SHA256SUMS line 1"},
		{"cmdline and json disagree (sums recomputed)", func(d string) {
			os.WriteFile(filepath.Join(d, FileCmdline), []byte("init=/bin/sh"), 0o644)
			rewriteSums(t, d)
		}, "release.json disagrees with SHA256SUMS about cmdline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "release")
			must(t, writeReleaseDir(dest, fakeRelease("x")))
			tc.tamper(dest)
			_, err := LoadRelease(dest)
			checkErr(t, err, tc.want)
		})
	}
}

func appendFile(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	f.WriteString(s)
	must(t, f.Close())
}

// rewriteSums recomputes SHA256SUMS from the files, as an attacker would.
func rewriteSums(t *testing.T, dir string) {
	sums := map[string]string{}
	for _, n := range ReleaseFiles {
		s, _, _, err := hashFile(filepath.Join(dir, n), false)
		must(t, err)
		sums[n] = s
	}
	must(t, os.WriteFile(filepath.Join(dir, FileSHA256SUMS), formatSHA256SUMS(sums), 0o644))
}

func TestReleaseJSONDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	must(t, fakeRelease("same")(a))
	must(t, fakeRelease("same")(b))
	for _, n := range []string{FileReleaseJSON, FileSHA256SUMS} {
		x, _ := os.ReadFile(filepath.Join(a, n))
		y, _ := os.ReadFile(filepath.Join(b, n))
		if string(x) != string(y) {
			t.Errorf("%s differs between two runs", n)
		}
		if strings.Contains(string(x), a) || strings.Contains(string(x), os.Getenv("USER")+"/") {
			t.Errorf("%s mentions a host path", n)
		}
	}
}

func TestIgnoredPath(t *testing.T) {
	for _, tc := range []struct {
		p      string
		ignore []string
		want   bool
	}{
		{"release/initrd", []string{"release"}, true},
		{"release", []string{"release"}, true},
		{".release.staging-123/x", []string{"release"}, true},
		{"out/.rel.old-1/", []string{"out/rel"}, true},
		{"releases/x", []string{"release"}, false},
		{"image/build.go", []string{"release"}, false},
	} {
		if got := ignoredPath(tc.p, tc.ignore); got != tc.want {
			t.Errorf("ignoredPath(%q, %q) = %v", tc.p, tc.ignore, got)
		}
	}
}
