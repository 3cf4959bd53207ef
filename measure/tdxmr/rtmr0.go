package tdxmr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/chrysalis-cc/chrysalis/measure/acpi"
	"github.com/chrysalis-cc/chrysalis/measure/smbios"
	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
)

// Fixed RTMR0 event data (research/measure.md §2.1, §2.4; edk2
// TdxMeasurementHob.c, QemuFwCfgAcpi.c, QemuFwCfgCacheInit.c).
const (
	// ACPIDataEvent is the event data of every "ACPI DATA" event (no NUL).
	ACPIDataEvent = "ACPI DATA"
	// FwCfgEventPrefix starts the event data of a fw_cfg cache event; the
	// item name follows, zero-padded to 56 bytes.
	FwCfgEventPrefix = "QEMU FW CFG\x00"
	// tdxTableDesc is the "TdxTable" handoff table description, NUL
	// included.
	tdxTableDesc = "TdxTable\x00"
	// fvDescTemplate is the CFV blob description when the volume has no
	// name, NUL included (FV_HANDOFF_TABLE_DESC).
	fvDescTemplate = "Fv(XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)\x00"
)

// UEFIVariableData encodes a UEFI_VARIABLE_DATA event: vendor GUID, u64
// name length in characters (no NUL), u64 data length, UTF-16LE name
// without NUL, data.
func UEFIVariableData(vendor tdvf.GUID, name string, data []byte) []byte {
	u := utf16.Encode([]rune(name))
	b := make([]byte, 0, 32+2*len(u)+len(data))
	b = append(b, vendor[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(u)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(data)))
	for _, c := range u {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return append(b, data...)
}

// BootOrderData encodes a BootOrder variable: u16 option numbers.
func BootOrderData(order []uint16) []byte {
	b := make([]byte, 0, 2*len(order))
	for _, n := range order {
		b = binary.LittleEndian.AppendUint16(b, n)
	}
	return b
}

// LoadOptionData encodes the EFI_LOAD_OPTION of a firmware application:
// u32 attributes, u16 device path length, NUL-terminated UTF-16LE
// description, device path (PIWG firmware volume node, PIWG firmware file
// node, end node), no optional data.
func (o BootOption) LoadOptionData() []byte {
	var dp []byte
	dp = append(dp, 0x04, 0x07, 0x14, 0x00) // media, PIWG FV
	dp = append(dp, o.FV[:]...)
	dp = append(dp, 0x04, 0x06, 0x14, 0x00) // media, PIWG FW file
	dp = append(dp, o.File[:]...)
	dp = append(dp, 0x7f, 0xff, 0x04, 0x00) // end of device path
	b := binary.LittleEndian.AppendUint32(nil, o.Attributes)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(dp)))
	for _, c := range utf16.Encode([]rune(o.Description)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	b = append(b, 0, 0)
	return append(b, dp...)
}

// VariableName is "Boot" and the number in 4 upper-case hex digits.
func (o BootOption) VariableName() string { return fmt.Sprintf("Boot%04X", o.Number) }

// TDHOBEventData is the "TdxTable" EV_EFI_HANDOFF_TABLES2 event data: u8
// description size, "TdxTable\0", u64 table count 1, the OVMF token space
// GUID and the TD HOB's address.
func TDHOBEventData(hobAddress uint64) []byte {
	b := []byte{byte(len(tdxTableDesc))}
	b = append(b, tdxTableDesc...)
	b = binary.LittleEndian.AppendUint64(b, 1)
	b = append(b, OVMFTokenSpaceGUID[:]...)
	return binary.LittleEndian.AppendUint64(b, hobAddress)
}

