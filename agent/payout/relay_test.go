package payout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

// TestRelayOverHTTP runs the proxy side of the protocol against the
// worker's HTTP endpoints: payment states in, the commit fetched, co-signed
// by the proxy and posted back, and the settlement confirmed on the
// emulated chain with the real contract code.
func TestRelayOverHTTP(t *testing.T) {
	e := newEnv(t, "1", defaultPolicy())
	relay := &payout.Relay{Wait: 5 * time.Second}
	s := e.settler(relay)
	srv := httptest.NewServer(payout.Handler(e.ledger, relay, nil, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	post := func(path string, v any) (int, []byte) {
		b, _ := json.Marshal(v)
		resp, err := http.Post(srv.URL+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}

	ps, _ := e.proxy.Pay(ton("1.2"))
	if code, out := post("/v1/payment/state", ps); code != 200 || !strings.Contains(string(out), `"earned_nanoton":"1200000000"`) {
		t.Fatalf("state: %d %s", code, out)
	}
	// A replayed (stale) state is refused with 409 and changes nothing.
	if code, out := post("/v1/payment/state", ps); code != http.StatusConflict {
		t.Fatalf("replayed state: %d %s", code, out)
	}
	if code, _ := post("/v1/payment/state", map[string]string{"channel": "x"}); code != http.StatusBadRequest {
		t.Fatalf("bad state: %d", code)
	}
	if resp, _ := http.Get(srv.URL + "/v1/payment/commit"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("commit with nothing waiting: %d", resp.StatusCode)
	}

	// The proxy polls for the commit while the settler waits for it.
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 100; i++ {
			resp, err := http.Get(srv.URL + "/v1/payment/commit")
			if err != nil {
				done <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				req, err := payment.DecodeCommitRequest(b)
				if err != nil {
					done <- err
					return
				}
				ans, err := e.proxy.CoSign(context.Background(), req)
				if err != nil {
					done <- err
					return
				}
				code, out := post("/v1/payment/commit", ans)
				if code != http.StatusAccepted {
					t.Errorf("answer: %d %s", code, out)
				}
				done <- nil
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		done <- io.ErrUnexpectedEOF
	}()
	r, err := s.Step(context.Background())
	if err != nil || r.Action != "sent" {
		t.Fatalf("step: %+v %v", r, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.tick(5)
	if r, err := s.Step(context.Background()); err != nil || r.Action != "confirmed" {
		t.Fatalf("step: %+v %v", r, err)
	}
	e.check()
	resp, _ := http.Get(srv.URL + "/v1/payment/status")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sum, err := payment.DecodeSummary(bytes.TrimSpace(body))
	if err != nil || sum.Settled != "1200000000" || sum.Pending != "0" || sum.LedgerError != "" {
		t.Fatalf("status %+v %v", sum, err)
	}
	// An answer nobody waits for is refused.
	if code, _ := post("/v1/payment/commit", payment.CommitResponse{Channel: sum.Channel}); code != http.StatusBadRequest && code != http.StatusConflict {
		t.Fatalf("stray answer: %d", code)
	}
}

// TestRelayTimesOut: a proxy that never answers makes the step fail (to
// be retried), not the intent.
func TestRelayTimesOut(t *testing.T) {
	e := newEnv(t, "1", defaultPolicy())
	relay := &payout.Relay{Wait: 50 * time.Millisecond}
	s := e.settler(relay)
	e.pay("2")
	if _, err := s.Step(context.Background()); err == nil || !strings.Contains(err.Error(), "has not co-signed") {
		t.Fatalf("step = %v", err)
	}
	if _, ok := relay.Pending(); ok {
		t.Fatal("a timed-out commit is still offered to the proxy")
	}
	if st := e.ledger.State(); st.Paused != "" {
		t.Fatalf("paused: %s", st.Paused)
	}
}
