// Package verify decides whether to trust an RA-TLS peer: it extracts the
// evidence bundle from the peer certificate, checks that REPORTDATA binds
// the presented TLS key and the claims, replays the RTMR3 event log and
// judges every event by policy. Proxies import it; `chrysalis verify`
// wraps it.
//
// This version verifies insecure-dev evidence only, and only under the
// policy named "insecure-dev". TDX quote verification (signature, PCK
// chain, collateral, TCB, manifests) is not implemented yet: TDX evidence
// is rejected with an error that says so, never accepted.
package verify
