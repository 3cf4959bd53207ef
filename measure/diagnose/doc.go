// Package diagnose explains a measurement mismatch: it lines up the events
// a release and VM shape are expected to produce (measure/tdxmr) with the
// events a TD actually logged (a CCEL parsed by measure/eventlog), labels
// every event with its expected and actual digest, and names the input
// (kernel, command line, initrd, firmware, memory, QEMU's ACPI tables,
// UEFI variables) that explains each difference.
package diagnose
