package verify

import (
	"crypto/x509"
	"fmt"

	"github.com/chrysalis-cc/chrysalis/measure/evidence"
)

// checkCriticalExtensions refuses a certificate with a critical
// extension this verifier does not understand. Go's x509 parser handles
// the standard extensions and lists every other critical one in
// UnhandledCriticalExtensions; the only one we understand is the
// evidence bundle (BundleFromCertificate checks it is present, once, and
// critical).
func checkCriticalExtensions(cert *x509.Certificate) error {
	for _, oid := range cert.UnhandledCriticalExtensions {
		if !oid.Equal(evidence.OIDBundle) {
			return fmt.Errorf("ra-tls certificate: unknown critical extension %s", oid)
		}
	}
	return nil
}
