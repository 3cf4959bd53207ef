// Package ocsp checks NVIDIA device certificates with OCSP (RFC 6960)
// and a nonce (RFC 8954), step 6 of the local GPU verification in
// research/gpu.md §3 and §5.
//
// Checker.CheckChain takes a device chain leaf first, without the
// device-supplied root (already replaced by the pinned root). It skips the
// leaf (FMC LF is minted by the GPU firmware and unknown to the
// responder) and asks about every other certificate under its issuer —
// the next certificate, the pinned root for the last. Each request is
// POSTed as application/ocsp-request (SHA-384 CertID, a critical
// id-pkix-ocsp-nonce request extension with 32 random bytes, optional
// Authorization: Bearer). Each answer is verified by Checker.Check:
// signed by the issuer or by a delegated id-kp-OCSPSigning certificate
// that the issuer signed and that chains to the pinned root; exactly one
// SingleResponse, naming our CertID; the nonce echoed in
// responseExtensions; ThisUpdate ≤ now+MaxClockSkew and now < NextUpdate.
//
// Every outcome is a Result (status good, revoked, unknown, skipped or
// error, the nonce verdict, the validity window, the revocation time and
// reason, the error) that callers publish as evidence. A Result's Status
// does not depend on the policy; Checker.Judge applies it:
//
//   - Require: anything but a verified, fresh "good" with our nonce fails;
//     so do network and parse errors.
//   - SoftFail: only a verified, fresh revocation fails. An unreachable
//     responder, a timeout, an HTTP error, an OCSP error status or an
//     "unknown" answer is recorded as "unknown"; an answer that fails
//     verification as "error"; neither fails.
//   - Off: nothing is sent, every Result is "skipped".
//
// A certificate_hold revocation fails under both unless Checker.AllowHold
// (NVIDIA's --allow_hold_cert). A response that fails its nonce or
// freshness check is "error" even when it was signed "revoked": a replayed
// old answer cannot fail a soft-fail check.
//
// Cache reuses verified responses until min(NextUpdate, ThisUpdate+TTL)
// without asking again (see Cache for the nonce choice).
//
// golang.org/x/crypto/ocsp parses status and signature, but writes
// requests without extensions and does not expose responseExtensions or a
// response's CertID hashes, so MarshalRequest, ParseRequest and
// ParseResponseData do that ASN.1 here. Package ocsptest is a responder
// for tests built on them.
package ocsp
