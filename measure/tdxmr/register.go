package tdxmr

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
)

// Digest is a SHA-384 digest: an event digest or a register value.
type Digest [48]byte

// Sum384 returns the SHA-384 of b.
func Sum384(b []byte) Digest { return sha512.Sum384(b) }

// ParseDigest parses 96 hex digits.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	b, err := hex.DecodeString(s)
	if err != nil {
		return d, fmt.Errorf("tdxmr: digest %q: %v", s, err)
	}
	if len(b) != len(d) {
		return d, fmt.Errorf("tdxmr: digest %q has %d bytes, want %d", s, len(b), len(d))
	}
	copy(d[:], b)
	return d, nil
}

// String returns the lower-case hex form.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText encodes the digest as hex.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText decodes 96 hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	v, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Extend returns SHA-384(reg || d), what TDG.MR.RTMR.EXTEND stores.
func Extend(reg, d Digest) Digest {
	var buf [96]byte
	copy(buf[:48], reg[:])
	copy(buf[48:], d[:])
	return sha512.Sum384(buf[:])
}

// TCG PC Client event types used by the RTMR0-2 events.
const (
	EvSeparator                  uint32 = 0x00000004
	EvEventTag                   uint32 = 0x00000006
	EvPlatformConfigFlags        uint32 = 0x0000000A
	EvEFIVariableDriverConfig    uint32 = 0x80000001
	EvEFIVariableBoot            uint32 = 0x80000002
	EvEFIBootServicesApplication uint32 = 0x80000003
	EvEFIAction                  uint32 = 0x80000007
	EvEFIPlatformFirmwareBlob2   uint32 = 0x8000000A
	EvEFIHandoffTables           uint32 = 0x80000009
	EvEFIHandoffTables2          uint32 = 0x8000000B
	EvEFIVariableBoot2           uint32 = 0x8000000C
)

// EventTypeName returns the TCG name of an event type.
func EventTypeName(t uint32) string {
	switch t {
	case EvSeparator:
		return "EV_SEPARATOR"
	case EvEventTag:
		return "EV_EVENT_TAG"
	case EvEFIBootServicesApplication:
		return "EV_EFI_BOOT_SERVICES_APPLICATION"
	case EvEFIAction:
		return "EV_EFI_ACTION"
	case EvPlatformConfigFlags:
		return "EV_PLATFORM_CONFIG_FLAGS"
	case EvEFIVariableDriverConfig:
		return "EV_EFI_VARIABLE_DRIVER_CONFIG"
	case EvEFIVariableBoot:
		return "EV_EFI_VARIABLE_BOOT"
	case EvEFIPlatformFirmwareBlob2:
		return "EV_EFI_PLATFORM_FIRMWARE_BLOB2"
	case EvEFIHandoffTables:
		return "EV_EFI_HANDOFF_TABLES"
	case EvEFIHandoffTables2:
		return "EV_EFI_HANDOFF_TABLES2"
	case EvEFIVariableBoot2:
		return "EV_EFI_VARIABLE_BOOT2"
	}
	return fmt.Sprintf("event-type-%#x", t)
}

// Inputs that explain an expected event (Event.Input).
const (
	// InputKernel: the kernel file, as QEMU serves it.
	InputKernel = "kernel"
	// InputCmdline: the kernel command line and OVMF's initrd= option.
	InputCmdline = "cmdline"
	// InputInitrd: the initrd file.
	InputInitrd = "initrd"
	// InputFirmware: a constant of the firmware's event layout, or the
	// firmware file itself (its CFV).
	InputFirmware = "firmware"
	// InputMemory: the guest memory size (with the firmware's TDVF
	// sections: the TD HOB).
	InputMemory = "memory"
	// InputVariables: the firmware's variable store (Secure Boot
	// variables).
	InputVariables = "variables"
	// InputQEMU: the fw_cfg files QEMU builds for the VM shape's device
	// list (ACPI tables, boot order, boot menu): QEMU version, vCPUs,
	// memory, devices and their order.
	InputQEMU = "qemu"
	// InputSMBIOS: the SMBIOS tables (edk2 >= stable202505): QEMU's
	// fw_cfg SMBIOS files (QEMU version, machine type, vCPUs, memory
	// size), OVMF's type 0 strings and the vCPU's CPUID.
	InputSMBIOS = "smbios"
)

// Event is one expected measurement event.
type Event struct {
	// Register is the RTMR index (0-3).
	Register int
	// Type is the TCG event type.
	Type uint32
	// Name is a stable label, e.g. "kernel" or "exit-boot-services-invocation".
	Name string
	// Digest is the SHA-384 digest extended into the register.
	Digest Digest
	// Data is the expected event data where it is fully determined by the
	// inputs; nil where it depends on run-time values (the kernel event's
	// UEFI_IMAGE_LOAD_EVENT carries the image's load address).
	Data []byte
	// Input names what the digest comes from (InputKernel, ...).
	Input string
	// Detail explains how the digest was derived, for a diagnosis.
	Detail string
}

// MRIndex is the CC measurement-register index an event log records for
// the event: 1 + the RTMR index (0 is MRTD).
func (e Event) MRIndex() uint32 { return uint32(e.Register) + 1 }

// String is a one-line description.
func (e Event) String() string {
	return fmt.Sprintf("RTMR%d %s %s %s (%s: %s)", e.Register, EventTypeName(e.Type), e.Name, e.Digest, e.Input, e.Detail)
}

// Replay extends a zero register with the digests of events in order.
func Replay(events []Event) Digest {
	var reg Digest
	for _, e := range events {
		reg = Extend(reg, e.Digest)
	}
	return reg
}

// Register is an RTMR's expected events and final value.
type Register struct {
	// Index is the RTMR index.
	Index int
	// Events are the expected events in log order.
	Events []Event
	// Value is Replay(Events).
	Value Digest
}

func newRegister(index int, events []Event) *Register {
	return &Register{Index: index, Events: events, Value: Replay(events)}
}
