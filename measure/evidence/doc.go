// Package evidence owns the attestation evidence bundle that a guest
// presents and a relying party verifies: its versioned canonical encoding,
// the claims it carries, the REPORTDATA binding of a TLS key and claims
// (ARCHITECTURE decision 5), and the RA-TLS certificate extension that
// carries a bundle. The agent produces bundles; measure/verify checks them.
package evidence
