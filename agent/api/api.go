package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

// Engine is the upstream the API forwards to (engine.Supervisor).
type Engine interface {
	// URL is the engine's base URL while it is healthy, "" otherwise.
	URL() string
	// Restarts counts engine restarts.
	Restarts() uint64
	// Recycle kills a stalled engine so that it is restarted; false when
	// no engine process runs.
	Recycle(reason error) bool
}

// Config configures the API. Zero values take the defaults below.
type Config struct {
	Engine Engine
	// Model is the one model served: requests must name it exactly, and
	// it is forwarded to the engine unchanged.
	Model string
	// MaxConcurrent requests are forwarded at once; up to QueueDepth more
	// wait (at most QueueTimeout) for a slot; beyond that, 429.
	MaxConcurrent int
	QueueDepth    int
	QueueTimeout  time.Duration
	// MaxBody bounds a request body in bytes (413 beyond).
	MaxBody int64
	// MaxTokens caps max_tokens and is the default when a request gives
	// none (0: no cap, the engine's default).
	MaxTokens int
	// Signer signs a receipt for every served request (nil: none).
	Signer Signer
	Prices Prices
	Log    *slog.Logger
	// Now is the clock of receipts (time.Now when nil).
	Now func() time.Time
	// Transport reaches the engine (a dedicated loopback transport when nil).
	Transport http.RoundTripper
	// StallTimeout: when requests are in flight to the engine and none of
	// them has received a byte (headers or body) for this long, the engine
	// is stalled: the API has it recycled (Engine.Recycle), and the
	// requests fail with 503 (or an error event once streaming). It is the
	// engine as a whole that must make progress, so requests queued inside
	// the engine behind a running generation do not count as stalled; the
	// engine is warmed (model loaded) before it counts as ready, so a cold
	// start is not a stall either. 0: DefaultStallTimeout; negative: off.
	StallTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultMaxConcurrent = 64
	DefaultQueueDepth    = 256
	DefaultQueueTimeout  = 60 * time.Second
	DefaultStallTimeout  = 120 * time.Second
	DefaultMaxBody       = 1 << 20
	// MaxResponse bounds a non-streaming engine response.
	MaxResponse = 64 << 20
)

// Response headers and SSE event of the receipt protocol.
const (
	HeaderRequestID = "X-Request-Id"
	HeaderReceipt   = "X-Chrysalis-Receipt"
	ReceiptEvent    = "chrysalis.receipt"
)

// Endpoints served.
const (
	PathChat        = "/v1/chat/completions"
	PathCompletions = "/v1/completions"
	PathModels      = "/v1/models"
	PathMetrics     = "/metrics"
)

// Paths lists the paths to mount the API on.
var Paths = []string{PathChat, PathCompletions, PathModels, PathMetrics}

// API is the OpenAI-compatible HTTP handler.
type API struct {
	cfg     Config
	client  *http.Client
	mux     *http.ServeMux
	sem     chan struct{}
	waiting atomic.Int64
	m       *metrics
	started int64
	// Engine progress, for the stall watchdog (stall.go).
	upInflight atomic.Int64 // requests waiting on or reading from the engine
	lastByte   atomic.Int64 // monotonic nanoseconds since epoch0 of the last engine byte
	stalls     atomic.Uint64
	epoch0     time.Time
}

// New checks cfg and returns the handler of Paths.
func New(cfg Config) (*API, error) {
	if cfg.Engine == nil {
		return nil, errors.New("api: no engine")
	}
	if cfg.Model == "" {
		return nil, errors.New("api: no model name")
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.QueueDepth < 0 {
		return nil, fmt.Errorf("api: queue depth %d is negative", cfg.QueueDepth)
	}
	if cfg.QueueDepth == 0 {
		cfg.QueueDepth = DefaultQueueDepth
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = DefaultQueueTimeout
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxTokens < 0 {
		return nil, fmt.Errorf("api: max tokens %d is negative", cfg.MaxTokens)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Transport == nil {
		cfg.Transport = &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        cfg.MaxConcurrent * 2,
			MaxIdleConnsPerHost: cfg.MaxConcurrent * 2,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}
	}
	a := &API{
		cfg:     cfg,
		client:  &http.Client{Transport: cfg.Transport},
		mux:     http.NewServeMux(),
		sem:     make(chan struct{}, cfg.MaxConcurrent),
		m:       newMetrics(),
		started: cfg.Now().Unix(),
		epoch0:  time.Now(),
	}
	a.mux.HandleFunc(PathChat, a.completion(PathChat, a.parseChat))
	a.mux.HandleFunc(PathCompletions, a.completion(PathCompletions, a.parseCompletion))
	a.mux.HandleFunc(PathModels, a.models)
	a.mux.HandleFunc(PathMetrics, a.metrics)
	return a, nil
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *API) models(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Type: typeInvalid, Message: fmt.Sprintf("%s %s: use GET", r.Method, PathModels)})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"object": "list",
		"data":   []any{map[string]any{"id": a.cfg.Model, "object": "model", "created": a.started, "owned_by": "chrysalis"}},
	})
}

