package verify

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/manifest"
	"github.com/chrysalis-cc/chrysalis/measure/registry"
)

// TestAllowRegistry adds the image hashes of registry account data the
// real contract wrote in the emulator (measure/registry/testdata).
func TestAllowRegistry(t *testing.T) {
	load := func(name string) *registry.State {
		b, err := os.ReadFile("../registry/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		st, err := registry.ParseDataBOC(b)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	full, empty := load("data-two-dicts.boc"), load("data-empty.boc")
	if len(full.Images) == 0 {
		t.Fatal("data-two-dicts.boc lists no images")
	}
	const addr = "EQregistry"
	for _, tc := range []struct {
		name    string
		before  map[manifest.Hash]string
		st      *registry.State
		addr    string
		wantErr string
		wantN   int
	}{
		{name: "no state", st: nil, addr: addr, wantErr: "no registry state"},
		{name: "no address", st: full, addr: "", wantErr: "must name the contract address"},
		{name: "empty registry", st: empty, addr: addr, wantN: 0},
		{name: "into an empty policy", st: full, addr: addr, wantN: len(full.Images)},
		{name: "next to a manifest", before: map[manifest.Hash]string{manifest.Hash(full.ImageHashes()[0]): "release r, shape s, signed by k", {9}: "other"}, st: full, addr: addr, wantN: len(full.Images)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Policy
			for k, v := range tc.before {
				if p.Images == nil {
					p.Images = map[manifest.Hash]string{}
				}
				p.Images[k] = v
			}
			n, err := p.AllowRegistry(tc.st, tc.addr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || n != tc.wantN {
				t.Fatalf("AllowRegistry: %d, %v; want %d", n, err, tc.wantN)
			}
			if len(p.Images) != len(tc.before)+n-overlap(tc.before, tc.st) {
				t.Fatalf("%d images after adding %d to %d", len(p.Images), n, len(tc.before))
			}
			wantLabel := "registry EQregistry, seqno " + strconv.FormatUint(uint64(tc.st.Seqno), 10)
			for _, h := range tc.st.ImageHashes() {
				label := p.Images[manifest.Hash(h)]
				if !strings.HasSuffix(label, wantLabel) {
					t.Errorf("image %x labelled %q, want it to end in %q", h, label, wantLabel)
				}
				if prev, ok := tc.before[manifest.Hash(h)]; ok && !strings.HasPrefix(label, prev+"; ") {
					t.Errorf("image %x: manifest label %q lost: %q", h, prev, label)
				}
			}
			// Adding the same state again changes nothing.
			snapshot := map[manifest.Hash]string{}
			for k, v := range p.Images {
				snapshot[k] = v
			}
			if _, err := p.AllowRegistry(tc.st, tc.addr); err != nil {
				t.Fatal(err)
			}
			for k, v := range p.Images {
				if snapshot[k] != v {
					t.Errorf("second AllowRegistry relabelled %s: %q -> %q", k, snapshot[k], v)
				}
			}
		})
	}
}

func overlap(m map[manifest.Hash]string, st *registry.State) int {
	n := 0
	for _, h := range st.ImageHashes() {
		if _, ok := m[manifest.Hash(h)]; ok {
			n++
		}
	}
	return n
}
