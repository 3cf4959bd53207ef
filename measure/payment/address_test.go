package payment

import (
	"strings"
	"testing"

	"github.com/xssnick/tonutils-go/address"
)

// The TON Foundation's well-known address, as TON's documentation shows it.
const (
	foundationEQ  = "EQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqB2N"
	foundationRaw = "0:83dfd552e63729b472fcbcc8c45ebcc6691702558b68ec7527e1ba403a0f31a8"
)

func TestParseOwnerAddress(t *testing.T) {
	mainUQ := OwnerAddress{Hash: mustHash(t, foundationRaw), Network: Mainnet}.String()
	testUQ := OwnerAddress{Hash: mustHash(t, foundationRaw), Network: Testnet}.String()
	for _, tc := range []struct {
		name, in string
		net      Network
		raw      string
		err      string
	}{
		{"bounceable mainnet", foundationEQ, Mainnet, foundationRaw, ""},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(foundationEQ), Mainnet, foundationRaw, ""},
		{"normalised form", mainUQ, Mainnet, foundationRaw, ""},
		{"raw", foundationRaw, Mainnet, foundationRaw, ""},
		{"raw masterchain", "-1:" + foundationRaw[2:], Testnet, "-1:" + foundationRaw[2:], ""},
		{"testnet on testnet", testUQ, Testnet, foundationRaw, ""},
		{"testnet on mainnet", testUQ, Mainnet, "", "is a testnet address"},
		{"mainnet on testnet", foundationEQ, Testnet, "", "is a mainnet address"},
		{"checksum", foundationEQ[:47] + "M", Mainnet, "", "checksum mismatch"},
		{"short", foundationEQ[:47], Mainnet, "", "48 base64 characters"},
		{"not base64", strings.Repeat("!", 48), Mainnet, "", "not valid base64"},
		{"raw workchain", "5:" + foundationRaw[2:], Mainnet, "", "workchain 5"},
		{"raw bad hex", "0:zz", Mainnet, "", "64 hex"},
		{"raw bad wc", "x:" + foundationRaw[2:], Mainnet, "", "not a number"},
		{"empty", "", Mainnet, "", "48 base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseOwnerAddress(tc.in, tc.net)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Raw() != tc.raw {
				t.Fatalf("raw = %s, want %s", a.Raw(), tc.raw)
			}
			// The normalised form round-trips through tonutils-go.
			ta, err := address.ParseAddr(a.String())
			if err != nil {
				t.Fatal(err)
			}
			if ta.IsBounceable() || ta.IsTestnetOnly() != (tc.net == Testnet) || !strings.EqualFold(ta.StringRaw(), tc.raw) {
				t.Fatalf("tonutils sees %s bounce=%v testnet=%v", ta.StringRaw(), ta.IsBounceable(), ta.IsTestnetOnly())
			}
			ev := a.Event()
			if ev.Raw != tc.raw || ev.Network != string(tc.net) || ev.Address != a.String() {
				t.Fatalf("event = %+v", ev)
			}
		})
	}
}

func TestNormalisedFormIsUQ(t *testing.T) {
	a, err := ParseOwnerAddress(foundationEQ, Mainnet)
	if err != nil {
		t.Fatal(err)
	}
	// The non-bounceable form TON's documentation gives for the same account.
	if s := a.String(); s != "UQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqEBI" {
		t.Fatalf("normalised = %s", s)
	}
}

func TestParseNetwork(t *testing.T) {
	for in, want := range map[string]Network{"": Mainnet, "mainnet": Mainnet, "testnet": Testnet} {
		if n, err := ParseNetwork(in); err != nil || n != want {
			t.Errorf("ParseNetwork(%q) = %v, %v", in, n, err)
		}
	}
	if _, err := ParseNetwork("devnet"); err == nil {
		t.Error("devnet accepted")
	}
}

func mustHash(t *testing.T, raw string) [32]byte {
	t.Helper()
	a, err := ParseOwnerAddress(raw, Mainnet)
	if err != nil {
		t.Fatal(err)
	}
	return a.Hash
}

func FuzzParseOwnerAddress(f *testing.F) {
	f.Add(foundationEQ, false)
	f.Add(foundationRaw, true)
	f.Add("-1:"+foundationRaw[2:], false)
	f.Fuzz(func(t *testing.T, s string, testnet bool) {
		n := Mainnet
		if testnet {
			n = Testnet
		}
		a, err := ParseOwnerAddress(s, n)
		if err != nil {
			return
		}
		// Whatever parses re-parses to the same account in both forms.
		for _, form := range []string{a.String(), a.Raw()} {
			b, err := ParseOwnerAddress(form, n)
			if err != nil || b != a {
				t.Fatalf("%q parsed to %+v; its form %q re-parses to %+v, %v", s, a, form, b, err)
			}
		}
	})
}
