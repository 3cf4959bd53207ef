package ocsp_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/chrysalis-cc/chrysalis/measure/gpu/ocsp"
	"github.com/chrysalis-cc/chrysalis/measure/gpu/ocsp/ocsptest"
)

// pki is a test hierarchy shaped like NVIDIA's Hopper device chain: the
// caller's chain is leaf-first without the root, the root is pinned.
type pki struct {
	root, identity, prov, brom, leaf *ocsptest.Authority
	chain                            []*x509.Certificate
	resp                             *ocsptest.Responder
	srv                              *httptest.Server
}

// newPKI builds the hierarchy and a responder for it. With delegated, each
// issuer signs responses through its own id-kp-OCSPSigning certificate;
// otherwise each issuer signs with its own key.
func newPKI(t testing.TB, delegated bool) *pki {
	t.Helper()
	must := func(a *ocsptest.Authority, err error) *ocsptest.Authority {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	p := &pki{}
	p.root = must(ocsptest.NewRoot("NVIDIA Device Identity CA"))
	p.identity = must(p.root.NewCA("NVIDIA GH100 Identity"))
	p.prov = must(p.identity.NewCA("NVIDIA GH100 Provisioner ICA 1"))
	p.brom = must(p.prov.NewCA("GH100 A01 GSP BROM"))
	p.leaf = must(p.brom.NewLeaf("GH100 A01 GSP FMC LF"))
	p.chain = []*x509.Certificate{p.leaf.Cert, p.brom.Cert, p.prov.Cert, p.identity.Cert}
	r, err := ocsptest.NewResponder()
	if err != nil {
		t.Fatal(err)
	}
	for _, issuer := range []*ocsptest.Authority{p.prov, p.identity, p.root} {
		var d *ocsptest.Authority
		if delegated {
			d = must(issuer.NewResponder(issuer.Cert.Subject.CommonName + " OCSP"))
		}
		if err := r.AddIssuer(issuer, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []*ocsptest.Authority{p.brom, p.prov, p.identity} {
		r.Set(a.Cert.SerialNumber, ocsptest.Answer{Status: xocsp.Good})
	}
	p.resp = r
	p.srv = httptest.NewServer(r)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pki) checker(policy ocsp.Policy) *ocsp.Checker {
	return &ocsp.Checker{URL: p.srv.URL, Client: p.srv.Client(), Policy: policy, Timeout: 5 * time.Second}
}

func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/"
}

func TestPolicyMatrix(t *testing.T) {
	revokedAt := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	type want struct {
		status  string // the target's Result.Status under require and soft-fail
		nonce   bool   // the target's NonceMatched
		require string // substring of the CheckChain error, "" for none
		soft    string
	}
	cases := []struct {
		name      string
		answer    ocsptest.Answer
		down      bool // responder port closed: every certificate is affected
		allowHold bool
		want      want
	}{
		{"good", ocsptest.Answer{Status: xocsp.Good}, false, false,
			want{ocsp.StatusGood, true, "", ""}},
		{"revoked", ocsptest.Answer{Status: xocsp.Revoked, RevokedAt: revokedAt, Reason: xocsp.KeyCompromise}, false, false,
			want{ocsp.StatusRevoked, true, "revoked since 2025-03-01T12:00:00Z (keyCompromise)", "revoked since 2025-03-01T12:00:00Z (keyCompromise)"}},
		{"hold", ocsptest.Answer{Status: xocsp.Revoked, RevokedAt: revokedAt, Reason: xocsp.CertificateHold}, false, false,
			want{ocsp.StatusRevoked, true, "(certificateHold)", "(certificateHold)"}},
		{"hold allowed", ocsptest.Answer{Status: xocsp.Revoked, RevokedAt: revokedAt, Reason: xocsp.CertificateHold}, false, true,
			want{ocsp.StatusRevoked, true, "", ""}},
		{"unknown", ocsptest.Answer{Status: xocsp.Unknown}, false, false,
			want{ocsp.StatusUnknown, true, "status unknown (policy require)", ""}},
		{"responder down", ocsptest.Answer{Status: xocsp.Good}, true, false,
			want{ocsp.StatusUnknown, false, "responder unreachable", ""}},
		{"http 500", ocsptest.Answer{Status: xocsp.Good, Fault: ocsptest.HTTP500}, false, false,
			want{ocsp.StatusUnknown, false, "answered HTTP 500", ""}},
		{"try later", ocsptest.Answer{Status: xocsp.Good, Fault: ocsptest.TryLater}, false, false,
			want{ocsp.StatusUnknown, false, "responder gave no status", ""}},
		{"nonce missing", ocsptest.Answer{Status: xocsp.Good, Fault: ocsptest.NonceMissing}, false, false,
			want{ocsp.StatusGood, false, "response carries no nonce", ""}},
		{"nonce wrong", ocsptest.Answer{Status: xocsp.Good, Fault: ocsptest.NonceWrong}, false, false,
			want{ocsp.StatusError, false, "does not match request nonce", ""}},
		{"revoked replayed with wrong nonce", ocsptest.Answer{Status: xocsp.Revoked, RevokedAt: revokedAt, Fault: ocsptest.NonceWrong}, false, false,
			want{ocsp.StatusError, false, "(signed status revoked)", ""}},
		{"bad signature", ocsptest.Answer{Status: xocsp.Good, Fault: ocsptest.BadSignature}, false, false,
			want{ocsp.StatusError, false, "signature", ""}},
		{"expired NextUpdate", ocsptest.Answer{Status: xocsp.Good, Fault: ocsptest.Expired}, false, false,
			want{ocsp.StatusError, true, "response expired", ""}},
		{"ThisUpdate in the future", ocsptest.Answer{Status: xocsp.Good, Fault: ocsptest.FutureThisUpdate}, false, false,
			want{ocsp.StatusError, true, "ThisUpdate", ""}},
		{"responder cert not chained", ocsptest.Answer{Status: xocsp.Good, Fault: ocsptest.ForeignSigner}, false, false,
			want{ocsp.StatusError, false, "not issued by", ""}},
		{"responder cert without OCSPSigning", ocsptest.Answer{Status: xocsp.Good, Fault: ocsptest.NoOCSPSigningEKU}, false, false,
			want{ocsp.StatusError, false, "id-kp-OCSPSigning", ""}},
		{"CertID for another serial", ocsptest.Answer{Status: xocsp.Good, Fault: ocsptest.WrongSerial}, false, false,
			want{ocsp.StatusError, false, "not serial", ""}},
	}
	for _, mode := range []struct {
		name      string
		delegated bool
	}{{"delegated", true}, {"issuer-signed", false}} {
		p := newPKI(t, mode.delegated)
		target := p.prov.Cert
		subject := target.Subject.String()
		for _, tc := range cases {
			for _, policy := range []ocsp.Policy{ocsp.Require, ocsp.SoftFail, ocsp.Off} {
				t.Run(mode.name+"/"+tc.name+"/"+string(policy), func(t *testing.T) {
					p.resp.Set(target.SerialNumber, tc.answer)
					defer p.resp.Set(target.SerialNumber, ocsptest.Answer{Status: xocsp.Good})
					c := p.checker(policy)
					c.AllowHold = tc.allowHold
					if tc.down {
						c.URL, c.Client = closedURL(t), nil
					}
					before := p.resp.Requests()
					res, err := c.CheckChain(context.Background(), p.chain, p.root.Cert)
					if len(res) != len(p.chain) {
						t.Fatalf("got %d results, want %d (err %v)", len(res), len(p.chain), err)
					}
					for i, r := range res {
						if r.Subject != p.chain[i].Subject.String() {
							t.Errorf("result %d is for %q, want %q", i, r.Subject, p.chain[i].Subject.String())
						}
					}
					if res[0].Status != ocsp.StatusSkipped {
						t.Errorf("leaf status %q, want skipped", res[0].Status)
					}
					if policy == ocsp.Off {
						if err != nil {
							t.Fatalf("policy off: %v", err)
						}
						for i, r := range res {
							if r.Status != ocsp.StatusSkipped || r.Err != nil {
								t.Errorf("policy off: result %d = %+v, want skipped", i, r)
							}
						}
						if n := p.resp.Requests() - before; n != 0 {
							t.Errorf("policy off sent %d requests", n)
						}
						return
					}
					got := res[2]
					if got.Status != tc.want.status || got.NonceMatched != tc.want.nonce {
						t.Errorf("target: status %q nonce %v (err %v), want %q nonce %v",
							got.Status, got.NonceMatched, got.Err, tc.want.status, tc.want.nonce)
					}
					if (got.Err != nil) != (got.Status == ocsp.StatusError || tc.down || tc.answer.Fault == ocsptest.HTTP500 ||
						tc.answer.Fault == ocsptest.TryLater) {
						t.Errorf("target Err = %v with status %q", got.Err, got.Status)
					}
					if got.Status == ocsp.StatusRevoked && (!got.RevokedAt.Equal(revokedAt) || got.Reason != tc.answer.Reason) {
						t.Errorf("revoked at %v reason %d, want %v reason %d", got.RevokedAt, got.Reason, revokedAt, tc.answer.Reason)
					}
					if got.Status == ocsp.StatusGood && (got.ThisUpdate.IsZero() || got.NextUpdate.IsZero()) {
						t.Errorf("good result without ThisUpdate/NextUpdate: %+v", got)
					}
					if !tc.down {
						for _, i := range []int{1, 3} {
							if res[i].Status != ocsp.StatusGood || !res[i].NonceMatched || res[i].Err != nil {
								t.Errorf("untouched certificate %d: %+v", i, res[i])
							}
						}
					}
					wantErr := tc.want.require
					if policy == ocsp.SoftFail {
						wantErr = tc.want.soft
					}
					switch {
					case wantErr == "" && err != nil:
						t.Fatalf("unexpected error: %v", err)
					case wantErr != "" && err == nil:
						t.Fatalf("no error, want one containing %q", wantErr)
					case wantErr != "":
						if !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), subject) {
							t.Fatalf("error %q does not contain %q and the subject %q", err, wantErr, subject)
						}
						if jerr := c.Judge(got); jerr == nil {
							t.Fatal("Judge accepts the target's result that failed the chain")
						}
					}
				})
			}
		}
	}
}

