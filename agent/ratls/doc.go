// Package ratls issues the guest's RA-TLS identity: a TLS key, the claims
// bound to it, evidence over REPORTDATA = H(tag, key, claims), and a
// short-lived self-signed certificate carrying the evidence bundle, rotated
// before it expires. It also makes fresh bundles bound to a verifier nonce.
package ratls
