package verify

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// verifyPeer returns a VerifyConnection callback that verifies the
// peer's RA-TLS certificate (through cache when it is not nil).
func verifyPeer(pol Policy, opts Options, cache *Cache, onVerified func(*Result)) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("ra-tls: peer sent no certificate")
		}
		if cs.Version != tls.VersionTLS13 {
			return fmt.Errorf("ra-tls: TLS version %#x, only TLS 1.3 is allowed", cs.Version)
		}
		res, err := cache.Certificate(cs.PeerCertificates[0], pol, opts)
		if err != nil {
			return fmt.Errorf("ra-tls peer: %w", err)
		}
		if onVerified != nil {
			onVerified(res)
		}
		return nil
	}
}

// CachedClientConfig is ClientConfig with a verification cache: a server
// certificate verified before (under the same policy name, still within
// its cache lifetime) is accepted without verifying its evidence again.
// With opts.Nonce set the cache is not used. For mutual RA-TLS, set the
// returned config's Certificates (or GetClientCertificate) to the
// client's own RA-TLS certificate.
func CachedClientConfig(pol Policy, opts Options, cache *Cache, onVerified func(*Result)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		// Web PKI verification does not apply to a self-signed RA-TLS
		// certificate; VerifyConnection below does the real check.
		InsecureSkipVerify: true, //nolint:gosec
		VerifyConnection:   verifyPeer(pol, opts, cache, onVerified),
	}
}

// ServerConfigMutual returns a TLS 1.3 server config for mutual RA-TLS:
// getCert supplies the server's own RA-TLS certificate, and every client
// must present an RA-TLS certificate that verifies under pol (through
// cache when it is not nil; a handler can get the client's Result again
// with cache.Certificate, a cache hit). onVerified, when set, is called
// with each verified client's Result.
func ServerConfigMutual(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), pol Policy, opts Options, cache *Cache, onVerified func(*Result)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		MaxVersion:     tls.VersionTLS13,
		GetCertificate: getCert,
		// The client certificate is self-signed: chain verification does
		// not apply, VerifyConnection does the real check.
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: verifyPeer(pol, opts, cache, onVerified),
	}
}

// ClientConfigMutual returns a TLS 1.3 client config for mutual RA-TLS,
// the proxy's side of a connection to a worker: getCert supplies the
// proxy's own RA-TLS certificate whenever a server asks for one (called
// per handshake, so a proxy can rotate its short-lived certificate), and
// the server must present an RA-TLS certificate that verifies under pol
// (through cache when it is not nil, never with opts.Nonce set).
// onVerified, when set, is called with each verified server's Result.
// The worker's side is ServerConfigMutual.
//
// A nil getCert, or one returning no certificate, fails the handshake
// on the client rather than connecting without a client certificate.
func ClientConfigMutual(getCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error), pol Policy, opts Options, cache *Cache, onVerified func(*Result)) *tls.Config {
	cfg := CachedClientConfig(pol, opts, cache, onVerified)
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if getCert == nil {
			return nil, errors.New("ra-tls: mutual RA-TLS client has no certificate source")
		}
		c, err := getCert(cri)
		if err != nil {
			return nil, fmt.Errorf("ra-tls: client certificate: %w", err)
		}
		if c == nil || len(c.Certificate) == 0 {
			return nil, errors.New("ra-tls: mutual RA-TLS client has no certificate to present")
		}
		return c, nil
	}
	return cfg
}
