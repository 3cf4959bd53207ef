package server

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/chrysalis-cc/chrysalis/agent/ratls"
	"github.com/chrysalis-cc/chrysalis/agent/rtmr"
)

// Handler returns the API mux.
func Handler(id *ratls.Identity, rec *rtmr.Recorder, tee string, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "tee": tee})
	})
	mux.HandleFunc("GET /v1/attestation", func(w http.ResponseWriter, r *http.Request) {
		var (
			b   []byte
			err error
		)
		if n := r.URL.Query().Get("nonce"); n != "" {
			b, err = id.Fresh(n)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
		} else if b, err = id.Current(); err != nil {
			log.Error("attestation", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "evidence unavailable"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		l, _, _, err := rec.Snapshot()
		if err != nil {
			log.Error("events", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "event log unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, l)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
