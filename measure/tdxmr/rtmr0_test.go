package tdxmr

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/acpi"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/smbios"
	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
)

// TestRTMR0Constants checks the literal RTMR0 values of
// research/measure.md §2.1 (read from a real dstack CCEL and recomputed
// there; the swtpm cross-check in ci/swtpm sees the same digests in PCR7
// and PCR1 of a TPM boot of the pinned OVMF).
func TestRTMR0Constants(t *testing.T) {
	absent := func(vendor tdvf.GUID, name string) []byte { return UEFIVariableData(vendor, name, nil) }
	for _, tc := range []struct {
		what   string
		hashed []byte
		digest string
	}{
		{"separator", SeparatorData, "394341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0"},
		{"SecureBoot (absent)", absent(GlobalVariableGUID, "SecureBoot"), "9dc3a1f80bcec915391dcda5ffbb15e7419f77eab462bbf72b42166fb70d50325e37b36f93537a863769bcf9bedae6fb"},
		{"PK (absent)", absent(GlobalVariableGUID, "PK"), "6f2e3cbc14f9def86980f5f66fd85e99d63e69a73014ed8a5633ce56eca5b64b692108c56110e22acadcef58c3250f1b"},
		{"KEK (absent)", absent(GlobalVariableGUID, "KEK"), "d607c0efb41c0d757d69bca0615c3a9ac0b1db06c557d992e906c6b7dee40e0e031640c7bfd7bcd35844ef9edeadc6f9"},
		{"db (absent)", absent(ImageSecurityDatabaseGUID, "db"), "08a74f8963b337acb6c93682f934496373679dd26af1089cb4eaf0c30cf260a12e814856385ab8843e56a9acea19e127"},
		{"dbx (absent)", absent(ImageSecurityDatabaseGUID, "dbx"), "18cc6e01f0c6ea99aa23f8a280423e94ad81d96d0aeb5180504fc0f7a40cb3619dd39bd6a95ec1680a86ed6ab0f9828d"},
		{"BootOrder (0000)", BootOrderData([]uint16{0}), "1dd6f7b457ad880d840d41c961283bab688e94e4b59359ea45686581e90feccea3c624b1226113f824f315eb60ae0a7c"},
		{"Boot0000 (UiApp)", Layouts[0].Entries[len(Layouts[0].Entries)-1].Option.LoadOptionData(), "23ada07f5261f12f34a0bd8e46760962d6b4d576a416f1fea1c64bc656b1d28eacf7047ae6e967c58fd2a98bfa74c298"},
		{"action: calling", []byte(ActionCallingEFIApplication), "77a0dab2312b4e1e57a84d865a21e5b2ee8d677a21012ada819d0a98988078d3d740f6346bfe0abaa938ca20439a8d71"},
		{"action: exit boot services", []byte(ActionExitBootServices), "214b0bef1379756011344877743fdc2a5382bac6e70362d624ccf3f654407c1b4badf7d8f9295dd3dabdef65b27677e0"},
		{"action: exit boot services ok", []byte(ActionExitBootServicesSuccess), "0a2e01c85deae718a530ad8c6d20a84009babe6c8989269e950d8cf440c6e997695e64d455c4174a652cd080f6230b74"},
		// BootOrder [0000, 0001] of edk2 >= stable202505 (§2.4).
		{"BootOrder (0000,0001)", BootOrderData([]uint16{0, 1}), hex.EncodeToString(func() []byte { d := Sum384([]byte{0, 0, 1, 0}); return d[:] }())},
	} {
		if got := Sum384(tc.hashed); got != hexDigest(t, tc.digest) {
			t.Errorf("%s: SHA-384 %s, want %s", tc.what, got, tc.digest)
		}
	}
	// Byte layouts.
	if got := hex.EncodeToString(UEFIVariableData(GlobalVariableGUID, "SecureBoot", nil)); got != "61dfe48bca93d211aa0d00e098032b8c"+"0a00000000000000"+"0000000000000000"+"53006500630075007200650042006f006f007400" {
		t.Errorf("SecureBoot UEFI_VARIABLE_DATA %s", got)
	}
	uiApp := Layouts[0].Entries[len(Layouts[0].Entries)-1].Option.LoadOptionData()
	wantUiApp := "09010000" + "2c00" + "55006900410070007000" + "0000" +
		"04071400" + "c9bdb87cebf8344faaea3ee4af6516a1" +
		"04061400" + "21aa2c46147603458 36e8ab6f4662331" + "7fff0400"
	if got := hex.EncodeToString(uiApp); len(uiApp) != 62 || got != strings.ReplaceAll(wantUiApp, " ", "") {
		t.Errorf("Boot0000 load option (%d bytes) %s", len(uiApp), got)
	}
	if got := hex.EncodeToString(TDHOBEventData(0x809000)); got != "09"+hex.EncodeToString([]byte("TdxTable\x00"))+"0100000000000000"+
		"af96bb93f2b9b84e9462e0ba74564236"+"0090800000000000" {
		t.Errorf("TdxTable event data %s", got)
	}
	cfvData := CFVEventData(make([]byte, 0x84000), 0xffc00000)
	if len(cfvData) != 58 || cfvData[0] != 0x29 || string(cfvData[1:42]) != "Fv(XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)\x00" ||
		binary.LittleEndian.Uint64(cfvData[42:]) != 0xffc00000 || binary.LittleEndian.Uint64(cfvData[50:]) != 0x84000 {
		t.Errorf("CFV event data % x", cfvData)
	}
	fw := FwCfgEventData("bootorder")
	if len(fw) != 68 || string(fw[:21]) != "QEMU FW CFG\x00bootorder" || !bytes.Equal(fw[21:], make([]byte, 47)) {
		t.Errorf("fw_cfg event data %q", fw)
	}
	if (BootOption{Number: 0x1a}).VariableName() != "Boot001A" {
		t.Error("Boot#### name")
	}
	if EventTypeName(EvEFIHandoffTables2) != "EV_EFI_HANDOFF_TABLES2" || EventTypeName(EvPlatformConfigFlags) != "EV_PLATFORM_CONFIG_FLAGS" ||
		EventTypeName(EvEFIVariableDriverConfig) != "EV_EFI_VARIABLE_DRIVER_CONFIG" || EventTypeName(EvEFIVariableBoot) != "EV_EFI_VARIABLE_BOOT" ||
		EventTypeName(EvEFIPlatformFirmwareBlob2) != "EV_EFI_PLATFORM_FIRMWARE_BLOB2" || EventTypeName(EvEFIVariableBoot2) != "EV_EFI_VARIABLE_BOOT2" {
		t.Error("RTMR0 event type names")
	}
}