func (a *API) metrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Type: typeInvalid, Message: fmt.Sprintf("%s %s: use GET", r.Method, PathMetrics)})
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	a.m.write(w, gauges{
		queue:    int(a.waiting.Load()),
		inflight: len(a.sem),
		restarts: a.cfg.Engine.Restarts(),
		stalls:   a.stalls.Load(),
		up:       a.cfg.Engine.URL() != "",
	})
}

// acquire takes a concurrency slot, waiting in the bounded queue.
func (a *API) acquire(ctx context.Context) *Error {
	select {
	case a.sem <- struct{}{}:
		return nil
	default:
	}
	if a.waiting.Add(1) > int64(a.cfg.QueueDepth) {
		a.waiting.Add(-1)
		return &Error{Status: http.StatusTooManyRequests, Type: typeRate, Code: codeRate, RetryAfter: 1,
			Message: fmt.Sprintf("all %d slots are busy and %d requests are queued; retry later", a.cfg.MaxConcurrent, a.cfg.QueueDepth)}
	}
	defer a.waiting.Add(-1)
	t := time.NewTimer(a.cfg.QueueTimeout)
	defer t.Stop()
	select {
	case a.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return &Error{Status: statusClientGone, Type: typeInvalid, Message: "client went away while queued"}
	case <-t.C:
		return &Error{Status: http.StatusServiceUnavailable, Type: typeServer, Code: codeQueueWait, RetryAfter: 1,
			Message: fmt.Sprintf("no slot freed within %s; retry later", a.cfg.QueueTimeout)}
	}
}

func (a *API) release() { <-a.sem }

// statusClientGone is recorded (never sent) for requests whose client
// disconnected, as nginx does.
const statusClientGone = 499

var requestIDRE = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)

// requestID takes the client's X-Request-Id or makes one.
func requestID(r *http.Request) (string, *Error) {
	id := r.Header.Get(HeaderRequestID)
	if id == "" {
		var b [16]byte
		rand.Read(b[:])
		return "req-" + hex.EncodeToString(b[:]), nil
	}
	if !requestIDRE.MatchString(id) {
		return "", invalid("", fmt.Sprintf("header %s: want 1-128 printable ASCII characters without spaces", HeaderRequestID))
	}
	return id, nil
}

// completion serves one of the two completion endpoints.
func (a *API) completion(endpoint string, parse func(*http.Request) (*request, *Error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code := a.serve(endpoint, w, r, start, parse)
		a.m.request(endpoint, code, time.Since(start).Seconds())
	}
}

