package image

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeRelease writes files (name → content) into a fresh directory.
func writeFakeRelease(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCompareReleases(t *testing.T) {
	relA, err := os.ReadFile(filepath.Join("testdata", "compare", "a.json"))
	if err != nil {
		t.Fatal(err)
	}
	relB, err := os.ReadFile(filepath.Join("testdata", "compare", "b.json"))
	if err != nil {
		t.Fatal(err)
	}
	base := map[string]string{
		FileFirmware: "firmware", FileCmdline: "console=ttyS0", FileInitrd: "0123456789abcdefghijklmnopqrstuvwxyz",
		FileReleaseJSON: string(relA), FileKernel: "kernel", FileSHA256SUMS: "sums\n",
	}
	with := func(changes map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range changes {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	tests := []struct {
		name   string
		b      map[string]string
		differ map[string]string // file → "offset start ctxA ctxB" or "missing"
	}{
		{"identical", base, nil},
		{"one byte of initrd", with(map[string]string{FileInitrd: "0123456789abcdefghiJklmnopqrstuvwxyz"}),
			map[string]string{FileInitrd: "19 11 62636465666768696a6b6c6d6e6f7071 62636465666768694a6b6c6d6e6f7071"}},
		{"truncated kernel", with(map[string]string{FileKernel: "kern"}),
			map[string]string{FileKernel: "4 0 6b65726e656c 6b65726e"}},
		{"missing cmdline", with(map[string]string{FileCmdline: ""}), map[string]string{FileCmdline: "missing"}},
		{"extra file", with(map[string]string{"notes.txt": "x"}), map[string]string{"notes.txt": "missing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := writeFakeRelease(t, base)
			b := writeFakeRelease(t, tc.b)
			cs, err := CompareReleases(a, b)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, c := range cs {
				seen[c.Name] = true
				want, differs := tc.differ[c.Name]
				if c.Same == differs {
					t.Errorf("%s: same=%v, want %v (%+v)", c.Name, c.Same, !differs, c)
					continue
				}
				if !differs {
					if c.Offset != -1 || c.A.SHA256 != c.B.SHA256 || !c.A.Present {
						t.Errorf("%s: identical but %+v", c.Name, c)
					}
					continue
				}
				got := "missing"
				if c.A.Present && c.B.Present {
					got = fmt.Sprintf("%d %d %s %s", c.Offset, c.ContextStart, c.ContextA, c.ContextB)
				}
				if got != want {
					t.Errorf("%s: got %q, want %q", c.Name, got, want)
				}
			}
			for _, n := range append(append([]string(nil), ReleaseFiles...), FileSHA256SUMS) {
				if !seen[n] {
					t.Errorf("%s not compared", n)
				}
			}
		})
	}

	t.Run("release.json fields", func(t *testing.T) {
		a := writeFakeRelease(t, base)
		b := writeFakeRelease(t, with(map[string]string{FileReleaseJSON: string(relB)}))
		cs, err := CompareReleases(a, b)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		for _, c := range cs {
			if c.Name != FileReleaseJSON {
				continue
			}
			if c.Same || c.Offset < 0 {
				t.Fatalf("release.json: %+v", c)
			}
			for _, f := range c.Fields {
				fmt.Fprintf(&got, "%s: %s -> %s\n", f.Path, f.A, f.B)
			}
		}
		want, err := os.ReadFile(filepath.Join("testdata", "compare", "diffs.golden"))
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != string(want) {
			t.Errorf("field diffs:\n%s\nwant:\n%s", got.String(), want)
		}
	})

	t.Run("unreadable directory", func(t *testing.T) {
		a := writeFakeRelease(t, base)
		missing := filepath.Join(t.TempDir(), "nope")
		if _, err := CompareReleases(a, missing); err == nil || !strings.Contains(err.Error(), "nope") {
			t.Errorf("missing dir: %v", err)
		}
		b := writeFakeRelease(t, base)
		if err := os.Mkdir(filepath.Join(b, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := CompareReleases(a, b); err == nil || !strings.Contains(err.Error(), "sub is not a regular file") {
			t.Errorf("subdirectory: %v", err)
		}
	})
}

func TestJSONFieldDiffs(t *testing.T) {
	tests := []struct{ a, b, want string }{
		{`{"x":1}`, `{"x":1}`, ""},
		{`{"x":1}`, `{"x":2}`, "x: 1 -> 2\n"},
		{`{"x":{"y":[1,2]}}`, `{"x":{"y":[1,3,4]}}`, "x.y[1]: 2 -> 3\nx.y[2]:  -> 4\n"},
		{`{"x":"s"}`, `{"x":{"s":1}}`, "x: \"s\" -> {\"s\":1}\n"},
		{`[1]`, `{"x":1}`, "$: [1] -> {\"x\":1}\n"},
		{`{`, `{}`, "$: invalid JSON (1 bytes, sha256 021fb596db81e6d02bf3d2586ee3981fe519f275c0ac9ca76bbcf2ebb4097d96): unexpected end of JSON input -> {}\n"},
	}
	for _, tc := range tests {
		var got strings.Builder
		for _, d := range JSONFieldDiffs([]byte(tc.a), []byte(tc.b)) {
			fmt.Fprintf(&got, "%s: %s -> %s\n", d.Path, d.A, d.B)
		}
		if got.String() != tc.want {
			t.Errorf("%s vs %s:\n%s\nwant\n%s", tc.a, tc.b, got.String(), tc.want)
		}
	}
}

func FuzzJSONFieldDiffs(f *testing.F) {
	for _, n := range []string{"a.json", "b.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "compare", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte(`{"format_version":1}`))
	}
	f.Add([]byte(`[1,[2,{"a":null}]]`), []byte(`{`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ds := JSONFieldDiffs(a, b)
		if bytes.Equal(a, b) && len(ds) != 0 {
			t.Fatalf("identical documents differ: %+v", ds)
		}
		for _, d := range ds {
			if d.Path == "" || d.A == d.B {
				t.Fatalf("bad diff %+v", d)
			}
		}
	})
}
