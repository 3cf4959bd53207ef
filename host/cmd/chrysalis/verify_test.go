package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/registry"
)

func TestVerifyTDXPolicyFlags(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "manifest.json")
	writeTestManifest(t, m)
	key := filepath.Join(dir, "key")
	other := filepath.Join(dir, "other")
	for _, k := range []string{key, other} {
		if code, _, errs := cli("manifest", "keygen", "--out", k); code != 0 {
			t.Fatal(errs)
		}
	}
	signed := filepath.Join(dir, "m.dsse.json")
	if code, _, errs := cli("manifest", "sign", "--key", key, "--in", m, "--out", signed); code != 0 {
		t.Fatal(errs)
	}
	ep := "https://127.0.0.1:1"
	state := "testdata/publish/registry-state.boc"
	emptyState := "../../../measure/registry/testdata/data-empty.boc"
	regAddr := tagAddr("registry").String()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{ep, "--policy", "tdx"}, "at least one --manifest"},
		{[]string{ep, "--policy", "tdx", "--registry-state", state}, "--registry-state with --registry"},
		{[]string{ep, "--policy", "tdx", "--manifest", signed}, "at least one --manifest with one --pub"},
		{[]string{ep, "--policy", "tdx", "--registry-state", state, "--registry", "nope", "--collateral", dir}, `--registry "nope" is not a TON address`},
		{[]string{ep, "--policy", "tdx", "--registry-state", m, "--registry", regAddr, "--collateral", dir}, "--registry-state " + m},
		{[]string{ep, "--policy", "tdx", "--registry-state", emptyState, "--registry", regAddr, "--collateral", dir}, "the image allowlist is empty"},
		// A registry state alone, and next to a manifest, is an allowlist.
		{[]string{ep, "--policy", "tdx", "--registry-state", state, "--registry", regAddr, "--collateral", dir}, "connection refused"},
		{[]string{ep, "--policy", "tdx", "--registry-state", state, "--registry", regAddr, "--manifest", signed, "--pub", key + ".pub", "--collateral", dir}, "connection refused"},
		{[]string{ep, "--policy", "tdx", "--manifest", signed, "--pub", key + ".pub"}, "needs collateral"},
		{[]string{ep, "--policy", "tdx", "--manifest", signed, "--pub", key + ".pub", "--collateral", dir, "--pccs", "https://pccs"}, "not both"},
		{[]string{ep, "--policy", "tdx", "--manifest", signed, "--pub", other + ".pub", "--collateral", dir}, "--manifest " + signed},
		{[]string{ep, "--policy", "tdx", "--manifest", m, "--pub", key + ".pub", "--collateral", dir}, "--manifest " + m},
		// A valid policy gets as far as connecting.
		{[]string{ep, "--policy", "tdx", "--manifest", signed, "--pub", key + ".pub", "--collateral", dir}, "connection refused"},
		{[]string{ep, "--policy", "nope"}, "unknown policy"},
	} {
		code, _, errs := cli(append([]string{"verify"}, tc.args...)...)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("verify %v: %d %q, want %q", tc.args, code, errs, tc.want)
		}
	}
}

// TestDecodeRegistryState: the account data as a BOC, its hex and its
// base64 (either alphabet, padded or not, with whitespace) decode to the
// same state; anything else is refused.
func TestDecodeRegistryState(t *testing.T) {
	boc, err := os.ReadFile("testdata/publish/registry-state.boc")
	if err != nil {
		t.Fatal(err)
	}
	want, err := registry.ParseDataBOC(boc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		in         []byte
	}{
		{name: "boc", in: boc},
		{name: "hex", in: []byte(hex.EncodeToString(boc) + "\n")},
		{name: "HEX", in: []byte(strings.ToUpper(hex.EncodeToString(boc)))},
		{name: "base64", in: []byte(base64.StdEncoding.EncodeToString(boc))},
		{name: "base64url", in: []byte(" " + base64.RawURLEncoding.EncodeToString(boc) + "\r\n")},
		{name: "empty", in: []byte(" \n"), want: "empty file"},
		{name: "bad hex", in: []byte("b5ee9c72zz"), want: "neither a BOC"},
		{name: "not a boc", in: []byte(base64.StdEncoding.EncodeToString([]byte("hello"))), want: "not a BOC"},
		{name: "truncated boc", in: boc[:len(boc)-3], want: "registry data BOC"},
		{name: "other cell", in: registry.AddImage(1, [32]byte{}).ToBOC(), want: "registry data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := decodeRegistryState(tc.in)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.Seqno != want.Seqno || len(st.Images) != len(want.Images) || !bytes.Equal(st.ImageHashes()[0][:], want.ImageHashes()[0][:]) {
				t.Fatalf("decoded %+v, want %+v", st, want)
			}
		})
	}
}

// FuzzDecodeRegistryState: any file either decodes to a state or is an
// error, never a panic. Seeded from testdata/publish/registry-state.boc in
// each accepted encoding.
func FuzzDecodeRegistryState(f *testing.F) {
	boc, err := os.ReadFile("testdata/publish/registry-state.boc")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(boc)
	f.Add([]byte(hex.EncodeToString(boc)))
	f.Add([]byte(base64.StdEncoding.EncodeToString(boc)))
	f.Add([]byte(base64.RawURLEncoding.EncodeToString(boc)))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeRegistryState(b)
		if err == nil && (st == nil || st.Governance == nil) {
			t.Fatal("nil state without an error")
		}
	})
}
