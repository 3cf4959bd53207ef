package attest

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/faketsm"
)

// The TDX issuer is exercised against go-configfs-tsm's faketsm, a fake
// TDX module behind the configfs interface: it proves the REPORTDATA we
// pass is what the report is made over, and that a non-TDX provider is
// refused.
func TestTDXQuoteUsesReportData(t *testing.T) {
	var rd [64]byte
	for i := range rd {
		rd[i] = byte(i)
	}
	q, err := TDX{Client: faketsm.ReportV7(0), Provider: "fake"}.Quote(rd)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(q), "inblob: "+hex.EncodeToString(rd[:])) {
		t.Fatalf("report not made over our REPORTDATA: %q", q)
	}
	if _, err := (TDX{Client: faketsm.ReportV7(0)}).Quote(rd); err == nil || !strings.Contains(err.Error(), "tdx_guest") {
		t.Fatalf("non-TDX provider accepted: %v", err)
	}
}

func TestIsTD(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, cpuinfo string
		want          bool
	}{
		{"td", "processor\t: 0\nflags\t\t: fpu vme tdx_guest x2apic\n", true},
		{"plain", "processor\t: 0\nflags\t\t: fpu vme x2apic\n", false},
		{"substring only", "flags\t\t: fpu not_tdx_guest\n", false},
	} {
		p := filepath.Join(dir, tc.name)
		os.WriteFile(p, []byte(tc.cpuinfo), 0o644)
		got, err := isTD(p)
		if err != nil || got != tc.want {
			t.Errorf("%s: %v, %v", tc.name, got, err)
		}
	}
	if _, err := isTD(filepath.Join(dir, "absent")); err == nil {
		t.Error("unreadable cpuinfo accepted")
	}
}
