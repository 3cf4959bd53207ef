package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPayoutKeys(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "s")
	if err := os.WriteFile(secret, []byte(strings.Repeat("07", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The worker key of secret 07…07 (measure/payment TestDeriveKeys,
	// cross-checked with OpenSSL).
	code, out, errOut := cli("payout", "keys", "--secret", secret, "--json")
	if code != 0 || !strings.HasPrefix(out, `{"gas_wallet":"UQ`) || !strings.Contains(out, `"network":"mainnet","worker_key":"9b590e53fd2b58ad77fcb7bed83132edd66edf66ac8825b913af6708311cad98"}`) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli("payout", "keys", "--secret", secret, "--network", "testnet")
	if code != 0 || !strings.Contains(out, "gas wallet  0Q") {
		t.Errorf("testnet: exit %d\n%s", code, out)
	}
	fresh := filepath.Join(dir, "new")
	if code, out, errOut = cli("payout", "keys", "--secret", fresh, "--new"); code != 0 || !strings.Contains(out, "worker_key") {
		t.Fatalf("--new: exit %d %s%s", code, out, errOut)
	}
	if st, err := os.Stat(fresh); err != nil || st.Mode().Perm() != 0o600 || st.Size() != 65 {
		t.Errorf("new secret file %v %v", st, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--secret", fresh, "--new"}, "refusing to replace a payout secret"},
		{[]string{}, "--secret FILE is required"},
		{[]string{"--secret", filepath.Join(dir, "absent")}, "no such file"},
		{[]string{"--secret", secret, "--network", "devnet"}, `ton network "devnet"`},
		{[]string{"--secret", filepath.Join(dir, "bad")}, "want 64 lowercase hex characters"},
	} {
		os.WriteFile(filepath.Join(dir, "bad"), []byte("zz"), 0o600)
		code, out, errOut := cli(append([]string{"payout", "keys"}, tc.args...)...)
		if code == 0 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", tc.args, code, out, errOut, tc.want)
		}
	}
}
