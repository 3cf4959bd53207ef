package server

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/agent/attest"
	"github.com/chrysalis-cc/chrysalis/agent/ratls"
	"github.com/chrysalis-cc/chrysalis/agent/rtmr"
	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/evidence"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/verify"
)

// devGuest starts the API the way the agent does in dev mode and returns
// its URL and recorder.
func devGuest(t testing.TB) (*httptest.Server, *rtmr.Recorder) {
	t.Helper()
	cfg := guest.Config{Version: 1, Measured: guest.MeasuredConfig{Instance: "test-1", Model: "tiny"}, Network: guest.DevNetwork}
	rec := rtmr.NewRecorder(&rtmr.Software{})
	mb, err := cfg.MeasuredBytes()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.New(event.NameConfig, 1, json.RawMessage(mb))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Record(ev); err != nil {
		t.Fatal(err)
	}
	ready, _ := event.New(event.NameReady, 1, struct{}{})
	if _, err := rec.Record(ready); err != nil {
		t.Fatal(err)
	}
	id, err := ratls.New(attest.InsecureDev{}, rec, evidence.Claims{Instance: "test-1", Model: "tiny"}, "test-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(Handler(id, rec, "insecure-dev", slog.New(slog.NewTextHandler(io.Discard, nil))))
	// httptest's StartTLS would install its own certificate; serve our
	// RA-TLS config on the listener exactly as the agent does.
	srv.Listener = tls.NewListener(srv.Listener, id.ServerConfig())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	srv.URL = "https://" + srv.Listener.Addr().String()
	t.Cleanup(srv.Close)
	return srv, rec
}

func client(pol verify.Policy, opts verify.Options, got **verify.Result) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: verify.ClientConfig(pol, opts, func(r *verify.Result) { *got = r }),
	}}
}

func TestRATLSRoundTrip(t *testing.T) {
	srv, _ := devGuest(t)
	pol, err := verify.PolicyByName("insecure-dev")
	if err != nil {
		t.Fatal(err)
	}
	var res *verify.Result
	c := client(pol, verify.Options{}, &res)
	resp, err := c.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if res == nil || res.Type != evidence.TypeInsecureDev || res.Config.Instance != "test-1" || len(res.Events) != 2 {
		t.Fatalf("verification result = %+v", res)
	}
	if res.RTMR3Source != evidence.RTMR3Software {
		t.Fatalf("rtmr3 source = %q", res.RTMR3Source)
	}

	// A fresh bundle bound to our nonce and to the same TLS key.
	nb := make([]byte, 16)
	rand.Read(nb)
	nonce := hex.EncodeToString(nb)
	resp, err = c.Get(srv.URL + "/v1/attestation?nonce=" + nonce)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	b, err := evidence.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	leaf := resp.TLS.PeerCertificates[0]
	fr, err := verify.Bundle(b, leaf.RawSubjectPublicKeyInfo, pol, verify.Options{Nonce: nonce})
	if err != nil {
		t.Fatalf("fresh bundle: %v", err)
	}
	if fr.Claims.Nonce != nonce {
		t.Fatalf("nonce = %q", fr.Claims.Nonce)
	}
	// The same bundle does not verify for another nonce or another key.
	if _, err := verify.Bundle(b, leaf.RawSubjectPublicKeyInfo, pol, verify.Options{Nonce: "00"}); err == nil {
		t.Fatal("wrong nonce accepted")
	}
	other, _ := evidence.NewKey()
	ospki, _ := evidence.SPKI(other.Public())
	if _, err := verify.Bundle(b, ospki, pol, verify.Options{}); err == nil || !strings.Contains(err.Error(), "peer presented") {
		t.Fatalf("other key: err = %v", err)
	}

	// /v1/events equals the log in the certificate.
	resp, err = c.Get(srv.URL + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	_, mr, err := event.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if mr != res.RTMR3 {
		t.Fatalf("events replay %s, certificate %s", mr, res.RTMR3)
	}
}

func TestInsecureDevRejectedWithoutOptIn(t *testing.T) {
	srv, _ := devGuest(t)
	for _, pol := range []verify.Policy{{Name: "strict"}, {Name: "tdx-like", AllowDebugConfig: true}} {
		var res *verify.Result
		c := client(pol, verify.Options{}, &res)
		_, err := c.Get(srv.URL + "/healthz")
		if err == nil || !strings.Contains(err.Error(), "insecure-dev") {
			t.Fatalf("policy %s: err = %v", pol.Name, err)
		}
		if res != nil {
			t.Fatalf("policy %s: result reported despite failure", pol.Name)
		}
	}
	if _, err := verify.PolicyByName(""); err == nil {
		t.Fatal("empty policy name accepted")
	}
}

func TestBadNonce(t *testing.T) {
	srv, _ := devGuest(t)
	pol, _ := verify.PolicyByName("insecure-dev")
	var res *verify.Result
	c := client(pol, verify.Options{}, &res)
	for _, n := range []string{"zz", strings.Repeat("00", 65)} {
		resp, err := c.Get(srv.URL + "/v1/attestation?nonce=" + n)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("nonce %q: status %d", n, resp.StatusCode)
		}
	}
}

func TestServerIsTLS13Only(t *testing.T) {
	srv, _ := devGuest(t)
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	if err == nil {
		conn.Close()
		t.Fatal("TLS 1.2 handshake succeeded")
	}
}

// BenchmarkRATLSHandshake measures a full TLS 1.3 handshake on loopback
// with RA-TLS verification of the peer (insecure-dev evidence: no quote
// signature to check yet), the cost a proxy pays per new connection.
func BenchmarkRATLSHandshake(b *testing.B) {
	srv, _ := devGuest(b)
	pol, _ := verify.PolicyByName("insecure-dev")
	addr := srv.Listener.Addr().String()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conn, err := tls.Dial("tcp", addr, verify.ClientConfig(pol, verify.Options{}, nil))
		if err != nil {
			b.Fatal(err)
		}
		conn.Close()
	}
}
