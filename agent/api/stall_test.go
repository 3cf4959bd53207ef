package api

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// silentEngine is the Engine side of an httptest server that plays an
// engine for the watchdog's tests; Recycle does what killing the process
// does to the API's connections: it breaks them.
type silentEngine struct {
	srv      *httptest.Server
	recycles atomic.Int32
	reason   atomic.Value
}

func (e *silentEngine) URL() string      { return e.srv.URL }
func (e *silentEngine) Restarts() uint64 { return 0 }
func (e *silentEngine) Recycle(reason error) bool {
	e.recycles.Add(1)
	e.reason.Store(reason.Error())
	e.srv.CloseClientConnections()
	return true
}

const streamChunk = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"tiny:latest\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n"

func stallAPI(t *testing.T, h http.HandlerFunc) (*API, *silentEngine) {
	e := &silentEngine{srv: httptest.NewServer(h)}
	t.Cleanup(e.srv.Close)
	a := newAPI(t, e, func(c *Config) { c.StallTimeout = 300 * time.Millisecond })
	return a, e
}

func serveChat(a *API, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("POST", PathChat, strings.NewReader(body)))
	return rec
}

func metricsText(a *API) string {
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", PathMetrics, nil))
	return rec.Body.String()
}

// An engine that never answers: the request fails with a 503 that says
// so, and the engine is recycled once.
func TestStallSilentEngine(t *testing.T) {
	a, e := stallAPI(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that the server notices the connection closing
		<-r.Context().Done()
	})
	t0 := time.Now()
	rec := serveChat(a, `{"model":"tiny:latest","messages":[{"role":"user","content":"x"}]}`)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "stalled (no output for 300ms)") {
		t.Fatalf("status %d, body %s: want 503 stalled with Retry-After", rec.Code, rec.Body)
	}
	if d := time.Since(t0); d < 300*time.Millisecond {
		t.Errorf("failed after %v, before the stall timeout", d)
	}
	if n := e.recycles.Load(); n != 1 {
		t.Errorf("%d recycles, want 1", n)
	}
	if r, _ := e.reason.Load().(string); !strings.Contains(r, "1 requests in flight") {
		t.Errorf("reason %q", r)
	}
	if m := metricsText(a); !strings.Contains(m, "chrysalis_engine_stalls_total 1\n") {
		t.Errorf("metrics:\n%s", m)
	}
}

// A stream that stops mid-way: the client's stream ends with an error
// event naming the stall, without [DONE] or a receipt.
func TestStallMidStream(t *testing.T) {
	a, e := stallAPI(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, streamChunk)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	rec := serveChat(a, `{"model":"tiny:latest","stream":true,"messages":[{"role":"user","content":"x"}]}`)
	ev := sseEvents(t, rec.Body.String())
	if len(ev) != 2 || !strings.Contains(ev[1].data, "stalled (no output for 300ms)") || !strings.Contains(ev[1].data, `"code":"engine_error"`) {
		t.Fatalf("events %+v: want a chunk, then an engine_error event naming the stall", ev)
	}
	if e.recycles.Load() != 1 {
		t.Errorf("%d recycles, want 1", e.recycles.Load())
	}
}

// Slow is not stalled: an engine that serves one request at a time,
// sending a chunk every 100 ms for 1 s each, with a second request
// queued inside it (silent for the whole first generation). Neither
// request is cut and nothing is recycled: the engine as a whole made
// progress.
func TestStallSlowEngineNotRecycled(t *testing.T) {
	var slot sync.Mutex
	a, e := stallAPI(t, func(w http.ResponseWriter, r *http.Request) {
		slot.Lock()
		defer slot.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		for range 10 {
			io.WriteString(w, streamChunk)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
		io.WriteString(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"tiny:latest\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	})
	var wg sync.WaitGroup
	out := make([]*httptest.ResponseRecorder, 2)
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = serveChat(a, `{"model":"tiny:latest","stream":true,"messages":[{"role":"user","content":"x"}]}`)
		}()
	}
	wg.Wait()
	for i, rec := range out {
		if rec.Code != 200 || !bytes.Contains(rec.Body.Bytes(), []byte("data: [DONE]")) || bytes.Contains(rec.Body.Bytes(), []byte("stalled")) {
			t.Errorf("request %d: status %d\n%s", i, rec.Code, rec.Body)
		}
	}
	if n := e.recycles.Load(); n != 0 {
		t.Errorf("%d recycles of a slow but live engine", n)
	}
}

// StallTimeout < 0 turns the watchdog off.
func TestStallOff(t *testing.T) {
	e := &silentEngine{srv: httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond)
		w.Write([]byte(`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`))
	}))}
	defer e.srv.Close()
	a := newAPI(t, e, func(c *Config) { c.StallTimeout = -1 })
	if rec := serveChat(a, `{"model":"tiny:latest","messages":[{"role":"user","content":"x"}]}`); rec.Code != 200 || e.recycles.Load() != 0 {
		t.Errorf("status %d, recycles %d", rec.Code, e.recycles.Load())
	}
}
