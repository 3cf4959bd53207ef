package image

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var sampleEntries = []tarEntry{
	{Name: "./", Type: tar.TypeDir, Mode: 0o755},
	{Name: "./usr/", Type: tar.TypeDir, Mode: 0o755},
	{Name: "./usr/lib/modules/6.1.0-test/vmlinuz", Body: "KERNEL"},
	{Name: "./usr/lib/modules/6.1.0-test/config", Body: "CONFIG_X=y\n"},
	{Name: "./usr/lib/modules/6.1.0-test/kernel/fs/a.ko.xz", Body: "A"},
	{Name: "./usr/lib/modules/6.1.0-test/kernel/drivers/md/dm-b.ko.xz", Body: "B"},
	{Name: "./usr/bin/tool", Body: "#!/bin/sh\n", Mode: 0o755},
	{Name: "./usr/share/link", Type: tar.TypeSymlink, Linkname: "../../etc/passwd"},
}

func TestExtractDebCompressions(t *testing.T) {
	for _, comp := range []string{"xz", "zst", "gz", ""} {
		t.Run("data.tar."+comp, func(t *testing.T) {
			deb := makeDeb(t, comp, sampleEntries)
			files, err := ExtractDeb("pkg", deb, "usr/lib/modules/*/vmlinuz", "usr/lib/modules/*/config")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, f := range files {
				got[f.Path] = string(f.Data)
			}
			want := map[string]string{
				"usr/lib/modules/6.1.0-test/vmlinuz": "KERNEL",
				"usr/lib/modules/6.1.0-test/config":  "CONFIG_X=y\n",
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

func TestExtractDebErrors(t *testing.T) {
	good := makeDeb(t, "xz", sampleEntries)
	for _, tc := range []struct {
		name     string
		deb      []byte
		patterns []string
		want     string
	}{
		{"missing exact path", good, []string{"usr/share/ovmf/OVMF.fd"}, "pkg: package has no file usr/share/ovmf/OVMF.fd"},
		{"glob without match is fine", good, []string{"nothing/*"}, ""},
		{"symlink", good, []string{"usr/share/link"}, "usr/share/link is not a regular file"},
		{"bad pattern", good, []string{"usr/[a"}, "bad pattern"},
		{"traversal", makeDeb(t, "gz", []tarEntry{{Name: "./../../etc/cron.d/x", Body: "evil"}}), []string{"*"}, "escapes the package root"},
		{"absolute", makeDeb(t, "gz", []tarEntry{{Name: "/etc/passwd", Body: "evil"}}), []string{"*"}, "absolute path"},
		{"not ar", []byte("PK\x03\x04 zip"), []string{"x"}, "pkg: ar: bad magic"},
		{"no debian-binary first", makeAr(arFile{"data.tar.gz", compress(t, "gz", makeTar(t, nil))}), []string{"x"}, "first member is not debian-binary"},
		{"format 3", makeAr(arFile{"debian-binary", []byte("3.0\n")}, arFile{"control.tar.gz", nil}, arFile{"data.tar", nil}), []string{"x"}, "unsupported .deb format version"},
		{"no data", makeAr(arFile{"debian-binary", []byte("2.0\n")}, arFile{"control.tar.gz", nil}, arFile{"other", nil}), []string{"x"}, "no data.tar member"},
		{"lzma data", makeAr(arFile{"debian-binary", []byte("2.0\n")}, arFile{"control.tar.gz", nil}, arFile{"data.tar.lzma", nil}), []string{"x"}, `unsupported data member "data.tar.lzma"`},
		{"corrupt xz", makeAr(arFile{"debian-binary", []byte("2.0\n")}, arFile{"control.tar.gz", nil}, arFile{"data.tar.xz", []byte("not xz at all")}), []string{"x"}, "data.tar.xz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ExtractDeb("pkg", tc.deb, tc.patterns...)
			checkErr(t, err, tc.want)
		})
	}
}

func TestExtractDebFunc(t *testing.T) {
	deb := makeDeb(t, "zst", sampleEntries)
	files, err := ExtractDebFunc("pkg", deb, func(n string) bool { return strings.HasSuffix(n, ".ko.xz") })
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Path)
	}
	want := []string{"usr/lib/modules/6.1.0-test/kernel/fs/a.ko.xz", "usr/lib/modules/6.1.0-test/kernel/drivers/md/dm-b.ko.xz"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("got %v, want %v", names, want)
	}
}

func TestExtractDebToDir(t *testing.T) {
	old := setUmask(0o077)
	defer setUmask(old)
	dir := t.TempDir()
	deb := makeDeb(t, "xz", sampleEntries)
	paths, err := ExtractDebToDir("pkg", deb, dir, "usr/bin/tool", "usr/lib/modules/*/vmlinuz")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 {
		t.Fatalf("paths = %v", paths)
	}
	for p, mode := range map[string]os.FileMode{"usr/bin/tool": 0o755, "usr/lib/modules/6.1.0-test/vmlinuz": 0o644} {
		st, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), mode)
		}
	}
	// Extracting again does not overwrite (O_EXCL), it fails.
	if _, err := ExtractDebToDir("pkg", deb, dir, "usr/bin/tool"); err == nil {
		t.Error("second extraction over existing files succeeded")
	}
}