// CFVEventData is the EV_EFI_PLATFORM_FIRMWARE_BLOB2 event data of the
// CFV: u8 description size, "Fv(<name>)\0" (the template when the volume
// has no extended header), u64 base, u64 length.
func CFVEventData(cfv []byte, base uint64) []byte {
	desc := fvDescTemplate
	if name, ok := FvName(cfv); ok {
		desc = "Fv(" + name.String() + ")\x00"
	}
	b := []byte{byte(len(desc))}
	b = append(b, desc...)
	b = binary.LittleEndian.AppendUint64(b, base)
	return binary.LittleEndian.AppendUint64(b, uint64(len(cfv)))
}

// FwCfgEventData is a fw_cfg cache event's data: "QEMU FW CFG\0" and the
// item name zero-padded to 56 bytes.
func FwCfgEventData(name string) []byte {
	b := []byte(FwCfgEventPrefix)
	var n [acpi.FileNameSize]byte
	copy(n[:], name)
	return append(b, n[:]...)
}

// RTMR0Input is what RTMR0 needs.
type RTMR0Input struct {
	// Firmware is the parsed OVMF image.
	Firmware *tdvf.Firmware
	// MemorySize is the guest RAM in bytes (-m).
	MemorySize uint64
	// Layout is the OVMF profile's event layout (LayoutFor).
	Layout *Layout
	// Tables are the fw_cfg files QEMU serves for the VM's device list
	// (acpi.Capture): the ACPI blobs and, for newer layouts, the fw_cfg
	// cache items.
	Tables *acpi.Tables
	// SecureBoot is the SecureBoot variable's data; nil when the
	// variable does not exist (OVMF built without SECURE_BOOT_ENABLE,
	// like Debian's OVMF.fd).
	SecureBoot []byte
	// BIOS are the strings of the SMBIOS type 0 structure OVMF adds when
	// QEMU gives none (vendor, FIRMWARE_VER, release date of the build);
	// needed by layouts with an SMBIOS event.
	BIOS *smbios.BIOSInfo
	// ProcessorID replaces the CPUID leaf 1 (EAX, EDX) that the captured
	// SMBIOS type 4 structures carry: a TD's QEMU takes it from the host
	// CPU. Nil keeps the capture's.
	ProcessorID *[8]byte
}

// ErrBIOSInfoNeeded is wrapped by RTMR0 when the layout's SMBIOS event
// needs the firmware build's type 0 strings and RTMR0Input.BIOS is nil.
var ErrBIOSInfoNeeded = errors.New("supply them (RTMR0Input.BIOS)")

