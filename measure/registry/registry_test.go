package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

var update = flag.Bool("update", false, "rewrite testdata/data-*.boc from the emulator")

func h(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// TestEmbeddedCodeMatchesHashFile ties the embedded BOC to the hash the
// compiler reported (contract/registry.code.hash).
func TestEmbeddedCodeMatchesHashFile(t *testing.T) {
	b, err := os.ReadFile("contract/registry.code.hash")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b))
	if len(fields) != 3 || fields[1] != "tolk" {
		t.Fatalf("contract/registry.code.hash: %q, want \"<hex> tolk <version>\"", b)
	}
	got := CodeHash()
	if hex.EncodeToString(got[:]) != fields[0] {
		t.Fatalf("embedded code hash %x, contract/registry.code.hash says %s", got, fields[0])
	}
	pkg, err := os.ReadFile("contract/package.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(pkg, []byte(`"@ton/tolk-js": "`+fields[2]+`"`)) {
		t.Fatalf("contract/package.json does not pin @ton/tolk-js to exactly %s, the version that compiled registry.code.boc", fields[2])
	}
}

// maxGas bounds the compute-phase gas of any message (README.md).
const maxGas = 10_000

type step struct {
	name     string
	from     string // "gov", "other", "gov2"
	body     *cell.Cell
	wantExit int32
	// after the step: hashes that must (not) be listed, via get-method and ParseData
	images, notImages []string
	models, notModels []string
	gov               string // expected governance after the step
}

func runSteps(t *testing.T, steps []step) *chain {
	t.Helper()
	addrs := map[string]*address.Address{"gov": testAddr(1), "other": testAddr(2), "gov2": testAddr(3)}
	c := deploy(t, addrs["gov"])
	for _, s := range steps {
		before := c.data()
		r := c.send(addrs[s.from], s.body)
		if r.gasUsed > maxGas {
			t.Fatalf("%s: used %d gas, more than the %d the README promises", s.name, r.gasUsed, maxGas)
		}
		t.Logf("%s: exit %d, gas %d", s.name, r.exitCode, r.gasUsed)
		if r.exitCode != s.wantExit {
			t.Fatalf("%s: exit code %d, want %d", s.name, r.exitCode, s.wantExit)
		}
		if s.wantExit != 0 {
			if r.success || !r.bounced {
				t.Fatalf("%s: refused message: success %v, bounced %v; want a failed, bounced transaction", s.name, r.success, r.bounced)
			}
			if !bytes.Equal(before.Hash(), c.data().Hash()) {
				t.Fatalf("%s: refused message changed the data", s.name)
			}
		} else if !r.success || r.bounced {
			t.Fatalf("%s: success %v, bounced %v", s.name, r.success, r.bounced)
		}
		st := c.state()
		for _, check := range []struct {
			method string
			names  []string
			want   bool
			local  func([32]byte) bool
		}{
			{MethodIsImageAllowed, s.images, true, st.ImageAllowed},
			{MethodIsImageAllowed, s.notImages, false, st.ImageAllowed},
			{MethodIsModelAllowed, s.models, true, st.ModelAllowed},
			{MethodIsModelAllowed, s.notModels, false, st.ModelAllowed},
		} {
			for _, n := range check.names {
				if got := c.allowed(check.method, h(n)); got != check.want {
					t.Fatalf("%s: %s(%s) = %v, want %v", s.name, check.method, n, got, check.want)
				}
				if got := check.local(h(n)); got != check.want {
					t.Fatalf("%s: ParseData: %s listed = %v, want %v", s.name, n, got, check.want)
				}
			}
		}
		if s.gov != "" {
			if !st.Governance.Equals(addrs[s.gov]) {
				t.Fatalf("%s: ParseData governance %s, want %s", s.name, st.Governance.StringRaw(), addrs[s.gov].StringRaw())
			}
			sl, err := c.get(MethodGetGovernance).PopSlice()
			if err != nil {
				t.Fatal(err)
			}
			ga, err := sl.LoadAddr()
			if err != nil || !ga.Equals(addrs[s.gov]) {
				t.Fatalf("%s: get_governance = %v (%v), want %s", s.name, ga, err, addrs[s.gov].StringRaw())
			}
		}
	}
	return c
}