// TestExtractDpkgDebBuilt checks the reader against .debs made by the
// real dpkg-deb, when it is installed.
func TestExtractDpkgDebBuilt(t *testing.T) {
	dpkgDeb, err := exec.LookPath("dpkg-deb")
	if err != nil {
		t.Skip("dpkg-deb not installed")
	}
	for _, comp := range []string{"xz", "gzip", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			root := t.TempDir()
			must(t, os.MkdirAll(filepath.Join(root, "pkg", "DEBIAN"), 0o755))
			must(t, os.MkdirAll(filepath.Join(root, "pkg", "usr", "share", "ovmf"), 0o755))
			must(t, os.WriteFile(filepath.Join(root, "pkg", "DEBIAN", "control"), []byte("Package: tiny\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: tiny\n"), 0o644))
			must(t, os.WriteFile(filepath.Join(root, "pkg", "usr", "share", "ovmf", "OVMF.fd"), bytes.Repeat([]byte{0xaa}, 5000), 0o644))
			out := filepath.Join(root, "tiny.deb")
			cmd := exec.Command(dpkgDeb, "--root-owner-group", "-Z"+comp, "--build", filepath.Join(root, "pkg"), out)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Skipf("dpkg-deb -Z%s: %v: %s", comp, err, b)
			}
			deb, err := os.ReadFile(out)
			must(t, err)
			files, err := ExtractDeb("tiny", deb, firmwarePath)
			must(t, err)
			if len(files) != 1 || len(files[0].Data) != 5000 || files[0].Data[4999] != 0xaa {
				t.Fatalf("got %d files", len(files))
			}
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseAr(t *testing.T) {
	good := makeAr(arFile{"debian-binary", []byte("2.0\n")}, arFile{"odd", []byte("abc")}, arFile{"data.tar.xz", []byte("xyz!")})
	ms, err := ParseAr(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[1].Name != "odd" || ms[1].Size != 3 || string(good[ms[2].Offset:ms[2].Offset+ms[2].Size]) != "xyz!" {
		t.Fatalf("members = %+v", ms)
	}
	gnu := []byte(strings.Replace(string(good), "debian-binary   ", "debian-binary/  ", 1))
	if ms, err := ParseAr(bytes.NewReader(gnu), int64(len(gnu))); err != nil || ms[0].Name != "debian-binary" {
		t.Fatalf("GNU names: %v %v", ms, err)
	}

	header := func(name, size string) string {
		h := []byte(strings.Repeat(" ", 60))
		copy(h, name)
		copy(h[48:], size)
		h[58], h[59] = '`', '\n'
		return string(h)
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty", "", "too short"},
		{"bad magic", "!<arch>X", "bad magic"},
		{"only magic", arMagic, ""},
		{"truncated header", arMagic + "debian-binary", "truncated header"},
		{"bad terminator", arMagic + strings.Repeat(" ", 60), "bad header terminator"},
		{"size not a number", arMagic + header("x", "12ab"), `bad size field "12ab"`},
		{"negative size", arMagic + header("x", "-1"), "bad size field"},
		{"size past end", arMagic + header("x", "100") + "short", "runs past the end"},
		{"huge size", arMagic + header("x", "9999999999") + "short", "runs past the end"},
		{"symbol table", arMagic + header("/", "0"), "extended name"},
		{"bsd long name", arMagic + header("#1/20", "0"), "extended name"},
		{"empty name", arMagic + header("", "0"), "bad member name"},
		{"duplicate", arMagic + header("a", "0") + header("a", "0"), `member "a" appears twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAr(strings.NewReader(tc.data), int64(len(tc.data)))
			checkErr(t, err, tc.want)
		})
	}
}

func TestCleanTarName(t *testing.T) {
	for in, want := range map[string]string{
		"./usr/lib/x":  "usr/lib/x",
		"usr//lib/./x": "usr/lib/x",
		"./":           ".",
		"../x":         "",
		"./a/../../x":  "",
		"/abs":         "",
		"a/..":         "",
	} {
		got, err := cleanTarName(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("cleanTarName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
