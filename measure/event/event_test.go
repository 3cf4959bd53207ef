package event

import (
	"encoding/json"
	"strings"
	"testing"
)

func mustEvent(t testing.TB, name string, v any) Event {
	t.Helper()
	e, err := New(name, 1, v)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestDigestGolden pins the digest rule: changing it breaks every
// deployed verifier, so it must be a deliberate version bump.
func TestDigestGolden(t *testing.T) {
	e := mustEvent(t, NameConfig, map[string]string{"instance": "dev"})
	d, err := e.Digest()
	if err != nil {
		t.Fatal(err)
	}
	const want = "27bb3fcd2cdb50e3010b78d01b9ab16ca185ceef2e3e38aa32af87bb4028de82a5e2f7aa8ece32a341b61f4974b64ee6" // independently: python3 hashlib.sha384
	if d.String() != want {
		t.Fatalf("digest = %s, want %s", d, want)
	}
	var l Log
	l.Append(e)
	l.Append(mustEvent(t, NameReady, struct{}{}))
	mr, err := l.Replay()
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := l.Events[1].Event.Digest()
	if mr != Extend(Extend(Digest{}, d), d2) {
		t.Fatal("replay differs from manual extension")
	}
}

func TestReplayRejects(t *testing.T) {
	good := func() Log {
		var l Log
		l.Append(mustEvent(t, NameConfig, map[string]string{"instance": "dev"}))
		return l
	}
	for _, tc := range []struct {
		name string
		mut  func(*Log)
		err  string
	}{
		{"tampered payload", func(l *Log) { l.Events[0].Payload = json.RawMessage(`{"instance":"evil"}`) }, "does not match its content"},
		{"tampered digest", func(l *Log) { l.Events[0].Digest[0] ^= 1 }, "does not match its content"},
		{"non-canonical payload", func(l *Log) { l.Events[0].Payload = json.RawMessage(`{ "instance":"dev"}`) }, "not in canonical form"},
		{"bad name", func(l *Log) { l.Events[0].Name = "Bad Name" }, "must match"},
		{"version 0", func(l *Log) { l.Events[0].Version = 0 }, "must be >= 1"},
		{"log version", func(l *Log) { l.Version = 2 }, "not supported"},
	} {
		l := good()
		tc.mut(&l)
		if _, err := l.Replay(); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestParseRoundTrip(t *testing.T) {
	var l Log
	l.Append(mustEvent(t, NameConfig, map[string]any{"instance": "dev", "n": 3}))
	b, _ := json.Marshal(l)
	got, mr, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := l.Replay()
	if mr != want || len(got.Events) != 1 {
		t.Fatal("round trip changed the log")
	}
	if _, _, err := Parse(append(b, []byte(`{}`)...)); err == nil {
		t.Fatal("trailing data accepted")
	}
	if _, _, err := Parse([]byte(`{"version":1,"events":[],"extra":1}`)); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func FuzzParse(f *testing.F) {
	var l Log
	l.Append(mustEvent(f, NameConfig, map[string]string{"instance": "dev"}))
	b, _ := json.Marshal(l)
	f.Add(b)
	f.Add([]byte(`{"version":1,"events":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, mr, err := Parse(b)
		if err != nil {
			return
		}
		again, err := l.Replay()
		if err != nil || again != mr {
			t.Fatal("accepted log does not replay the same twice")
		}
	})
}
