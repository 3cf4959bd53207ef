package api

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// The stall watchdog. An engine can stop making progress without
// crashing or failing its health check: ollama 0.17.4 sometimes never
// frees the slot of a request whose client went away, and every later
// request then waits for ever while /api/version still answers. The API
// sees what the health check cannot: requests in flight to the engine
// and when the engine last sent any byte to any of them. Each request
// in flight arms a timer; when it fires and the engine as a whole has
// been silent for StallTimeout, the API recycles the engine (once per
// stall: the silence clock restarts), and the requests, whose engine
// connections the kill breaks, fail with a stall error.

// watch is one request's part in the watchdog.
type watch struct {
	a      *API
	t      *time.Timer
	stall  uint64 // a.stalls when the request began
	closed atomic.Bool
}

// watch registers a request in flight to the engine.
func (a *API) watch() *watch {
	w := &watch{a: a, stall: a.stalls.Load()}
	if a.upInflight.Add(1) == 1 {
		a.progress() // the engine's silence counts from its first request
	}
	if d := a.cfg.StallTimeout; d > 0 {
		w.t = time.AfterFunc(d, w.check)
	}
	return w
}

// done unregisters the request.
func (w *watch) done() {
	w.closed.Store(true)
	if w.t != nil {
		w.t.Stop()
	}
	w.a.upInflight.Add(-1)
}

// stalled reports whether the engine was recycled for a stall while this
// request was in flight.
func (w *watch) stalled() bool { return w.a.stalls.Load() != w.stall }

func (a *API) now() int64 { return int64(time.Since(a.epoch0)) }

// progress records a byte from the engine.
func (a *API) progress() { a.lastByte.Store(a.now()) }

// check runs when the request's timer fires: recycle the engine if it has
// been silent for StallTimeout, else re-arm for the rest of the window.
func (w *watch) check() {
	if w.closed.Load() {
		return
	}
	a, d := w.a, w.a.cfg.StallTimeout
	last := a.lastByte.Load()
	silent := time.Duration(a.now() - last)
	if silent < d {
		w.t.Reset(d - silent)
		return
	}
	// One recycle per stall: the request that wins the swap does it and
	// restarts the silence clock, the others re-arm.
	if !a.lastByte.CompareAndSwap(last, a.now()) {
		w.t.Reset(d)
		return
	}
	n := a.upInflight.Load()
	a.stalls.Add(1)
	reason := fmt.Errorf("no output for %s with %d requests in flight", silent.Round(time.Millisecond), n)
	a.cfg.Log.Error("engine stalled", "silent", silent, "inflight", n)
	a.cfg.Engine.Recycle(reason)
	w.t.Reset(d)
}

// body wraps an engine response body so that every byte read counts as
// the engine's progress.
func (w *watch) body(rc io.ReadCloser) io.ReadCloser { return &progressBody{rc, w.a} }

type progressBody struct {
	io.ReadCloser
	a *API
}

func (p *progressBody) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	if n > 0 {
		p.a.progress()
	}
	return n, err
}
