// Package eventlog parses firmware measurement logs in the TCG PC Client
// "crypto agile" format and replays them into register values
// (research/measure.md §3.1-3.2):
//
//   - the confidential-computing event log (CCEL) of an Intel TDX guest:
//     the ACPI "CCEL" table (ParseCCELTable: CC type, subtype, log area
//     length LAML and start LASA) and the log area it points at, which
//     Linux exposes as /sys/firmware/acpi/tables/CCEL and
//     /sys/firmware/acpi/tables/data/CCEL (ParseCCEL);
//   - a TPM 2.0 firmware log (/sys/kernel/security/tpm0/binary_bios_measurements),
//     which has the same record format with PCR numbers in place of CC
//     measurement-register indices (Parse).
//
// # Format
//
// The log starts with one TCG_PCClientPCREvent record (u32 PCRIndex,
// u32 EventType = EV_NO_ACTION, a 20-byte zero digest, u32 EventSize,
// event) whose event is the TCG_EfiSpecIDEvent "Spec ID Event03": it lists
// the digest algorithms (TCG algorithm id and digest size) every later
// record carries. Then come TCG_PCR_EVENT2 records: u32 index, u32 event
// type, u32 digest count, that many {u16 algorithm id, digest}, u32 event
// size, event data. All integers are little-endian. The log ends at the
// end of the buffer or at an index of 0xFFFFFFFF, i.e. at the 0xFF bytes
// the firmware fills the unused log area with; everything after that
// point must be 0xFF.
//
// Parsing never panics and keeps strict bounds; every error is a
// *FormatError naming the byte offset and the problem. Parse copies its
// input, so events never alias the caller's buffer.
//
// # Register mapping
//
// The record's index field means different things in the two kinds of
// log; this package never guesses, the caller picks the replay:
//
//   - CCEL (ReplayRTMRs): the CC measurement-register index of the UEFI
//     CC measurement protocol. 0 is MRTD (never extended through the log;
//     rejected), 1..4 are RTMR0..RTMR3 (RTMRIndex). Digests are SHA-384.
//     OVMF maps TCG PCRs onto these indices as MRIndexForPCR documents
//     (PCR 1,7 -> RTMR0; 2-6 -> RTMR1; 8-15 -> RTMR2).
//   - TPM (ReplayPCRs): the PCR number, 0..23, replayed in any bank the
//     log carries (SHA-1, SHA-256, SHA-384, SHA-512). PCR 0 starts at the
//     locality given by a "StartupLocality" EV_NO_ACTION event, others at
//     zero.
//
// EV_NO_ACTION events are informational and never extended, in either
// kind of log. Every other event extends its register:
// reg = H(reg || digest).
//
// # Naming
//
// Events carry their TCG event type (EventType.String gives the spec
// name) and Event.Describe gives a short label from the event data where
// the format is known: UEFI variable names, firmware blob descriptions,
// action strings, Linux EFI stub tagged events (LOADED_IMAGE::LoadOptions,
// Linux initrd), image load paths, StartupLocality.
package eventlog
