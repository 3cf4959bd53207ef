package ratls

import (
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/agent/attest"
	"github.com/chrysalis-cc/chrysalis/agent/rtmr"
	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/evidence"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/verify"
)

func TestRotationAndFreshness(t *testing.T) {
	clock := time.Unix(1800000000, 0)
	rec := rtmr.NewRecorder(&rtmr.Software{})
	e, _ := event.New(event.NameConfig, 1, guest.MeasuredConfig{Instance: "w"})
	if _, err := rec.Record(e); err != nil {
		t.Fatal(err)
	}
	id, err := New(attest.InsecureDev{}, rec, evidence.Claims{Instance: "w"}, "w", func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	pol, _ := verify.PolicyByName("insecure-dev")
	c1, _ := id.GetCertificate(nil)
	if _, err := verify.Certificate(c1.Leaf, pol, verify.Options{Now: clock}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(rotateAfter - time.Second)
	if c, _ := id.GetCertificate(nil); c != c1 {
		t.Fatal("rotated too early")
	}
	clock = clock.Add(2 * time.Second)
	c2, _ := id.GetCertificate(nil)
	if c2 == c1 || string(c2.Leaf.RawSubjectPublicKeyInfo) == string(c1.Leaf.RawSubjectPublicKeyInfo) {
		t.Fatal("certificate and key not rotated")
	}
	if _, err := verify.Certificate(c2.Leaf, pol, verify.Options{Now: clock}); err != nil {
		t.Fatal(err)
	}
	// A fresh bundle binds the new key.
	fb, err := id.Fresh("00ff")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := evidence.Decode(fb)
	if _, err := verify.Bundle(b, c2.Leaf.RawSubjectPublicKeyInfo, pol, verify.Options{Nonce: "00ff"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "xyz", strings.Repeat("a", 130)} {
		if _, err := id.Fresh(bad); err == nil {
			t.Errorf("nonce %q accepted", bad)
		}
	}
}
