package tdxmr

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
)

func TestParseVariableStore(t *testing.T) {
	vars, err := ParseVariableStore(synthCFVBytes(nil, nil))
	if err != nil || len(vars) != 0 {
		t.Fatalf("empty store: %+v %v", vars, err)
	}
	cfv := synthCFVBytes([]synthVar{
		{name: "PK", vendor: GlobalVariableGUID, state: varAdded, data: []byte("pk")},
		{name: "KEK", vendor: GlobalVariableGUID, state: 0x3c, data: []byte("gone")},                     // deleted
		{name: "db", vendor: ImageSecurityDatabaseGUID, state: varInDeletedTransit, data: []byte("old")}, // replaced below
		{name: "db", vendor: ImageSecurityDatabaseGUID, state: varAdded, data: []byte("new")},
		{name: "dbx", vendor: ImageSecurityDatabaseGUID, state: varInDeletedTransit, data: []byte("only")}, // no newer copy
		{name: "Bööt", vendor: GlobalVariableGUID, state: varAdded},
	}, nil)
	vars, err = ParseVariableStore(cfv)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vars {
		got = append(got, v.Name+"="+string(v.Data))
	}
	if strings.Join(got, ",") != "PK=pk,db=new,dbx=only,Bööt=" {
		t.Fatalf("variables %q", got)
	}
	if vars[0].Vendor != GlobalVariableGUID || vars[1].Vendor != ImageSecurityDatabaseGUID || vars[0].Attributes != 0x27 {
		t.Errorf("vendor/attributes %+v", vars[:2])
	}
	if _, ok := FvName(cfv); ok {
		t.Error("unnamed CFV has a name")
	}
	name := tdvf.MustParseGUID("fff12b8d-7696-4c8b-a985-2747075b4f50")
	if g, ok := FvName(synthCFVBytes(nil, &name)); !ok || g != name {
		t.Errorf("FvName %s %v", g, ok)
	}
}

func TestParseVariableStoreErrors(t *testing.T) {
	good := synthCFVBytes([]synthVar{{name: "PK", vendor: GlobalVariableGUID, state: varAdded, data: []byte("pk")}}, nil)
	st := synthStore
	v := st + varStoreHeaderSize
	for _, tc := range []struct {
		name string
		mut  func(b []byte) []byte
		want string
	}{
		{"tiny", func(b []byte) []byte { return b[:0x30] }, "too small for a firmware volume header"},
		{"no _FVH", func(b []byte) []byte { b[40] = 'x'; return b }, `no firmware volume signature "_FVH"`},
		{"header length", func(b []byte) []byte { binary.LittleEndian.PutUint16(b[48:], 0x10); return b }, "header length 0x10"},
		{"store GUID", func(b []byte) []byte { b[st] ^= 1; return b }, "not a known variable store GUID"},
		{"unformatted", func(b []byte) []byte { b[st+20] = 0xff; return b }, "not formatted and healthy"},
		{"store size", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[st+16:], 0x7fffffff); return b }, "claims 0x7fffffff bytes"},
		{"data size", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[v+40:], 0x10000); return b }, "runs past the 0x8000-byte store"},
		{"odd name", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[v+36:], 5); return b }, "is not a NUL-terminated UTF-16 string"},
		{"unterminated name", func(b []byte) []byte { b[v+60+4] = 'x'; return b }, "name is not NUL-terminated"},
	} {
		b := append([]byte(nil), good...)
		if _, err := ParseVariableStore(tc.mut(b)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	// A plain (non-authenticated) store parses too.
	b := append([]byte(nil), good...)
	copy(b[st:], VariableStoreGUID[:])
	copy(b[v:], make([]byte, 64))
	binary.LittleEndian.PutUint16(b[v:], varStartID)
	b[v+2] = varAdded
	binary.LittleEndian.PutUint32(b[v+8:], 4)  // name "A\0"
	binary.LittleEndian.PutUint32(b[v+12:], 1) // one data byte
	copy(b[v+16:], GlobalVariableGUID[:])
	copy(b[v+32:], []byte{'A', 0, 0, 0, 0x42, 0xff, 0xff, 0xff})
	for i := v + 40; i < v+100; i++ {
		b[i] = 0xff
	}
	vars, err := ParseVariableStore(b)
	if err != nil || len(vars) != 1 || vars[0].Name != "A" || string(vars[0].Data) != "B" {
		t.Errorf("plain store: %+v %v", vars, err)
	}
}

func FuzzParseVariableStore(f *testing.F) {
	small := func(b []byte) []byte {
		b = b[:0x200]
		binary.LittleEndian.PutUint32(b[synthStore+16:], 0x200-synthStore)
		return b
	}
	f.Add(small(synthCFVBytes(nil, nil)))
	f.Add(small(synthCFVBytes([]synthVar{
		{name: "PK", vendor: GlobalVariableGUID, state: varAdded, data: []byte("pk")},
		{name: "db", vendor: ImageSecurityDatabaseGUID, state: varInDeletedTransit, data: []byte("x")},
	}, nil)))
	f.Fuzz(func(t *testing.T, b []byte) {
		vars, err := ParseVariableStore(b)
		if err != nil {
			return
		}
		for _, v := range vars {
			if len(v.Data) > len(b) {
				t.Fatalf("variable %q has %d data bytes from a %d-byte input", v.Name, len(v.Data), len(b))
			}
		}
		_, _ = FvName(b)
	})
}
