package quotetest_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/quote"
	"github.com/chrysalis-cc/chrysalis/measure/quote/quotetest"
)

var now = time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)

func body(version, bodyType uint16) quotetest.Body {
	b := quotetest.Body{Fields: quote.Fields{Version: version, BodyType: bodyType}}
	for i := range b.MRTD {
		b.MRTD[i] = 0x11
		b.RTMR[3][i] = 0x33
	}
	b.XFAM[0] = 0xe7
	b.TDATTRIBUTES[3] = 0x10 // SEPT_VE_DISABLE
	for i := range b.REPORTDATA {
		b.REPORTDATA[i] = byte(i)
	}
	return b
}

func TestQuoteVerifies(t *testing.T) {
	h := quotetest.NewHierarchy(t)
	for _, tc := range []struct {
		name              string
		version, bodyType uint16
	}{{"v4", 4, 0}, {"v5 tdx1.0", 5, 2}, {"v5 tdx1.5", 5, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			b := body(tc.version, tc.bodyType)
			raw := h.Quote(b)
			pol := quote.Policy{TrustedRoots: h.Roots(), AllowUnknownTCB: true, Now: now}
			q, err := quote.Verify(raw, b.REPORTDATA, pol)
			if err != nil {
				t.Fatal(err)
			}
			if q.MRTD != b.MRTD || q.RTMR[3] != b.RTMR[3] || q.XFAM != b.XFAM || q.TCBStatus != quote.StatusUnknown {
				t.Fatalf("fields differ: %+v", q)
			}
			if q.FMSPC != "00806f050000" {
				t.Fatalf("FMSPC %q", q.FMSPC)
			}
			wantVer := tc.version
			if q.Version != wantVer {
				t.Fatalf("version %d", q.Version)
			}
			// Intel's real root (the production default) rejects it.
			_, err = quote.Verify(raw, b.REPORTDATA, quote.Policy{AllowUnknownTCB: true, Now: now})
			var qe *quote.Error
			if !errors.As(err, &qe) || qe.Field != "pck_chain" {
				t.Fatalf("accepted under Intel's root or wrong error: %v", err)
			}
			// Another generated hierarchy's root rejects it too.
			pol.TrustedRoots = quotetest.NewHierarchy(t).Roots()
			if _, err := quote.Verify(raw, b.REPORTDATA, pol); !errors.As(err, &qe) || qe.Field != "pck_chain" {
				t.Fatalf("accepted under another root: %v", err)
			}
		})
	}
}

func TestTamperedQuoteRejected(t *testing.T) {
	h := quotetest.NewHierarchy(t)
	b := body(4, 0)
	raw := h.Quote(b)
	pol := quote.Policy{TrustedRoots: h.Roots(), AllowUnknownTCB: true, Now: now}
	for _, off := range []int{0x30 + 136, 0x30 + 400} { // MRTD, RTMR3
		bad := append([]byte{}, raw...)
		bad[off] ^= 1
		_, err := quote.Verify(bad, b.REPORTDATA, pol)
		var qe *quote.Error
		if !errors.As(err, &qe) || qe.Field != "signature" {
			t.Fatalf("offset %#x: %v", off, err)
		}
	}
	// Debug bit: validly signed, refused by the field check.
	b.TDATTRIBUTES[0] |= 1
	_, err := quote.Verify(h.Quote(b), b.REPORTDATA, pol)
	var qe *quote.Error
	if !errors.As(err, &qe) || qe.Field != "TDATTRIBUTES" {
		t.Fatalf("debug: %v", err)
	}
}

// TestCollateralLayout: the collateral lands under the names
// quote.DirSource reads, and the PCCS handler refuses what it does not serve.
func TestCollateralLayout(t *testing.T) {
	h := quotetest.NewHierarchy(t)
	dir := h.CollateralDir(nil)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := []string{"pckcrl-platform", "pckcrl-platform.issuer-chain", "qe-identity", "qe-identity.issuer-chain",
		"rootcrl", "tcb-00806f050000", "tcb-00806f050000.issuer-chain"}
	if !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	chain, _ := os.ReadFile(filepath.Join(dir, "tcb-00806f050000.issuer-chain"))
	if !strings.HasPrefix(string(chain), "-----BEGIN%20CERTIFICATE-----%0A") {
		t.Fatalf("issuer chain is not URL-escaped PEM: %.40q", chain)
	}
	srv := httptest.NewServer(h.Collateral(quotetest.CollateralOptions{}).PCCS())
	defer srv.Close()
	for path, code := range map[string]int{
		"/tdx/certification/v4/qe/identity":                      http.StatusOK,
		"/sgx/certification/v4/rootcacrl":                        http.StatusOK,
		"/tdx/certification/v4/tcb?fmspc=00806f050000":           http.StatusOK,
		"/tdx/certification/v4/tcb?fmspc=90c06f000000":           http.StatusNotFound,
		"/sgx/certification/v4/pckcrl?ca=processor&encoding=der": http.StatusNotFound,
		"/IntelSGXRootCA.der":                                    http.StatusNotFound,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("%s: %s, want %d", path, resp.Status, code)
		}
	}
}
