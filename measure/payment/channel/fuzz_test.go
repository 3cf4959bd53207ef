package channel

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func seed(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
}

// Each target: no panic on any input, and whatever parses re-encodes to
// something that parses to the same value.

func FuzzParseSignedSemiChannelBOC(f *testing.F) {
	seed(f, "signed_state.boc", "commit.boc")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSignedSemiChannelBOC(b)
		if err != nil {
			return
		}
		out, err := s.BOC()
		if err != nil {
			t.Fatalf("parsed state does not re-encode: %v", err)
		}
		s2, err := ParseSignedSemiChannelBOC(out)
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("re-encoded state: %v", err)
		}
	})
}

func FuzzParseCommitBOC(f *testing.F) {
	seed(f, "commit.boc", "signed_state.boc")
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommitBOC(b)
		if err != nil {
			return
		}
		body, err := c.Body()
		if err != nil {
			t.Fatalf("parsed commit does not re-encode: %v", err)
		}
		c2, err := ParseCommitBody(body)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-encoded commit: %v", err)
		}
	})
}

func FuzzParseStorageBOC(f *testing.F) {
	seed(f, "storage.boc")
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStorageBOC(b)
		if err != nil {
			return
		}
		c, err := st.Cell()
		if err != nil {
			t.Fatalf("parsed storage does not re-encode: %v", err)
		}
		st2, err := ParseStorage(c)
		if err != nil || !reflect.DeepEqual(st, st2) {
			t.Fatalf("re-encoded storage: %v", err)
		}
		_ = st.State(0)
		_, _ = st.Config().Address()
	})
}

func FuzzParseNotification(f *testing.F) {
	seed(f, "notification.boc")
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeBOC("notification", b)
		if err != nil {
			return
		}
		_, _ = ParseNotification(c)
	})
}
