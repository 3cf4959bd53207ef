package api

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
)

// Histogram buckets (seconds).
var (
	durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	ttftBuckets     = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
)

type histogram struct {
	le     []float64
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      uint64
}

func newHistogram(le []float64) *histogram {
	return &histogram{le: le, counts: make([]uint64, len(le)+1)}
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.le, v) // first bucket with le >= v
	h.counts[i]++
	h.sum += v
	h.n++
}

type reqKey struct{ endpoint, code string }

// metrics holds the API's counters; the gauges are read at exposition.
type metrics struct {
	mu        sync.Mutex
	requests  map[reqKey]uint64
	tokensIn  uint64
	tokensOut uint64
	duration  map[string]*histogram // by endpoint
	ttft      map[string]*histogram
}

func newMetrics() *metrics {
	return &metrics{requests: map[reqKey]uint64{}, duration: map[string]*histogram{}, ttft: map[string]*histogram{}}
}

func (m *metrics) request(endpoint string, code int, seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[reqKey{endpoint, strconv.Itoa(code)}]++
	h := m.duration[endpoint]
	if h == nil {
		h = newHistogram(durationBuckets)
		m.duration[endpoint] = h
	}
	h.observe(seconds)
}

func (m *metrics) firstToken(endpoint string, seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.ttft[endpoint]
	if h == nil {
		h = newHistogram(ttftBuckets)
		m.ttft[endpoint] = h
	}
	h.observe(seconds)
}

func (m *metrics) tokens(in, out uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokensIn += in
	m.tokensOut += out
}

// gauges are read from the API and the engine at exposition time.
type gauges struct {
	queue, inflight  int
	restarts, stalls uint64
	up               bool
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// write renders the Prometheus text exposition format 0.0.4: families in
// a fixed order, series sorted by label values.
func (m *metrics) write(w io.Writer, g gauges) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b bytes.Buffer
	family := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	family("chrysalis_requests_total", "counter", "API requests answered, by endpoint and HTTP status code (499: the client went away).")
	keys := make([]reqKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].endpoint != keys[j].endpoint {
			return keys[i].endpoint < keys[j].endpoint
		}
		return keys[i].code < keys[j].code
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "chrysalis_requests_total{endpoint=%q,code=%q} %d\n", k.endpoint, k.code, m.requests[k])
	}
	family("chrysalis_tokens_total", "counter", "Tokens the engine accounted for served requests, by direction (in: prompt, out: completion).")
	fmt.Fprintf(&b, "chrysalis_tokens_total{direction=\"in\"} %d\n", m.tokensIn)
	fmt.Fprintf(&b, "chrysalis_tokens_total{direction=\"out\"} %d\n", m.tokensOut)
	hist := func(name, help string, hs map[string]*histogram) {
		family(name, "histogram", help)
		eps := make([]string, 0, len(hs))
		for e := range hs {
			eps = append(eps, e)
		}
		sort.Strings(eps)
		for _, e := range eps {
			h := hs[e]
			var cum uint64
			for i, le := range h.le {
				cum += h.counts[i]
				fmt.Fprintf(&b, "%s_bucket{endpoint=%q,le=%q} %d\n", name, e, fmtFloat(le), cum)
			}
			fmt.Fprintf(&b, "%s_bucket{endpoint=%q,le=\"+Inf\"} %d\n", name, e, h.n)
			fmt.Fprintf(&b, "%s_sum{endpoint=%q} %s\n", name, e, fmtFloat(h.sum))
			fmt.Fprintf(&b, "%s_count{endpoint=%q} %d\n", name, e, h.n)
		}
	}
	hist("chrysalis_request_duration_seconds", "Time from receiving a request to its last byte, by endpoint.", m.duration)
	hist("chrysalis_ttft_seconds", "Time from receiving a streaming request to its first content chunk, by endpoint.", m.ttft)
	family("chrysalis_queue_depth", "gauge", "Requests waiting for a concurrency slot.")
	fmt.Fprintf(&b, "chrysalis_queue_depth %d\n", g.queue)
	family("chrysalis_inflight", "gauge", "Requests holding a concurrency slot.")
	fmt.Fprintf(&b, "chrysalis_inflight %d\n", g.inflight)
	family("chrysalis_engine_restarts_total", "counter", "Engine restarts after a crash, failed health checks or a stall.")
	fmt.Fprintf(&b, "chrysalis_engine_restarts_total %d\n", g.restarts)
	family("chrysalis_engine_stalls_total", "counter", "Times the API found the engine silent for the stall timeout with requests in flight, and had it recycled.")
	fmt.Fprintf(&b, "chrysalis_engine_stalls_total %d\n", g.stalls)
	family("chrysalis_engine_up", "gauge", "1 while the engine is healthy, 0 while it is starting or restarting.")
	up := 0
	if g.up {
		up = 1
	}
	fmt.Fprintf(&b, "chrysalis_engine_up %d\n", up)
	_, err := w.Write(b.Bytes())
	return err
}
