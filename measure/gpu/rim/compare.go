package rim

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// NVDECIndex is the RIM index of the NVDEC measurement, skipped when the
// report says NVDEC0 is disabled.
const NVDECIndex = 35

// Which RIM a golden value came from.
const (
	Driver = "driver"
	VBIOS  = "vbios"
)

// Mismatch is one active golden measurement the runtime value does not
// match.
type Mismatch struct {
	Index   int      // RIM index (SPDM block Index+1)
	RIM     string   // Driver or VBIOS
	Name    string   // Resource name in the RIM
	Golden  []string // the alternatives, hex
	Runtime string   // the runtime value, hex; "" when the block is missing
	Reason  string   // "missing runtime block", "length n, want m" or "value differs"
}

func (m Mismatch) String() string {
	return fmt.Sprintf("%s RIM index %d (%s): %s: runtime %q, golden %s", m.RIM, m.Index, m.Name, m.Reason, m.Runtime, strings.Join(m.Golden, " | "))
}

// Comparison is the outcome of Compare.
type Comparison struct {
	Compared   int // active golden measurements compared (matching or not)
	Skipped    int // active golden measurements skipped (NVDEC disabled)
	Mismatches []Mismatch
}

// OK reports whether every compared measurement matched.
func (c *Comparison) OK() bool { return len(c.Mismatches) == 0 }

// Err is nil when OK, else an error listing every mismatch.
func (c *Comparison) Err() error {
	if c.OK() {
		return nil
	}
	s := make([]string, len(c.Mismatches))
	for i, m := range c.Mismatches {
		s[i] = m.String()
	}
	return fmt.Errorf("%d of %d GPU measurements do not match the RIMs: %s", len(c.Mismatches), c.Compared, strings.Join(s, "; "))
}

type golden struct {
	rim string
	m   Measurement
}

// Compare checks runtime measurement blocks against the active golden
// measurements of the driver and VBIOS RIMs. runtime is keyed by SPDM
// measurement block index (1-based): golden RIM index g is compared with
// runtime[g+1]. A runtime value matches when it has the golden size and
// equals one of the alternatives; a missing block is a mismatch; index
// NVDECIndex is skipped iff nvdecDisabled. Runtime blocks without an
// active golden value are ignored. An index active in both RIMs is an
// error (NVIDIA's x-nvidia-gpu-vbios-index-no-conflict).
func Compare(driver, vbios *RIM, runtime map[int][]byte, nvdecDisabled bool) (*Comparison, error) {
	if driver == nil || vbios == nil {
		return nil, errors.New("rim compare: need both the driver and the VBIOS RIM")
	}
	active := map[int]golden{}
	for _, src := range []struct {
		name string
		r    *RIM
	}{{Driver, driver}, {VBIOS, vbios}} {
		for _, m := range src.r.measurements {
			if !m.Active {
				continue
			}
			if prev, ok := active[m.Index]; ok {
				return nil, fmt.Errorf("rim compare: index conflict: RIM index %d is active in both the %s RIM %s (%s) and the %s RIM %s (%s)",
					m.Index, prev.rim, driver.label(), prev.m.Name, src.name, vbios.label(), m.Name)
			}
			active[m.Index] = golden{src.name, m}
		}
	}
	idx := make([]int, 0, len(active))
	for i := range active {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	c := &Comparison{}
	for _, i := range idx {
		g := active[i]
		if i == NVDECIndex && nvdecDisabled {
			c.Skipped++
			continue
		}
		c.Compared++
		v, ok := runtime[i+1]
		reason := ""
		switch {
		case !ok:
			reason = "missing runtime block"
		case len(v) != g.m.Size:
			reason = fmt.Sprintf("length %d, want %d", len(v), g.m.Size)
		default:
			reason = "value differs"
			for _, a := range g.m.Alternatives {
				if bytes.Equal(a, v) {
					reason = ""
					break
				}
			}
		}
		if reason == "" {
			continue
		}
		mm := Mismatch{Index: i, RIM: g.rim, Name: g.m.Name, Reason: reason}
		if ok {
			mm.Runtime = hex.EncodeToString(v)
		}
		for _, a := range g.m.Alternatives {
			mm.Golden = append(mm.Golden, hex.EncodeToString(a))
		}
		c.Mismatches = append(c.Mismatches, mm)
	}
	return c, nil
}
