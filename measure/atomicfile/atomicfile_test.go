package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return n
}

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, c := range []string{"one", "two"} {
		if err := WriteFile(p, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		if string(b) != c {
			t.Fatalf("content %q, want %q", b, c)
		}
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	if n := entries(t, dir); len(n) != 1 {
		t.Fatalf("left behind: %v", n)
	}
}

func TestWriteNewRefusesExisting(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := WriteNew(p, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(p, []byte("b"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "a" {
		t.Fatalf("existing file changed to %q", b)
	}
	if n := entries(t, dir); len(n) != 1 {
		t.Fatalf("left behind: %v", n)
	}
}

func TestFailedFillLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("old"), 0o644)
	boom := errors.New("boom")
	if err := Create(p, 0o644, false, func(f *os.File) error { f.Write([]byte("half")); return boom }); err != boom {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("destination changed to %q", b)
	}
	if n := entries(t, dir); len(n) != 1 {
		t.Fatalf("left behind: %v", n)
	}
}
