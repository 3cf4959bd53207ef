package rtmr

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/event"
)

func TestTDXSysfsWritesDigest(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rtmr3:sha384")
	os.WriteFile(p, make([]byte, 48), 0o644)
	r := TDX{Path: p}
	var d event.Digest
	d[0] = 7
	if err := r.Extend(d); err != nil {
		t.Fatal(err)
	}
	got, err := r.Read()
	// A regular file stands in for the attribute: it must hold exactly
	// the 48 digest bytes that were written.
	if err != nil || got != d {
		t.Fatalf("attribute holds %s, %v; want the written digest", got, err)
	}
	os.WriteFile(p, []byte("short"), 0o644)
	if _, err := r.Read(); err == nil {
		t.Fatal("short register accepted")
	}
	if err := (TDX{Path: filepath.Join(t.TempDir(), "absent")}).Extend(d); err == nil {
		t.Fatal("extend of absent attribute succeeded")
	}
}

func TestRecorderMatchesReplay(t *testing.T) {
	rec := NewRecorder(&Software{})
	for _, n := range []string{event.NameConfig, event.NameReady} {
		e, _ := event.New(n, 1, map[string]int{"n": len(n)})
		if _, err := rec.Record(e); err != nil {
			t.Fatal(err)
		}
	}
	l, v, src, err := rec.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	mr, err := l.Replay()
	if err != nil || mr != v || src != "software" {
		t.Fatalf("replay %s, register %s, source %s, %v", mr, v, src, err)
	}
}

func TestRecorderRefusesDirtyRegister(t *testing.T) {
	s := &Software{}
	s.Extend(event.Digest{1})
	rec := NewRecorder(s)
	e, _ := event.New(event.NameConfig, 1, struct{}{})
	if _, err := rec.Record(e); err != ErrNotFresh {
		t.Fatalf("err = %v, want ErrNotFresh", err)
	}
}
