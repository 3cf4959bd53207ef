package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/agent/rtmr"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
)

var proxyKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xa1}, 32))

// paidConfig is a config with a payment channel whose worker key derives
// from the secret 07…07.
func paidConfig(t *testing.T) *guest.Config {
	secret := guest.Secret(strings.Repeat("07", 32))
	sb, _ := secret.Bytes()
	ck, _, err := payment.DeriveKeys(sb)
	if err != nil {
		t.Fatal(err)
	}
	c := &guest.Config{Version: 1, Network: guest.DevNetwork, PayoutSecret: secret, Measured: guest.MeasuredConfig{
		Instance: "w", OwnerAddress: "UQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqEBI", PriceInPer1M: "1000000", PriceOutPer1M: "3000000",
		Payment: &payment.ChannelTerms{
			ProxyKey: hex.EncodeToString(proxyKey.Public().(ed25519.PublicKey)), WorkerKey: hex.EncodeToString(ck.Public().(ed25519.PublicKey)),
			ChannelID: strings.Repeat("c4", 16), ProxyAddress: "0:" + strings.Repeat("aa", 32),
			StorageFee: "50000000", MisbehaviorFine: "100000000", QuarantineSeconds: 3600, ConditionalCloseSeconds: 1800, SettleThreshold: "1000000000",
		},
	}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// The agent's payment wiring on a real ledger: receipts signed with the
// measured worker key on the measured channel, numbered durably across a
// restart; proxy states accepted through the endpoints; the gas wallet
// the owner funds is the one `chrysalis payout keys` prints.
func TestBindPayments(t *testing.T) {
	cfg := paidConfig(t)
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	log := slog.New(slog.DiscardHandler)
	open := func() *payments {
		l, err := payout.OpenLedger(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := bindPayments(l, cfg, nil, log)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := open()
	if p.claimKey() != cfg.Measured.Payment.WorkerKey {
		t.Fatalf("claims key %s, want the measured worker key", p.claimKey())
	}
	chCfg, _, err := cfg.Measured.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := chCfg.Address()
	sign := func(p *payments) payment.SignedReceipt {
		sr, err := p.receiptSigner().Sign(payment.Receipt{RequestID: strings.Repeat("ab", 32), Model: "m", TokensIn: 10, TokensOut: 20,
			PriceInPer1M: "1000000", PriceOutPer1M: "3000000", Amount: "70", IssuedAt: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := payment.VerifyReceipt(sr, chCfg.KeyB, ch); err != nil {
			t.Fatal(err)
		}
		return sr
	}
	if a, b := sign(p).Receipt.Seq, sign(p).Receipt.Seq; a != 1 || b != 2 {
		t.Errorf("receipt seqs %d, %d; want 1, 2", a, b)
	}
	// A proxy-signed cumulative state through the endpoint.
	s, err := channel.Sign(proxyKey, channel.SemiChannel{ID: chCfg.ID, Data: channel.SemiState{Seqno: 1, Sent: big.NewInt(5_000_000)}})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := payment.NewPaymentState(chCfg, s)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(ps)
	rec := httptest.NewRecorder()
	routes(http.NotFoundHandler(), nil, p).ServeHTTP(rec, httptest.NewRequest("POST", "/v1/payment/state", bytes.NewReader(body)))
	if rec.Code != 200 {
		t.Fatalf("state: %d %s", rec.Code, rec.Body)
	}
	if e, sum := p.earnings(); !strings.Contains(e, "earned 5000000 nanoTON") || !strings.Contains(e, "2 receipts (140 claimed)") ||
		sum == nil || sum.Earned != "5000000" || sum.Receipts != 2 || sum.Validate() != nil {
		t.Errorf("earnings %q, summary %+v", e, sum)
	}
	// The status channel carries the summary: the report encodes and
	// parses as the host reads it.
	rep, err := statusReport(hostView{start: time.Now(), tee: "insecure-dev", cfg: cfg, rec: rtmr.NewRecorder(&rtmr.Software{}), earnings: p.earnings})
	if err != nil {
		t.Fatal(err)
	}
	line, err := guest.EncodeReply(&guest.Reply{Reply: guest.ReplyStatus, Status: rep})
	if err != nil {
		t.Fatal(err)
	}
	if back, err := guest.ParseReply(bytes.TrimSpace(line)); err != nil || back.Status.Payout == nil || back.Status.Payout.Earned != "5000000" ||
		back.Status.Payout.Claimed != "140" || !strings.HasPrefix(back.Status.Earnings, "earned 5000000 nanoTON") {
		t.Fatalf("status report over the channel: %v\n%s", err, line)
	}
	p.ledger.Close()

	p = open() // a restart: same disk
	defer p.ledger.Close()
	if seq := sign(p).Receipt.Seq; seq != 3 {
		t.Errorf("after a restart the next receipt is %d, want 3", seq)
	}
	rec = httptest.NewRecorder()
	routes(http.NotFoundHandler(), nil, p).ServeHTTP(rec, httptest.NewRequest("GET", "/v1/payment/status", nil))
	b, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || !bytes.Contains(b, []byte(`"earned_nanoton":"5000000"`)) {
		t.Errorf("status after restart: %d %s", rec.Code, b)
	}
	_, wk, _ := payment.DeriveKeys(bytes.Repeat([]byte{7}, 32))
	want, _ := payment.GasWalletAddress(wk.Public().(ed25519.PublicKey), payment.Mainnet)
	if s := payout.Summarize(p.ledger.State()); s.Wallet != payment.RawAddress(want) {
		t.Errorf("ledger gas wallet %s, `payout keys` prints %s", s.Wallet, payment.RawAddress(want))
	}
}

func TestNoPayments(t *testing.T) {
	var p *payments
	if e, sum := p.earnings(); p.receiptSigner() != nil || p.claimKey() != "" || e != guest.EarningsNA || sum != nil || p.close() != nil {
		t.Error("a worker without a channel has payment parts")
	}
}
