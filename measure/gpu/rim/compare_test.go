package rim

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

// runtimeFrom builds the SPDM blocks (1-based) a GPU matching the RIMs
// would report, using alternative alt (or the last one) of each active
// measurement.
func runtimeFrom(alt int, rims ...*RIM) map[int][]byte {
	out := map[int][]byte{}
	for _, r := range rims {
		for _, m := range r.Measurements() {
			if m.Active {
				out[m.Index+1] = m.Alternatives[min(alt, len(m.Alternatives)-1)]
			}
		}
	}
	return out
}

func mismatchIndices(c *Comparison) []int {
	var out []int
	for _, m := range c.Mismatches {
		out = append(out, m.Index)
	}
	return out
}

func TestCompare(t *testing.T) {
	drv, vb := mustParse(t, driver545), mustParse(t, vbiosTest)
	active := len(activeIndices(drv)) + len(activeIndices(vb))
	if active != 33 {
		t.Fatalf("%d active golden measurements, want 33 (21 driver + 12 VBIOS)", active)
	}
	alt := func(rt map[int][]byte, idx, n int, r *RIM) map[int][]byte {
		rt[idx+1] = r.Measurements()[idx].Alternatives[n]
		return rt
	}
	for _, tc := range []struct {
		name          string
		runtime       map[int][]byte
		nvdecDisabled bool
		compared      int
		skipped       int
		mismatches    []int
		reason        string
	}{
		{"all first alternatives", runtimeFrom(0, drv, vb), false, 33, 0, nil, ""},
		{"all last alternatives", runtimeFrom(9, drv, vb), false, 33, 0, nil, ""},
		{"index 35 second of 2", alt(runtimeFrom(0, drv, vb), 35, 1, drv), false, 33, 0, nil, ""},
		{"index 12 fourth of 4", alt(runtimeFrom(0, drv, vb), 12, 3, vb), false, 33, 0, nil, ""},
		{"extra runtime blocks ignored", func() map[int][]byte {
			rt := runtimeFrom(0, drv, vb)
			for _, b := range []int{0, 14, 21, 42, 64, 255} { // RIM indices 13..20, 41.. are inactive in both
				rt[b] = []byte("no golden value")
			}
			return rt
		}(), false, 33, 0, nil, ""},
		{"missing block", func() map[int][]byte { rt := runtimeFrom(0, drv, vb); delete(rt, 30); return rt }(), false, 33, 0, []int{29}, "missing runtime block"},
		{"wrong length", func() map[int][]byte { rt := runtimeFrom(0, drv, vb); rt[8] = rt[8][:47]; return rt }(), false, 33, 0, []int{7}, "length 47, want 48"},
		{"longer", func() map[int][]byte { rt := runtimeFrom(0, drv, vb); rt[8] = append(bytes.Clone(rt[8]), 0); return rt }(), false, 33, 0, []int{7}, "length 49, want 48"},
		{"wrong value", func() map[int][]byte {
			rt := runtimeFrom(0, drv, vb)
			rt[10] = bytes.Clone(rt[10])
			rt[10][47] ^= 1
			return rt
		}(), false, 33, 0, []int{9}, "value differs"},
		{"NVDEC zeros, enabled", func() map[int][]byte { rt := runtimeFrom(0, drv, vb); rt[36] = make([]byte, 48); return rt }(), false, 33, 0, []int{35}, "value differs"},
		{"NVDEC zeros, disabled", func() map[int][]byte { rt := runtimeFrom(0, drv, vb); rt[36] = make([]byte, 48); return rt }(), true, 32, 1, nil, ""},
		{"NVDEC missing, disabled", func() map[int][]byte { rt := runtimeFrom(0, drv, vb); delete(rt, 36); return rt }(), true, 32, 1, nil, ""},
		{"empty runtime", map[int][]byte{}, false, 33, 0, append(span(0, 12), span(21, 40)...), "missing runtime block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compare(drv, vb, tc.runtime, tc.nvdecDisabled)
			if err != nil {
				t.Fatal(err)
			}
			if c.Compared != tc.compared || c.Skipped != tc.skipped {
				t.Errorf("compared %d skipped %d, want %d %d", c.Compared, c.Skipped, tc.compared, tc.skipped)
			}
			if got := mismatchIndices(c); !reflect.DeepEqual(got, tc.mismatches) {
				t.Fatalf("mismatches at %v, want %v", got, tc.mismatches)
			}
			if c.OK() != (tc.mismatches == nil) || (c.Err() == nil) != c.OK() {
				t.Errorf("OK %v Err %v", c.OK(), c.Err())
			}
			for _, m := range c.Mismatches {
				if m.Reason != tc.reason {
					t.Errorf("index %d reason %q, want %q", m.Index, m.Reason, tc.reason)
				}
			}
		})
	}
}

