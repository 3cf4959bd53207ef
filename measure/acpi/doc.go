// Package acpi obtains the firmware configuration (fw_cfg) files that OVMF
// measures into RTMR0 — the ACPI linker/loader script "etc/table-loader",
// the blobs it allocates ("etc/acpi/rsdp", "etc/acpi/tables", and e.g.
// "etc/tpm/log" when a TPM is attached), "bootorder" and the other items
// edk2's fw_cfg cache measures, and the SMBIOS files
// ("etc/smbios/smbios-anchor", "etc/smbios/smbios-tables") from which
// measure/smbios rebuilds the SMBIOS event — from a stock QEMU for exactly the device
// list the VM is launched with, without running any guest code
// (research/measure.md §2.3).
//
// Capture starts qemu-system-x86_64 with the launch's arguments rewritten
// by QtestArgs: the qtest accelerator where the build has it, else TCG
// with the vCPUs held stopped (-S; Debian's QEMU ships no qtest
// accelerator), host resources replaced by inert backends, and the
// TDX-only objects removed. It then speaks the qtest protocol over a unix
// socket: it programs the chipset registers OVMF sets before its ACPI
// driver runs (q35 PCIEXBAR at 0xE0000000, ICH9 PMBASE 0x600 and ACPI
// enable) through PCI configuration cycles on ports 0xCF8/0xCFC, then
// reads the fw_cfg file directory (key 0x19) and every file through the
// fw_cfg DMA interface (port 0x514), which makes QEMU build its ACPI
// tables the way it does when OVMF first reads them.
//
// Before the tables are built, Capture enumerates PCI as edk2's PciBusDxe
// does with OVMF's host bridge and hot-plug padding (alloc.go): bus
// numbers behind the bridges on bus 0 (pcie-root-port), memory BARs and
// bridge windows sorted by alignment into OVMF's 32-bit and 64-bit
// apertures, memory decoding on; QEMU's DSDT reports the result as the
// 64-bit PCI hole. Nested bridges and option ROMs on functions with
// 64-bit BARs are refused by name. Options.GPUStandIn replaces vfio-pci
// GPUs whose host device is absent by an NVMe controller with the GPU
// model's prefetchable BAR sizes (StandInArgs, GPUH100); ci/swtpm checks
// the result against OVMF's own measurements and the guest's BARs.
//
// The argument vector comes from the caller (host/qemu builds it from the
// VM shape); this package never imports host, so the measured device list
// and the launched one are the same slice of strings by construction.
//
// The tables depend on the QEMU version: a capture describes a TD only when
// it is taken with the QEMU version of the shape's QEMU profile. Tables
// records the version it was taken with.
//
// ParseFileDir (the fw_cfg file directory) and ParseLoader (the
// linker/loader script) are the parsers of untrusted bytes; both are
// fuzzed.
package acpi
