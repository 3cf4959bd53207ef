package registry

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// TestParseEntriesMatchesTonutilsDict decodes dictionaries built by
// tonutils-go's own HashmapE writer (an independent implementation of the
// labels) and compares every entry.
func TestParseEntriesMatchesTonutilsDict(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 17, 1000} {
		d := cell.NewDict(256)
		want := map[[32]byte]Entry{}
		for i := range n {
			var k [32]byte
			binary.BigEndian.PutUint64(k[:], rng.Uint64())
			binary.BigEndian.PutUint64(k[24:], rng.Uint64())
			if i%3 == 0 { // shared prefixes exercise hml_same and long labels
				k[0], k[1] = 0, 0
			}
			e := Entry{AddedAt: rng.Uint32(), AddedSeqno: uint32(i)}
			want[k] = e
			v := cell.BeginCell().MustStoreUInt(uint64(e.AddedAt), 32).MustStoreUInt(uint64(e.AddedSeqno), 32)
			if err := d.SetBuilderByBytesKey(k[:], v); err != nil {
				t.Fatal(err)
			}
		}
		got, err := ParseEntries(d.AsCell())
		if err != nil {
			t.Fatalf("%d entries: %v", n, err)
		}
		if !mapsEqual(got, want) {
			t.Fatalf("%d entries: decoded %d entries, different from the %d written", n, len(got), len(want))
		}
	}
}

func dataCell(gov func(*cell.Builder), seqno uint64, images, models *cell.Cell) *cell.Cell {
	b := cell.BeginCell()
	gov(b)
	return b.MustStoreUInt(seqno, 32).MustStoreMaybeRef(images).MustStoreMaybeRef(models).EndCell()
}

func stdGov(b *cell.Builder) { b.MustStoreAddr(testAddr(1)) }

func oneEntryDict(value *cell.Builder) *cell.Cell {
	d := cell.NewDict(256)
	k := h("k")
	if err := d.SetBuilderByBytesKey(k[:], value); err != nil {
		panic(err)
	}
	return d.AsCell()
}

