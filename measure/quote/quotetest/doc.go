// Package quotetest builds validly signed Intel TDX quotes (v4 and v5)
// under a generated, throw-away PCK hierarchy, for tests only.
//
// NewHierarchy makes an ECDSA P-256 root CA, an intermediate "platform
// CA", a PCK leaf carrying the SGX extensions (PPID, TCB, PCEID, FMSPC)
// that measure/quote and go-tdx-guest parse, and a quoting-enclave
// attestation key. Hierarchy.Quote assembles a quote with the chosen TD
// body fields: the header and body are signed by the attestation key, the
// QE report binds SHA-256(attestation key ‖ QE auth data) and is signed
// by the PCK key, and the certification data (type 6 wrapping type 5)
// carries the PEM chain leaf, intermediate, root.
//
// Hierarchy.Collateral generates the Intel PCS collateral for such
// quotes: TDX TCB info (version 3, Intel's field names, levels matching
// the PCK certificate and TeeTcbSvnUpToDate / TeeTcbSvnOutOfDate /
// TeeTcbSvnModuleOutOfDate) and the TD QE identity (version 2, matching
// the QE report), both signed by a generated "Intel SGX TCB Signing"
// certificate under the root, the PCK CRL (by the intermediate) and the
// root CA CRL (by the root, at the root's CRL distribution point).
// CollateralOptions edit, forge, revoke or expire any of it for negative
// tests. Collateral.WriteDir lays it out as measure/quote's DirSource
// reads it (through quote.WriteCache), and Collateral.PCCS serves it
// like a PCCS for quote.PCSSource; go-tdx-guest's verifier accepts it
// too.
//
// The certificates use Intel's subject names because go-tdx-guest's v4
// verifier insists on them; they are nonetheless signed by a key made in
// the test, so such a quote verifies only where the test injects
// Hierarchy.Roots as quote.Policy.TrustedRoots. Against Intel's real root
// (the production default) it is rejected. This package is test support:
// production code must never import it, nor accept a trusted-roots
// override from anywhere but a test.
package quotetest
