// Package gpu owns the device half of NVIDIA Hopper (H100/H200) GPU
// attestation in pure Go (no cgo): parsing the SPDM 1.1 attestation report,
// verifying the device certificate chain against the pinned NVIDIA roots,
// the report signature, the FWID binding and the nonce binding, and the
// Evidence item the agent collects and carries in the RA-TLS bundle
// (research/gpu.md §2–§7). Reference-value (RIM) documents and OCSP live
// in the sibling packages gpu/rim and gpu/ocsp; this package only names
// the RIMs a report needs (DriverRIMID, Report.VBIOSRIMID).
//
// A relying party verifies one GPU with, in order:
//
//  1. ParseReport: request (37 bytes) ‖ MEASUREMENTS response, every
//     length bounds-checked, nothing may follow the 96-byte signature.
//  2. Report.CheckNonce against Nonce(TLS SPKI hash, challenge).
//  3. ParseChainPEM and VerifyDeviceChain with DeviceRoot(): exactly five
//     certificates, the device-supplied root dropped and the pinned one
//     used, every key ECDSA P-384.
//  4. CheckFWID: the leaf's TCG DICE FWID equals opaque field 20 when the
//     report carries one (older firmware does not).
//  5. Report.VerifySignature with the leaf key: ECDSA P-384 over
//     SHA-384(SignedBytes), raw r‖s.
//
// Measurement block indices: SPDM counts blocks from 1, NVIDIA's RIMs
// count from 0. Report.Measurements is keyed by the SPDM index, so SPDM
// block i holds the value of RIM index i−1.
//
// Evidence is the per-GPU item of the RA-TLS bundle: the raw report and
// PEM chain plus NVML's statements (driver, VBIOS, UUID, CC state, ready
// state). DecodeEvidence is strict; Evidence.Digest is SHA-384 over its
// canonical JSON (measure/canon).
//
// The pinned roots (roots/*.pem, go:embed) are checked against
// DeviceRootSHA256 and CoRIMRootSHA256 when the package loads; a binary
// with a different root panics at start rather than trusting it.
package gpu
