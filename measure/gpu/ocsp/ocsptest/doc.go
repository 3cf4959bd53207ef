// Package ocsptest is an OCSP responder for tests: a P-384 certificate
// hierarchy shaped like NVIDIA's device chain (Authority), and an
// http.Handler (Responder) that parses requests with ocsp.ParseRequest,
// answers from a table keyed by serial number, echoes the request nonce
// in responseExtensions (RFC 8954) and signs with the issuer's key or a
// delegated id-kp-OCSPSigning certificate. Faults (missing or wrong nonce,
// bad signature, expired, foreign signer, HTTP 500, ...) are injected per
// serial number.
//
// golang.org/x/crypto/ocsp.CreateResponse cannot be used: its
// Template.ExtraExtensions go into singleExtensions, while RFC 8954 and
// NVIDIA's verifiers read the nonce from responseExtensions, so
// CreateResponse builds the ASN.1 itself.
package ocsptest
