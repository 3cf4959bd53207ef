package guest

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	good := `{"version":1,"measured":{"instance":"w-1","owner_address":"UQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqEBI","model":"m"},"network":{"address":"10.0.2.15/24","gateway":"10.0.2.2"}}`
	c, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig([]byte(strings.Replace(good, `"model":"m"`, `"model":"m","model_root":"`+strings.Repeat("0f", 32)+`"`, 1))); err != nil {
		t.Fatalf("sha256 model root rejected: %v", err)
	}
	pc, err := ParseConfig([]byte(strings.Replace(good, `"model":"m"`, `"model":"m","price_in_per_1m_nanoton":"0","price_out_per_1m_nanoton":"2500000000"`, 1)))
	if err != nil {
		t.Fatalf("prices rejected: %v", err)
	}
	if in, out, err := pc.Measured.Prices(); in != 0 || out != 2_500_000_000 || err != nil {
		t.Errorf("prices %d, %d, %v", in, out, err)
	}
	mb, err := c.MeasuredBytes()
	if err != nil || string(mb) != `{"instance":"w-1","model":"m","owner_address":"UQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqEBI"}` {
		t.Fatalf("measured bytes %s, %v", mb, err)
	}
	for _, tc := range []struct{ name, in, err string }{
		{"version", strings.Replace(good, `"version":1`, `"version":2`, 1), "version 2"},
		{"unknown field", strings.Replace(good, `"version":1`, `"version":1,"extra":true`, 1), "unknown field"},
		{"instance empty", strings.Replace(good, `"w-1"`, `""`, 1), "measured.instance"},
		{"instance slash", strings.Replace(good, `"w-1"`, `"a/b"`, 1), "measured.instance"},
		{"address", strings.Replace(good, `10.0.2.15/24`, `10.0.2.15`, 1), "network.address"},
		{"ipv6", strings.Replace(good, `10.0.2.15/24`, `fd00::1/64`, 1), "network.address"},
		{"gateway outside", strings.Replace(good, `"10.0.2.2"`, `"10.0.3.2"`, 1), "network.gateway"},
		{"trailing", good + `{}`, "trailing data"},
		{"long owner", strings.Replace(good, `UQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqEBI`, strings.Repeat("x", 129), 1), "at most 128"},
		{"oversize", good + strings.Repeat(" ", MaxConfigSize), "limit"},
		{"owner checksum", strings.Replace(good, `xqEBI`, `xqEBJ`, 1), "measured.owner_address: owner address \"UQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqEBJ\": checksum mismatch"},
		{"owner on testnet", strings.Replace(good, `"model":"m"`, `"model":"m","ton_network":"testnet"`, 1), "is a mainnet address"},
		{"ton network", strings.Replace(good, `"model":"m"`, `"model":"m","ton_network":"devnet"`, 1), "measured.ton_network"},
		{"model root not hex", strings.Replace(good, `"model":"m"`, `"model":"m","model_root":"xyz"`, 1), "measured.model_root"},
		{"model root short", strings.Replace(good, `"model":"m"`, `"model":"m","model_root":"`+strings.Repeat("a", 63)+`"`, 1), "measured.model_root"},
		{"price alone", strings.Replace(good, `"model":"m"`, `"model":"m","price_in_per_1m_nanoton":"5"`, 1), "must be set together"},
		{"price leading zero", strings.Replace(good, `"model":"m"`, `"model":"m","price_in_per_1m_nanoton":"05","price_out_per_1m_nanoton":"1"`, 1), `price_in_per_1m_nanoton "05"`},
		{"price sign", strings.Replace(good, `"model":"m"`, `"model":"m","price_in_per_1m_nanoton":"5","price_out_per_1m_nanoton":"-1"`, 1), `price_out_per_1m_nanoton "-1"`},
		{"price overflow", strings.Replace(good, `"model":"m"`, `"model":"m","price_in_per_1m_nanoton":"18446744073709551616","price_out_per_1m_nanoton":"1"`, 1), "exceeds 2^64-1"},
		{"model root without model", strings.Replace(good, `"model":"m"`, `"model_root":"`+strings.Repeat("a", 64)+`"`, 1), "measured.model is empty"},
	} {
		if _, err := ParseConfig([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"version":1,"measured":{"instance":"w"},"network":{"address":"10.0.2.15/24","gateway":"10.0.2.2"}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if _, err := c.MeasuredBytes(); err != nil {
			t.Fatalf("valid config has no canonical measured form: %v", err)
		}
	})
}

