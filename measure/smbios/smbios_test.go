package smbios

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readCapture(t testing.TB, mem string) (anchor, tables []byte) {
	t.Helper()
	var err error
	if anchor, err = os.ReadFile(filepath.Join("testdata", "qemu-7.2-q35-"+mem+".anchor")); err != nil {
		t.Fatal(err)
	}
	if tables, err = os.ReadFile(filepath.Join("testdata", "qemu-7.2-q35-"+mem+".tables")); err != nil {
		t.Fatal(err)
	}
	return anchor, tables
}

// debian202608 are the type 0 strings of Debian's ovmf 2026.08+ds-2, read
// from the DMI table a boot of that build published.
var debian202608 = BIOSInfo{Vendor: "Debian distribution of EDK II", Version: "2026.08+ds-2", ReleaseDate: "09/26/2026"}

// TestOVMFDigestObserved: the testdata tables are QEMU 7.2's fw_cfg
// SMBIOS files for "-machine q35 -cpu max -smp 1" with 1 GiB and 3 GiB
// (measure/acpi capture). The digests are the SMBIOS EV_EFI_HANDOFF_TABLES
// events Debian's ovmf 2026.08+ds-2 logged in PCR1 (swtpm, SHA-384 bank)
// when booted with those command lines: observed, not derived.
func TestOVMFDigestObserved(t *testing.T) {
	for _, tc := range []struct{ mem, want string }{
		{"1g", "26b4ae2165a9f5ed77227409c5fc265fa3104dd5c471be0f1edc63e13376d6fd240d1a00b653f22588cdfaf949936b94"},
		{"3g", "2e081df946a59d05ccd6ad01cbdd1ec10b76dba1750eadfb78cedb51eb578ca9659423c69b291775a61c08aaaedf2007"},
	} {
		a, b := readCapture(t, tc.mem)
		tb, d, err := OVMFDigest(a, b, Options{BIOS: debian202608})
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(d[:]); got != tc.want {
			t.Errorf("%s: digest %s, want %s", tc.mem, got, tc.want)
		}
		if !tb.AddedType0 || tb.Anchor.V3() || !bytes.Equal(tb.EventDataPrefix()[8:], SMBIOSTableGUID[:]) {
			t.Errorf("%s: table %+v", tc.mem, tb.Anchor)
		}
		// OVMF's type 0 takes the lowest free handle (0); SmbiosDxe's end
		// structure has handle 0xFEFF and is last.
		last := tb.Structures[len(tb.Structures)-1]
		t0 := tb.Structures[len(tb.Structures)-2]
		if last.Type != TypeEnd || last.Handle != 0xFEFF || len(last.Raw) != 6 || t0.Type != 0 || t0.Handle != 0 {
			t.Errorf("%s: end %+v, type 0 %+v", tc.mem, last, t0)
		}
	}
}

