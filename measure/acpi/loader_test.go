package acpi

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

// qemuLikeScript is a linker/loader script shaped like QEMU's for q35:
// allocations first (RSDP in the F segment, tables high), pointers,
// checksums, padding to 4 KiB.
func qemuLikeScript() ([]Command, []byte) {
	cmds := []Command{
		{Type: CmdAllocate, File: FileRSDP, Align: 16, Zone: ZoneFSEG},
		{Type: CmdAllocate, File: FileTables, Align: 64, Zone: ZoneHigh},
		{Type: CmdAllocate, File: "etc/tpm/log", Align: 1, Zone: ZoneHigh},
		{Type: CmdAddPointer, File: FileTables, Src: FileTables, Offset: 0x24, Size: 4},
		{Type: CmdAddChecksum, File: FileTables, Offset: 9, Start: 0, Length: 0x40},
		{Type: CmdWritePointer, File: "etc/vmgenid_addr", Src: "etc/vmgenid_guid", Offset: 0, SrcOffset: 40, Size: 8},
		{Type: CmdAddPointer, File: FileRSDP, Src: FileTables, Offset: 16, Size: 4},
		{Type: CmdAddChecksum, File: FileRSDP, Offset: 8, Start: 0, Length: 20},
	}
	var b []byte
	for _, c := range cmds {
		b = AppendCommand(b, c)
	}
	b = append(b, make([]byte, 4096-len(b))...)
	for i := range cmds {
		cmds[i].Index = i
	}
	return cmds, b
}

func TestParseLoader(t *testing.T) {
	want, b := qemuLikeScript()
	// Byte layout of an allocation (QEMU's BiosLinkerLoaderEntry).
	if binary.LittleEndian.Uint32(b) != CmdAllocate || string(b[4:4+13]) != FileRSDP ||
		binary.LittleEndian.Uint32(b[4+56:]) != 16 || b[4+60] != ZoneFSEG {
		t.Fatalf("encoding: % x", b[:72])
	}
	got, err := ParseLoader(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
	if files := AllocatedFiles(got); !reflect.DeepEqual(files, []string{FileRSDP, FileTables, "etc/tpm/log"}) {
		t.Fatalf("allocated files %q", files)
	}
	// Unknown commands are kept but change nothing.
	unk := AppendCommand(nil, Command{Type: 99})
	got, err = ParseLoader(unk)
	if err != nil || len(got) != 1 || got[0].Type != 99 || len(AllocatedFiles(got)) != 0 {
		t.Fatalf("unknown command: %+v %v", got, err)
	}
	if got, err := ParseLoader(nil); err != nil || len(got) != 0 {
		t.Fatalf("empty script: %v %v", got, err)
	}
}

func TestParseLoaderErrors(t *testing.T) {
	_, good := qemuLikeScript()
	cmd := func(b []byte, i int) []byte { return b[i*128 : (i+1)*128] }
	for _, tc := range []struct {
		name string
		mut  func(b []byte) []byte
		want string
	}{
		{"partial command", func(b []byte) []byte { return b[:200] }, "200 bytes is not a whole number of 128-byte commands"},
		{"unterminated file", func(b []byte) []byte { copy(cmd(b, 0)[4:], strings.Repeat("f", 56)); return b }, "command 0 (type 1): file: name"},
		{"empty source", func(b []byte) []byte { cmd(b, 3)[4+56] = 0; return b }, "command 3 (type 2): source file: empty name"},
		{"alignment", func(b []byte) []byte { binary.LittleEndian.PutUint32(cmd(b, 1)[4+56:], 8192); return b }, `command 1 allocates "etc/acpi/tables" with alignment 8192`},
		{"twice", func(b []byte) []byte { copy(cmd(b, 2), cmd(b, 1)); return b }, `command 2 allocates "etc/acpi/tables" again (first at command 1)`},
		{"pointer size", func(b []byte) []byte { cmd(b, 3)[4+112+4] = 3; return b }, "with a 3-byte pointer"},
		{"write pointer size", func(b []byte) []byte { cmd(b, 5)[4+112+8] = 0; return b }, "command 5 (type 4) patches \"etc/vmgenid_addr\" with a 0-byte pointer"},
		{"checksum file", func(b []byte) []byte { cmd(b, 4)[4] = 0; return b }, "command 4 (type 3): file: empty name"},
	} {
		b := append([]byte(nil), good...)
		_, err := ParseLoader(tc.mut(b))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestMeasured(t *testing.T) {
	_, script := qemuLikeScript()
	tb := &Tables{Files: map[string][]byte{
		FileTableLoader: script,
		FileRSDP:        []byte("RSD PTR "),
		FileTables:      []byte("tables"),
		"etc/tpm/log":   []byte("log"),
	}}
	blobs, err := tb.Measured()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range blobs {
		names = append(names, b.Name)
	}
	if !reflect.DeepEqual(names, []string{FileTableLoader, FileRSDP, FileTables, "etc/tpm/log"}) {
		t.Fatalf("order %q", names)
	}
	delete(tb.Files, "etc/tpm/log")
	if _, err := tb.Measured(); err == nil || !strings.Contains(err.Error(), `allocates "etc/tpm/log", which the capture does not have`) {
		t.Fatalf("missing blob: %v", err)
	}
	if _, err := (&Tables{}).Measured(); err == nil || !strings.Contains(err.Error(), `no "etc/table-loader"`) {
		t.Fatalf("missing loader: %v", err)
	}
}

func FuzzParseLoader(f *testing.F) {
	_, script := qemuLikeScript()
	f.Add(script)
	f.Add(AppendCommand(nil, Command{Type: CmdAllocate, File: "x", Align: 4096, Zone: 9}))
	f.Add(make([]byte, 128))
	f.Fuzz(func(t *testing.T, b []byte) {
		cmds, err := ParseLoader(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, name := range AllocatedFiles(cmds) {
			if name == "" || seen[name] {
				t.Fatalf("allocated files %q", AllocatedFiles(cmds))
			}
			seen[name] = true
		}
		// Re-encoding the parsed commands parses to the same commands.
		var enc []byte
		for _, c := range cmds {
			enc = AppendCommand(enc, c)
		}
		again, err := ParseLoader(enc)
		if err != nil {
			t.Fatalf("re-encoded script: %v", err)
		}
		for i := range again {
			again[i].Index = cmds[i].Index
		}
		if !reflect.DeepEqual(again, cmds) {
			t.Fatalf("round trip:\n%+v\n%+v", cmds, again)
		}
	})
}
