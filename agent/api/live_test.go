package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/agent/api/engine"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/models/ollama"
)

// liveEngine starts the real engine: ollama from CHRYSALIS_TEST_ENGINE
// on the store in CHRYSALIS_TEST_STORE (DIR/store of `chrysalis model
// testmodel --out DIR`) serving CHRYSALIS_TEST_MODEL (default: the test
// model), warmed (model loaded) by the supervisor, and returns it with
// the model it serves.
func liveEngine(t testing.TB) (*engine.Supervisor, string) {
	bin, store, model := os.Getenv("CHRYSALIS_TEST_ENGINE"), os.Getenv("CHRYSALIS_TEST_STORE"), os.Getenv("CHRYSALIS_TEST_MODEL")
	if bin == "" {
		t.Skip("real engine tests: set CHRYSALIS_TEST_ENGINE (the ollama binary; ci/engine.sh prints it) and optionally CHRYSALIS_TEST_STORE and CHRYSALIS_TEST_MODEL (a model store and its model; default: the catalog's test model)")
	}
	if store == "" {
		dir := filepath.Join(t.TempDir(), "model")
		if _, err := ollama.WriteTestModelDir(dir, bin); err != nil {
			t.Fatal(err)
		}
		store = filepath.Join(dir, ollama.StoreDir)
	}
	if model == "" {
		model = ollama.TestModelName + ":latest"
	}
	var out io.Writer
	if testing.Verbose() {
		out = os.Stderr
	}
	s, err := engine.NewSupervisor(engine.Config{
		Adapter: engine.Ollama{Binary: bin, Models: store, Home: t.TempDir(), Model: model},
		Output:  out, MinBackoff: 100 * time.Millisecond, HealthInterval: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.URL() + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ml struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ml); err != nil || len(ml.Data) != 1 || ml.Data[0].ID != model {
		t.Fatalf("engine /v1/models: %v %+v, want only %s", err, ml, model)
	}
	return s, model
}

func liveAPI(t testing.TB, mod func(*Config)) (*API, *engine.Supervisor, *httptest.Server) {
	s, model := liveEngine(t)
	a := newAPI(t, s, func(c *Config) {
		c.Model = model
		c.MaxTokens = 4096
		if mod != nil {
			mod(c)
		}
	})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, s, srv
}

func chatBody(model string, maxTokens int, stream, usage bool) string {
	b := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hello"}],"max_tokens":%d,"temperature":0`, model, maxTokens)
	if stream {
		b += `,"stream":true`
		if usage {
			b += `,"stream_options":{"include_usage":true}`
		}
	}
	return b + "}"
}

func post(t testing.TB, url, body, id string) *http.Response {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.Header.Set(HeaderRequestID, id)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func verify(t testing.TB, sr payment.SignedReceipt, a *API) {
	t.Helper()
	ch, _ := payment.ParseChannelAddress(testChannel)
	if err := payment.VerifyReceipt(sr, a.cfg.Signer.(*KeySigner).Public(), ch); err != nil {
		t.Fatal(err)
	}
}

func TestLiveChat(t *testing.T) {
	a, _, srv := liveAPI(t, nil)
	resp := post(t, srv.URL+PathChat, chatBody(a.cfg.Model, 8, false, false), "req-live-1")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(HeaderRequestID) != "req-live-1" {
		t.Fatalf("status %d, id %q: %s", resp.StatusCode, resp.Header.Get(HeaderRequestID), body)
	}
	var c struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
		Usage usage `json:"usage"`
	}
	if err := json.Unmarshal(body, &c); err != nil || len(c.Choices) != 1 || c.Choices[0].Message.Content == "" {
		t.Fatalf("completion %s: %v", body, err)
	}
	sr := decodeReceiptHeader(t, resp.Header.Get(HeaderReceipt))
	verify(t, sr, a)
	if sr.Receipt.TokensIn != c.Usage.PromptTokens || sr.Receipt.TokensOut != c.Usage.CompletionTokens || c.Usage.CompletionTokens == 0 || c.Usage.CompletionTokens > 8 {
		t.Errorf("receipt %+v, usage %+v", sr.Receipt, c.Usage)
	}
	if want := sha256hex("req-live-1"); sr.Receipt.RequestID != want {
		t.Errorf("receipt request id %s, want %s", sr.Receipt.RequestID, want)
	}

	for _, wantUsage := range []bool{false, true} {
		resp := post(t, srv.URL+PathChat, chatBody(a.cfg.Model, 20, true, wantUsage), "")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ev := sseEvents(t, string(b))
		n := len(ev)
		if n < 4 || ev[n-2].data != "[DONE]" || ev[n-1].event != ReceiptEvent {
			t.Fatalf("stream (include_usage %v) does not end with [DONE] and the receipt:\n%s", wantUsage, b)
		}
		sr, err := payment.DecodeSignedReceipt([]byte(ev[n-1].data))
		if err != nil {
			t.Fatal(err)
		}
		verify(t, sr, a)
		if sr.Receipt.RequestID != sha256hex(resp.Header.Get(HeaderRequestID)) {
			t.Error("receipt does not hash the returned request id")
		}
		var last chunk
		json.Unmarshal([]byte(ev[n-3].data), &last)
		gotUsage := last.Usage != nil && len(last.Choices) == 0
		if gotUsage != wantUsage {
			t.Errorf("include_usage %v: usage chunk %v (%s)", wantUsage, gotUsage, ev[n-3].data)
		}
		if gotUsage && (last.Usage.PromptTokens != sr.Receipt.TokensIn || last.Usage.CompletionTokens != sr.Receipt.TokensOut) {
			t.Errorf("usage %+v vs receipt %+v", last.Usage, sr.Receipt)
		}
		if sr.Receipt.TokensOut == 0 || sr.Receipt.TokensOut > 20 {
			t.Errorf("tokens out %d", sr.Receipt.TokensOut)
		}
	}

	resp = post(t, srv.URL+PathCompletions, fmt.Sprintf(`{"model":%q,"prompt":"abc","max_tokens":5,"stream":true}`, a.cfg.Model), "")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ev := sseEvents(t, string(b))
	if n := len(ev); n < 3 || ev[n-2].data != "[DONE]" || ev[n-1].event != ReceiptEvent {
		t.Fatalf("completion stream:\n%s", b)
	}
	resp = post(t, srv.URL+PathCompletions, fmt.Sprintf(`{"model":%q,"prompt":"abc","max_tokens":5}`, a.cfg.Model), "")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	verify(t, decodeReceiptHeader(t, resp.Header.Get(HeaderReceipt)), a)

	var m bytes.Buffer
	a.m.write(&m, gauges{})
	if !strings.Contains(m.String(), `chrysalis_requests_total{endpoint="/v1/chat/completions",code="200"} 3`) ||
		!strings.Contains(m.String(), `chrysalis_ttft_seconds_count{endpoint="/v1/chat/completions"} 2`) {
		t.Errorf("metrics:\n%s", m.String())
	}
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// firstChunk opens a stream through the API and returns once the first
// chunk arrived.
func firstChunk(t *testing.T, ctx context.Context, url, body string) (*http.Response, *bufio.Reader) {
	req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before a chunk: %v", err)
		}
		if strings.HasPrefix(l, "data: ") {
			return resp, br
		}
	}
}

