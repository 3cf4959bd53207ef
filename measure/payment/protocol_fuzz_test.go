package payment

import (
	"os"
	"path/filepath"
	"testing"
)

func seedFiles(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("{}"))
	f.Add([]byte(`{"channel":"0:","state":""}`))
}

func FuzzDecodeSignedReceipt(f *testing.F) {
	seedFiles(f, "receipt.golden.json")
	fx := newFix(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		sr, err := DecodeSignedReceipt(b)
		if err != nil {
			return
		}
		if err := sr.Receipt.Check(); err != nil {
			t.Fatalf("decoded receipt fails Check: %v", err)
		}
		_ = VerifyReceipt(sr, fx.cfg.KeyB, fx.addr)
	})
}

func FuzzDecodePaymentState(f *testing.F) {
	seedFiles(f, "payment_state.golden.json")
	fx := newFix(f)
	prev := fx.state(f, 1, "0.5")
	p, err := CheckState(nil, prev, fx.cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := DecodePaymentState(b)
		if err != nil {
			return
		}
		s, err := CheckState(&p, ps, fx.cfg)
		if err != nil {
			return
		}
		if s.State.Data.Seqno <= 1 || s.State.Data.Sent.Cmp(p.State.Data.Sent) < 0 {
			t.Fatalf("CheckState accepted seqno %d sent %s", s.State.Data.Seqno, s.State.Data.Sent)
		}
	})
}

func FuzzDecodeCommitRequest(f *testing.F) {
	seedFiles(f, "commit_request.golden.json")
	fx := newFix(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeCommitRequest(b)
		if err != nil {
			return
		}
		_, _ = r.Open(fx.cfg)
	})
}

func FuzzDecodeCommitResponse(f *testing.F) {
	seedFiles(f, "commit_response.golden.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeCommitResponse(b)
		if err != nil {
			return
		}
		if _, err := r.sig(); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzParseChannelAddress(f *testing.F) {
	f.Add("0:" + "ab" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd")
	f.Add("EQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqB2N")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseChannelAddress(s)
		if err != nil {
			return
		}
		if RawAddress(a) != s {
			t.Fatalf("%q round-trips to %q", s, RawAddress(a))
		}
	})
}
