package canon

import (
	"strings"
	"testing"
)

func TestCanonicalize(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: `{"b":1,"a":[true,false,null],"c":{"z":"x","y":""}}`, want: `{"a":[true,false,null],"b":1,"c":{"y":"","z":"x"}}`},
		{in: " { \"a\" : 10 } ", want: `{"a":10}`},
		{in: `"<&>"`, want: `"<&>"`},
		{in: `"\u00e9\n\u0001"`, want: "\"\u00e9\\n\\u0001\""},
		{in: `-0`, want: `0`},
		{in: `123456789012345678901234567890`, want: `123456789012345678901234567890`},
		{in: `{"a":1,"a":2}`, err: "duplicate object key"},
		{in: `1.5`, err: "not an integer"},
		{in: `1e3`, err: "not an integer"},
		{in: `{} {}`, err: "trailing data"},
		{in: "\"\xff\"", err: "invalid UTF-8"},
		{in: strings.Repeat("[", 100) + strings.Repeat("]", 100), err: "nesting deeper"},
		{in: `{"a":}`, err: "invalid character"},
	} {
		got, err := Canonicalize([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestMarshalStructOrderIndependent(t *testing.T) {
	type a struct {
		Z int    `json:"z"`
		A string `json:"a"`
	}
	got, err := Marshal(a{Z: 1, A: "x"})
	if err != nil || string(got) != `{"a":"x","z":1}` {
		t.Fatalf("got %s, %v", got, err)
	}
}

func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}]}`, `"x"`, `[]`, `{"a":1,"a":1}`, `1.0`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Canonicalize(b)
		if err != nil {
			return
		}
		// Canonical form is a fixed point.
		c2, err := Canonicalize(c)
		if err != nil || string(c2) != string(c) {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", b, c, c2, err)
		}
	})
}
