package evidence

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// OIDBundle is the critical X.509 extension that carries an encoded
// Bundle in an RA-TLS certificate. Chrysalis has no IANA enterprise number
// yet, so its private arc sits under the documentation PEN of RFC 5612
// (1.3.6.1.4.1.32473) at 7 = Chrysalis, 1 = RA-TLS, 1 = evidence bundle v1.
// Only Chrysalis verifiers interpret it; it is defined here and nowhere
// else, so moving to an own PEN is a one-line change plus a version bump.
var OIDBundle = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 7, 1, 1}

// CertLifetime is how long an RA-TLS certificate is valid. Short, because
// the guest clock is host-controlled and evidence should be re-fetched.
const CertLifetime = 24 * time.Hour

// NewKey makes a fresh P-256 TLS key.
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// SPKI returns the DER SubjectPublicKeyInfo of pub.
func SPKI(pub crypto.PublicKey) ([]byte, error) {
	return x509.MarshalPKIXPublicKey(pub)
}

// NewCertificate self-signs a certificate for key carrying the encoded
// bundle in a critical extension. The bundle's claims must already bind
// key (the caller computed them from SPKI(key.Public())).
func NewCertificate(key *ecdsa.PrivateKey, bundle []byte, commonName string, now time.Time) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(CertLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{commonName},
	}
	val, err := asn1.Marshal(bundle)
	if err != nil {
		return nil, err
	}
	tmpl.ExtraExtensions = []pkix.Extension{{Id: OIDBundle, Critical: true, Value: val}}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
}

// BundleFromCertificate returns the encoded bundle carried by cert and
// checks that the extension is marked critical.
func BundleFromCertificate(cert *x509.Certificate) ([]byte, error) {
	var found []byte
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(OIDBundle) {
			continue
		}
		if found != nil {
			return nil, errors.New("ra-tls: certificate carries the evidence extension twice")
		}
		if !ext.Critical {
			return nil, errors.New("ra-tls: evidence extension is not marked critical")
		}
		var b []byte
		rest, err := asn1.Unmarshal(ext.Value, &b)
		if err != nil {
			return nil, fmt.Errorf("ra-tls: evidence extension: %w", err)
		}
		if len(rest) != 0 {
			return nil, errors.New("ra-tls: evidence extension has trailing data")
		}
		found = b
	}
	if found == nil {
		return nil, fmt.Errorf("ra-tls: certificate has no evidence extension (%s)", OIDBundle)
	}
	return found, nil
}
