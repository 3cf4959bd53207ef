package tdxmr

import (
	"fmt"

	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
)

// EventKind is a kind of RTMR0 event in an OVMF event layout. RTMR0
// expands each layout entry into zero or more events.
type EventKind string

// The RTMR0 event kinds (research/measure.md §2.1, §2.4).
const (
	// KindTDHOB: the TD HOB, measured by SEC (EV_EFI_HANDOFF_TABLES2
	// "TdxTable").
	KindTDHOB EventKind = "td-hob"
	// KindCFV: the configuration firmware volume (variable store),
	// measured by SEC (EV_EFI_PLATFORM_FIRMWARE_BLOB2 "Fv(...)").
	KindCFV EventKind = "cfv"
	// KindFwCfg: one fw_cfg item cached and measured by PEI when the item
	// exists (with the expected size), edk2 >= stable202505
	// (EV_PLATFORM_CONFIG_FLAGS "QEMU FW CFG").
	KindFwCfg EventKind = "fw-cfg"
	// KindSecureBootVariable: a Secure Boot policy variable
	// (EV_EFI_VARIABLE_DRIVER_CONFIG), logged even when absent unless the
	// entry is Optional.
	KindSecureBootVariable EventKind = "secure-boot-variable"
	// KindSeparator: the separator that ends the Secure Boot policy.
	KindSeparator EventKind = "separator"
	// KindACPI: the ACPI linker/loader script and every blob it
	// allocates, in order (EV_PLATFORM_CONFIG_FLAGS "ACPI DATA").
	KindACPI EventKind = "acpi-data"
	// KindSMBIOS: the SMBIOS table OVMF builds from QEMU's, filtered by
	// SmbiosMeasurementDxe, edk2 >= stable202505 (EV_EFI_HANDOFF_TABLES;
	// measure/smbios).
	KindSMBIOS EventKind = "smbios"
	// KindBootOrder: the BootOrder variable (EV_EFI_VARIABLE_BOOT).
	KindBootOrder EventKind = "boot-order"
	// KindBootOption: one Boot#### variable (EV_EFI_VARIABLE_BOOT).
	KindBootOption EventKind = "boot-option"
)

// Variable vendor GUIDs.
var (
	// GlobalVariableGUID is EFI_GLOBAL_VARIABLE (SecureBoot, PK, KEK,
	// BootOrder, Boot####).
	GlobalVariableGUID = tdvf.MustParseGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
	// ImageSecurityDatabaseGUID is EFI_IMAGE_SECURITY_DATABASE_GUID (db,
	// dbx, dbt).
	ImageSecurityDatabaseGUID = tdvf.MustParseGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
	// OVMFTokenSpaceGUID (gUefiOvmfPkgTokenSpaceGuid) names the TD HOB in
	// the "TdxTable" handoff event.
	OVMFTokenSpaceGUID = tdvf.MustParseGUID("93bb96af-b9f2-4eb8-9462-e0ba74564236")
	// OVMFDxeFvGUID is the name of OVMF's DXE firmware volume, where the
	// boot manager applications live.
	OVMFDxeFvGUID = tdvf.MustParseGUID("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1")
	// UiAppGUID and BootManagerMenuAppGUID are the FFS file names of
	// edk2's setup UI and boot manager menu.
	UiAppGUID              = tdvf.MustParseGUID("462caa21-7614-4503-836e-8ab6f4662331")
	BootManagerMenuAppGUID = tdvf.MustParseGUID("eec25bdc-67f2-4d95-b1d5-f81b2039d11d")
)

// Load option attributes (UEFI 2.10 §3.1.3).
const (
	LoadOptionActive      = 0x00000001
	LoadOptionHidden      = 0x00000008
	LoadOptionCategoryApp = 0x00000100
)

// BootOption is a Boot#### variable that OVMF creates for a firmware
// application: a load option whose device path is an FV node and an FV
// file node.
type BootOption struct {
	Number      uint16
	Attributes  uint32
	Description string
	FV, File    tdvf.GUID
}

// LayoutEntry is one entry of an event layout.
type LayoutEntry struct {
	Kind EventKind
	// Name is the fw_cfg item (KindFwCfg) or the variable name
	// (KindSecureBootVariable).
	Name string
	// FwCfgKey selects a fixed fw_cfg item (BootMenu) instead of a file;
	// FwCfgSize is the size the item must have to be measured (0: any
	// non-zero size).
	FwCfgKey  uint16
	FwCfgSize int
	// Vendor is the variable's vendor GUID (KindSecureBootVariable).
	Vendor tdvf.GUID
	// Optional: the event is logged only when the variable exists (dbt).
	Optional bool
	// Order is the BootOrder content (KindBootOrder).
	Order []uint16
	// Option is the Boot#### variable (KindBootOption).
	Option *BootOption
}

