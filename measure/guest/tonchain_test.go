package guest

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func readGlobalConfig(t testing.TB) []byte {
	b, err := os.ReadFile("testdata/ton-global-config.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseTONGlobalConfig(t *testing.T) {
	doc := string(readGlobalConfig(t))
	tc, err := ParseTONGlobalConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(tc.Liteservers) != 2 || tc.Liteservers[1].IP != -2018135749 || tc.Liteservers[0].Port != 19949 || tc.Validator.InitBlock.SeqNo != 34835953 {
		t.Fatalf("parsed %+v", tc)
	}
	if _, err := ParseTONGlobalConfig([]byte(doc + "{}")); err == nil || !strings.Contains(err.Error(), "trailing data") {
		t.Errorf("trailing: %v", err)
	}
	for _, c := range []struct{ name, from, to, err string }{
		{"no liteservers", `"liteservers": [`, `"liteservers": [], "x": [`, "liteservers: none given"},
		{"zero ip", `"ip": 84478511`, `"ip": 0`, "liteservers[0].ip 0"},
		{"ip too big", `"ip": 84478511`, `"ip": 4294967296`, "liteservers[0].ip"},
		{"port", `"port": 53312`, `"port": 65536`, "liteservers[1].port 65536"},
		{"key type", `"@type": "pub.ed25519",
        "key": "`, `"@type": "pub.aes",
        "key": "`, "id.@type \"pub.aes\""},
		{"short key", `"key": "ZYkk7u`, `"key": "`, "want a 32-byte ed25519 public key"},
		{"not master", `"seqno": 34835953`, `"seqno": 34835953, "workchain": 0`, "is not the masterchain"},
		{"short hash", `"seqno": 34835953,
      "root_hash": "`, `"seqno": 34835953,
      "root_hash": "AAAA`, "init_block"},
		{"not json", `{`, `[`, "TON global config"},
	} {
		in := strings.Replace(doc, c.from, c.to, 1)
		if in == doc {
			t.Fatalf("%s: replacement did not apply", c.name)
		}
		if _, err := ParseTONGlobalConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.err)
		}
	}
}

func TestConfigTONChain(t *testing.T) {
	tc, err := ParseTONGlobalConfig(readGlobalConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig([]byte(paymentDoc))
	if err != nil {
		t.Fatal(err)
	}
	c.TONChain = tc
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(b)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	if back.TONChain == nil || back.TONChain.Liteservers[0].ID.Key != tc.Liteservers[0].ID.Key {
		t.Fatalf("round trip lost ton_chain: %+v", back.TONChain)
	}
	mb, _ := back.MeasuredBytes()
	if strings.Contains(string(mb), "liteservers") {
		t.Errorf("ton_chain is measured: %s", mb)
	}
	back.TONChain.Liteservers[0].Port = 0
	if err := back.Validate(); err == nil || !strings.Contains(err.Error(), "config: ton_chain.liteservers[0].port 0") {
		t.Errorf("bad liteserver in the config: %v", err)
	}
	back.TONChain.Liteservers[0].Port = 1
	back.Measured.Payment, back.PayoutSecret = nil, ""
	if err := back.Validate(); err == nil || !strings.Contains(err.Error(), "ton_chain is set but measured.payment is not") {
		t.Errorf("ton_chain without payment: %v", err)
	}
}

func FuzzParseTONGlobalConfig(f *testing.F) {
	f.Add(readGlobalConfig(f))
	f.Add([]byte(`{"liteservers":[{"ip":1,"port":1,"id":{"@type":"pub.ed25519","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tc, err := ParseTONGlobalConfig(b)
		if err != nil {
			return
		}
		if err := tc.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
	})
}