func (a *API) serve(endpoint string, w http.ResponseWriter, r *http.Request, start time.Time, parse func(*http.Request) (*request, *Error)) int {
	fail := func(e *Error) int {
		if e.Status != statusClientGone {
			writeError(w, e)
		}
		return e.Status
	}
	if r.Method != http.MethodPost {
		return fail(&Error{Status: http.StatusMethodNotAllowed, Type: typeInvalid, Message: fmt.Sprintf("%s %s: use POST", r.Method, endpoint)})
	}
	id, e := requestID(r)
	if e != nil {
		return fail(e)
	}
	w.Header().Set(HeaderRequestID, id)
	req, e := parse(r)
	if e != nil {
		return fail(e)
	}
	if a.cfg.Engine.URL() == "" {
		return fail(engineDown())
	}
	if e := a.acquire(r.Context()); e != nil {
		return fail(e)
	}
	defer a.release()
	base := a.cfg.Engine.URL()
	if base == "" {
		return fail(engineDown())
	}
	up, err := http.NewRequestWithContext(r.Context(), http.MethodPost, base+endpoint, bytesReader(req.upstream))
	if err != nil {
		return fail(&Error{Status: http.StatusInternalServerError, Type: typeServer, Message: err.Error()})
	}
	up.Header.Set("Content-Type", "application/json")
	w8 := a.watch()
	defer w8.done()
	resp, err := a.client.Do(up)
	if err != nil {
		if r.Context().Err() != nil {
			return statusClientGone
		}
		a.cfg.Log.Warn("engine request failed", "endpoint", endpoint, "request_id", id, "err", err)
		if w8.stalled() {
			return fail(engineStalled(a.cfg.StallTimeout))
		}
		return fail(engineDown())
	}
	a.progress()
	resp.Body = w8.body(resp.Body)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail(upstreamError(resp))
	}
	if req.stream {
		return a.stream(endpoint, w, r, resp, req, id, start, w8)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil || len(body) > MaxResponse {
		if r.Context().Err() != nil {
			return statusClientGone
		}
		if w8.stalled() {
			return fail(engineStalled(a.cfg.StallTimeout))
		}
		return fail(&Error{Status: http.StatusBadGateway, Type: typeServer, Code: codeEngineErr,
			Message: fmt.Sprintf("the engine's response broke off: %v", err)})
	}
	var u struct {
		Usage *usage `json:"usage"`
	}
	if err := json.Unmarshal(body, &u); err != nil {
		return fail(&Error{Status: http.StatusBadGateway, Type: typeServer, Code: codeEngineErr,
			Message: fmt.Sprintf("the engine's response is not JSON: %v", err)})
	}
	if u.Usage != nil {
		a.m.tokens(u.Usage.PromptTokens, u.Usage.CompletionTokens)
		if s := a.receipt(id, *u.Usage); s != nil {
			w.Header().Set(HeaderReceipt, base64.StdEncoding.EncodeToString(s))
		}
	} else {
		a.cfg.Log.Warn("engine gave no usage: no receipt", "endpoint", endpoint, "request_id", id)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	return http.StatusOK
}

func engineStalled(d time.Duration) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Type: typeServer, Code: codeEngine, RetryAfter: 1,
		Message: fmt.Sprintf("the inference engine stalled (no output for %s) and is being restarted; retry later", d)}
}

func engineDown() *Error {
	return &Error{Status: http.StatusServiceUnavailable, Type: typeServer, Code: codeEngine, RetryAfter: 1,
		Message: "the inference engine is starting or restarting; retry later"}
}

// upstreamError turns an engine's error answer into ours: its message,
// with 4xx kept and anything else reported as 502.
func upstreamError(resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	msg := ""
	if json.Unmarshal(b, &e) == nil {
		msg = e.Error.Message
	}
	if msg == "" {
		msg = fmt.Sprintf("engine answered %s", resp.Status)
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusNotFound {
		return &Error{Status: resp.StatusCode, Type: typeInvalid, Message: "engine: " + msg}
	}
	return &Error{Status: http.StatusBadGateway, Type: typeServer, Code: codeEngineErr, Message: "engine: " + msg}
}

// usage is the engine's own token accounting.
type usage struct {
	PromptTokens     uint64 `json:"prompt_tokens"`
	CompletionTokens uint64 `json:"completion_tokens"`
}

// receipt signs the receipt of a served request and returns its
// canonical JSON, or nil (logged) without a signer or on failure.
func (a *API) receipt(id string, u usage) []byte {
	if a.cfg.Signer == nil {
		return nil
	}
	rc, err := a.receiptFor(id, u.PromptTokens, u.CompletionTokens)
	if err == nil {
		var sr payment.SignedReceipt
		if sr, err = a.cfg.Signer.Sign(rc); err == nil {
			var b []byte
			if b, err = canon.Marshal(sr); err == nil {
				return b
			}
		}
	}
	a.cfg.Log.Error("receipt", "request_id", id, "err", err)
	return nil
}