func TestParseAnchor(t *testing.T) {
	a, _ := readCapture(t, "1g")
	v3 := make([]byte, anchor3Size)
	copy(v3, "_SM3_")
	v3[7], v3[8], v3[9] = 3, 6, 0
	binary.LittleEndian.PutUint32(v3[12:], 0x1234)
	bad := func(f func(b []byte)) []byte {
		b := append([]byte(nil), a...)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want Anchor
		err  string
	}{
		{"qemu 7.2 (2.8)", a, Anchor{Major: 2, Minor: 8, TableLength: 309}, ""},
		{"3.6", v3, Anchor{Major: 3, Minor: 6, TableLength: 0x1234}, ""},
		{"empty", nil, Anchor{}, "anchor has 0 bytes"},
		{"2.x anchor", bad(func(b []byte) { b[0] = 'X' }), Anchor{}, `want "_SM_" and "_DMI_"`},
		{"2.x intermediate", bad(func(b []byte) { b[0x10] = 'X' }), Anchor{}, `want "_SM_" and "_DMI_"`},
		{"2.x major", bad(func(b []byte) { b[6] = 3 }), Anchor{}, "2.x anchor has major version 3"},
		{"3.x anchor", append([]byte("_SM4_"), v3[5:]...), Anchor{}, `want "_SM3_"`},
		{"3.x major", append(append([]byte(nil), v3[:7]...), append([]byte{2}, v3[8:]...)...), Anchor{}, "3.x anchor has major version 2"},
	} {
		got, err := ParseAnchor(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || *got != tc.want {
			t.Errorf("%s: %+v, %v", tc.name, got, err)
		}
	}
}

// st builds a structure: header, formatted bytes after it, strings.
func st(typ uint8, handle uint16, formatted []byte, strs ...string) []byte {
	b := []byte{typ, byte(headerSize + len(formatted)), 0, 0}
	binary.LittleEndian.PutUint16(b[2:], handle)
	b = append(b, formatted...)
	if len(strs) == 0 {
		return append(b, 0, 0)
	}
	for _, s := range strs {
		b = append(append(b, s...), 0)
	}
	return append(b, 0)
}

var end = st(TypeEnd, 0x7f00, nil)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestParseStructures(t *testing.T) {
	_, q := readCapture(t, "1g")
	ss, err := ParseStructures(q)
	if err != nil {
		t.Fatal(err)
	}
	var types []uint8
	for _, s := range ss {
		types = append(types, s.Type)
	}
	if !bytes.Equal(types, []byte{1, 3, 4, 16, 17, 19, 32, 127}) {
		t.Errorf("QEMU 7.2 types %v", types)
	}
	if got := ss[0].Strings(); len(got) != 3 || string(ss[0].Raw[got[2].Offset:got[2].Offset+got[2].Len]) != "pc-q35-7.2" {
		t.Errorf("type 1 strings %+v", got)
	}
	for _, tc := range []struct {
		name, err string
		in        []byte
	}{
		{"empty", "has no end-of-table structure", nil},
		{"no end", "has no end-of-table structure", st(1, 1, make([]byte, 23))},
		{"short header", "3 bytes left", cat(st(1, 1, nil), []byte{1, 4, 0})},
		{"length < 4", "has length 3", []byte{1, 3, 0, 0, 0, 0}},
		{"length past end", "past the table's end", []byte{1, 200, 0, 0, 0, 0}},
		{"no double NUL", "no double NUL", []byte{1, 4, 0, 0, 'a', 0, 'b'}},
		{"too big", "more than", make([]byte, MaxTablesBytes+1)},
	} {
		if _, err := ParseStructures(tc.in); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
	// A NUL right after the formatted area is skipped, as edk2 does.
	ss, err = ParseStructures(cat([]byte{1, 4, 0, 0, 0, 'a', 'b', 0, 'c', 0, 0}, end))
	if err != nil || len(ss) != 2 || len(ss[0].Strings()) != 2 || ss[0].Strings()[0] != (StringRef{5, 2}) || ss[0].Strings()[1] != (StringRef{8, 1}) {
		t.Errorf("leading NUL: %+v %v", ss, err)
	}
}

// TestFilter checks SmbiosMeasurementDxe's filter on hand-built
// structures; the expected bytes are derived from the edk2 rules.
func TestFilter(t *testing.T) {
	type1 := make([]byte, 23)                           // SMBIOS 2.8 type 1: 27 bytes
	type1[0], type1[1], type1[2], type1[3] = 1, 2, 3, 4 // manufacturer, product, version, serial
	for i := 4; i < 20; i++ {
		type1[i] = 0xAA // UUID
	}
	type1[20] = 6 // wake-up type
	type1[21] = 5 // SKU (kept)
	wantType1 := append([]byte(nil), type1...)
	wantType1[3] = 0
	clear(wantType1[4:21])
	type4 := make([]byte, 38) // 42-byte type 4 (SMBIOS 2.6): no CoreCount2
	type4[0] = 1              // socket
	type4[4] = 0x55           // ProcessorId (kept)
	type4[13] = 0x8A          // voltage
	type4[18], type4[19] = 0xD0, 0x07
	type4[28], type4[29], type4[30] = 2, 0, 0 // serial = string 2 ("SN"), asset none, part none
	type4[31], type4[32], type4[33] = 4, 4, 8 // counts
	wantType4 := append([]byte(nil), type4...)
	wantType4[13] = 0
	wantType4[18], wantType4[19] = 0, 0
	wantType4[28] = 0
	wantType4[31], wantType4[32], wantType4[33] = 0, 0, 0
	for _, tc := range []struct {
		name     string
		in, want []byte
		err      string
	}{
		{"type 1", cat(st(1, 0x100, type1, "QEMU", "PC", "v", "SERIAL"), end),
			cat(st(1, 0x100, wantType1, "QEMU", "PC", "v", "      "), end), ""},
		{"type 4 short", cat(st(4, 0x400, type4, "CPU 0", "SN"), end),
			cat(st(4, 0x400, wantType4, "CPU 0", "  "), end), ""},
		{"type 11 all", cat(st(11, 0xb00, []byte{1}, "oem"), end),
			cat([]byte{11, 5, 0, 0xb, 0, 0, 0, 0, 0, 0}, end), ""},
		{"OEM type", cat(st(200, 0xc800, []byte{9, 9}), end),
			cat([]byte{200, 6, 0, 0xc8, 0, 0, 0, 0}, end), ""},
		{"type 3 index past strings blanks the last", cat(st(3, 0x300, []byte{1, 1, 0, 7, 0}, "A", "BB"), end),
			cat(st(3, 0x300, []byte{1, 1, 0, 0, 0}, "A", "  "), end), ""},
		{"type 17 too short", cat(st(17, 0x1100, make([]byte, 20), "x"), end),
			cat(st(17, 0x1100, make([]byte, 20), "x"), end), ""},
		{"type 32 kept", cat(st(32, 0x2000, []byte{0, 0, 0, 0, 0, 0, 0}), end),
			cat(st(32, 0x2000, []byte{0, 0, 0, 0, 0, 0, 0}), end), ""},
		{"string without strings", cat(st(2, 0x200, []byte{0, 0, 0, 1}), end), nil, "has no strings"},
		{"unparsable", []byte{1}, nil, "1 bytes left"},
	} {
		got, err := Filter(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: %v\n got %x\nwant %x", tc.name, err, got, tc.want)
		}
	}
}

func TestOVMFTable(t *testing.T) {
	a, q := readCapture(t, "1g")
	anchorFor := func(tables []byte) []byte {
		b := append([]byte(nil), a...)
		binary.LittleEndian.PutUint16(b[0x16:], uint16(len(tables)))
		return b
	}
	// QEMU's own type 0 (-smbios type=0,...) is kept and OVMF adds none.
	withType0 := cat(st(0, 0, make([]byte, 22), "SeaBIOS"), q)
	tb, err := OVMFTable(anchorFor(withType0), withType0, Options{})
	if err != nil || tb.AddedType0 || tb.Structures[0].Type != 0 || len(tb.Structures) != 9 {
		t.Errorf("QEMU type 0: %v %+v", err, tb)
	}
	// OVMF's type 0: short strings are replaced.
	if got := string(OVMFBIOSInfo("").Type0(3)[type0Length:]); got != "EDK II\x00unknown\x0002/02/2022\x00\x00" {
		t.Errorf("default type 0 strings %q", got)
	}
	// ProcessorID replaces type 4's CPUID words.
	id := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	tb, err = OVMFTable(a, q, Options{BIOS: debian202608, ProcessorID: &id})
	if err != nil || tb.PatchedProcessorIDs != 1 {
		t.Fatalf("processor id: %v %+v", err, tb)
	}
	for _, s := range tb.Structures {
		if s.Type == 4 && !bytes.Equal(s.Raw[8:16], id[:]) {
			t.Errorf("type 4 ProcessorId %x", s.Raw[8:16])
		}
	}
	_, plain, _ := OVMFDigest(a, q, Options{BIOS: debian202608})
	if d, _ := tb.Digest(); d == plain {
		t.Error("the ProcessorId does not change the digest")
	}
	// A 3.x anchor: the SMBIOS3 GUID.
	v3 := make([]byte, anchor3Size)
	copy(v3, "_SM3_")
	v3[7], v3[8] = 3, 0
	binary.LittleEndian.PutUint32(v3[12:], uint32(len(q)))
	tb, err = OVMFTable(v3, q, Options{BIOS: debian202608})
	if err != nil || !tb.Anchor.V3() || !bytes.Equal(tb.EventDataPrefix()[8:], SMBIOS3TableGUID[:]) {
		t.Errorf("3.x: %v %+v", err, tb)
	}
	// 2.0: the end structure's handle is 0xFFFE.
	v20 := anchorFor(q)
	v20[7] = 0
	if tb, err = OVMFTable(v20, q, Options{}); err != nil || tb.Structures[len(tb.Structures)-1].Handle != 0xFFFE {
		t.Errorf("2.0: %v", err)
	}
	dup := cat(st(1, 5, nil), st(2, 5, nil), end)
	long := cat(st(1, 5, nil, strings.Repeat("x", 64)), end)
	v26 := anchorFor(long)
	v26[7] = 6
	for _, tc := range []struct {
		name          string
		anchor, table []byte
		err           string
	}{
		{"bad anchor", nil, q, "anchor has 0 bytes"},
		{"empty tables", anchorFor(nil), nil, "empty etc/smbios/smbios-tables"},
		{"length mismatch", a, q[:300], "differs from the 300 bytes"},
		{"duplicate handle", anchorFor(dup), dup, "reuses handle 0x5"},
		{"handle too high", anchorFor(cat(st(1, 0xFF00, nil), end)), cat(st(1, 0xFF00, nil), end), "above SmbiosDxe's limit 0xfeff"},
		{"2.6 string limit", v26, long, "64-byte string"},
		{"bad structures", anchorFor([]byte{1, 2, 3}), []byte{1, 2, 3}, "3 bytes left"},
	} {
		if _, err := OVMFTable(tc.anchor, tc.table, Options{}); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
}

func FuzzParseStructures(f *testing.F) {
	a, q := readCapture(f, "1g")
	f.Add(q, a)
	f.Add(cat(st(4, 1, make([]byte, 40), "a", "b"), end), a)
	f.Add([]byte{200, 4, 0, 0, 0, 0, 127, 4, 0, 0, 0, 0}, []byte("_SM3_"))
	f.Fuzz(func(t *testing.T, tables, anchor []byte) {
		ss, err := ParseStructures(tables)
		if err == nil {
			n := 0
			for _, s := range ss {
				n += len(s.Raw)
				for _, r := range s.Strings() {
					if r.Offset < s.Length() || r.Offset+r.Len > len(s.Raw)-2 {
						t.Fatalf("string %+v outside %d-byte structure", r, len(s.Raw))
					}
				}
			}
			if n > len(tables) || ss[len(ss)-1].Type != TypeEnd {
				t.Fatalf("structures cover %d of %d bytes", n, len(tables))
			}
			out, err := Filter(tables)
			if err == nil && len(out) != n {
				t.Fatalf("filtered %d bytes, want %d", len(out), n)
			}
		}
		if _, err := ParseAnchor(anchor); err == nil {
			_, _, _ = OVMFDigest(anchor, tables, Options{BIOS: debian202608})
		}
	})
}