// synthTables is a capture of a machine whose loader allocates the RSDP
// and the tables, with the items edk2's fw_cfg cache reads.
func synthTables() *acpi.Tables {
	var loader []byte
	loader = acpi.AppendCommand(loader, acpi.Command{Type: acpi.CmdAllocate, File: acpi.FileRSDP, Align: 16, Zone: acpi.ZoneFSEG})
	loader = acpi.AppendCommand(loader, acpi.Command{Type: acpi.CmdAllocate, File: acpi.FileTables, Align: 64, Zone: acpi.ZoneHigh})
	loader = append(loader, make([]byte, 4096-len(loader))...)
	return &acpi.Tables{
		QEMUVersion: "10.1.0",
		Files: map[string][]byte{
			acpi.FileTableLoader: loader,
			acpi.FileRSDP:        []byte("RSD PTR \x00BOCHS \x00\x00\x00\x00\x00"),
			acpi.FileTables:      bytes.Repeat([]byte("DSDT"), 1024),
			"bootorder":          []byte("/rom@genroms/linuxboot_dma.bin\x00"),
			"etc/boot-menu-wait": {1, 2, 3}, // wrong size: not measured
		},
		BootMenu: []byte{0, 0},
	}
}

// smbiosBIOS are the type 0 strings of Debian's ovmf 2026.08+ds-2 (the
// DMI table a boot of that build published: vendor, FIRMWARE_VER, the
// changelog date).
var smbiosBIOS = smbios.BIOSInfo{Vendor: "Debian distribution of EDK II", Version: "2026.08+ds-2", ReleaseDate: "09/26/2026"}

