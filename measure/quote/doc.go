// Package quote verifies Intel TDX quotes (v4, and v5 with TDX 1.0 or
// TDX 1.5 bodies) strictly and offline-capably.
//
// Verify checks, in order:
//
//  1. Structure: the quote is parsed with bounds checks on every length
//     field (never panics; FuzzParse covers it); trailing bytes are
//     rejected.
//  2. The PCK certificate chain embedded in the quote chains to the
//     trusted roots (Intel SGX Root CA unless Policy.TrustedRoots says
//     otherwise) at Policy.Now.
//  3. The QE report is signed by the PCK leaf key, binds
//     SHA-256(attestation key ‖ QE auth data), and the quote header and
//     body are signed by the attestation key. For v4 quotes go-tdx-guest's
//     verify.TdxQuote is run as well, and both must accept.
//  4. With Policy.Collateral: TDX TCB info for the PCK certificate's
//     FMSPC, the TD QE identity, the PCK CRL and the root CA CRL are
//     fetched (see DirSource for the offline cache layout, PCSSource for
//     a PCCS or Intel PCS), their signatures and issuer chains checked,
//     their validity windows checked against Policy.Now, the PCK chain
//     checked against the CRLs, and the TCB status of the platform, the
//     TDX module and the QE computed and judged against
//     Policy.AllowedTCBStatuses. Without collateral the status is
//     "Unknown", accepted only with Policy.AllowUnknownTCB.
//  5. CheckFields: REPORTDATA, TDATTRIBUTES (DEBUG bit), XFAM,
//     MRCONFIGID, MROWNER, MROWNERCONFIG against the policy. Errors name
//     the field and show expected and actual values in hex.
//
// ImageFields returns the image-hash preimage of ARCHITECTURE decision 3
// (the same bytes as measure/manifest QuoteFields.Bytes).
package quote
