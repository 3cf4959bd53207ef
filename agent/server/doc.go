// Package server is the guest's attested HTTPS API: /healthz,
// /v1/attestation (the evidence bundle, fresh with ?nonce=) and /v1/events
// (the RTMR3 log). It is served only over the RA-TLS identity.
package server