// paymentDoc is a valid config with a payment channel; the secret 07…07
// derives worker key 9b590e53… (measure/payment TestDeriveKeys).
const paymentDoc = `{"version":1,"measured":{"instance":"w-1","owner_address":"UQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqEBI",` +
	`"price_in_per_1m_nanoton":"1000","price_out_per_1m_nanoton":"3000","payment":{"proxy_key":"a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",` +
	`"worker_key":"9b590e53fd2b58ad77fcb7bed83132edd66edf66ac8825b913af6708311cad98","channel_id":"c4715a11dead030405060708090a0b0c",` +
	`"proxy_address":"0:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","storage_fee_nanoton":"50000000","misbehavior_fine_nanoton":"100000000",` +
	`"quarantine_seconds":3600,"conditional_close_seconds":1800,"settle_threshold_nanoton":"1000000000"}},` +
	`"network":{"address":"10.0.2.15/24","gateway":"10.0.2.2"},"payout_secret":"0707070707070707070707070707070707070707070707070707070707070707"}`

func TestPaymentConfig(t *testing.T) {
	c, err := ParseConfig([]byte(paymentDoc))
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := c.MeasuredBytes()
	if strings.Contains(string(mb), "0707070707") || !strings.Contains(string(mb), `"worker_key":"9b590e53`) {
		t.Errorf("measured bytes carry the secret or lack the worker key: %s", mb)
	}
	for _, f := range []string{fmt.Sprint(c.PayoutSecret), fmt.Sprintf("%v %+v %#v", c, c, c)} {
		if strings.Contains(f, "0707070707") {
			t.Errorf("the secret prints: %s", f)
		}
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "secret", c.PayoutSecret, "config", c)
	if strings.Contains(logged.String(), "0707070707") {
		t.Errorf("the secret is logged: %s", logged.String())
	}
	for _, tc := range []struct{ name, from, to, err string }{
		{"no secret", `,"payout_secret":"0707070707070707070707070707070707070707070707070707070707070707"`, ``, "needs payout_secret"},
		{"wrong secret", `"payout_secret":"07`, `"payout_secret":"08`, "payout_secret derives worker key"},
		{"short secret", `"payout_secret":"07`, `"payout_secret":"`, "want 64 lowercase hex"},
		{"upper secret", `"payout_secret":"07`, `"payout_secret":"0A`, "lowercase hex"},
		{"no owner", `"owner_address":"UQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqEBI",`, ``, "needs measured.owner_address"},
		{"no prices", `"price_in_per_1m_nanoton":"1000","price_out_per_1m_nanoton":"3000",`, ``, "needs measured.price_in_per_1m_nanoton"},
		{"bad terms", `"quarantine_seconds":3600`, `"quarantine_seconds":0`, "measured.payment.quarantine_seconds"},
		{"unknown term", `"quarantine_seconds":3600`, `"quarantine_seconds":3600,"x":1`, "unknown field"},
		{"secret without payment", `,"payment":{`, `,"paymentx":{`, "unknown field"},
	} {
		in := strings.Replace(paymentDoc, tc.from, tc.to, 1)
		if in == paymentDoc {
			t.Fatalf("%s: replacement did not apply", tc.name)
		}
		if _, err := ParseConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
	c.Measured.Payment = nil
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "payout_secret is set but measured.payment is not") {
		t.Errorf("secret without payment: %v", err)
	}
}

func TestParseConfigSecret(t *testing.T) {
	const secret = "0707070707070707070707070707070707070707070707070707070707070707"
	doc := strings.Replace(paymentDoc, `,"payout_secret":"`+secret+`"`, "", 1)
	c, err := ParseConfigSecret([]byte(doc), secret)
	if err != nil || c.PayoutSecret != secret {
		t.Fatalf("%v", err)
	}
	if _, err := ParseConfigSecret([]byte(paymentDoc), secret); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("twice: %v", err)
	}
	if _, err := ParseConfig([]byte(doc)); err == nil || !strings.Contains(err.Error(), "needs payout_secret") {
		t.Errorf("missing: %v", err)
	}
}
