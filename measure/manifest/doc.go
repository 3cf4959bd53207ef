// Package manifest is the signed, per-release statement of what a TD
// running a Chrysalis release must measure: research/peers.md §8 lesson 3,
// ARCHITECTURE decision 3.
//
// # Contents (format_version 1)
//
//   - release: source commit (and whether the tree was dirty), kernel
//     version, command line, SHA-256 of release.json and of every file
//     SHA256SUMS covers;
//   - inputs: every pinned input package (role, package, version, arch,
//     file name, size, SHA-256) as release.json lists it;
//   - mrtd, rtmr1, rtmr2: the register values under each condition they
//     depend on, by name: MRTD per page-add order ("single-pass",
//     "two-pass"), RTMR1 per kernel variant ("unpatched",
//     "patched-below4g-<N>mib"), RTMR2 per OVMF initrd= placement
//     ("suffix", "prefix"); only the variants some shape uses;
//   - shapes: per allowed VM shape its name, digest and canonical JSON
//     (measure/shape), the variants it uses, its four registers
//     (RTMR0 is per shape), the expected TD fields (TDATTRIBUTES, XFAM,
//     MRCONFIGID, MROWNER, MROWNERCONFIG; see TDFields) and its image
//     hash.
//
// Every hashed or signed form is canonical JSON (measure/canon). Parse
// is strict (size limit, no unknown, duplicate, missing or null fields,
// lower-case hex) and Validate re-derives every cross-reference and
// every image hash, so a manifest that parses is self-consistent.
//
// # Image hash
//
// ImageHash(QuoteFields) = SHA-256 over the 352-byte concatenation, in
// quote byte order, of MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ TDATTRIBUTES ‖
// XFAM ‖ MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG (QuoteFields.Bytes gives
// the offsets). A proxy computes it from a verified quote alone
// (QuoteFieldsFromQuote, v4 and v5 quotes) and looks it up; RTMR3 is not
// in it: it is replayed from the runtime event log (measure/event).
//
// # Signing
//
// Sign wraps the canonical JSON in a DSSE envelope with payload type
// PayloadType, signed with ed25519 keys (measure/manifest/dsse documents
// the envelope, PAE and the key files). Verify checks the envelope
// against pinned public keys (Threshold = 1 of them) and requires the
// payload to be exactly the canonical JSON of a valid manifest; the
// manifest's Digest is the SHA-256 of those bytes.
//
// # Building
//
// New assembles a manifest from values computed elsewhere (ShapeValues),
// so it does not depend on how they are computed. FromMeasurements takes
// measure/tdxmr's per-shape results (tdxmr.Measurements); Build runs
// tdxmr.Compute for every shape itself, given each shape's ACPI capture
// (InputsFunc). BuildWithRTMR0 computes MRTD, RTMR1 and RTMR2
// (CodeRegisters) and takes RTMR0 values from elsewhere.
package manifest