func TestParseDataRejects(t *testing.T) {
	good := cell.BeginCell().MustStoreUInt(1, 32).MustStoreUInt(2, 32)
	cases := []struct {
		name    string
		data    *cell.Cell
		wantErr string
	}{
		{"nil", nil, "no cell"},
		{"empty cell", cell.BeginCell().EndCell(), "0 bits, want 301"},
		{"extra bit", cell.BeginCell().MustStoreBuilder(dataCell(stdGov, 0, nil, nil).ToBuilder()).MustStoreUInt(0, 1).EndCell(), "302 bits"},
		{"addr_none", cell.BeginCell().MustStoreUInt(0, 2).MustStoreSlice(make([]byte, 38), 267+32).EndCell(), "address tag 00"},
		{"anycast", cell.BeginCell().MustStoreUInt(0b101, 3).MustStoreSlice(make([]byte, 38), 264+32+2).EndCell(), "anycast"},
		{"workchain 5", dataCell(func(b *cell.Builder) { b.MustStoreAddr(address.NewAddress(0, 5, make([]byte, 32))) }, 0, nil, nil), "workchain 5"},
		{"flag without ref", cell.BeginCell().MustStoreAddr(testAddr(1)).MustStoreUInt(0, 32).MustStoreUInt(0b10, 2).EndCell(), "0 references, want 1"},
		{"ref without flag", cell.BeginCell().MustStoreAddr(testAddr(1)).MustStoreUInt(0, 32).MustStoreUInt(0, 2).MustStoreRef(cell.BeginCell().EndCell()).EndCell(), "1 references, want 0"},
		{"value 63 bits", dataCell(stdGov, 0, oneEntryDict(cell.BeginCell().MustStoreUInt(0, 63)), nil), "images: dictionary entry"},
		{"value with ref", dataCell(stdGov, 0, nil, oneEntryDict(good.Copy().MustStoreRef(cell.BeginCell().EndCell()))), "models: dictionary entry"},
		{"label too long", dataCell(stdGov, 0, cell.BeginCell().MustStoreUInt(0b10, 2).MustStoreUInt(300, 9).EndCell(), nil), "long label of 300 bits"},
		{"fork with one ref", dataCell(stdGov, 0, cell.BeginCell().MustStoreUInt(0, 2).MustStoreRef(cell.BeginCell().EndCell()).EndCell(), nil), "want 0 and 2"},
		{"truncated label", dataCell(stdGov, 0, cell.BeginCell().MustStoreUInt(0b11, 2).EndCell(), nil), "dictionary label at key bit 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ParseData(tc.data)
			if err == nil {
				t.Fatalf("accepted: %+v", st)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

// TestMessageBodiesGolden pins the message layouts README.md documents:
// testdata/bodies.golden holds one "name hex-of-BOC" line per body.
func TestMessageBodiesGolden(t *testing.T) {
	hash := h("chrysalis")
	newGov, err := address.ParseRawAddr("0:" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	cg, err := ChangeGovernance(42, newGov)
	if err != nil {
		t.Fatal(err)
	}
	si, err := StateInit(testAddr(1))
	if err != nil {
		t.Fatal(err)
	}
	addr, err := Address(testAddr(1))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, b := range []struct {
		name string
		c    *cell.Cell
	}{
		{"add_image", AddImage(42, hash)},
		{"remove_image", RemoveImage(42, hash)},
		{"add_model", AddModel(42, hash)},
		{"remove_model", RemoveModel(42, hash)},
		{"change_governance", cg},
		{"initial_data", si.Data},
	} {
		sb.WriteString(b.name + " " + hex.EncodeToString(b.c.ToBOC()) + "\n")
	}
	sb.WriteString("address " + addr.StringRaw() + "\n")
	golden := filepath.Join("testdata", "bodies.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if sb.String() != string(want) {
		t.Fatalf("message bodies differ from %s (run with -update if the layout change is intended):\n%s", golden, sb.String())
	}
}

func TestGovernanceChecks(t *testing.T) {
	cases := []struct {
		name string
		addr *address.Address
		want string
	}{
		{"nil", nil, "no address"},
		{"none", address.NewAddressNone(), "not a standard internal address"},
		{"workchain 7", address.NewAddress(0, 7, make([]byte, 32)), "workchain 7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := StateInit(tc.addr); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("StateInit: %v, want an error mentioning %q", err, tc.want)
			}
			if _, err := ChangeGovernance(1, tc.addr); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ChangeGovernance: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	mc := address.NewAddress(0, 0xff, make([]byte, 32))
	if _, err := Address(mc); err != nil {
		t.Fatalf("masterchain governance refused: %v", err)
	}
}

func FuzzParseData(f *testing.F) {
	seeds, err := filepath.Glob("testdata/data-*.boc")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no testdata/data-*.boc seeds: %v", err)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, boc []byte) {
		st, err := ParseDataBOC(boc)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to a cell that parses to the same state.
		again, err := ParseData(encodeState(t, st))
		if err != nil {
			t.Fatalf("re-encoded state does not parse: %v", err)
		}
		if !again.Governance.Equals(st.Governance) || again.Seqno != st.Seqno || !mapsEqual(again.Images, st.Images) || !mapsEqual(again.Models, st.Models) {
			t.Fatalf("round trip changed the state")
		}
	})
}

func encodeState(t *testing.T, st *State) *cell.Cell {
	dict := func(m map[[32]byte]Entry) *cell.Cell {
		if len(m) == 0 {
			return nil
		}
		d := cell.NewDict(256)
		for k, e := range m {
			if err := d.SetBuilderByBytesKey(k[:], cell.BeginCell().MustStoreUInt(uint64(e.AddedAt), 32).MustStoreUInt(uint64(e.AddedSeqno), 32)); err != nil {
				t.Fatal(err)
			}
		}
		return d.AsCell()
	}
	return dataCell(func(b *cell.Builder) { b.MustStoreAddr(st.Governance) }, uint64(st.Seqno), dict(st.Images), dict(st.Models))
}
