// Package tdvf owns the TDX firmware (TDVF/OVMF) image: it finds OVMF's
// GUIDed table at the end of the image, follows the TDX metadata offset
// entry to the TDVF descriptor ("TDVF", version 1) and returns its
// sections, typed and validated the way QEMU's TDVF loader and
// gce-tcb-verifier validate them (research/measure.md §1.1). Parse never
// panics: truncated, foreign (non-OVMF, non-TDX OVMF, a PE file, random
// bytes) or inconsistent firmware gives a *FormatError that names the file
// offset or the section entry and the problem.
//
// It also computes MRTD, the TD build-time measurement that the TDX module
// accumulates while the VMM adds the firmware's pages (research/measure.md
// §1.2): TDH.MEM.PAGE.ADD records for every page of every section and
// TDH.MR.EXTEND records (with the page contents, in 256-byte chunks) for
// sections with the MR.EXTEND attribute. The order of those records
// depends on the host's KVM/QEMU stack, not on the firmware (§1.3), so
// MRTD takes a PageOrder: SinglePass (upstream KVM + QEMU >= 9) or
// TwoPass (the Ubuntu 24.04 QEMU 8.2 TDX stack). The VM shape's QEMU
// profile selects it (ParsePageOrder accepts the profile's "single-pass"
// and "two-pass"). WriteMeasurement emits the exact hashed byte stream.
//
// Nothing else of a VM (memory size, vCPUs, TD attributes) enters MRTD.
package tdvf
