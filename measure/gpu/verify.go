package gpu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// NonceDomain is the domain tag of the GPU nonce binding (research/gpu.md
// §6). It separates this use of SHA-256 from every other hash of a TLS key
// in Chrysalis; the trailing NUL ends the tag so no tag is a prefix of
// another.
const NonceDomain = "chrysalis/gpu-nonce/v1\x00"

// Nonce derives the 32-byte nonce the agent passes to the GPU:
// SHA-256(NonceDomain ‖ tlsSPKIHash ‖ challenge), where tlsSPKIHash is
// SHA-256 of the RA-TLS certificate's SubjectPublicKeyInfo and challenge is
// the verifier's challenge (empty for the boot-time bundle). The report then
// carries it at bytes 4..36, binding the GPU evidence to the TLS key.
func Nonce(tlsSPKIHash [32]byte, challenge []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(NonceDomain))
	h.Write(tlsSPKIHash[:])
	h.Write(challenge)
	return [32]byte(h.Sum(nil))
}

// CheckNonce compares the report's requester nonce with want in constant time.
func (r *Report) CheckNonce(want [32]byte) error {
	if r == nil {
		return errNoReport
	}
	if subtle.ConstantTimeCompare(r.Nonce[:], want[:]) != 1 {
		return fmt.Errorf("gpu: report nonce %x, want %x", r.Nonce[:], want[:])
	}
	return nil
}

// VerifySignature checks the report's signature with the leaf certificate's
// key: ECDSA P-384 over SHA-384(SignedBytes()), raw big-endian r‖s.
func (r *Report) VerifySignature(leaf *x509.Certificate) error {
	if r == nil {
		return errNoReport
	}
	if leaf == nil {
		return errors.New("gpu: no leaf certificate to verify the report signature with")
	}
	pub, err := p384Key(leaf)
	if err != nil {
		return err
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{
		new(big.Int).SetBytes(r.Signature[:SignatureSize/2]),
		new(big.Int).SetBytes(r.Signature[SignatureSize/2:]),
	})
	if err != nil {
		return fmt.Errorf("gpu: encoding the report signature: %w", err)
	}
	digest := sha512.Sum384(r.signed())
	if !ecdsa.VerifyASN1(pub, digest[:], der) {
		return fmt.Errorf("gpu: report signature does not verify with the key of %q", leaf.Subject.CommonName)
	}
	return nil
}

// p384Key returns the certificate's public key if it is ECDSA on P-384.
func p384Key(c *x509.Certificate) (*ecdsa.PublicKey, error) {
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("gpu: certificate %q has a %T key, want ECDSA P-384", c.Subject.CommonName, c.PublicKey)
	}
	if pub.Curve != elliptic.P384() {
		return nil, fmt.Errorf("gpu: certificate %q has an ECDSA key on %s, want P-384", c.Subject.CommonName, pub.Curve.Params().Name)
	}
	return pub, nil
}
