package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type entry struct {
	N    int    `json:"n"`
	Note string `json:"note,omitempty"`
}

func fill(t *testing.T, path string, n int) {
	t.Helper()
	j, _, _, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if _, err := j.Append("entry", entry{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func ns(t *testing.T, recs []Record) []int {
	t.Helper()
	var out []int
	for _, r := range recs {
		var e entry
		if err := json.Unmarshal(r.Data, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e.N)
	}
	return out
}

func TestAppendReopen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ledger")
	fill(t, p, 3)
	j, recs, torn, err := Open(p)
	if err != nil || torn != 0 {
		t.Fatalf("Open = %v, torn %d", err, torn)
	}
	if got := ns(t, recs); len(got) != 3 || got[2] != 3 || recs[2].Seq != 3 {
		t.Fatalf("records %v", got)
	}
	if r, err := j.Append("entry", entry{N: 4}); err != nil || r.Seq != 4 || r.Prev != recs[2].Chain {
		t.Fatalf("Append = %+v, %v", r, err)
	}
	j.Close()
	if _, recs, _, err = Open(p); err != nil || len(recs) != 4 {
		t.Fatalf("reopen: %d records, %v", len(recs), err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

// TestTornTail cuts the file at every byte of its last record, as a crash
// mid-write would: the earlier records survive and the journal goes on.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ledger")
	fill(t, p, 3)
	full, _ := os.ReadFile(p)
	lastStart := bytes.LastIndexByte(full[:len(full)-1], '\n') + 1
	for cut := lastStart + 1; cut < len(full); cut++ {
		q := filepath.Join(dir, "cut")
		os.WriteFile(q, full[:cut], 0o600)
		j, recs, torn, err := Open(q)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if len(recs) != 2 || torn != cut-lastStart {
			t.Fatalf("cut at %d: %d records, torn %d", cut, len(recs), torn)
		}
		if _, err := j.Append("entry", entry{N: 3, Note: "again"}); err != nil {
			t.Fatal(err)
		}
		j.Close()
		if _, recs, torn, err := Open(q); err != nil || torn != 0 || len(recs) != 3 {
			t.Fatalf("cut at %d, after re-append: %d records, torn %d, %v", cut, len(recs), torn, err)
		}
	}
	// Zeros after the last newline (a filesystem that extended the file
	// but never wrote the data) are a torn tail too.
	os.WriteFile(p, append(append([]byte(nil), full...), make([]byte, 100)...), 0o600)
	if _, recs, torn, err := Open(p); err != nil || len(recs) != 3 || torn != 100 {
		t.Fatalf("zero tail: %d records, torn %d, %v", len(recs), torn, err)
	}
}

func TestDamageRefused(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ledger")
	fill(t, p, 4)
	full, _ := os.ReadFile(p)
	lines := strings.SplitAfter(string(full), "\n")
	for _, tc := range []struct {
		name, content, err string
	}{
		{"garbage in the middle", lines[0] + "{oops\n" + lines[2] + lines[3], "line 2"},
		{"record removed", lines[0] + lines[2] + lines[3], "does not continue"},
		{"records swapped", lines[0] + lines[2] + lines[1] + lines[3], "does not continue"},
		{"data altered", lines[0] + strings.Replace(lines[1], `"n":2`, `"n":9`, 1) + lines[2] + lines[3], "chain hash mismatch"},
		{"unknown field", lines[0] + strings.Replace(lines[1], `{"seq"`, `{"x":1,"seq"`, 1) + lines[2], "line 2"},
		{"bad kind", lines[0] + strings.Replace(lines[1], `"kind":"entry"`, `"kind":"Entry"`, 1) + lines[2], "bad record header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := filepath.Join(dir, "damaged")
			os.WriteFile(q, []byte(tc.content), 0o600)
			if _, _, _, err := Open(q); err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), q) {
				t.Fatalf("Open = %v, want %q naming the file", err, tc.err)
			}
		})
	}
}

func TestCompact(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ledger")
	fill(t, p, 5)
	j, recs, _, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	j.SetHook(func(s string) {
		// The snapshot is written beside the journal, not over it.
		old, _, _ := ReadFile(p)
		m, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".ledger.tmp-*"))
		steps = append(steps, fmt.Sprintf("%s %d %d", s, len(old), len(m)))
	})
	snap, err := j.Compact("snapshot", entry{N: 15, Note: "sum"})
	if want := "[journal-compact-written 5 1 journal-compact-renamed 1 0]"; fmt.Sprint(steps) != want {
		t.Fatalf("compaction steps (step, records, temporary files) %v, want %s", steps, want)
	}
	if err != nil || snap.Seq != 6 || snap.Prev != recs[4].Chain {
		t.Fatalf("Compact = %+v, %v", snap, err)
	}
	if _, err := j.Append("entry", entry{N: 6}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	_, recs, _, err = Open(p)
	if err != nil || len(recs) != 2 || recs[0].Kind != "snapshot" || recs[1].Seq != 7 {
		t.Fatalf("after compaction: %+v, %v", recs, err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".ledger.tmp-*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}

func TestAppendErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ledger")
	j, _, _, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append("Bad Kind", entry{}); err == nil {
		t.Fatal("bad kind accepted")
	}
	if _, err := j.Append("entry", strings.Repeat("x", MaxRecord)); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversize record: %v", err)
	}
	j.Close()
	if _, err := j.Append("entry", entry{}); err == nil {
		t.Fatal("append after close accepted")
	}
	if _, _, _, err := Open(filepath.Join(p, "sub")); err == nil {
		t.Fatal("open under a file succeeded")
	}
}

func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "seed")
	j, _, _, _ := Open(p)
	j.Append("entry", entry{N: 1})
	j.Append("other", map[string]string{"a": "b"})
	j.Close()
	seed, _ := os.ReadFile(p)
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		q := filepath.Join(t.TempDir(), "j")
		if err := os.WriteFile(q, b, 0o600); err != nil {
			t.Fatal(err)
		}
		j, recs, _, err := Open(q)
		if err != nil {
			return
		}
		// What opened once opens again to the same records, and appends.
		if _, err := j.Append("entry", entry{N: 1}); err != nil {
			t.Fatal(err)
		}
		j.Close()
		_, again, torn, err := Open(q)
		if err != nil || torn != 0 || len(again) != len(recs)+1 {
			t.Fatalf("reopen: %d records (want %d), torn %d, %v", len(again), len(recs)+1, torn, err)
		}
	})
}
