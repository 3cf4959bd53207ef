package ratls

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/chrysalis-cc/chrysalis/agent/attest"
	"github.com/chrysalis-cc/chrysalis/agent/rtmr"
	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/evidence"
	mgpu "github.com/chrysalis-cc/chrysalis/measure/gpu"
)

// Identity is the guest's current RA-TLS key and certificate.
type Identity struct {
	issuer   attest.Issuer
	recorder *rtmr.Recorder
	base     evidence.Claims // instance, model, owner
	name     string
	now      func() time.Time

	gpu GPUSource

	mu     sync.Mutex
	key    *ecdsa.PrivateKey
	spki   []byte
	cert   *tls.Certificate
	issued time.Time
}

// GPUSource collects fresh GPU evidence whose reports carry nonce (see
// measure/gpu.Nonce: it binds the TLS key and the verifier's challenge).
type GPUSource func(nonce [32]byte) ([]mgpu.Evidence, error)

// Option configures an Identity.
type Option func(*Identity)

// WithGPU makes every bundle carry fresh evidence of the worker's GPUs,
// bound to the bundle's TLS key and nonce and listed in its claims.
func WithGPU(src GPUSource) Option { return func(id *Identity) { id.gpu = src } }

// New makes an identity and issues its first certificate.
// base carries the config-derived claims (instance, model, owner address).
func New(issuer attest.Issuer, rec *rtmr.Recorder, base evidence.Claims, serverName string, now func() time.Time, opts ...Option) (*Identity, error) {
	if now == nil {
		now = time.Now
	}
	id := &Identity{issuer: issuer, recorder: rec, base: base, name: serverName, now: now}
	for _, o := range opts {
		o(id)
	}
	if err := id.rotate(); err != nil {
		return nil, err
	}
	return id, nil
}

// rotate makes a new key and certificate; the caller holds mu or owns id.
func (id *Identity) rotate() error {
	key, err := evidence.NewKey()
	if err != nil {
		return err
	}
	spki, err := evidence.SPKI(key.Public())
	if err != nil {
		return err
	}
	t := id.now()
	b, err := id.bundle(spki, t, "")
	if err != nil {
		return err
	}
	der, err := evidence.NewCertificate(key, b, id.name, t)
	if err != nil {
		return fmt.Errorf("ra-tls: certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	id.key, id.spki, id.issued = key, spki, t
	id.cert = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return nil
}

// bundle builds encoded evidence for the key spki at time t.
func (id *Identity) bundle(spki []byte, t time.Time, nonce string) ([]byte, error) {
	c := id.base
	c.TLSKeySHA256 = evidence.SPKIHash(spki)
	c.IssuedAt = t.Unix()
	c.Nonce = nonce
	var gpus []json.RawMessage
	if id.gpu != nil {
		challenge, err := hex.DecodeString(nonce)
		if err != nil {
			return nil, err
		}
		evs, err := id.gpu(mgpu.Nonce(sha256.Sum256(spki), challenge))
		if err != nil {
			return nil, fmt.Errorf("ra-tls: gpu evidence: %w", err)
		}
		for i := range evs {
			b, err := canon.Marshal(&evs[i])
			if err != nil {
				return nil, err
			}
			d := evs[i].Digest()
			gpus = append(gpus, b)
			c.GPU = append(c.GPU, hex.EncodeToString(d[:]))
		}
	}
	rd, err := evidence.ReportData(spki, c)
	if err != nil {
		return nil, err
	}
	log, mr, src, err := id.recorder.Snapshot()
	if err != nil {
		return nil, err
	}
	q, err := id.issuer.Quote(rd)
	if err != nil {
		return nil, err
	}
	b := &evidence.Bundle{
		Version:     evidence.Version,
		Type:        id.issuer.Type(),
		Quote:       q,
		ReportData:  rd[:],
		Claims:      c,
		EventLog:    log,
		RTMR3:       mr,
		RTMR3Source: src,
		GPU:         gpus,
	}
	return b.Encode()
}

// rotateAfter is when a certificate is replaced: well before it expires.
const rotateAfter = evidence.CertLifetime / 2

// GetCertificate is a tls.Config.GetCertificate callback that rotates the
// key and certificate when the current one is half-way to expiry.
func (id *Identity) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.now().Sub(id.issued) >= rotateAfter {
		if err := id.rotate(); err != nil {
			return nil, err
		}
	}
	return id.cert, nil
}

// Fresh returns a new bundle for the current key bound to the verifier's
// hex nonce (1-64 bytes).
func (id *Identity) Fresh(nonce string) ([]byte, error) {
	n, err := hex.DecodeString(nonce)
	if err != nil || len(n) == 0 || len(n) > 64 {
		return nil, fmt.Errorf("nonce must be 1-64 bytes of hex, got %q", nonce)
	}
	id.mu.Lock()
	spki := id.spki
	id.mu.Unlock()
	return id.bundle(spki, id.now(), hex.EncodeToString(n))
}

// Current returns the encoded bundle of the current certificate.
func (id *Identity) Current() ([]byte, error) {
	id.mu.Lock()
	defer id.mu.Unlock()
	return evidence.BundleFromCertificate(id.cert.Leaf)
}

// ServerConfig returns the TLS 1.3 server config presenting this identity.
func (id *Identity) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: id.GetCertificate}
}
