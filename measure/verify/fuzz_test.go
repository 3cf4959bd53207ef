package verify

import (
	"crypto/x509"
	"testing"
)

// FuzzCertificate feeds arbitrary DER through certificate parsing, the
// evidence extension, bundle decoding and verification: nothing may panic,
// and nothing but a genuine insecure-dev certificate may verify under the
// insecure-dev policy.
func FuzzCertificate(f *testing.F) {
	f.Add(issue(f, nil).Raw)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	pol, _ := PolicyByName(PolicyInsecureDev)
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		res, err := Certificate(cert, pol, Options{Now: now})
		if err == nil && res.Bundle == nil {
			t.Fatal("verified without a bundle")
		}
	})
}
