// Package tdxmr computes the expected boot-time TDX runtime measurement
// registers of a direct kernel boot (qemu -bios OVMF.fd -kernel -initrd
// -append) event by event, before the guest ever runs
// (research/measure.md §2). It owns:
//
//   - the register arithmetic: RTMR_new = SHA-384(RTMR_old || digest),
//     from 48 zero bytes (Replay);
//   - the model of the bzImage setup-header bytes QEMU rewrites before it
//     serves the kernel to OVMF over fw_cfg (x86_load_linux), which
//     depends on the guest memory size, the initrd size and the command
//     line; QEMU >= 10.2 no longer patches for confidential guests, so
//     both the patched and the unpatched kernel are modelled (PatchKernel,
//     KernelSource);
//   - RTMR1: the kernel's Authenticode SHA-384, "Calling EFI Application
//     from Boot Option", the ReadyToBoot separator, "Exit Boot Services
//     Invocation", "Exit Boot Services Returned with Success";
//   - RTMR2: the Linux EFI stub's LOADED_IMAGE::LoadOptions event (the
//     command line as OVMF builds LoadOptions: each byte widened to
//     UTF-16LE, " initrd=initrd" appended or "initrd=initrd " prepended
//     depending on the edk2 version, NUL-terminated) and its "Linux
//     initrd" event (SHA-384 of the initrd file);
//   - RTMR0: the events of the OVMF profile's event layout (Layouts: the
//     layout is data, one table per OVMF event layout): the TD HOB QEMU
//     builds from the memory size and the TDVF sections (BuildTDHOB), the
//     CFV, the fw_cfg items edk2 >= stable202505 caches (BootMenu,
//     bootorder, ...), the Secure Boot policy variables read from the
//     CFV's variable store (absent ones encoded empty), the separator, the
//     ACPI blobs QEMU serves for the VM's device list (measure/acpi
//     captures them from QEMU itself), the SMBIOS event of newer edk2 (the
//     table OVMF builds from QEMU's fw_cfg SMBIOS files, filtered and
//     hashed as edk2 does: measure/smbios), BootOrder and Boot####;
//   - ComputeAll: MRTD (measure/tdvf) and RTMR0-2 of a release directory
//     for a VM shape.
//
// Every expected event is labelled (name, register, TCG event type,
// digest, the input that explains it) so that a diagnosis can compare a
// real event log with the expectation one event at a time.
//
// This package is unrelated to agent/rtmr, which extends RTMR3 at run time
// inside the guest.
package tdxmr
