// Package verify decides whether to trust an RA-TLS peer: it extracts the
// evidence bundle from the peer certificate (rejecting any other unknown
// critical extension), checks that REPORTDATA binds the presented TLS key
// and the claims, replays the RTMR3 event log and judges every event by
// policy. Proxies import it; `chrysalis verify` wraps it.
//
// insecure-dev evidence (no TEE) is accepted only under the policy named
// "insecure-dev". TDX evidence is accepted only when the policy carries
// quote settings (measure/quote: signature, PCK chain, collateral, TCB
// status, TD attributes) and an image allowlist built from signed
// manifests (measure/manifest, AllowManifest) and/or the account data of
// the on-chain registry contract (measure/registry, AllowRegistry), and
// the quote's RTMR3 equals the replayed event log. `chrysalis verify
// --policy tdx` builds such a policy from --manifest and --pub,
// --registry-state and --registry, and --collateral/--pccs.
//
// Every rejection is an *Error with a Reason saying which check failed.
// Cache memoises successful verifications by certificate hash until the
// certificate expires or a TTL passes (never for nonce-bound checks);
// CachedClientConfig gives a TLS 1.3-only client config for one-way
// RA-TLS, and ClientConfigMutual (the proxy) with ServerConfigMutual (the
// worker) for mutual RA-TLS, where each side presents its own RA-TLS
// certificate and verifies the other's under its own policy.
package verify