// TestLiveCancel: a client that goes away frees the engine at once. The
// engine runs one request at a time (OLLAMA_NUM_PARALLEL 1), so a
// request sent after the cancel is served in a fraction of the cancelled
// generation's full time. About once in 16 runs ollama 0.17.4 never
// frees the cancelled request's slot (and still answers its health
// check): then the stall watchdog must recycle it, the waiting request
// must fail with a 503 that says so, and a retry must be served by the
// restarted engine.
func TestLiveCancel(t *testing.T) {
	a, s, srv := liveAPI(t, func(c *Config) { c.StallTimeout = 5 * time.Second })
	long := chatBody(a.cfg.Model, 3000, true, false)
	t0 := time.Now()
	resp := post(t, srv.URL+PathChat, long, "")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	full := time.Since(t0)

	ctx, cancel := context.WithCancel(context.Background())
	resp, _ = firstChunk(t, ctx, srv.URL+PathChat, long)
	cancel()
	resp.Body.Close()
	t1 := time.Now()
	short := chatBody(a.cfg.Model, 2, false, false)
	// Bounded, so that a watchdog that fails to act fails the test
	// instead of hanging it.
	client := &http.Client{Timeout: 90 * time.Second}
	send := func() (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+PathChat, strings.NewReader(short))
		req.Header.Set("Content-Type", "application/json")
		r, err := client.Do(req)
		if err != nil {
			t.Fatalf("request after the cancel: %v", err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		return r.StatusCode, string(b)
	}
	code, body := send()
	next := time.Since(t1)
	switch {
	case code == 200:
		t.Logf("full 3000-token generation %v; a request after the cancel served in %v", full, next)
		if next > full/3 {
			t.Errorf("after the cancel the engine took %v, the full generation takes %v: the cancel did not reach it", next, full)
		}
		if a.stalls.Load() != 0 || s.Restarts() != 0 {
			t.Errorf("served, yet %d stalls and %d restarts", a.stalls.Load(), s.Restarts())
		}
	case code == 503 && strings.Contains(body, "stalled") && a.stalls.Load() == 1:
		t.Logf("the engine stalled after the cancel (ollama 0.17.4, ~1/16 runs): recycled after %v", next)
		waitReady(t, s)
		if code, body = send(); code != 200 || s.Restarts() != 1 {
			t.Errorf("after the recycle: status %d (%s), restarts %d; want 200, 1", code, body, s.Restarts())
		}
	default:
		t.Fatalf("request after the cancel: status %d after %v: %s", code, next, body)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(a.sem) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var m bytes.Buffer
	a.m.write(&m, gauges{})
	if !strings.Contains(m.String(), `code="499"} 1`) {
		t.Errorf("cancelled request not counted as 499:\n%s", m.String())
	}
}

// waitReady waits for the (re)started engine.
func waitReady(t *testing.T, s *engine.Supervisor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLiveStall reproduces the failure the health check cannot see: the
// model runner (ollama's child process) stops mid-stream (SIGSTOP) while
// `ollama serve` keeps answering /api/version. The watchdog recycles the
// engine after StallTimeout; the client's stream ends with an error
// event naming the stall; the restarted engine serves the next request.
func TestLiveStall(t *testing.T) {
	a, s, srv := liveAPI(t, func(c *Config) { c.StallTimeout = 2 * time.Second })
	resp, br := firstChunk(t, context.Background(), srv.URL+PathChat, chatBody(a.cfg.Model, 3000, true, false))
	defer resp.Body.Close()
	runners := children(t, s.PID())
	if len(runners) == 0 {
		t.Fatalf("ollama (pid %d) has no runner process", s.PID())
	}
	for _, pid := range runners {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := http.Get(s.URL() + "/api/version"); err != nil || r.StatusCode != 200 {
		t.Fatalf("the engine's health check should still pass with its runner stopped: %v", err)
	} else {
		r.Body.Close()
	}
	rest, _ := io.ReadAll(br)
	ev := sseEvents(t, string(rest))
	if n := len(ev); n == 0 || !strings.Contains(ev[n-1].data, "stalled (no output for 2s)") {
		t.Fatalf("stream of the stalled engine does not end with a stall error:\n%.2000s", rest)
	}
	waitReady(t, s)
	r := post(t, srv.URL+PathChat, chatBody(a.cfg.Model, 2, false, false), "")
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || s.Restarts() != 1 || a.stalls.Load() != 1 {
		t.Errorf("after the recycle: status %d, restarts %d, stalls %d; want 200, 1, 1", r.StatusCode, s.Restarts(), a.stalls.Load())
	}
	for _, pid := range runners {
		if st := procState(pid); st != "" && st != "Z" {
			t.Errorf("stopped runner %d survived the recycle (state %s)", pid, st)
		}
	}
}

// procState is the state letter of a process ("" when it is gone, "Z"
// for a zombie not yet reaped).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	var st string
	fmt.Sscanf(string(b[bytes.LastIndexByte(b, ')')+1:]), " %s", &st)
	return st
}

// children lists the processes whose parent is pid.
func children(t *testing.T, pid int) []int {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(b[bytes.LastIndexByte(b, ')')+1:])
		var state string
		var ppid, self int
		if _, err := fmt.Sscanf(rest, " %s %d", &state, &ppid); err != nil || ppid != pid || state == "Z" {
			continue
		}
		fmt.Sscanf(filepath.Base(filepath.Dir(f)), "%d", &self)
		out = append(out, self)
	}
	return out
}

// TestLiveCrash kills the engine mid-stream: the client gets an error
// event and no [DONE] nor receipt, requests get 503 while it restarts,
// and it serves again after one counted restart.
func TestLiveCrash(t *testing.T) {
	a, s, srv := liveAPI(t, nil)
	resp, br := firstChunk(t, context.Background(), srv.URL+PathChat, chatBody(a.cfg.Model, 3000, true, false))
	if err := syscall.Kill(-s.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	ev := sseEvents(t, string(rest))
	if n := len(ev); n == 0 || !strings.Contains(ev[n-1].data, `"code":"engine_error"`) {
		t.Fatalf("stream after the crash does not end with an error event:\n%s", rest)
	}
	if strings.Contains(string(rest), "[DONE]") || strings.Contains(string(rest), ReceiptEvent) {
		t.Error("crashed stream got [DONE] or a receipt")
	}
	r := post(t, srv.URL+PathChat, chatBody(a.cfg.Model, 2, false, false), "")
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if r.StatusCode != 503 || r.Header.Get("Retry-After") == "" {
		t.Errorf("during restart: status %d, want 503 with Retry-After", r.StatusCode)
	}
	// The supervisor notices the exit asynchronously: wait for the
	// restarted engine (a new process, counted), not for the old URL.
	for deadline := time.Now().Add(60 * time.Second); !(s.Restarts() >= 1 && s.Ready()); {
		if time.Now().After(deadline) {
			t.Fatalf("engine not restarted: restarts %d, ready %v, err %v", s.Restarts(), s.Ready(), s.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
	r = post(t, srv.URL+PathChat, chatBody(a.cfg.Model, 2, false, false), "")
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || s.Restarts() != 1 {
		t.Errorf("after restart: status %d, restarts %d; want 200, 1", r.StatusCode, s.Restarts())
	}
	mr, err := http.Get(srv.URL + PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mr.Body)
	mr.Body.Close()
	for _, want := range []string{"chrysalis_engine_restarts_total 1\n", "chrysalis_engine_up 1\n", `code="502"} 1`, `code="503"} 1`} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %q:\n%s", want, mb)
		}
	}
}

// Benchmarks: the engine called directly against the same call through
// the API (plain HTTP on loopback, both).

func benchTarget(b *testing.B, direct bool) (string, *API) {
	a, s, srv := liveAPI(b, func(c *Config) { c.MaxConcurrent, c.QueueDepth = 64, 64 })
	if direct {
		return s.URL(), a
	}
	return srv.URL, a
}

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true}}

// do makes one request and counts its data chunks; it panics on failure
// (it runs on benchmark goroutines, where b.Fatal must not be called).
func do(url, body string) (time.Duration, int) {
	t0 := time.Now()
	resp, err := benchClient.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	n := 0
	br := bufio.NewReader(resp.Body)
	for {
		l, err := br.ReadSlice('\n')
		if bytes.HasPrefix(l, []byte("data: {")) {
			n++
		}
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		panic(fmt.Sprintf("POST %s: status %d", url, resp.StatusCode))
	}
	return time.Since(t0), n
}

func p50(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

func BenchmarkNonStream(b *testing.B) {
	for _, mode := range []string{"direct", "api"} {
		b.Run(mode, func(b *testing.B) {
			url, a := benchTarget(b, mode == "direct")
			body := chatBody(a.cfg.Model, 1, false, false)
			var lat []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d, _ := do(url+PathChat, body)
				lat = append(lat, d)
			}
			b.ReportMetric(float64(p50(lat).Microseconds()), "p50-µs")
		})
	}
}

func BenchmarkStream(b *testing.B) {
	for _, mode := range []string{"direct", "api"} {
		b.Run(mode, func(b *testing.B) {
			url, a := benchTarget(b, mode == "direct")
			body := chatBody(a.cfg.Model, 200, true, false)
			var lat []time.Duration
			tokens := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d, n := do(url+PathChat, body)
				lat = append(lat, d)
				tokens += n
			}
			b.ReportMetric(float64(p50(lat).Microseconds()), "p50-µs")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(tokens), "µs/chunk")
		})
	}
}

func BenchmarkConcurrent64(b *testing.B) {
	for _, mode := range []string{"direct", "api"} {
		b.Run(mode, func(b *testing.B) {
			url, a := benchTarget(b, mode == "direct")
			body := chatBody(a.cfg.Model, 100, true, false)
			var mu sync.Mutex
			tokens := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var wg sync.WaitGroup
				for j := 0; j < 64; j++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, n := do(url+PathChat, body)
						mu.Lock()
						tokens += n
						mu.Unlock()
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "chunks/s")
		})
	}
}