func TestTimeoutIsUnknown(t *testing.T) {
	p := newPKI(t, true)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)
	for _, policy := range []ocsp.Policy{ocsp.Require, ocsp.SoftFail} {
		c := &ocsp.Checker{URL: slow.URL, Policy: policy, Timeout: 50 * time.Millisecond}
		start := time.Now()
		res, err := c.CheckChain(context.Background(), p.chain, p.root.Cert)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: took %v with a 50ms timeout", policy, d)
		}
		for _, r := range res[1:] {
			if r.Status != ocsp.StatusUnknown || !errors.Is(r.Err, context.DeadlineExceeded) {
				t.Errorf("%s: %q: status %q err %v, want unknown with deadline exceeded", policy, r.Subject, r.Status, r.Err)
			}
		}
		if (err != nil) != (policy == ocsp.Require) {
			t.Errorf("%s: error %v", policy, err)
		}
	}
}

func TestBearerToken(t *testing.T) {
	p := newPKI(t, true)
	p.resp.Token = "ngc-key"
	c := p.checker(ocsp.Require)
	if _, err := c.CheckChain(context.Background(), p.chain, p.root.Cert); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("without token: %v, want HTTP 401", err)
	}
	c.Token = "ngc-key"
	if _, err := c.CheckChain(context.Background(), p.chain, p.root.Cert); err != nil {
		t.Fatalf("with token: %v", err)
	}
}

