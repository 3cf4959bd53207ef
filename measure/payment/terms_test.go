package payment

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"
)

func testTerms() ChannelTerms {
	return ChannelTerms{
		ProxyKey:          strings.Repeat("a1", 32),
		WorkerKey:         strings.Repeat("b2", 32),
		ChannelID:         "c4715a11dead030405060708090a0b0c",
		ProxyAddress:      "0:" + strings.Repeat("aa", 32),
		StorageFee:        "50000000",
		MisbehaviorFine:   "100000000",
		QuarantineSeconds: 3600, ConditionalCloseSeconds: 1800,
		SettleThreshold: "1000000000", SettleIntervalSeconds: 86400,
	}
}

func TestChannelTerms(t *testing.T) {
	owner, err := ParseOwnerAddress("0:"+strings.Repeat("0b", 32), Mainnet)
	if err != nil {
		t.Fatal(err)
	}
	c, err := testTerms().Config(owner)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID.String() != "c4715a11dead030405060708090a0b0c" || !bytes.Equal(c.KeyB, bytes.Repeat([]byte{0xb2}, 32)) ||
		c.Payment.DestB.String() != owner.Address().String() || c.Payment.StorageFee.String() != "50000000" ||
		c.Closing.MisbehaviorFine.String() != "100000000" || c.Closing.QuarantineDuration != 3600 || c.Closing.ConditionalCloseDuration != 1800 {
		t.Errorf("config %+v", c)
	}
	a1, err := c.Address()
	if err != nil {
		t.Fatal(err)
	}
	tt := testTerms()
	tt.SettleThreshold = "5" // not part of the channel: same address
	c2, _ := tt.Config(owner)
	if a2, _ := c2.Address(); a2.String() != a1.String() {
		t.Error("the settle threshold changed the channel address")
	}
	for _, tc := range []struct {
		mod  func(*ChannelTerms)
		want string
	}{
		{func(t *ChannelTerms) { t.ProxyKey = "AB" }, "measured.payment.proxy_key"},
		{func(t *ChannelTerms) { t.WorkerKey = strings.Repeat("B2", 32) }, "measured.payment.worker_key"},
		{func(t *ChannelTerms) { t.WorkerKey = t.ProxyKey }, "A and B share the key"},
		{func(t *ChannelTerms) { t.ChannelID = "c4715a11" }, "measured.payment.channel_id"},
		{func(t *ChannelTerms) { t.ProxyAddress = "nowhere" }, "measured.payment.proxy_address"},
		{func(t *ChannelTerms) { t.StorageFee = "-1" }, "measured.payment.storage_fee_nanoton"},
		{func(t *ChannelTerms) { t.StorageFee = "1000" }, "storage fee 1000 nanoTON must exceed"},
		{func(t *ChannelTerms) { t.MisbehaviorFine = "01" }, "measured.payment.misbehavior_fine_nanoton"},
		{func(t *ChannelTerms) { t.QuarantineSeconds = 0 }, "measured.payment.quarantine_seconds"},
		{func(t *ChannelTerms) { t.SettleThreshold = "0" }, "settle_threshold_nanoton must be positive"},
		{func(t *ChannelTerms) { t.SettleThreshold = "" }, "measured.payment.settle_threshold_nanoton"},
	} {
		tt := testTerms()
		tc.mod(&tt)
		if _, err := tt.Config(owner); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tt, err, tc.want)
		}
	}
}

// TestDeriveKeys pins the derivation (owners derive the worker key with
// `chrysalis payout keys` and the agent must derive the same).
func TestDeriveKeys(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	ck, wk, err := DeriveKeys(secret)
	if err != nil {
		t.Fatal(err)
	}
	cp, wp := hex.EncodeToString(ck.Public().(ed25519.PublicKey)), hex.EncodeToString(wk.Public().(ed25519.PublicKey))
	if cp == wp {
		t.Fatal("the two keys are equal")
	}
	// Cross-checked with OpenSSL: the seed SHA-256(label ‖ secret) as an
	// Ed25519 PKCS#8 key, `openssl pkey -pubout`.
	const wantChannel, wantWallet = "9b590e53fd2b58ad77fcb7bed83132edd66edf66ac8825b913af6708311cad98", "387e2b9495791611ddf53509211cb8adbcf643ace749ccbc105e7d745c5d5d70"
	if cp != wantChannel || wp != wantWallet {
		t.Errorf("keys changed: channel %s, wallet %s", cp, wp)
	}
	if _, _, err := DeriveKeys(secret[:31]); err == nil || !strings.Contains(err.Error(), "31 bytes, want 32") {
		t.Errorf("short secret: %v", err)
	}
}