func TestCompareMismatchDetails(t *testing.T) {
	drv, vb := mustParse(t, driver545), mustParse(t, vbiosTest)
	rt := runtimeFrom(0, drv, vb)
	rt[36] = bytes.Repeat([]byte{0xee}, 48)
	c, err := Compare(drv, vb, rt, false)
	if err != nil {
		t.Fatal(err)
	}
	g := drv.Measurements()[35]
	want := Mismatch{
		Index: 35, RIM: Driver, Name: g.Name,
		Golden:  []string{hex.EncodeToString(g.Alternatives[0]), hex.EncodeToString(g.Alternatives[1])},
		Runtime: strings.Repeat("ee", 48), Reason: "value differs",
	}
	if len(c.Mismatches) != 1 || !reflect.DeepEqual(c.Mismatches[0], want) {
		t.Fatalf("mismatches %+v, want %+v", c.Mismatches, want)
	}
	if e := c.Err().Error(); !strings.Contains(e, "driver RIM index 35 (HashedMeasurement_35_GSP): value differs") || !strings.Contains(e, want.Golden[1]) {
		t.Errorf("Err() = %s", e)
	}
}

// TestCompareProdVBIOS: the test_no_gpu VBIOS values (what Set A's GPU
// reports) against the PROD RIM mismatch at RIM indices 1, 2, 3 and 9, as
// the vectors' README says; and the PROD values against NVIDIA's
// measurement_mismatch RIM at index 9 only.
func TestCompareProdVBIOS(t *testing.T) {
	drv := mustParse(t, driver545)
	for _, tc := range []struct {
		runtimeVBIOS, golden string
		want                 []int
	}{
		{vbiosTest, vbiosProd, []int{1, 2, 3, 9}},
		{vbiosProd, vbiosIdx9, []int{9}},
		{vbiosProd, vbiosProd, nil},
	} {
		c, err := Compare(drv, mustParse(t, tc.golden), runtimeFrom(0, drv, mustParse(t, tc.runtimeVBIOS)), true)
		if err != nil {
			t.Fatal(err)
		}
		if got := mismatchIndices(c); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s vs %s: mismatches at %v, want %v", tc.runtimeVBIOS, tc.golden, got, tc.want)
		}
		for _, m := range c.Mismatches {
			if m.RIM != VBIOS {
				t.Errorf("mismatch %v attributed to %s", m, m.RIM)
			}
		}
	}
}

func TestCompareIndexConflict(t *testing.T) {
	drv, vb := mustParse(t, driver545), mustParse(t, vbiosTest)
	for _, tc := range []struct {
		name    string
		d, v    *RIM
		wantIdx string
	}{
		{"driver twice", drv, drv, "RIM index 7 is active in both"},
		{"vbios twice", vb, vb, "RIM index 0 is active in both"},
	} {
		_, err := Compare(tc.d, tc.v, runtimeFrom(0, tc.d), false)
		if err == nil || !strings.Contains(err.Error(), "index conflict") || !strings.Contains(err.Error(), tc.wantIdx) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
	if _, err := Compare(nil, vb, nil, false); err == nil {
		t.Error("nil driver RIM accepted")
	}
}