// RTMR0 returns the expected RTMR0 events and value of a direct kernel
// boot: in.Layout's entries expanded in order.
func RTMR0(in RTMR0Input) (*Register, error) {
	if in.Firmware == nil || in.Layout == nil {
		return nil, fmt.Errorf("tdxmr: RTMR0 needs the firmware and an event layout")
	}
	fw := in.Firmware
	cfvs := fw.SectionsOf(tdvf.SectionCFV)
	if len(cfvs) != 1 {
		return nil, fmt.Errorf("tdxmr: RTMR0: firmware has %d CFV sections, want 1", len(cfvs))
	}
	cfvSec := cfvs[0]
	cfv := fw.SectionData(cfvSec)
	var vars []Variable
	varsParsed := false
	var events []Event
	add := func(typ uint32, name string, digest Digest, data []byte, input, detail string) {
		events = append(events, Event{Register: 0, Type: typ, Name: name, Digest: digest, Data: data, Input: input, Detail: detail})
	}
	for _, e := range in.Layout.Entries {
		switch e.Kind {
		case KindTDHOB:
			hob, err := BuildTDHOB(fw.Sections, in.MemorySize)
			if err != nil {
				return nil, err
			}
			add(EvEFIHandoffTables2, "td-hob", Sum384(hob.Measured()), TDHOBEventData(hob.Address), InputMemory,
				fmt.Sprintf("SHA-384 of the %d-byte TD HOB QEMU builds at %#x for %d bytes of memory (%s), end-of-list HOB excluded",
					len(hob.Measured()), hob.Address, in.MemorySize, describeRAM(hob.RAM)))
		case KindCFV:
			add(EvEFIPlatformFirmwareBlob2, "cfv", Sum384(cfv), CFVEventData(cfv, cfvSec.MemoryAddress), InputFirmware,
				fmt.Sprintf("SHA-384 of the %#x-byte configuration firmware volume at %#x (firmware image offset %#x)",
					len(cfv), cfvSec.MemoryAddress, cfvSec.DataOffset))
		case KindFwCfg:
			if in.Tables == nil {
				return nil, fmt.Errorf("tdxmr: RTMR0 layout %s measures fw_cfg item %q: the QEMU fw_cfg capture is missing", in.Layout.Name, e.Name)
			}
			item, ok := fwCfgItem(in.Tables, e)
			if !ok {
				continue
			}
			add(EvPlatformConfigFlags, "fw-cfg:"+e.Name, Sum384(item), FwCfgEventData(e.Name), InputQEMU,
				fmt.Sprintf("SHA-384 of the %d-byte fw_cfg item %q of QEMU %s", len(item), e.Name, in.Tables.QEMUVersion))
		case KindSecureBootVariable:
			var data []byte
			found := false
			if e.Name == "SecureBoot" {
				data, found = in.SecureBoot, in.SecureBoot != nil
			} else {
				if !varsParsed {
					v, err := ParseVariableStore(cfv)
					if err != nil {
						return nil, err
					}
					vars, varsParsed = v, true
				}
				for _, v := range vars {
					if v.Name == e.Name && v.Vendor == e.Vendor {
						data, found = v.Data, true
					}
				}
			}
			if !found && e.Optional {
				continue
			}
			ev := UEFIVariableData(e.Vendor, e.Name, data)
			detail := fmt.Sprintf("SHA-384 of UEFI_VARIABLE_DATA for %s with %d data bytes", e.Name, len(data))
			if !found {
				detail = fmt.Sprintf("SHA-384 of UEFI_VARIABLE_DATA for the absent variable %s (no data)", e.Name)
			}
			add(EvEFIVariableDriverConfig, "secure-boot:"+e.Name, Sum384(ev), ev, InputVariables, detail)
		case KindSeparator:
			add(EvSeparator, "separator", Sum384(SeparatorData), SeparatorData, InputFirmware,
				"SHA-384 of the 4 zero bytes of the separator after the Secure Boot policy")
		case KindACPI:
			if in.Tables == nil {
				return nil, fmt.Errorf("tdxmr: RTMR0 needs the ACPI tables QEMU builds for the VM shape (acpi.Capture)")
			}
			blobs, err := in.Tables.Measured()
			if err != nil {
				return nil, err
			}
			for _, b := range blobs {
				add(EvPlatformConfigFlags, "acpi:"+b.Name, Sum384(b.Data), []byte(ACPIDataEvent), InputQEMU,
					fmt.Sprintf("SHA-384 of the %d-byte fw_cfg file %q as QEMU %s serves it (before OVMF patches it)", len(b.Data), b.Name, in.Tables.QEMUVersion))
			}
		case KindSMBIOS:
			ev, err := smbiosEvent(in)
			if err != nil {
				return nil, err
			}
			events = append(events, ev)
		case KindBootOrder:
			data := BootOrderData(e.Order)
			add(EvEFIVariableBoot, "BootOrder", Sum384(data), UEFIVariableData(GlobalVariableGUID, "BootOrder", data), InputFirmware,
				fmt.Sprintf("SHA-384 of the BootOrder variable data %x", data))
		case KindBootOption:
			if e.Option == nil {
				return nil, fmt.Errorf("tdxmr: RTMR0 layout %s: boot-option entry without an option", in.Layout.Name)
			}
			data := e.Option.LoadOptionData()
			name := e.Option.VariableName()
			add(EvEFIVariableBoot, name, Sum384(data), UEFIVariableData(GlobalVariableGUID, name, data), InputFirmware,
				fmt.Sprintf("SHA-384 of the %d-byte %s load option %q", len(data), name, e.Option.Description))
		default:
			return nil, fmt.Errorf("tdxmr: RTMR0 layout %s: unknown event kind %q", in.Layout.Name, e.Kind)
		}
	}
	return newRegister(0, events), nil
}

