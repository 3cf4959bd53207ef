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

// Paths probed by Detect.
const (
	TSMReportDir  = "/sys/kernel/config/tsm/report"
	TDXGuestClass = "/sys/class/misc/tdx_guest"
	CPUInfo       = "/proc/cpuinfo"
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
	for _, p := range []string{TDXGuestClass, TSMReportDir} {
		if _, err := os.Stat(p); err != nil {
			return nil, "", fmt.Errorf("this is a TD but %s is missing (tdx-guest / tsm_report module not loaded?)", p)
		}
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
