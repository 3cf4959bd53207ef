package main

import (
	"path/filepath"
	"strings"
	"testing"
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
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{ep, "--policy", "tdx"}, "at least one --manifest"},
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
