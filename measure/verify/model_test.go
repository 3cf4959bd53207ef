package verify

import (
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/evidence"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/measure/registry"
)

func TestModelEventPolicy(t *testing.T) {
	root := strings.Repeat("ab", 32)
	cfg := guest.MeasuredConfig{Instance: "w", Model: "tiny", ModelRoot: root}
	ev := func(name string, v any) event.Entry {
		e, err := event.New(name, 1, v)
		if err != nil {
			t.Fatal(err)
		}
		return event.Entry{Event: e}
	}
	conf := ev(event.NameConfig, cfg)
	model := ev(event.NameModel, event.ModelPayload{Name: "tiny", RootHash: root})
	ready := ev(event.NameReady, struct{}{})
	pol := Policy{Name: "p", AllowInsecureDev: true}
	for _, tc := range []struct {
		name string
		evs  []event.Entry
		err  string
	}{
		{"model then ready", []event.Entry{conf, model, ready}, ""},
		{"ready without the configured model", []event.Entry{conf, ready}, "no model event precedes ready"},
		{"other root", []event.Entry{conf, ev(event.NameModel, event.ModelPayload{Name: "tiny", RootHash: strings.Repeat("cd", 32)}), ready}, "not the model the measured config names"},
		{"other name", []event.Entry{conf, ev(event.NameModel, event.ModelPayload{Name: "big", RootHash: root}), ready}, "not the model the measured config names"},
		{"two model events", []event.Entry{conf, model, model, ready}, "second model event"},
		{"model after ready", []event.Entry{conf, model, ready, model}, "follows the ready event"},
		{"model without a configured root", []event.Entry{ev(event.NameConfig, guest.MeasuredConfig{Instance: "w", Model: "tiny"}), model}, "not the model the measured config names"},
	} {
		_, _, err := judgeEvents(tc.evs, pol)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestPayoutEventPolicy(t *testing.T) {
	const owner = "EQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqB2N"
	ev := func(name string, v any) event.Entry {
		e, err := event.New(name, 1, v)
		if err != nil {
			t.Fatal(err)
		}
		return event.Entry{Event: e}
	}
	a, err := payment.ParseOwnerAddress(owner, payment.Mainnet)
	if err != nil {
		t.Fatal(err)
	}
	conf := ev(event.NameConfig, guest.MeasuredConfig{Instance: "w", OwnerAddress: owner})
	payout := ev(event.NamePayout, a.Event())
	ready := ev(event.NameReady, struct{}{})
	other := a
	other.Hash[0] ^= 1
	testnet := a
	testnet.Network = payment.Testnet
	pol := Policy{Name: "p", AllowInsecureDev: true}
	for _, tc := range []struct {
		name string
		evs  []event.Entry
		err  string
	}{
		{"payout then ready", []event.Entry{conf, payout, ready}, ""},
		{"no payout event", []event.Entry{conf, ready}, "no payout event precedes ready"},
		{"other account", []event.Entry{conf, ev(event.NamePayout, other.Event()), ready}, "is not the measured owner address"},
		{"other network", []event.Entry{conf, ev(event.NamePayout, testnet.Event()), ready}, "is not the measured owner address"},
		{"twice", []event.Entry{conf, payout, payout, ready}, "once"},
		{"without owner", []event.Entry{ev(event.NameConfig, guest.MeasuredConfig{Instance: "w"}), payout, ready}, "without an owner address"},
	} {
		_, _, err := judgeEvents(tc.evs, pol)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestModelAllowlist(t *testing.T) {
	root := strings.Repeat("ab", 32)
	ev := func(name string, v any) event.Entry {
		e, err := event.New(name, 1, v)
		if err != nil {
			t.Fatal(err)
		}
		return event.Entry{Event: e}
	}
	evs := []event.Entry{
		ev(event.NameConfig, guest.MeasuredConfig{Instance: "w", Model: "tiny", ModelRoot: root}),
		ev(event.NameModel, event.ModelPayload{Name: "tiny", RootHash: root}),
		ev(event.NameReady, struct{}{}),
	}
	pol := Policy{Name: "p", AllowInsecureDev: true}
	if _, _, err := judgeEvents(evs, pol); err != nil {
		t.Fatalf("nil allowlist: %v", err)
	}
	if err := pol.AllowModel(strings.Repeat("cd", 32), "catalog other"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := judgeEvents(evs, pol); err == nil || !strings.Contains(err.Error(), "not in policy \"p\"'s model allowlist of 1") {
		t.Fatalf("other model allowed: %v", err)
	}
	if err := pol.AllowModel(root, "catalog tiny"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := judgeEvents(evs, pol); err != nil {
		t.Fatalf("allowed model: %v", err)
	}
	for _, bad := range []string{"AB", strings.Repeat("AB", 32), strings.Repeat("a", 63)} {
		if err := pol.AllowModel(bad, "x"); err == nil {
			t.Errorf("AllowModel(%q) accepted", bad)
		}
	}
}

func TestRegistryModelsJoinTheAllowlist(t *testing.T) {
	var h [32]byte
	h[0] = 0xab
	st := &registry.State{Models: map[[32]byte]registry.Entry{h: {}}}
	var pol Policy
	if _, err := pol.AllowRegistry(st, "0:"+strings.Repeat("11", 32)); err != nil {
		t.Fatal(err)
	}
	if l, ok := pol.Models["ab"+strings.Repeat("00", 31)]; !ok || !strings.Contains(l, "registry 0:1111") {
		t.Fatalf("models %v", pol.Models)
	}
}

// devBundle is an insecure-dev bundle whose log holds the config event of
// cfg (then ready) and whose claims name receiptKey.
func devBundle(t *testing.T, cfg guest.MeasuredConfig, receiptKey string) (*evidence.Bundle, []byte) {
	t.Helper()
	key := mustKey(t)
	spki, _ := evidence.SPKI(key.Public())
	var l event.Log
	evs := []struct {
		name string
		v    any
	}{{event.NameConfig, cfg}}
	if cfg.OwnerAddress != "" {
		a, err := payment.ParseOwnerAddress(cfg.OwnerAddress, payment.Mainnet)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, struct {
			name string
			v    any
		}{event.NamePayout, a.Event()})
	}
	evs = append(evs, struct {
		name string
		v    any
	}{event.NameReady, struct{}{}})
	for _, e := range evs {
		ev, err := event.New(e.name, 1, e.v)
		if err != nil {
			t.Fatal(err)
		}
		l.Append(ev)
	}
	mr, _ := l.Replay()
	c := evidence.Claims{TLSKeySHA256: evidence.SPKIHash(spki), IssuedAt: now.Unix(), Instance: cfg.Instance, OwnerAddress: cfg.OwnerAddress, ReceiptKey: receiptKey}
	rd, _ := evidence.ReportData(spki, c)
	return &evidence.Bundle{Version: evidence.Version, Type: evidence.TypeInsecureDev, ReportData: rd[:], Claims: c,
		EventLog: l, RTMR3: mr, RTMR3Source: evidence.RTMR3Software}, spki
}

// The receipt key a worker claims must be the measured config's
// payment.worker_key, and absent without a payment channel.
func TestReceiptKeyClaim(t *testing.T) {
	worker := strings.Repeat("9b", 32)
	paid := guest.MeasuredConfig{Instance: "w", OwnerAddress: "EQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqB2N",
		PriceInPer1M: "1", PriceOutPer1M: "2", Payment: &payment.ChannelTerms{
			ProxyKey: strings.Repeat("a1", 32), WorkerKey: worker, ChannelID: strings.Repeat("c4", 16), ProxyAddress: "0:" + strings.Repeat("aa", 32),
			StorageFee: "50000000", MisbehaviorFine: "0", QuarantineSeconds: 60, SettleThreshold: "1",
		}}
	pol := Policy{Name: "p", AllowInsecureDev: true}
	for _, tc := range []struct {
		name string
		cfg  guest.MeasuredConfig
		key  string
		err  string
	}{
		{"paid, its key", paid, worker, ""},
		{"unpaid, no key", guest.MeasuredConfig{Instance: "w"}, "", ""},
		{"paid, other key", paid, strings.Repeat("9c", 32), `claims.receipt_key "9c9c`},
		{"paid, no key", paid, "", `claims.receipt_key "" is not the measured config's payment.worker_key "9b9b`},
		{"unpaid, a key", guest.MeasuredConfig{Instance: "w"}, worker, `payment.worker_key ""`},
	} {
		b, spki := devBundle(t, tc.cfg, tc.key)
		_, err := Bundle(b, spki, pol, Options{Now: now})
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || ReasonOf(err) != ReasonEventPolicy) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}
