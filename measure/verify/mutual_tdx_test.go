package verify

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/quote/quotetest"
)

// mutualTDX is a proxy and a worker, each running its own signed image in
// a TD on platforms under one (generated) PCK hierarchy, with collateral
// in an offline cache directory. workers is the proxy's policy (it admits
// the worker image), proxies the worker's (it admits the proxy image).
type mutualTDX struct {
	h                 *quotetest.Hierarchy
	workers, proxies  *tdxEnv
	workerID, proxyID tls.Certificate
}

func newMutualTDX(t testing.TB) *mutualTDX {
	h := quotetest.NewHierarchy(t)
	dir := h.CollateralDir(nil)
	m := &mutualTDX{h: h,
		workers: newCollateralEnv(t, h, dir, "worker image ", "tdx-workers"),
		proxies: newCollateralEnv(t, h, dir, "proxy image ", "tdx-proxies"),
	}
	m.workerID = m.workers.identity(t, tdxIssue{instance: "worker-1"})
	m.proxyID = m.proxies.identity(t, tdxIssue{instance: "proxy-1"})
	return m
}

func staticServerCert(c tls.Certificate) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &c, nil }
}

func staticClientCert(c tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
}

// results records the verified peers (the callbacks run on handshake
// goroutines).
type results struct {
	mu  sync.Mutex
	got []*Result
}

func (r *results) add(res *Result) { r.mu.Lock(); r.got = append(r.got, res); r.mu.Unlock() }

func (r *results) only(t *testing.T) *Result {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) != 1 {
		t.Fatalf("%d verified peers, want 1", len(r.got))
	}
	return r.got[0]
}

// TestMutualRATLSTDX: a proxy and a worker both present TDX RA-TLS
// certificates (quotes under the generated hierarchy, judged with
// collateral) over a real TLS 1.3 connection, and each verifies the other
// under its own policy.
func TestMutualRATLSTDX(t *testing.T) {
	m := newMutualTDX(t)
	opts := Options{Now: now}
	var workerSaw, proxySaw results
	cache := NewCache(16, time.Hour)
	srv := ServerConfigMutual(staticServerCert(m.workerID), m.proxies.pol, opts, cache, workerSaw.add)
	cli := ClientConfigMutual(staticClientCert(m.proxyID), m.workers.pol, opts, nil, proxySaw.add)
	if srvErr, cliErr := handshake(t, srv, cli); srvErr != nil || cliErr != nil {
		t.Fatalf("worker: %v; proxy: %v", srvErr, cliErr)
	}
	for _, c := range []struct {
		side, instance string
		res            *Result
		env            *tdxEnv
	}{{"worker saw", "proxy-1", workerSaw.only(t), m.proxies}, {"proxy saw", "worker-1", proxySaw.only(t), m.workers}} {
		r := c.res
		if r.Config.Instance != c.instance || r.Measurements["TCB status"] != "UpToDate" || r.Policy != c.env.pol.Name ||
			!strings.HasPrefix(r.Measurements["image hash"], c.env.shape.ImageHash.String()) {
			t.Fatalf("%s: instance %q, policy %q, measurements %v", c.side, r.Config.Instance, r.Policy, r.Measurements)
		}
	}
	// The worker's handler finds the proxy's result in the cache.
	if r, err := cache.Certificate(m.proxyID.Leaf, m.proxies.pol, opts); err != nil || r != workerSaw.only(t) {
		t.Fatalf("cache: %v", err)
	}

	t.Run("proxy image not in the worker's allowlist", func(t *testing.T) {
		// The worker admits only worker images: the proxy's quote is
		// genuine but its image is not allowed.
		srv := ServerConfigMutual(staticServerCert(m.workerID), m.workers.pol, opts, nil, nil)
		srvErr, cliErr := handshake(t, srv, cli)
		wantReason(t, srvErr, ReasonImageNotAllowed, `not in policy "tdx-workers"'s allowlist`)
		if cliErr == nil {
			t.Fatal("the proxy did not learn that the worker refused it")
		}
	})
	t.Run("proxy TCB OutOfDate", func(t *testing.T) {
		stale := m.proxies.identity(t, tdxIssue{instance: "proxy-2", body: func(b *quotetest.Body) { b.TeeTcbSvn = quotetest.TeeTcbSvnOutOfDate }})
		cli := ClientConfigMutual(staticClientCert(stale), m.workers.pol, opts, nil, nil)
		srvErr, _ := handshake(t, srv, cli)
		wantReason(t, srvErr, ReasonTCBStatus, `platform TCB status is "OutOfDate"`)
	})
	t.Run("proxy quote under an untrusted hierarchy", func(t *testing.T) {
		forged := m.proxies.identity(t, tdxIssue{instance: "proxy-3", h: quotetest.NewHierarchy(t)})
		cli := ClientConfigMutual(staticClientCert(forged), m.workers.pol, opts, nil, nil)
		srvErr, _ := handshake(t, srv, cli)
		wantReason(t, srvErr, ReasonQuoteSignature, "pck_chain")
	})
	t.Run("worker image not in the proxy's allowlist", func(t *testing.T) {
		cli := ClientConfigMutual(staticClientCert(m.proxyID), m.proxies.pol, opts, nil, nil)
		_, cliErr := handshake(t, srv, cli)
		wantReason(t, cliErr, ReasonImageNotAllowed, `not in policy "tdx-proxies"'s allowlist`)
	})
	t.Run("proxy without a certificate", func(t *testing.T) {
		none := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return nil, nil }
		srvErr, cliErr := handshake(t, srv, ClientConfigMutual(none, m.workers.pol, opts, nil, nil))
		if srvErr == nil || cliErr == nil || !strings.Contains(cliErr.Error(), "no certificate to present") {
			t.Fatalf("worker: %v; proxy: %v", srvErr, cliErr)
		}
	})
}

// BenchmarkMutualHandshakeTDX is one full mutual RA-TLS handshake over
// loopback: both sides verify the other's TDX evidence with collateral
// from the offline cache (no verification cache), or both use a warm
// verification cache.
func BenchmarkMutualHandshakeTDX(b *testing.B) {
	m := newMutualTDX(b)
	opts := Options{Now: now}
	for _, bc := range []struct {
		name       string
		srvC, cliC *Cache
	}{{"no-cache", nil, nil}, {"cache-hit", NewCache(16, time.Hour), NewCache(16, time.Hour)}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := ServerConfigMutual(staticServerCert(m.workerID), m.proxies.pol, opts, bc.srvC, nil)
			cli := ClientConfigMutual(staticClientCert(m.proxyID), m.workers.pol, opts, bc.cliC, nil)
			for b.Loop() {
				if err := pipeHandshake(srv, cli); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// pipeHandshake runs both sides of a handshake over net.Pipe and returns
// the first error (for benchmarks of the success path).
func pipeHandshake(srvCfg, cliCfg *tls.Config) error {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tls.Server(a, srvCfg).HandshakeContext(ctx) }()
	cliErr := tls.Client(b, cliCfg).HandshakeContext(ctx)
	if cliErr != nil {
		b.Close()
	}
	if srvErr := <-done; srvErr != nil {
		return fmt.Errorf("server: %w", srvErr)
	}
	if cliErr != nil {
		return fmt.Errorf("client: %w", cliErr)
	}
	return nil
}
