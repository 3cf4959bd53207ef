// Package swtpm is the measurement cross-check against a real firmware:
// it boots a release under QEMU (TCG) with its own OVMF.fd, the same
// -kernel/-append and the release initrd plus a one-file overlay
// (testdata/dumpinit as /init), and a software TPM (swtpm) with a SHA-384
// PCR bank. The guest prints the TCG firmware event log and the SHA-384
// PCRs on the serial console and powers off; the test compares the log,
// event by event, with the expected RTMR0-2 events of measure/tdxmr and
// the ACPI blobs of measure/acpi (captured from QEMU for the same command
// line). TDVF logs the same objects into RTMRs with the same SHA-384
// digests as it logs into PCRs with a TPM (research/measure.md §6).
//
// It is slow (a TCG boot, ~15 s) and skipped under -short; outside -short
// a missing swtpm, swtpm_setup or QEMU is a failure.
package swtpm
