package verify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/evidence"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/quote/quotetest"
)

func TestCacheHitAndExpiry(t *testing.T) {
	e := newTDXEnv(t)
	k := mustKey(t)
	cert := certFor(t, k, e.bundle(t, k, tdxIssue{}))
	c := NewCache(8, time.Minute)
	r1, err := c.Certificate(cert, e.pol, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.Certificate(cert, e.pol, Options{Now: now.Add(30 * time.Second)})
	if err != nil || r2 != r1 {
		t.Fatalf("no cache hit: %v", err)
	}
	// Past the TTL: verified again (a fresh result).
	r3, err := c.Certificate(cert, e.pol, Options{Now: now.Add(2 * time.Minute)})
	if err != nil || r3 == r1 {
		t.Fatalf("expired entry served: %v", err)
	}
	// Another policy name is a miss, and is verified under that policy.
	dev, _ := PolicyByName(PolicyInsecureDev)
	if _, err := c.Certificate(cert, dev, Options{Now: now}); ReasonOf(err) != ReasonPolicy {
		t.Fatalf("cached result served under another policy: %v", err)
	}
	// Past the certificate's NotAfter, even within the TTL.
	long := NewCache(8, 100*24*time.Hour)
	if _, err := long.Certificate(cert, e.pol, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := long.Certificate(cert, e.pol, Options{Now: cert.NotAfter.Add(time.Second)}); ReasonOf(err) != ReasonCertificate {
		t.Fatalf("entry outlived its certificate: %v", err)
	}
}

func TestCacheNeverServesNonceBound(t *testing.T) {
	e := newTDXEnv(t)
	k := mustKey(t)
	cert := certFor(t, k, e.bundle(t, k, tdxIssue{nonce: "aa"}))
	c := NewCache(8, time.Hour)
	if _, err := c.Certificate(cert, e.pol, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 1 {
		t.Fatalf("%d entries", c.Len())
	}
	// The certificate is cached, but a nonce-bound check verifies anew.
	if _, err := c.Certificate(cert, e.pol, Options{Now: now, Nonce: "bb"}); ReasonOf(err) != ReasonNonce {
		t.Fatalf("nonce check served from the cache: %v", err)
	}
	c2 := NewCache(8, time.Hour)
	if _, err := c2.Certificate(cert, e.pol, Options{Now: now, Nonce: "aa"}); err != nil {
		t.Fatal(err)
	}
	if c2.Len() != 0 {
		t.Fatal("nonce-bound verification was stored")
	}
}

func TestCacheFailuresNotStoredAndLRU(t *testing.T) {
	e := newTDXEnv(t)
	c := NewCache(2, time.Hour)
	bad := issue(t, nil) // insecure-dev under a TDX policy
	if _, err := c.Certificate(bad, e.pol, Options{Now: now}); ReasonOf(err) != ReasonInsecureDev {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Fatal("failure cached")
	}
	var certs []*x509.Certificate
	for range 3 {
		k := mustKey(t)
		certs = append(certs, certFor(t, k, e.bundle(t, k, tdxIssue{})))
	}
	r0, _ := c.Certificate(certs[0], e.pol, Options{Now: now})
	c.Certificate(certs[1], e.pol, Options{Now: now})
	c.Certificate(certs[0], e.pol, Options{Now: now}) // 0 is now most recent
	c.Certificate(certs[2], e.pol, Options{Now: now}) // evicts 1
	if c.Len() != 2 {
		t.Fatalf("%d entries", c.Len())
	}
	if r, _ := c.Certificate(certs[0], e.pol, Options{Now: now}); r != r0 {
		t.Fatal("recently used entry evicted")
	}
}

func TestCacheConcurrent(t *testing.T) {
	e := newTDXEnv(t)
	var certs []*x509.Certificate
	for range 4 {
		k := mustKey(t)
		certs = append(certs, certFor(t, k, e.bundle(t, k, tdxIssue{})))
	}
	c := NewCache(3, time.Hour)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				if _, err := c.Certificate(certs[(i+j)%len(certs)], e.pol, Options{Now: now}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if c.Len() > 3 {
		t.Fatalf("%d entries, bound is 3", c.Len())
	}
}

// devIdentity is an insecure-dev RA-TLS identity as the agent issues it.
func devIdentity(t testing.TB, instance string) tls.Certificate {
	t.Helper()
	key := mustKey(t)
	spki, _ := evidence.SPKI(key.Public())
	var l event.Log
	ce, err := event.New(event.NameConfig, 1, guest.MeasuredConfig{Instance: instance, Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	l.Append(ce)
	mr, _ := l.Replay()
	c := evidence.Claims{TLSKeySHA256: evidence.SPKIHash(spki), IssuedAt: now.Unix(), Instance: instance, Model: "m"}
	rd, _ := evidence.ReportData(spki, c)
	b := &evidence.Bundle{Version: evidence.Version, Type: evidence.TypeInsecureDev, ReportData: rd[:], Claims: c,
		EventLog: l, RTMR3: mr, RTMR3Source: evidence.RTMR3Software}
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	der, err := evidence.NewCertificate(key, enc, instance, now)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// handshake runs a TLS handshake over a pipe and returns both errors.
func handshake(t *testing.T, srvCfg, cliCfg *tls.Config) (srvErr, cliErr error) {
	t.Helper()
	// Loopback TCP, not net.Pipe: its buffering lets either side send an
	// alert without the other reading.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := tls.Server(a, srvCfg)
	cli := tls.Client(b, cliCfg)
	done := make(chan error, 1)
	go func() {
		err := srv.HandshakeContext(ctx)
		if err != nil {
			a.Close()
		}
		done <- err
	}()
	cliErr = cli.HandshakeContext(ctx)
	if cliErr != nil {
		b.Close()
	}
	srvErr = <-done
	if cliErr == nil && srvErr != nil {
		// TLS 1.3: the server's verdict on the client certificate reaches
		// the client after its own handshake has finished.
		_ = cli.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := cli.Read(make([]byte, 1)); err != nil {
			cliErr = err
		}
	}
	return srvErr, cliErr
}

func TestMutualRATLS(t *testing.T) {
	dev, _ := PolicyByName(PolicyInsecureDev)
	srvID, cliID := devIdentity(t, "server"), devIdentity(t, "client")
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &srvID, nil }
	cache := NewCache(16, time.Hour)
	var srvSaw, cliSaw *Result
	srvCfg := ServerConfigMutual(getCert, dev, Options{Now: now}, cache, func(r *Result) { srvSaw = r })
	cliCfg := CachedClientConfig(dev, Options{Now: now}, nil, func(r *Result) { cliSaw = r })
	cliCfg.Certificates = []tls.Certificate{cliID}
	srvErr, cliErr := handshake(t, srvCfg, cliCfg)
	if srvErr != nil || cliErr != nil {
		t.Fatalf("server: %v; client: %v", srvErr, cliErr)
	}
	if srvSaw == nil || srvSaw.Config.Instance != "client" || cliSaw == nil || cliSaw.Config.Instance != "server" {
		t.Fatalf("server saw %+v, client saw %+v", srvSaw, cliSaw)
	}
	// The server's handler gets the client's result again from the cache.
	leaf, _ := x509.ParseCertificate(cliID.Certificate[0])
	if r, err := cache.Certificate(leaf, dev, Options{Now: now}); err != nil || r != srvSaw {
		t.Fatalf("cache: %v", err)
	}

	t.Run("client without certificate", func(t *testing.T) {
		cli := CachedClientConfig(dev, Options{Now: now}, nil, nil)
		srvErr, _ := handshake(t, srvCfg, cli)
		if srvErr == nil {
			t.Fatal("server accepted a client without a certificate")
		}
	})
	t.Run("server refuses insecure-dev client under a strict policy", func(t *testing.T) {
		strict := Policy{Name: "strict"}
		srv := ServerConfigMutual(getCert, strict, Options{Now: now}, nil, nil)
		srvErr, _ := handshake(t, srv, cliCfg)
		if ReasonOf(srvErr) != ReasonInsecureDev {
			t.Fatalf("server: %v", srvErr)
		}
	})
	t.Run("client refuses insecure-dev server under a strict policy", func(t *testing.T) {
		cli := CachedClientConfig(Policy{Name: "strict"}, Options{Now: now}, nil, nil)
		cli.Certificates = []tls.Certificate{cliID}
		_, cliErr := handshake(t, srvCfg, cli)
		if ReasonOf(cliErr) != ReasonInsecureDev {
			t.Fatalf("client: %v", cliErr)
		}
	})
	t.Run("TLS 1.2 refused", func(t *testing.T) {
		cli := CachedClientConfig(dev, Options{Now: now}, nil, nil)
		cli.MinVersion, cli.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		cli.Certificates = []tls.Certificate{cliID}
		if srvErr, cliErr := handshake(t, srvCfg, cli); srvErr == nil || cliErr == nil {
			t.Fatal("TLS 1.2 handshake succeeded")
		}
	})
}

// benchEnvs are the TDX policies the benchmarks verify under: without
// collateral (TCB status Unknown admitted) and with collateral read from
// the offline cache directory on every verification (UpToDate required).
func benchEnvs(b *testing.B) []struct {
	name string
	env  *tdxEnv
} {
	h := quotetest.NewHierarchy(b)
	return []struct {
		name string
		env  *tdxEnv
	}{
		{"unknown-tcb", newTDXEnv(b)},
		{"offline-collateral", newCollateralEnv(b, h, h.CollateralDir(nil), "", "tdx-collateral")},
	}
}

// BenchmarkVerifyTDXCertificate is a full verification of an RA-TLS
// certificate carrying a v4 TDX quote: certificate, bundle, REPORTDATA
// binding, event log replay, quote (PCK chain, QE report, signature,
// go-tdx-guest cross-check), collateral where the policy has it, image
// allowlist.
func BenchmarkVerifyTDXCertificate(b *testing.B) {
	for _, bc := range benchEnvs(b) {
		b.Run(bc.name, func(b *testing.B) {
			e := bc.env
			k := mustKey(b)
			cert := certFor(b, k, e.bundle(b, k, tdxIssue{}))
			res, err := Certificate(cert, e.pol, Options{Now: now})
			if err != nil {
				b.Fatal(err)
			}
			want := "Unknown"
			if e.pol.Quote.Collateral != nil {
				want = "UpToDate"
			}
			if got := res.Measurements["TCB status"]; got != want {
				b.Fatalf("TCB status %q, want %q", got, want)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Certificate(cert, e.pol, Options{Now: now}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCacheHit is a verification served by the cache.
func BenchmarkCacheHit(b *testing.B) {
	for _, bc := range benchEnvs(b) {
		b.Run(bc.name, func(b *testing.B) {
			e := bc.env
			k := mustKey(b)
			cert := certFor(b, k, e.bundle(b, k, tdxIssue{}))
			c := NewCache(1024, time.Hour)
			first, err := c.Certificate(cert, e.pol, Options{Now: now})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if r, err := c.Certificate(cert, e.pol, Options{Now: now}); err != nil || r != first {
					b.Fatalf("not a cache hit: %v", err)
				}
			}
		})
	}
}
