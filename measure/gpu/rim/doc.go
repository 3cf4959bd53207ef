// Package rim owns NVIDIA reference integrity manifests (RIMs) for Hopper
// GPUs: the signed SWID tags that hold the golden values of the SPDM
// measurement blocks a GPU reports, and where they come from.
//
//   - Parse reads a RIM structurally (strict and bounded: size, depth,
//     element and attribute limits, no DTDs, no duplicate attributes or
//     measurement indices) into SoftwareIdentity name/tagId/version, the
//     Meta colloquialVersion and FirmwareManufacturerId, and the
//     Payload/Resource measurements.
//   - Verify checks the XML signature exactly as NVIDIA signs it
//     (enveloped-signature + C14N 1.1, SHA-384 digest, ECDSA P-384 with a
//     raw r‖s SignatureValue, a single Reference URI="") and the signer's
//     certificate chain to the pinned CoRIM root at a chosen time. Any
//     other algorithm or reference shape is refused. Errors name the step
//     that failed (structure, algorithm or reference, digest, signature
//     value, certificate chain). The RIM it returns is parsed from the
//     signed canonical bytes, never from the input. VerifyID is the same
//     with the RIM id in the errors.
//   - Compare checks a GPU's runtime measurement blocks against the
//     driver and VBIOS RIMs and lists every mismatch with golden and
//     runtime values.
//   - Store finds RIMs by id: DirStore reads a directory of <id>.xml
//     files (the RIMs bundled in the image), HTTPStore fetches from
//     NVIDIA's RIM service (or a mirror), verifies the signature and only
//     then caches, and Chain tries several in order. A missing RIM is the
//     error "RIM not found: <id>" (ErrNotFound).
//
// The package does not parse attestation reports and does not decide which
// roots to trust: the caller passes the CoRIM root certificate.
package rim
