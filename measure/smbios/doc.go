// Package smbios reproduces the SMBIOS handoff event that edk2 >=
// stable202505 measures into PCR1, and so into RTMR0 of a TD
// (research/measure.md §2.4): SHA-384 of the SMBIOS structure table OVMF
// publishes, after edk2's SmbiosMeasurementDxe has blanked the fields
// that differ between otherwise identical machines.
//
// The table is rebuilt from what QEMU serves over fw_cfg
// ("etc/smbios/smbios-anchor" and "etc/smbios/smbios-tables", which
// measure/acpi captures in the same QEMU run as the ACPI tables) the way
// the firmware does it:
//
//   - OvmfPkg's SmbiosVersionLib accepts QEMU's tables only when the
//     anchor is a valid SMBIOS 2.x ("_SM_", 31 bytes) or 3.x ("_SM3_", 24
//     bytes) entry point whose table length equals the tables' size; the
//     anchor's version becomes the SMBIOS protocol's version;
//   - OvmfPkg's SmbiosPlatformDxe adds every structure up to QEMU's
//     end-of-table (type 127) structure to the SMBIOS protocol, keeping
//     QEMU's handles, and adds its own type 0 (BIOS information: vendor
//     PcdFirmwareVendor, version PcdFirmwareVersionString, date
//     PcdFirmwareReleaseDateString) when QEMU gave none, with the lowest
//     free handle;
//   - MdeModulePkg's SmbiosDxe lays the structures out in the order they
//     were added and ends the table with its own 6-byte type 127
//     structure whose handle is 0xFEFF (0xFFFE for SMBIOS 2.0);
//   - SmbiosMeasurementDxe walks that table and applies its filter
//     (mSmbiosFilterStandardTableBlackList): string fields named by the
//     filter have their string overwritten with spaces and their index
//     byte zeroed, numeric fields are zeroed, types 11, 15, 18, 31, 33 and
//     every OEM type (>= 128) are zeroed after the 4-byte header, strings
//     included; fields beyond a structure's Length are left alone. The
//     digest is SHA-384 of the whole filtered table, end structure
//     included.
//
// The event is EV_EFI_HANDOFF_TABLES (PcdTcgPfpMeasurementRevision of
// OVMF is below 105) whose data, EFI_HANDOFF_TABLE_POINTERS, holds the
// table's run-time address; only the digest reaches the register.
//
// What the fw_cfg capture cannot know: SMBIOS type 4 carries the vCPU's
// CPUID leaf 1 (EAX, EDX) as ProcessorId, which the filter keeps. A TD's
// QEMU takes it from the host CPU ("-cpu host"), the capture from the CPU
// model it runs, so for a TD the caller supplies it (Options.ProcessorID).
//
// ParseAnchor and ParseStructures are the parsers of untrusted bytes; both
// are fuzzed.
package smbios
