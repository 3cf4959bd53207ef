package attest

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/chrysalis-cc/chrysalis/measure/evidence"
	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"
	"github.com/google/go-tdx-guest/client"
)

// Issuer produces evidence over REPORTDATA.
type Issuer interface {
	// Type is the evidence type this issuer produces.
	Type() evidence.Type
	// Quote returns a quote whose REPORTDATA is rd (nil for insecure-dev).
	Quote(rd [64]byte) ([]byte, error)
}

// InsecureDev is the issuer where there is no TEE: it has no quote to give.
type InsecureDev struct{}

// Type implements Issuer.
func (InsecureDev) Type() evidence.Type { return evidence.TypeInsecureDev }

// Quote implements Issuer: there is no hardware, so there is no quote.
func (InsecureDev) Quote([64]byte) ([]byte, error) { return nil, nil }

// TDX quotes through configfs-tsm (/sys/kernel/config/tsm/report).
type TDX struct {
	// Client is the configfs client: linuxtsm in a guest; a test may pass
	// go-configfs-tsm's faketsm (a fake TDX module) instead.
	Client configfsi.Client
	// Provider is the configfs-tsm provider the report must come from;
	// "tdx_guest" when empty.
	Provider string
}

// Type implements Issuer.
func (TDX) Type() evidence.Type { return evidence.TypeTDX }

// Quote implements Issuer.
func (t TDX) Quote(rd [64]byte) ([]byte, error) {
	resp, err := report.Get(t.Client, &report.Request{InBlob: rd[:], GetAuxBlob: false})
	if err != nil {
		return nil, fmt.Errorf("tdx quote via configfs-tsm: %w", err)
	}
	want := t.Provider
	if want == "" {
		want = "tdx_guest"
	}
	if got := strings.TrimSpace(resp.Provider); got != want {
		return nil, fmt.Errorf("tdx quote: configfs-tsm provider is %q, not %q", got, want)
	}
	if len(resp.OutBlob) == 0 {
		return nil, errors.New("tdx quote: empty outblob")
	}
	return resp.OutBlob, nil
}

// TDXDevice quotes through /dev/tdx_guest with go-tdx-guest's client: the
// fallback for guest kernels that have the TDX guest device but not the
// configfs-tsm report interface.
type TDXDevice struct {
	// Open returns the device; client.OpenDevice when nil. A test may
	// return go-tdx-guest's testing.Device (a fake TDX module).
	Open func() (client.Device, error)
}

// Type implements Issuer.
func (TDXDevice) Type() evidence.Type { return evidence.TypeTDX }

// Quote implements Issuer.
func (d TDXDevice) Quote(rd [64]byte) ([]byte, error) {
	open := d.Open
	if open == nil {
		open = func() (client.Device, error) { return client.OpenDevice() }
	}
	dev, err := open()
	if err != nil {
		return nil, fmt.Errorf("tdx quote via %s: %w", TDXGuestDevice, err)
	}
	defer dev.Close()
	q, err := client.GetRawQuote(dev, rd)
	if err != nil {
		return nil, fmt.Errorf("tdx quote via %s: %w", TDXGuestDevice, err)
	}
	if len(q) == 0 {
		return nil, errors.New("tdx quote: the device returned an empty quote")
	}
	return q, nil
}

// Paths probed by Detect.
const (
	TSMReportDir   = "/sys/kernel/config/tsm/report"
	TDXGuestClass  = "/sys/class/misc/tdx_guest"
	TDXGuestDevice = "/dev/tdx_guest"
	CPUInfo        = "/proc/cpuinfo"
)

// Detect returns the TDX issuer in a TD with the configfs-tsm report
// interface, and InsecureDev where the CPU is not a TD. A TD whose
// attestation interfaces are missing is an error, never a silent
// downgrade to insecure-dev.
func Detect() (Issuer, string, error) {
	td, err := isTD(CPUInfo)
	if err != nil {
		return nil, "", err
	}
	if !td {
		return InsecureDev{}, "not a TD (no tdx_guest CPU flag): insecure-dev", nil
	}
	if _, err := os.Stat(TDXGuestClass); err != nil {
		return nil, "", fmt.Errorf("this is a TD but %s is missing (tdx-guest module not loaded?)", TDXGuestClass)
	}
	if _, err := os.Stat(TSMReportDir); err != nil {
		if _, derr := os.Stat(TDXGuestDevice); derr == nil {
			return TDXDevice{}, fmt.Sprintf("TDX guest without %s: quotes through %s", TSMReportDir, TDXGuestDevice), nil
		}
		return nil, "", fmt.Errorf("this is a TD but neither %s nor %s exists (tsm_report module not loaded?)", TSMReportDir, TDXGuestDevice)
	}
	c, err := linuxtsm.MakeClient()
	if err != nil {
		return nil, "", fmt.Errorf("this is a TD but the configfs-tsm client failed: %w", err)
	}
	return TDX{Client: c}, "TDX guest with configfs-tsm quotes", nil
}

// isTD reports whether /proc/cpuinfo lists the tdx_guest flag.
func isTD(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("tee detection: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "flags" {
			continue
		}
		for _, f := range strings.Fields(v) {
			if f == "tdx_guest" {
				return true, nil
			}
		}
		return false, nil
	}
	return false, nil
}