func mustChangeGov(t *testing.T, q uint64, a *address.Address) *cell.Cell {
	b, err := ChangeGovernance(q, a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestContractInEmulator(t *testing.T) {
	short := cell.BeginCell().MustStoreUInt(uint64(OpAddImage), 32).MustStoreUInt(7, 64).MustStoreUInt(1, 200).EndCell()
	trailing := cell.BeginCell().MustStoreBuilder(AddImage(1, h("img-a")).ToBuilder()).MustStoreUInt(1, 1).EndCell()
	withRef := cell.BeginCell().MustStoreBuilder(AddImage(1, h("img-a")).ToBuilder()).MustStoreRef(cell.BeginCell().EndCell()).EndCell()
	tiny := cell.BeginCell().MustStoreUInt(0xab, 8).EndCell()
	unknown := cell.BeginCell().MustStoreUInt(0x12345678, 32).MustStoreUInt(0, 64).EndCell()
	comment := cell.BeginCell().MustStoreUInt(0, 32).MustStoreStringSnake("add please").EndCell()
	govNone := cell.BeginCell().MustStoreUInt(uint64(OpChangeGovernance), 32).MustStoreUInt(5, 64).MustStoreUInt(0, 2).EndCell()

	cases := []struct {
		name  string
		steps []step
	}{
		{"add image then remove", []step{
			{name: "add", from: "gov", body: AddImage(1, h("img-a")), images: []string{"img-a"}, notImages: []string{"img-b"}, notModels: []string{"img-a"}, gov: "gov"},
			{name: "add second", from: "gov", body: AddImage(2, h("img-b")), images: []string{"img-a", "img-b"}},
			{name: "remove", from: "gov", body: RemoveImage(3, h("img-a")), images: []string{"img-b"}, notImages: []string{"img-a"}},
			{name: "remove last", from: "gov", body: RemoveImage(4, h("img-b")), notImages: []string{"img-a", "img-b"}},
		}},
		{"add model then remove", []step{
			{name: "add", from: "gov", body: AddModel(1, h("model-x")), models: []string{"model-x"}, notImages: []string{"model-x"}},
			{name: "remove", from: "gov", body: RemoveModel(2, h("model-x")), notModels: []string{"model-x"}},
		}},
		{"duplicate and missing", []step{
			{name: "add", from: "gov", body: AddImage(1, h("img-a")), images: []string{"img-a"}},
			{name: "add again", from: "gov", body: AddImage(2, h("img-a")), wantExit: ExitAlreadyListed, images: []string{"img-a"}},
			{name: "remove missing image", from: "gov", body: RemoveImage(3, h("img-z")), wantExit: ExitNotListed, images: []string{"img-a"}},
			{name: "remove missing model", from: "gov", body: RemoveModel(4, h("img-a")), wantExit: ExitNotListed, images: []string{"img-a"}},
		}},
		{"unauthorised senders", []step{
			{name: "gov adds", from: "gov", body: AddImage(1, h("img-a")), images: []string{"img-a"}},
			{name: "other adds image", from: "other", body: AddImage(2, h("img-evil")), wantExit: ExitNotGovernance, notImages: []string{"img-evil"}},
			{name: "other adds model", from: "other", body: AddModel(2, h("m-evil")), wantExit: ExitNotGovernance, notModels: []string{"m-evil"}},
			{name: "other removes", from: "other", body: RemoveImage(3, h("img-a")), wantExit: ExitNotGovernance, images: []string{"img-a"}},
			{name: "other takes over", from: "other", body: mustChangeGov(t, 4, testAddr(2)), wantExit: ExitNotGovernance, gov: "gov"},
			{name: "other sends a comment", from: "other", body: comment, wantExit: ExitNotGovernance},
			{name: "other sends junk", from: "other", body: tiny, wantExit: ExitNotGovernance},
		}},
		{"malformed bodies from governance", []step{
			{name: "truncated", from: "gov", body: short, wantExit: ExitCellUnderflow, notImages: []string{"img-a"}},
			{name: "trailing bit", from: "gov", body: trailing, wantExit: ExitCellUnderflow, notImages: []string{"img-a"}},
			{name: "trailing ref", from: "gov", body: withRef, wantExit: ExitCellUnderflow, notImages: []string{"img-a"}},
			{name: "under 32 bits", from: "gov", body: tiny, wantExit: ExitUnknownOp},
			{name: "unknown op", from: "gov", body: unknown, wantExit: ExitUnknownOp},
			{name: "text comment", from: "gov", body: comment, wantExit: ExitUnknownOp},
			{name: "governance addr_none", from: "gov", body: govNone, wantExit: ExitCellUnderflow, gov: "gov"},
		}},
		{"change governance", []step{
			{name: "hand over", from: "gov", body: mustChangeGov(t, 1, testAddr(3)), gov: "gov2"},
			{name: "old governance refused", from: "gov", body: AddImage(2, h("img-a")), wantExit: ExitNotGovernance, notImages: []string{"img-a"}, gov: "gov2"},
			{name: "new governance adds", from: "gov2", body: AddImage(3, h("img-a")), images: []string{"img-a"}},
			{name: "top-up from anyone", from: "other", body: cell.BeginCell().EndCell(), images: []string{"img-a"}, gov: "gov2"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runSteps(t, tc.steps) })
	}
}

// TestStateAfterChanges checks everything ParseData decodes, the seqno
// get-method and that the dictionaries the get-methods return decode to
// the same entries; it also writes the fuzz seeds with -update.
func TestStateAfterChanges(t *testing.T) {
	c := runSteps(t, []step{
		{name: "a", from: "gov", body: AddImage(1, h("img-a"))},
		{name: "b", from: "gov", body: AddImage(2, h("img-b"))},
		{name: "m", from: "gov", body: AddModel(3, h("model-x"))},
		{name: "rm a", from: "gov", body: RemoveImage(4, h("img-a"))},
	})
	st := c.state()
	if st.Seqno != 4 {
		t.Fatalf("seqno %d, want 4", st.Seqno)
	}
	if v, err := c.get(MethodGetSeqno).PopInt(); err != nil || v.Int64() != 4 {
		t.Fatalf("get_seqno = %v (%v), want 4", v, err)
	}
	wantImages := map[[32]byte]Entry{h("img-b"): {AddedAt: blockNow, AddedSeqno: 2}}
	wantModels := map[[32]byte]Entry{h("model-x"): {AddedAt: blockNow, AddedSeqno: 3}}
	for _, d := range []struct {
		method string
		local  map[[32]byte]Entry
		want   map[[32]byte]Entry
	}{{MethodGetImages, st.Images, wantImages}, {MethodGetModels, st.Models, wantModels}} {
		if !mapsEqual(d.local, d.want) {
			t.Fatalf("ParseData %s: %v, want %v", d.method, d.local, d.want)
		}
		root, err := c.get(d.method).PopMaybeCell()
		if err != nil {
			t.Fatalf("%s: %v", d.method, err)
		}
		got, err := ParseEntries(root)
		if err != nil {
			t.Fatalf("%s: %v", d.method, err)
		}
		if !mapsEqual(got, d.want) {
			t.Fatalf("%s: %v, want %v", d.method, got, d.want)
		}
	}
	if got := st.ImageHashes(); len(got) != 1 || got[0] != h("img-b") {
		t.Fatalf("ImageHashes = %x", got)
	}
	if *update {
		writeSeed(t, "data-two-dicts.boc", c.data())
		empty, err := InitialData(testAddr(1))
		if err != nil {
			t.Fatal(err)
		}
		writeSeed(t, "data-empty.boc", empty)
	}
}

func writeSeed(t *testing.T, name string, c *cell.Cell) {
	if err := os.WriteFile(filepath.Join("testdata", name), c.ToBOC(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mapsEqual(a, b map[[32]byte]Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
