package acpi

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

func dirBytes(t testing.TB, files []File) []byte {
	t.Helper()
	b, err := AppendFileDir(nil, files)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var sampleDir = []File{
	{Name: "bootorder", Key: 0x21, Size: 31},
	{Name: "etc/acpi/rsdp", Key: 0x22, Size: 20},
	{Name: "etc/acpi/tables", Key: 0x23, Size: 131072},
	{Name: "etc/table-loader", Key: 0x2c, Size: 4096},
}

func TestParseFileDir(t *testing.T) {
	b := dirBytes(t, sampleDir)
	if len(b) != 4+4*64 {
		t.Fatalf("encoded directory has %d bytes", len(b))
	}
	// Big-endian fields at fixed offsets (QEMU's FWCfgFile).
	if binary.BigEndian.Uint32(b) != 4 || binary.BigEndian.Uint32(b[4+64*2:]) != 131072 ||
		binary.BigEndian.Uint16(b[4+64*2+4:]) != 0x23 || string(b[4+64*2+8:4+64*2+8+15]) != "etc/acpi/tables" {
		t.Fatalf("encoding: % x", b[:80])
	}
	got, err := ParseFileDir(append(b, 0xde, 0xad)) // trailing bytes are ignored
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sampleDir) {
		t.Fatalf("got %+v", got)
	}
	if got, err := ParseFileDir([]byte{0, 0, 0, 0}); err != nil || len(got) != 0 {
		t.Fatalf("empty directory: %v %v", got, err)
	}
}

func TestParseFileDirErrors(t *testing.T) {
	good := dirBytes(t, sampleDir)
	entry := func(b []byte, i int) []byte { return b[4+64*i : 4+64*(i+1)] }
	for _, tc := range []struct {
		name string
		mut  func(b []byte) []byte
		want string
	}{
		{"no count", func(b []byte) []byte { return b[:3] }, "has no entry count"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, "claims 4 entries (260 bytes) but has 259 bytes"},
		{"huge count", func(b []byte) []byte { binary.BigEndian.PutUint32(b, 1<<31); return b }, "more than the 4096 accepted"},
		{"unterminated name", func(b []byte) []byte {
			copy(entry(b, 1)[8:], strings.Repeat("x", 56))
			return b
		}, "entry 1: name \"xxxx"},
		{"empty name", func(b []byte) []byte { entry(b, 2)[8] = 0; return b }, "entry 2: empty name"},
		{"control byte", func(b []byte) []byte { entry(b, 0)[9] = '\n'; return b }, "non-printable byte 0xa"},
		{"low key", func(b []byte) []byte { binary.BigEndian.PutUint16(entry(b, 3)[4:], 0x19); return b }, `entry 3 ("etc/table-loader"): selector 0x19 is below the file range (0x20)`},
		{"duplicate", func(b []byte) []byte { copy(entry(b, 3)[8:], entry(b, 2)[8:]); return b }, `entry 3: name "etc/acpi/tables" repeats entry 2`},
	} {
		b := append([]byte(nil), good...)
		_, err := ParseFileDir(tc.mut(b))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := AppendFileDir(nil, []File{{Name: strings.Repeat("n", 56), Key: 0x20}}); err == nil {
		t.Error("56-byte name encoded")
	}
}

func FuzzParseFileDir(f *testing.F) {
	f.Add(dirBytes(f, sampleDir))
	f.Add([]byte{0, 0, 0, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		files, err := ParseFileDir(b)
		if err != nil {
			return
		}
		// A parsed directory re-encodes to the bytes it came from.
		enc, err := AppendFileDir(nil, files)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", files, err)
		}
		again, err := ParseFileDir(enc)
		if err != nil || !reflect.DeepEqual(again, files) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, files, again)
		}
	})
}