// smbiosEvent is the SMBIOS handoff event: SHA-384 of the table OVMF
// builds from QEMU's fw_cfg SMBIOS files, filtered as edk2's
// SmbiosMeasurementDxe does (measure/smbios). The event data holds the
// table's run-time address, so it is left open (nil).
func smbiosEvent(in RTMR0Input) (Event, error) {
	name := in.Layout.Name
	if in.Tables == nil {
		return Event{}, fmt.Errorf("tdxmr: RTMR0 layout %s logs an SMBIOS event: the QEMU fw_cfg capture (%s, %s) is missing", name, smbios.FileAnchor, smbios.FileTables)
	}
	anchor, ok1 := in.Tables.Files[smbios.FileAnchor]
	tables, ok2 := in.Tables.Files[smbios.FileTables]
	if !ok1 || !ok2 {
		return Event{}, fmt.Errorf("tdxmr: RTMR0 layout %s logs an SMBIOS event, but the fw_cfg capture has no %s or %s", name, smbios.FileAnchor, smbios.FileTables)
	}
	o := smbios.Options{ProcessorID: in.ProcessorID}
	if in.BIOS != nil {
		o.BIOS = *in.BIOS
	}
	t, d, err := smbios.OVMFDigest(anchor, tables, o)
	if err != nil {
		return Event{}, fmt.Errorf("tdxmr: RTMR0 SMBIOS event: %w", err)
	}
	if t.AddedType0 && in.BIOS == nil {
		return Event{}, fmt.Errorf("tdxmr: RTMR0 layout %s logs an SMBIOS event and QEMU gives no type 0, so OVMF adds its own from the firmware build's vendor, version and release date: %w", name, ErrBIOSInfoNeeded)
	}
	detail := fmt.Sprintf("SHA-384 of the %d-byte SMBIOS %d.%d table OVMF builds from QEMU %s's %s (%d structures), filtered as SmbiosMeasurementDxe does",
		len(t.Bytes), t.Anchor.Major, t.Anchor.Minor, in.Tables.QEMUVersion, smbios.FileTables, len(t.Structures))
	if t.AddedType0 {
		detail += fmt.Sprintf("; OVMF's type 0 %q %q %q", in.BIOS.Vendor, in.BIOS.Version, in.BIOS.ReleaseDate)
	}
	if in.ProcessorID != nil {
		detail += fmt.Sprintf("; type 4 ProcessorId %x supplied", in.ProcessorID[:])
	} else {
		detail += "; type 4 ProcessorId as captured (the capture's vCPU model)"
	}
	return Event{Register: 0, Type: EvEFIHandoffTables, Name: "smbios", Digest: Digest(d), Input: InputSMBIOS, Detail: detail}, nil
}

// fwCfgItem returns a fw_cfg cache item's bytes when OVMF would measure
// it: the fixed BootMenu item always, a file when present, non-empty and
// of the expected size.
func fwCfgItem(t *acpi.Tables, e LayoutEntry) ([]byte, bool) {
	var b []byte
	if e.FwCfgKey == acpi.KeyBootMenu {
		b = t.BootMenu
	} else {
		var ok bool
		if b, ok = t.Files[e.Name]; !ok {
			return nil, false
		}
	}
	if len(b) == 0 || e.FwCfgSize != 0 && len(b) != e.FwCfgSize {
		return nil, false
	}
	return b, true
}

func describeRAM(ram []RAMEntry) string {
	parts := make([]string, len(ram))
	for i, e := range ram {
		kind := "unaccepted"
		if e.Accepted {
			kind = "accepted"
		}
		parts[i] = fmt.Sprintf("[%#x,+%#x) %s", e.Address, e.Length, kind)
	}
	return strings.Join(parts, ", ")
}