func TestWrongRoot(t *testing.T) {
	p := newPKI(t, true)
	other, err := ocsptest.NewRoot("NVIDIA Device Identity CA")
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.checker(ocsp.Require).CheckChain(context.Background(), p.chain, other.Cert)
	if err == nil {
		t.Fatal("responses chained to another root accepted")
	}
	for _, r := range res[1:3] {
		if r.Status != ocsp.StatusError || !strings.Contains(r.Err.Error(), "does not chain to root") {
			t.Errorf("%q: status %q (%v), want error", r.Subject, r.Status, r.Err)
		}
	}
	// The responder knows no issuer with the other root's key.
	if r := res[3]; r.Status != ocsp.StatusUnknown || !strings.Contains(r.Err.Error(), "unauthorized") {
		t.Errorf("%q: status %q (%v), want unknown (unauthorized)", r.Subject, r.Status, r.Err)
	}
}

func TestCheckChainArguments(t *testing.T) {
	p := newPKI(t, true)
	c := p.checker(ocsp.Require)
	if _, err := c.CheckChain(context.Background(), nil, p.root.Cert); err == nil {
		t.Error("empty chain accepted")
	}
	if _, err := c.CheckChain(context.Background(), p.chain, nil); err == nil {
		t.Error("nil root accepted")
	}
	if _, err := c.CheckChain(context.Background(), []*x509.Certificate{p.leaf.Cert, nil}, p.root.Cert); err == nil {
		t.Error("nil certificate accepted")
	}
	bad := p.checker("sometimes")
	if _, err := bad.CheckChain(context.Background(), p.chain, p.root.Cert); err == nil || !strings.Contains(err.Error(), `"sometimes"`) {
		t.Errorf("unknown policy: %v", err)
	}
	// The zero Policy is Require.
	p.resp.Set(p.brom.Cert.SerialNumber, ocsptest.Answer{Status: xocsp.Unknown})
	zero := p.checker("")
	if _, err := zero.CheckChain(context.Background(), p.chain, p.root.Cert); err == nil {
		t.Error("zero policy accepted an unknown status")
	}
	// A chain of only the leaf asks nothing.
	before := p.resp.Requests()
	res, err := c.CheckChain(context.Background(), p.chain[:1], p.root.Cert)
	if err != nil || len(res) != 1 || res[0].Status != ocsp.StatusSkipped || p.resp.Requests() != before {
		t.Errorf("leaf-only chain: %+v, %v", res, err)
	}
}

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ocsp.Policy
		ok   bool
	}{
		{"require", ocsp.Require, true},
		{"soft-fail", ocsp.SoftFail, true},
		{"off", ocsp.Off, true},
		{"", "", false},
		{"Require", "", false},
		{"softfail", "", false},
	} {
		got, err := ocsp.ParsePolicy(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParsePolicy(%q) = %q, %v", tc.in, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), `"`+tc.in+`"`) {
			t.Errorf("error %q does not name the input", err)
		}
	}
}