// smbios1G is the SMBIOS handoff digest Debian's ovmf 2026.08+ds-2 logged
// in PCR1 (swtpm, SHA-384 bank) under QEMU 7.2 "-machine q35 -cpu max -m
// 1G -smp 1": observed, and equal to measure/smbios's result for the
// captured tables in measure/smbios/testdata.
var smbios1G = mustDigest("26b4ae2165a9f5ed77227409c5fc265fa3104dd5c471be0f1edc63e13376d6fd240d1a00b653f22588cdfaf949936b94")

func mustDigest(s string) Digest {
	d, err := ParseDigest(s)
	if err != nil {
		panic(err)
	}
	return d
}

func readSMBIOS(t *testing.T, mem string) (anchor, tables []byte) {
	t.Helper()
	var err error
	if anchor, err = os.ReadFile(filepath.Join("..", "smbios", "testdata", "qemu-7.2-q35-"+mem+".anchor")); err != nil {
		t.Fatal(err)
	}
	if tables, err = os.ReadFile(filepath.Join("..", "smbios", "testdata", "qemu-7.2-q35-"+mem+".tables")); err != nil {
		t.Fatal(err)
	}
	return anchor, tables
}

func eventNames(r *Register) []string {
	var out []string
	for _, e := range r.Events {
		out = append(out, e.Name)
	}
	return out
}

