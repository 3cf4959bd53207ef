package payment

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/golden"
	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
)

func key(b byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = b
	}
	return ed25519.NewKeyFromSeed(seed)
}

func addr(b byte) *address.Address {
	d := make([]byte, 32)
	for i := range d {
		d[i] = b
	}
	return address.NewAddress(0, 0, d)
}

func ton(s string) *big.Int { return tlb.MustFromTON(s).Nano() }

type fix struct {
	a, b ed25519.PrivateKey
	cfg  channel.Config
	addr *address.Address
}

func newFix(t testing.TB) fix {
	f := fix{a: key(0xA1), b: key(0xB2)}
	f.cfg = channel.Config{
		KeyA: f.a.Public().(ed25519.PublicKey), KeyB: f.b.Public().(ed25519.PublicKey),
		ID:      channel.ID{0xc4, 0x71, 0x5a, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		Closing: channel.ClosingConfig{QuarantineDuration: 3600, MisbehaviorFine: ton("0.1"), ConditionalCloseDuration: 1800},
		Payment: channel.PaymentConfig{StorageFee: ton("0.05"), DestA: addr(0xAA), DestB: addr(0x0B)},
	}
	var err error
	if f.addr, err = f.cfg.Address(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f fix) receipt() Receipt {
	return Receipt{
		Version: 1, Channel: RawAddress(f.addr),
		RequestID: strings.Repeat("ab", 32), Model: "llama-3.1-8b-instruct",
		TokensIn: 1200, TokensOut: 350, PriceInPer1M: "100000000", PriceOutPer1M: "300000000",
		Amount: "225000", Seq: 7, IssuedAt: 1_780_000_000,
	}
}

func (f fix) state(t testing.TB, seqno uint64, sent string) PaymentState {
	t.Helper()
	s, err := channel.Sign(f.a, channel.SemiChannel{ID: f.cfg.ID, Data: channel.SemiState{Seqno: seqno, Sent: ton(sent)}})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := NewPaymentState(f.cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func jsonOf(t testing.TB, v any) []byte {
	t.Helper()
	b, err := canon.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestReceiptAmount(t *testing.T) {
	for _, tc := range []struct {
		in, out, pin, pout, want uint64
		err                      bool
	}{
		{1200, 350, 100_000_000, 300_000_000, 225_000, false},
		{1, 0, 999_999, 0, 0, false}, // floor: the payer never pays a fraction
		{1, 1, 1_000_000, 1_000_000, 2, false},
		{0, 0, 5, 5, 0, false},
		{1 << 53, 1 << 53, 1 << 60, 1 << 60, 0, true},
	} {
		got, err := ReceiptAmount(tc.in, tc.out, tc.pin, tc.pout)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ReceiptAmount(%d,%d,%d,%d) = %d, %v; want %d, err %v", tc.in, tc.out, tc.pin, tc.pout, got, err, tc.want, tc.err)
		}
	}
}

func TestReceiptSignVerify(t *testing.T) {
	f := newFix(t)
	sr, err := SignReceipt(f.b, f.receipt())
	if err != nil {
		t.Fatal(err)
	}
	wire := jsonOf(t, sr)
	golden.Check(t, "receipt.golden.json", wire)
	got, err := DecodeSignedReceipt(wire)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyReceipt(got, f.cfg.KeyB, f.addr); err != nil {
		t.Fatal(err)
	}
	if err := VerifyReceipt(got, f.cfg.KeyA, f.addr); err == nil || !strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("receipt verified under A's key: %v", err)
	}
	if err := VerifyReceipt(got, f.cfg.KeyB, addr(0x33)); err == nil || !strings.Contains(err.Error(), "not this channel") {
		t.Fatalf("receipt verified for another channel: %v", err)
	}
	tampered := got
	tampered.Receipt.TokensOut++
	tampered.Receipt.Amount = "225300"
	if err := VerifyReceipt(tampered, f.cfg.KeyB, f.addr); err == nil || !strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("tampered receipt: %v", err)
	}
}

func TestReceiptCheck(t *testing.T) {
	f := newFix(t)
	for _, tc := range []struct {
		name string
		mod  func(*Receipt)
		want string
	}{
		{"version", func(r *Receipt) { r.Version = 2 }, "version 2"},
		{"channel raw form", func(r *Receipt) { r.Channel = f.addr.String() }, "raw form"},
		{"uppercase request id", func(r *Receipt) { r.RequestID = strings.ToUpper(r.RequestID) }, "request id"},
		{"model", func(r *Receipt) { r.Model = "bad model" }, "model"},
		{"tokens above 2^53", func(r *Receipt) { r.TokensIn = 1 << 53 }, "2^53-1"},
		{"seq 0", func(r *Receipt) { r.Seq = 0 }, "seq 0"},
		{"issued_at", func(r *Receipt) { r.IssuedAt = 0 }, "unix time"},
		{"price with sign", func(r *Receipt) { r.PriceInPer1M = "+1" }, "price_in"},
		{"price with leading zero", func(r *Receipt) { r.PriceOutPer1M = "0300000000" }, "leading zeros"},
		{"price overflow", func(r *Receipt) { r.PriceOutPer1M = "18446744073709551616" }, "price_out"},
		{"amount in TON not nanoTON", func(r *Receipt) { r.Amount = "0.000225" }, "amount_nanoton"},
		{"amount not the computed one", func(r *Receipt) { r.Amount = "225001" }, "make 225000"},
		// COCOON's bug: a token count where nanoTON belong.
		{"amount is the token count", func(r *Receipt) { r.Amount = "1550" }, "make 225000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.receipt()
			tc.mod(&r)
			err := r.Check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if _, err := SignReceipt(f.b, r); err == nil {
				t.Fatal("SignReceipt signed an invalid receipt")
			}
		})
	}
}

func TestDecodeStrict(t *testing.T) {
	f := newFix(t)
	sr, _ := SignReceipt(f.b, f.receipt())
	good := string(jsonOf(t, sr))
	for _, tc := range []struct{ name, in, want string }{
		{"unknown field", strings.Replace(good, `{"receipt"`, `{"extra":1,"receipt"`, 1), "unknown field"},
		{"duplicate key", strings.Replace(good, `{"receipt"`, `{"signature":"x","receipt"`, 1), "duplicate"},
		{"trailing data", good + "{}", "trailing"},
		{"float", strings.Replace(good, `"seq":7`, `"seq":7.0`, 1), "integer"},
		{"too large", `{"receipt":"` + strings.Repeat("a", MaxMessage) + `"}`, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeSignedReceipt([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckState(t *testing.T) {
	f := newFix(t)
	first := f.state(t, 3, "1")
	golden.Check(t, "payment_state.golden.json", jsonOf(t, first))
	acc, err := CheckState(nil, first, f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if acc.State.Data.Seqno != 3 || acc.State.Data.Sent.Cmp(ton("1")) != 0 {
		t.Fatalf("accepted %+v", acc.State.Data)
	}
	other := f
	other.a = key(0x55)
	wrongID := f.cfg
	wrongID.ID[0] ^= 1
	otherCfg := f.cfg
	otherCfg.Payment.DestB = addr(0x0C)
	otherAddr, _ := otherCfg.Address()
	cond, _ := channel.Sign(f.a, channel.SemiChannel{ID: f.cfg.ID, Data: channel.SemiState{Seqno: 9, Sent: ton("2"), ConditionalsHash: [32]byte{1}}})
	condPS, _ := NewPaymentState(f.cfg, cond)
	idState, _ := channel.Sign(f.a, channel.SemiChannel{ID: wrongID.ID, Data: channel.SemiState{Seqno: 9, Sent: ton("2")}})
	idPS, _ := NewPaymentState(f.cfg, idState)
	for _, tc := range []struct {
		name string
		ps   PaymentState
		want string
	}{
		{"same seqno (replay)", f.state(t, 3, "1"), "does not exceed"},
		{"lower seqno", f.state(t, 2, "5"), "does not exceed"},
		{"sent decreases", f.state(t, 4, "0.5"), "below the accepted"},
		{"signed by another key", other.state(t, 4, "2"), "bad signature"},
		{"other channel address", PaymentState{Channel: RawAddress(otherAddr), State: first.State}, "not this channel"},
		{"other channel id", idPS, "channel id"},
		{"conditionals", condPS, "conditional"},
		{"not base64", PaymentState{Channel: first.Channel, State: "!!"}, "base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := CheckState(&acc, tc.ps, f.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Equal sent with a higher seqno is fine (the proxy re-signs).
	if _, err := CheckState(&acc, f.state(t, 4, "1"), f.cfg); err != nil {
		t.Fatal(err)
	}
	wire := jsonOf(t, f.state(t, 5, "2.5"))
	ps, err := DecodePaymentState(wire)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := CheckState(&acc, ps, f.cfg); err != nil || s.State.Data.Sent.Cmp(ton("2.5")) != 0 {
		t.Fatalf("decoded state: %v", err)
	}
}

func TestCommitRoundTrip(t *testing.T) {
	f := newFix(t)
	c := channel.Commit{ID: f.cfg.ID, SentA: ton("2.5"), SentB: new(big.Int), SeqnoA: 5, SeqnoB: 1,
		WithdrawA: new(big.Int), WithdrawB: ton("2.5")}
	req, sc, err := NewCommitRequest(f.cfg, f.b, c)
	if err != nil {
		t.Fatal(err)
	}
	wire := jsonOf(t, req)
	golden.Check(t, "commit_request.golden.json", wire)
	// Proxy side.
	got, err := DecodeCommitRequest(wire)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := got.Open(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := SignCommit(f.cfg, f.a, opened.Commit)
	if err != nil {
		t.Fatal(err)
	}
	rwire := jsonOf(t, resp)
	golden.Check(t, "commit_response.golden.json", rwire)
	// Worker side.
	r2, err := DecodeCommitResponse(rwire)
	if err != nil {
		t.Fatal(err)
	}
	full, err := r2.Complete(f.cfg, sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := full.Verify(f.cfg.KeyA, f.cfg.KeyB); err != nil {
		t.Fatal(err)
	}

	// Refusals.
	forged, _, _ := NewCommitRequest(f.cfg, key(0x44), c)
	if _, err := forged.Open(f.cfg); err == nil || !strings.Contains(err.Error(), "signer B") {
		t.Fatalf("request signed by another key: %v", err)
	}
	other := c
	other.WithdrawB = ton("3")
	otherResp, _ := SignCommit(f.cfg, f.a, other)
	if _, err := otherResp.Complete(f.cfg, sc); err == nil || !strings.Contains(err.Error(), "not the requested") {
		t.Fatalf("response for another commit: %v", err)
	}
	badSig := resp
	badSig.SignatureA = base64.StdEncoding.EncodeToString(make([]byte, 64))
	if _, err := badSig.Complete(f.cfg, sc); err == nil || !strings.Contains(err.Error(), "signer A") {
		t.Fatalf("zero signature: %v", err)
	}
	// A request whose A slot is filled is refused: the worker never
	// forwards the proxy's own signature.
	filled := full
	body, _ := filled.Body()
	if _, err := DecodeCommitRequest(jsonOf(t, CommitRequest{Channel: req.Channel, Commit: base64.StdEncoding.EncodeToString(body.ToBOC())})); err == nil {
		t.Fatal("request with A's signature accepted")
	}
	var m map[string]any
	if err := json.Unmarshal(rwire, &m); err != nil || len(m) != 3 {
		t.Fatalf("commit response fields %v", m)
	}
}

func TestParseChannelAddress(t *testing.T) {
	f := newFix(t)
	raw := RawAddress(f.addr)
	a, err := ParseChannelAddress(raw)
	if err != nil || !a.Equals(f.addr) {
		t.Fatalf("%s: %v", raw, err)
	}
	for _, s := range []string{"", f.addr.String(), "-1:" + raw[2:], strings.ToUpper(raw), raw + "00", "0:" + raw[3:]} {
		if _, err := ParseChannelAddress(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