// clock is a settable time source shared by responder and checker.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestCache(t *testing.T) {
	for _, tc := range []struct {
		name     string
		validity time.Duration // responder NextUpdate − ThisUpdate
		ttl      time.Duration
		hit, mis time.Duration // still cached after hit, expired after mis
	}{
		// ThisUpdate is one minute before the fetch.
		{"NextUpdate first", 10 * time.Minute, time.Hour, 9 * time.Minute, 10*time.Minute + time.Second},
		{"TTL first", 24 * time.Hour, 3 * time.Minute, 90 * time.Second, 2*time.Minute + time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPKI(t, true)
			clk := &clock{t: time.Now()}
			p.resp.Now, p.resp.Validity = clk.Now, tc.validity
			c := p.checker(ocsp.Require)
			c.Now, c.Cache = clk.Now, ocsp.NewCache(tc.ttl)
			ctx := context.Background()
			res, err := c.CheckChain(ctx, p.chain, p.root.Cert)
			if err != nil {
				t.Fatal(err)
			}
			if n := p.resp.Requests(); n != 3 || c.Cache.Len() != 3 {
				t.Fatalf("first pass: %d requests, %d cached, want 3 and 3", n, c.Cache.Len())
			}
			for _, r := range res[1:] {
				if r.Cached {
					t.Errorf("fresh result marked cached: %+v", r)
				}
			}
			clk.Add(tc.hit)
			res, err = c.CheckChain(ctx, p.chain, p.root.Cert)
			if err != nil {
				t.Fatal(err)
			}
			if n := p.resp.Requests(); n != 3 {
				t.Fatalf("cached pass sent %d requests in all, want 3", n)
			}
			for i, r := range res[1:] {
				if !r.Cached || !r.NonceMatched || r.Status != ocsp.StatusGood || r.Subject != p.chain[i+1].Subject.String() {
					t.Errorf("cached result %+v", r)
				}
			}
			clk.Add(tc.mis - tc.hit)
			res, err = c.CheckChain(ctx, p.chain, p.root.Cert)
			if err != nil {
				t.Fatal(err)
			}
			if n := p.resp.Requests(); n != 6 {
				t.Fatalf("after expiry: %d requests in all, want 6", n)
			}
			for _, r := range res[1:] {
				if r.Cached {
					t.Errorf("expired entry reused: %+v", r)
				}
			}
		})
	}
}