func TestRTMR0Layouts(t *testing.T) {
	fw := synthFirmware(t, synthCFVBytes(nil, nil))
	tb := synthTables()
	pre, err := LayoutFor(shape.OVMFLayoutPre202505)
	if err != nil {
		t.Fatal(err)
	}
	r, err := RTMR0(RTMR0Input{Firmware: fw, MemorySize: 1 << 30, Layout: pre, Tables: tb})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"td-hob", "cfv", "secure-boot:SecureBoot", "secure-boot:PK", "secure-boot:KEK", "secure-boot:db", "secure-boot:dbx",
		"separator", "acpi:etc/table-loader", "acpi:etc/acpi/rsdp", "acpi:etc/acpi/tables", "BootOrder", "Boot0000"}
	if got := eventNames(r); !reflect.DeepEqual(got, want) {
		t.Fatalf("edk2-2025.02 events %q", got)
	}
	for _, e := range r.Events {
		if e.Register != 0 || e.MRIndex() != 1 {
			t.Errorf("%s: register %d", e.Name, e.Register)
		}
	}
	hob, _ := BuildTDHOB(fw.Sections, 1<<30)
	cfv := fw.SectionData(fw.SectionsOf(tdvf.SectionCFV)[0])
	checks := map[string]struct {
		typ    uint32
		digest Digest
		data   []byte
	}{
		"td-hob":                {EvEFIHandoffTables2, Sum384(hob.Measured()), TDHOBEventData(0x809000)},
		"cfv":                   {EvEFIPlatformFirmwareBlob2, Sum384(cfv), CFVEventData(cfv, 0xfffe0000)},
		"secure-boot:db":        {EvEFIVariableDriverConfig, hexDigest(t, "08a74f8963b337acb6c93682f934496373679dd26af1089cb4eaf0c30cf260a12e814856385ab8843e56a9acea19e127"), UEFIVariableData(ImageSecurityDatabaseGUID, "db", nil)},
		"acpi:etc/acpi/tables":  {EvPlatformConfigFlags, Sum384(tb.Files[acpi.FileTables]), []byte("ACPI DATA")},
		"acpi:etc/table-loader": {EvPlatformConfigFlags, Sum384(tb.Files[acpi.FileTableLoader]), []byte("ACPI DATA")},
		"Boot0000":              {EvEFIVariableBoot, hexDigest(t, "23ada07f5261f12f34a0bd8e46760962d6b4d576a416f1fea1c64bc656b1d28eacf7047ae6e967c58fd2a98bfa74c298"), nil},
	}
	for _, e := range r.Events {
		c, ok := checks[e.Name]
		if !ok {
			continue
		}
		if e.Type != c.typ || e.Digest != c.digest || c.data != nil && !bytes.Equal(e.Data, c.data) {
			t.Errorf("%s: %s", e.Name, e)
		}
	}
	if r.Value != Replay(r.Events) {
		t.Error("value is not the replay")
	}

	// edk2 >= stable202505: fw_cfg items (BootMenu always, bootorder
	// when present, boot-menu-wait only with its expected size), SMBIOS
	// (an input), Boot0000 and Boot0001: dstack's 17 events.
	post, err := LayoutFor(shape.OVMFLayout202505)
	if err != nil {
		t.Fatal(err)
	}
	in := RTMR0Input{Firmware: fw, MemorySize: 1 << 30, Layout: post, Tables: tb}
	if _, err := RTMR0(in); err == nil || !strings.Contains(err.Error(), "no etc/smbios/smbios-anchor") {
		t.Fatalf("no SMBIOS files: %v", err)
	}
	tb.Files[smbios.FileAnchor], tb.Files[smbios.FileTables] = readSMBIOS(t, "1g")
	if _, err := RTMR0(in); err == nil || !strings.Contains(err.Error(), "supply them (RTMR0Input.BIOS)") {
		t.Fatalf("no type 0 strings: %v", err)
	}
	in.BIOS = &smbiosBIOS
	r, err = RTMR0(in)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"td-hob", "cfv", "fw-cfg:BootMenu", "fw-cfg:bootorder", "secure-boot:SecureBoot", "secure-boot:PK", "secure-boot:KEK",
		"secure-boot:db", "secure-boot:dbx", "separator", "acpi:etc/table-loader", "acpi:etc/acpi/rsdp", "acpi:etc/acpi/tables",
		"smbios", "BootOrder", "Boot0000", "Boot0001"}
	if got := eventNames(r); !reflect.DeepEqual(got, want) {
		t.Fatalf("edk2-2025.05+ events %q", got)
	}
	for _, e := range r.Events {
		switch e.Name {
		case "fw-cfg:bootorder":
			if e.Digest != Sum384([]byte("/rom@genroms/linuxboot_dma.bin\x00")) || !bytes.Equal(e.Data, FwCfgEventData("bootorder")) || e.Type != EvPlatformConfigFlags {
				t.Errorf("%s", e)
			}
		case "fw-cfg:BootMenu":
			if e.Digest != Sum384([]byte{0, 0}) {
				t.Errorf("%s", e)
			}
		case "BootOrder":
			if e.Digest != Sum384([]byte{0, 0, 1, 0}) {
				t.Errorf("%s", e)
			}
		case "smbios":
			if e.Digest != smbios1G || e.Input != InputSMBIOS || e.Type != EvEFIHandoffTables || e.Data != nil {
				t.Errorf("%s", e)
			}
		case "Boot0001":
			o := BootOption{Number: 1, Attributes: 0x101, Description: "EFI Firmware Setup", FV: OVMFDxeFvGUID, File: UiAppGUID}
			if e.Digest != Sum384(o.LoadOptionData()) {
				t.Errorf("%s", e)
			}
		}
	}

	// Missing inputs are errors naming what is missing.
	for _, tc := range []struct {
		in   RTMR0Input
		want string
	}{
		{RTMR0Input{Firmware: fw, MemorySize: 1 << 30, Layout: pre}, "needs the ACPI tables"},
		{RTMR0Input{Firmware: fw, MemorySize: 1 << 30, Layout: post}, `measures fw_cfg item "etc/extra-pci-roots": the QEMU fw_cfg capture is missing`},
		{RTMR0Input{Firmware: fw, Layout: pre, Tables: tb}, "guest memory size is 0"},
		{RTMR0Input{Layout: pre}, "needs the firmware"},
		{RTMR0Input{Firmware: fw, MemorySize: 1 << 30, Layout: pre, Tables: &acpi.Tables{}}, `no "etc/table-loader"`},
		{RTMR0Input{Firmware: fw, MemorySize: 1 << 30, Layout: &Layout{Name: "x", Entries: []LayoutEntry{{Kind: "bogus"}}}}, `unknown event kind "bogus"`},
	} {
		if _, err := RTMR0(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	if _, err := LayoutFor("2019"); err == nil || !strings.Contains(err.Error(), `no RTMR0 event layout for OVMF event_layout "2019"`) {
		t.Errorf("unknown layout: %v", err)
	}
}

// TestRTMR0Variables: enrolled keys in the CFV change the Secure Boot
// events; a SecureBoot value is an input; dbt appears only when present.
func TestRTMR0Variables(t *testing.T) {
	pk := []byte("a PK signature list")
	cfvBytes := synthCFVBytes([]synthVar{
		{name: "PK", vendor: GlobalVariableGUID, state: varAdded, data: pk},
		{name: "dbt", vendor: ImageSecurityDatabaseGUID, state: varAdded, data: []byte{1}},
		{name: "db", vendor: ImageSecurityDatabaseGUID, state: 0x3c, data: []byte("deleted")},
	}, nil)
	fw := synthFirmware(t, cfvBytes)
	layout, _ := LayoutFor(shape.OVMFLayoutPre202505)
	r, err := RTMR0(RTMR0Input{Firmware: fw, MemorySize: 1 << 30, Layout: layout, Tables: synthTables(), SecureBoot: []byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Event{}
	for _, e := range r.Events {
		byName[e.Name] = e
	}
	for name, data := range map[string][]byte{
		"secure-boot:SecureBoot": UEFIVariableData(GlobalVariableGUID, "SecureBoot", []byte{1}),
		"secure-boot:PK":         UEFIVariableData(GlobalVariableGUID, "PK", pk),
		"secure-boot:db":         UEFIVariableData(ImageSecurityDatabaseGUID, "db", nil),
		"secure-boot:dbt":        UEFIVariableData(ImageSecurityDatabaseGUID, "dbt", []byte{1}),
	} {
		e, ok := byName[name]
		if !ok || e.Digest != Sum384(data) || !bytes.Equal(e.Data, data) {
			t.Errorf("%s: %v", name, e)
		}
	}
	if got := eventNames(r)[2:8]; !reflect.DeepEqual(got, []string{"secure-boot:SecureBoot", "secure-boot:PK", "secure-boot:KEK", "secure-boot:db", "secure-boot:dbx", "secure-boot:dbt"}) {
		t.Errorf("policy order %q", got)
	}
	// A named CFV puts its name into the blob description.
	name := tdvf.MustParseGUID("fff12b8d-7696-4c8b-a985-2747075b4f50")
	fw = synthFirmware(t, synthCFVBytes(nil, &name))
	r, err = RTMR0(RTMR0Input{Firmware: fw, MemorySize: 1 << 30, Layout: layout, Tables: synthTables()})
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Events[1].Data; string(d[1:42]) != "Fv(fff12b8d-7696-4c8b-a985-2747075b4f50)\x00" {
		t.Errorf("named CFV description %q", d[1:42])
	}
}

func TestLayoutsCoverShapes(t *testing.T) {
	seen := map[string]bool{}
	for _, l := range Layouts {
		if seen[l.EventLayout] || seen[l.Name] {
			t.Errorf("layout %s/%s defined twice", l.Name, l.EventLayout)
		}
		seen[l.EventLayout], seen[l.Name] = true, true
	}
	for _, n := range shape.Names() {
		s, _ := shape.Lookup(n)
		l, err := LayoutFor(s.OVMF.EventLayout)
		if err != nil {
			t.Errorf("shape %s: %v", n, err)
			continue
		}
		if l.Name != s.OVMF.Name {
			t.Errorf("shape %s: OVMF profile %q uses layout %q", n, s.OVMF.Name, l.Name)
		}
	}
}

func BenchmarkRTMR0(b *testing.B) {
	fw := synthFirmware(b, synthCFVBytes(nil, nil))
	if img, ok := realOVMFImage(b); ok {
		f, err := tdvf.Parse(img)
		if err != nil {
			b.Fatal(err)
		}
		fw = f
	}
	tb := synthTables()
	tb.Files[acpi.FileTables] = bytes.Repeat([]byte{0xac}, 128<<10)
	layout, _ := LayoutFor(shape.OVMFLayoutPre202505)
	in := RTMR0Input{Firmware: fw, MemorySize: 1 << 30, Layout: layout, Tables: tb}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RTMR0(in); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleRTMR0() {
	layout, _ := LayoutFor(shape.OVMFLayoutPre202505)
	for _, e := range layout.Entries {
		fmt.Print(e.Kind, " ")
	}
	// Output: td-hob cfv secure-boot-variable secure-boot-variable secure-boot-variable secure-boot-variable secure-boot-variable secure-boot-variable separator acpi-data boot-order boot-option
}