// Layout is the ordered list of RTMR0 events an OVMF build logs for a
// direct kernel boot.
type Layout struct {
	// Name is the OVMF profile it describes, e.g. "edk2-2025.02".
	Name string
	// EventLayout is the VM shape's OVMF event_layout value.
	EventLayout string
	// Entries are in log order.
	Entries []LayoutEntry
}

// The Secure Boot policy variables edk2's TCG drivers measure, in order
// (dbt only when present).
var secureBootPolicy = []LayoutEntry{
	{Kind: KindSecureBootVariable, Name: "SecureBoot", Vendor: GlobalVariableGUID},
	{Kind: KindSecureBootVariable, Name: "PK", Vendor: GlobalVariableGUID},
	{Kind: KindSecureBootVariable, Name: "KEK", Vendor: GlobalVariableGUID},
	{Kind: KindSecureBootVariable, Name: "db", Vendor: ImageSecurityDatabaseGUID},
	{Kind: KindSecureBootVariable, Name: "dbx", Vendor: ImageSecurityDatabaseGUID},
	{Kind: KindSecureBootVariable, Name: "dbt", Vendor: ImageSecurityDatabaseGUID, Optional: true},
}

// fwCfgCache is edk2's QemuFwCfgCacheInit.c list of measured items, in
// order (edk2 >= stable202505, TDX only).
var fwCfgCache = []LayoutEntry{
	{Kind: KindFwCfg, Name: "etc/extra-pci-roots", FwCfgSize: 8},
	{Kind: KindFwCfg, Name: "BootMenu", FwCfgKey: 0x000e, FwCfgSize: 2},
	{Kind: KindFwCfg, Name: "etc/boot-menu-wait", FwCfgSize: 2},
	{Kind: KindFwCfg, Name: "etc/reserved-memory-end", FwCfgSize: 8},
	{Kind: KindFwCfg, Name: "opt/ovmf/X-PciMmio64Mb"},
	{Kind: KindFwCfg, Name: "bootorder"},
}

func concat(parts ...[]LayoutEntry) []LayoutEntry {
	var out []LayoutEntry
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Layouts are the OVMF event layouts, one per OVMF profile event layout
// (measure/shape): the data RTMR0 follows.
var Layouts = []Layout{
	{
		// edk2 <= stable202502 (Debian trixie's 2025.02): 13 events in a
		// dstack CCEL (research/measure.md §2.1); the same variables and
		// ACPI blobs appear in PCR7/PCR1 of a TPM boot of this build.
		Name:        "edk2-2025.02",
		EventLayout: shape.OVMFLayoutPre202505,
		Entries: concat(
			[]LayoutEntry{{Kind: KindTDHOB}, {Kind: KindCFV}},
			secureBootPolicy,
			[]LayoutEntry{
				{Kind: KindSeparator},
				{Kind: KindACPI},
				{Kind: KindBootOrder, Order: []uint16{0}},
				{Kind: KindBootOption, Option: &BootOption{
					Number: 0, Attributes: LoadOptionActive | LoadOptionHidden | LoadOptionCategoryApp,
					Description: "UiApp", FV: OVMFDxeFvGUID, File: UiAppGUID,
				}},
			},
		),
	},
	{
		// edk2 >= stable202505: fw_cfg cache events, SMBIOS, and the boot
		// manager menu as Boot0000 (research/measure.md §2.4).
		Name:        "edk2-2025.05+",
		EventLayout: shape.OVMFLayout202505,
		Entries: concat(
			[]LayoutEntry{{Kind: KindTDHOB}, {Kind: KindCFV}},
			fwCfgCache,
			secureBootPolicy,
			[]LayoutEntry{
				{Kind: KindSeparator},
				{Kind: KindACPI},
				{Kind: KindSMBIOS},
				{Kind: KindBootOrder, Order: []uint16{0, 1}},
				{Kind: KindBootOption, Option: &BootOption{
					Number: 0, Attributes: LoadOptionActive | LoadOptionHidden | LoadOptionCategoryApp,
					Description: "BootManagerMenuApp", FV: OVMFDxeFvGUID, File: BootManagerMenuAppGUID,
				}},
				{Kind: KindBootOption, Option: &BootOption{
					Number: 1, Attributes: LoadOptionActive | LoadOptionCategoryApp,
					Description: "EFI Firmware Setup", FV: OVMFDxeFvGUID, File: UiAppGUID,
				}},
			},
		),
	},
}

// LayoutFor returns the layout of an OVMF profile's event_layout value.
func LayoutFor(eventLayout string) (*Layout, error) {
	for i := range Layouts {
		if Layouts[i].EventLayout == eventLayout {
			return &Layouts[i], nil
		}
	}
	known := make([]string, len(Layouts))
	for i, l := range Layouts {
		known[i] = l.EventLayout
	}
	return nil, fmt.Errorf("tdxmr: no RTMR0 event layout for OVMF event_layout %q (known: %q)", eventLayout, known)
}