func TestCacheKeepsOnlyVerifiedNonceResponses(t *testing.T) {
	p := newPKI(t, true)
	c := p.checker(ocsp.SoftFail)
	c.Cache = &ocsp.Cache{}
	p.resp.Set(p.brom.Cert.SerialNumber, ocsptest.Answer{Status: xocsp.Good, Fault: ocsptest.NonceMissing})
	p.resp.Set(p.prov.Cert.SerialNumber, ocsptest.Answer{Status: xocsp.Good, Fault: ocsptest.BadSignature})
	if _, err := c.CheckChain(context.Background(), p.chain, p.root.Cert); err != nil {
		t.Fatal(err)
	}
	if n := c.Cache.Len(); n != 1 {
		t.Fatalf("%d entries cached, want 1 (only the verified response with nonce)", n)
	}
	// A cached revocation is reused and still fails.
	p.resp.Set(p.identity.Cert.SerialNumber, ocsptest.Answer{Status: xocsp.Revoked, RevokedAt: time.Now().Add(-time.Hour)})
	c.Cache = &ocsp.Cache{}
	for range 2 {
		res, err := c.CheckChain(context.Background(), p.chain, p.root.Cert)
		if err == nil || res[3].Status != ocsp.StatusRevoked {
			t.Fatalf("revoked identity: %v %+v", err, res[3])
		}
	}
	if r := c.Check(context.Background(), p.identity.Cert, p.root.Cert, p.root.Cert); !r.Cached || r.Status != ocsp.StatusRevoked {
		t.Errorf("revocation was not cached: %+v", r)
	}
}

func TestCacheConcurrent(t *testing.T) {
	p := newPKI(t, false)
	c := p.checker(ocsp.Require)
	c.Cache = ocsp.NewCache(time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if _, err := c.CheckChain(context.Background(), p.chain, p.root.Cert); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// 8 goroutines × 5 passes × 3 certificates; only first misses may race.
	if n := p.resp.Requests(); n < 3 || n > 24 {
		t.Fatalf("%d requests for 120 checks, want 3..24", n)
	}
}

func TestCheckDeeperIntermediates(t *testing.T) {
	p := newPKI(t, true)
	c := p.checker(ocsp.Require)
	// Without the intermediates between issuer and root the delegated
	// responder certificate cannot be chained.
	r := c.Check(context.Background(), p.brom.Cert, p.prov.Cert, p.root.Cert)
	if r.Status != ocsp.StatusError || !strings.Contains(r.Err.Error(), "does not chain to root") {
		t.Fatalf("without intermediates: %+v", r)
	}
	r = c.Check(context.Background(), p.brom.Cert, p.prov.Cert, p.root.Cert, p.identity.Cert)
	if r.Status != ocsp.StatusGood || !r.NonceMatched || r.Err != nil {
		t.Fatalf("with intermediates: %+v", r)
	}
	if err := c.Judge(r); err != nil {
		t.Fatal(err)
	}
}

func TestCheckNonceFromRand(t *testing.T) {
	p := newPKI(t, true)
	c := p.checker(ocsp.Require)
	c.Rand = strings.NewReader(strings.Repeat("n", ocsp.NonceSize))
	r := c.Check(context.Background(), p.identity.Cert, p.root.Cert, p.root.Cert)
	if r.Status != ocsp.StatusGood || !r.NonceMatched {
		t.Fatalf("%+v", r)
	}
	if _, _, nonce := p.resp.Last(); string(nonce) != strings.Repeat("n", ocsp.NonceSize) {
		t.Fatalf("responder saw nonce %x", nonce)
	}
	// An exhausted nonce source is an error, not a request without nonce.
	before := p.resp.Requests()
	r = c.Check(context.Background(), p.identity.Cert, p.root.Cert, p.root.Cert)
	if r.Status != ocsp.StatusError || r.Err == nil || p.resp.Requests() != before {
		t.Fatalf("exhausted Rand: %+v", r)
	}
}

func TestReasonString(t *testing.T) {
	for in, want := range map[int]string{0: "unspecified", 1: "keyCompromise", 6: "certificateHold", 7: "reason 7", 10: "aACompromise"} {
		if got := ocsp.ReasonString(in); got != want {
			t.Errorf("ReasonString(%d) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	p := newPKI(b, true)
	c := p.checker(ocsp.Require)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		r := c.Check(ctx, p.prov.Cert, p.identity.Cert, p.root.Cert)
		if r.Status != ocsp.StatusGood {
			b.Fatal(r.Err)
		}
	}
}
