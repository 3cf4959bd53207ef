package payout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

// Relay is the CoSigner for a proxy that reaches the worker over RA-TLS:
// the worker is the server, so a commit waiting for the proxy's signature
// is parked here until the proxy fetches it (GET /v1/payment/commit) and
// answers (POST /v1/payment/commit). CoSign gives up after Wait; the
// settler then retries on a later step (it is not a refusal).
type Relay struct {
	Wait time.Duration

	mu      sync.Mutex
	pending *payment.CommitRequest
	reply   chan payment.CommitResponse
}

// ErrNoPending is returned for an answer when no commit is waiting.
var ErrNoPending = errors.New("no commit is waiting for a co-signature")

// CoSign implements CoSigner.
func (r *Relay) CoSign(ctx context.Context, req payment.CommitRequest) (payment.CommitResponse, error) {
	ch := make(chan payment.CommitResponse, 1)
	r.mu.Lock()
	r.pending, r.reply = &req, ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.reply == ch {
			r.pending, r.reply = nil, nil
		}
		r.mu.Unlock()
	}()
	wait := r.Wait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case resp := <-ch:
		return resp, nil
	case <-t.C:
		return payment.CommitResponse{}, fmt.Errorf("the proxy has not co-signed the commit within %s", wait)
	case <-ctx.Done():
		return payment.CommitResponse{}, ctx.Err()
	}
}

// Pending returns the commit waiting for the proxy, if any.
func (r *Relay) Pending() (payment.CommitRequest, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		return payment.CommitRequest{}, false
	}
	return *r.pending, true
}

// Answer hands the proxy's co-signature to the waiting CoSign call. Its
// validity is checked by the settler (CommitResponse.Complete), which
// refuses a signature that is not the proxy's over exactly this commit.
func (r *Relay) Answer(resp payment.CommitResponse) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		return ErrNoPending
	}
	if resp.Channel != r.pending.Channel {
		return fmt.Errorf("the answer is for channel %s, the waiting commit for %s", resp.Channel, r.pending.Channel)
	}
	r.reply <- resp
	r.pending, r.reply = nil, nil
	return nil
}

// Handler serves the proxy-facing payment endpoints (mount it on the
// RA-TLS server; every payload is signed, so no client authentication is
// needed beyond the proxy's own verification of the worker):
//
//	POST /v1/payment/state   a PaymentState → 200 {"seqno","earned_nanoton","commit_waiting"}; 409 if not accepted
//	GET  /v1/payment/commit  the CommitRequest waiting for the proxy → 200, or 204
//	POST /v1/payment/commit  the proxy's CommitResponse → 202; 409 if nothing waits
//	GET  /v1/payment/status  the ledger Summary (payment.Summary)
func Handler(l *Ledger, relay *Relay, now func() time.Time, log *slog.Logger) http.Handler {
	if now == nil {
		now = time.Now
	}
	mux := http.NewServeMux()
	read := func(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, payment.MaxMessage))
		if err != nil {
			writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes or unreadable: %v", payment.MaxMessage, err))
			return nil, false
		}
		return b, true
	}
	mux.HandleFunc("POST /v1/payment/state", func(w http.ResponseWriter, r *http.Request) {
		b, ok := read(w, r)
		if !ok {
			return
		}
		ps, err := payment.DecodePaymentState(b)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		s, err := l.Accept(ps, now().Unix())
		if err != nil {
			log.Warn("payment state refused", "err", err)
			writeErr(w, http.StatusConflict, err)
			return
		}
		_, waiting := relay.Pending()
		writeJSONBody(w, http.StatusOK, map[string]any{"seqno": s.State.Data.Seqno, "earned_nanoton": s.State.Data.Sent.String(), "commit_waiting": waiting})
	})
	mux.HandleFunc("GET /v1/payment/commit", func(w http.ResponseWriter, r *http.Request) {
		req, ok := relay.Pending()
		if !ok {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSONBody(w, http.StatusOK, req)
	})
	mux.HandleFunc("POST /v1/payment/commit", func(w http.ResponseWriter, r *http.Request) {
		b, ok := read(w, r)
		if !ok {
			return
		}
		resp, err := payment.DecodeCommitResponse(b)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		if err := relay.Answer(resp); err != nil {
			writeErr(w, http.StatusConflict, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /v1/payment/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSONBody(w, http.StatusOK, l.Summary())
	})
	return mux
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSONBody(w, code, map[string]string{"error": err.Error()})
}

func writeJSONBody(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
