package attest

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/faketsm"
	"github.com/google/go-tdx-guest/client"
	tdxtest "github.com/google/go-tdx-guest/testing"
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

// TestTDXDeviceFallback quotes through go-tdx-guest's testing.Device, a
// fake TDX module answering the /dev/tdx_guest ioctls with a real quote.
func TestTDXDeviceFallback(t *testing.T) {
	tcs := tdxtest.TestCases()
	dev, err := tdxtest.TcDevice(tcs)
	if err != nil {
		t.Fatal(err)
	}
	iss := TDXDevice{Open: func() (client.Device, error) { return dev, nil }}
	q, err := iss.Quote(tcs[0].Input)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(q, tcs[0].Quote) {
		t.Fatalf("quote of %d bytes differs from the device's", len(q))
	}
	// A report data the fake module has no answer for is an error, not an empty quote.
	if _, err := iss.Quote([64]byte{9}); err == nil {
		t.Fatal("unknown report data produced a quote")
	}
	if _, err := (TDXDevice{Open: func() (client.Device, error) { return nil, os.ErrNotExist }}).Quote([64]byte{}); err == nil || !strings.Contains(err.Error(), TDXGuestDevice) {
		t.Fatalf("missing device: %v", err)
	}
}
