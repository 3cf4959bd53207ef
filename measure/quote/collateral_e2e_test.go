package quote_test

import (
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/quote"
	"github.com/chrysalis-cc/chrysalis/measure/quote/quotetest"
	tdxverify "github.com/google/go-tdx-guest/verify"
)

// at is the pinned verification time: inside the generated collateral's
// default window (2027-01-01 + 30 days).
var at = time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)

func genBody(version, bodyType uint16, teeTcbSvn [16]byte) quotetest.Body {
	b := quotetest.Body{Fields: quote.Fields{Version: version, BodyType: bodyType, TeeTcbSvn: teeTcbSvn}}
	for i := range b.MRTD {
		b.MRTD[i] = 0x11
	}
	b.XFAM[0] = 0xe7
	for i := range b.REPORTDATA {
		b.REPORTDATA[i] = byte(i)
	}
	return b
}

func wantQuoteErr(t *testing.T, err error, field, substr string) {
	t.Helper()
	var qe *quote.Error
	if !errors.As(err, &qe) || qe.Field != field || !strings.Contains(qe.Msg, substr) {
		t.Fatalf("want a %s error containing %q, got %v", field, substr, err)
	}
}

// TestGeneratedCollateralUpToDate: a quotetest quote verifies end to end
// with generated collateral read from the offline cache directory (and
// from a PCCS), TCB status UpToDate; go-tdx-guest's own verifier agrees
// for v4.
func TestGeneratedCollateralUpToDate(t *testing.T) {
	h := quotetest.NewHierarchy(t)
	col := h.Collateral(quotetest.CollateralOptions{})
	dir := t.TempDir()
	if err := col.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(col.PCCS())
	defer srv.Close()
	for _, src := range []struct {
		name string
		src  quote.CollateralSource
	}{{"offline cache", quote.DirSource{Dir: dir}}, {"PCCS", quote.PCSSource{BaseURL: srv.URL}}} {
		for _, v := range []struct {
			name              string
			version, bodyType uint16
		}{{"v4", 4, 0}, {"v5 tdx1.0", 5, 2}, {"v5 tdx1.5", 5, 3}} {
			t.Run(src.name+"/"+v.name, func(t *testing.T) {
				b := genBody(v.version, v.bodyType, quotetest.TeeTcbSvnUpToDate)
				raw := h.Quote(b)
				q, err := quote.Verify(raw, b.REPORTDATA, quote.Policy{Now: at, TrustedRoots: h.Roots(), Collateral: src.src})
				if err != nil {
					t.Fatal(err)
				}
				if q.TCBStatus != "UpToDate" || q.ModuleTCBStatus != "UpToDate" || q.QETCBStatus != "UpToDate" || len(q.AdvisoryIDs) != 0 {
					t.Fatalf("statuses platform %q module %q QE %q advisories %v", q.TCBStatus, q.ModuleTCBStatus, q.QETCBStatus, q.AdvisoryIDs)
				}
				if v.version != 4 {
					return
				}
				err = tdxverify.RawTdxQuote(raw, &tdxverify.Options{Now: at, TrustedRoots: h.Roots(),
					GetCollateral: true, CheckRevocations: true, Getter: src.src})
				if err != nil {
					t.Fatalf("go-tdx-guest rejects the generated collateral: %v", err)
				}
			})
		}
	}
	// The same quote and collateral under Intel's real root (the
	// production default) are rejected.
	b := genBody(4, 0, quotetest.TeeTcbSvnUpToDate)
	_, err := quote.Verify(h.Quote(b), b.REPORTDATA, quote.Policy{Now: at, Collateral: quote.DirSource{Dir: dir}})
	wantQuoteErr(t, err, "pck_chain", "does not chain to a trusted root")
}

// TestGeneratedCollateralNegatives: each defect in the collateral, or a
// quote it does not admit, is rejected with the check that failed.
func TestGeneratedCollateralNegatives(t *testing.T) {
	h := quotetest.NewHierarchy(t)
	other := quotetest.NewHierarchy(t)
	upToDate := genBody(4, 0, quotetest.TeeTcbSvnUpToDate)
	for _, tc := range []struct {
		name   string
		opts   quotetest.CollateralOptions
		col    *quotetest.Hierarchy // collateral signer (default h)
		body   quotetest.Body
		pol    func(*quote.Policy)
		field  string
		substr string
		// gotdx, when set, is what go-tdx-guest's verifier must say (v4).
		gotdx string
	}{
		{name: "revoked PCK", opts: quotetest.CollateralOptions{RevokePCK: true}, body: upToDate,
			field: "collateral", substr: "PCK certificate (serial 3) is revoked by the PCK CRL", gotdx: "PCK Leaf certificate in PCK certificate chain was revoked"},
		{name: "revoked TCB signing certificate", opts: quotetest.CollateralOptions{RevokeTCBSigning: true}, body: upToDate,
			field: "collateral", substr: `certificate "Intel SGX TCB Signing" (serial 4) is revoked by the root CA CRL`, gotdx: "signing certificate was revoked"},
		{name: "TCB info signed by a wrong key", opts: quotetest.CollateralOptions{ForgeTCBInfo: true}, body: upToDate,
			field: "collateral", substr: `TCB info: signature over "tcbInfo" does not verify with "Intel SGX TCB Signing"`, gotdx: "could not verify response body"},
		{name: "collateral from another hierarchy", col: other, body: upToDate,
			field: "collateral", substr: `TCB info: Tcb-Info-Issuer-Chain: signing certificate "Intel SGX TCB Signing" does not chain to a trusted root`},
		{name: "TCB info expired at the pinned time", body: upToDate,
			opts:  quotetest.CollateralOptions{TCBInfo: func(i *quotetest.TCBInfo) { i.NextUpdate = at.Add(-time.Hour) }},
			field: "collateral", substr: "TCB info expired: next update was due 2027-01-14T23:00:00Z, verification time is 2027-01-15T00:00:00Z", gotdx: "tcbInfo has expired"},
		{name: "TCB info not yet issued", body: upToDate,
			opts:  quotetest.CollateralOptions{TCBInfo: func(i *quotetest.TCBInfo) { i.IssueDate = at.Add(time.Hour) }},
			field: "collateral", substr: "TCB info is issued 2027-01-15T01:00:00Z, after the verification time"},
		{name: "all collateral expired", body: upToDate,
			opts:  quotetest.CollateralOptions{IssueDate: at.Add(-60 * 24 * time.Hour)},
			field: "collateral", substr: "TCB info expired"},
		{name: "QE identity expired", body: upToDate,
			opts:  quotetest.CollateralOptions{QEIdentity: func(q *quotetest.QEIdentity) { q.NextUpdate = at.Add(-time.Second) }},
			field: "collateral", substr: "QE identity expired"},
		{name: "TCB info for another FMSPC", body: upToDate,
			opts:  quotetest.CollateralOptions{TCBInfo: func(i *quotetest.TCBInfo) { i.FMSPC = "90c06f000000" }},
			field: "collateral", substr: "TCB info FMSPC 90c06f000000, PCK certificate FMSPC 00806f050000"},
		{name: "platform TCB OutOfDate under the default policy", body: genBody(4, 0, quotetest.TeeTcbSvnOutOfDate),
			field: "tcb_status", substr: `platform TCB status is "OutOfDate" (tcbDate 2025-02-12T00:00:00Z, advisories [INTEL-SA-00000]), not in the allowed list [UpToDate]`,
			gotdx: `TCB Status is not "UpToDate", found "OutOfDate"`},
		{name: "platform TCB OutOfDate, policy allows SWHardeningNeeded only", body: genBody(5, 3, quotetest.TeeTcbSvnOutOfDate),
			pol:   func(p *quote.Policy) { p.AllowedTCBStatuses = []string{"UpToDate", "SWHardeningNeeded"} },
			field: "tcb_status", substr: `platform TCB status is "OutOfDate"`},
		{name: "TDX module OutOfDate", body: genBody(4, 0, quotetest.TeeTcbSvnModuleOutOfDate),
			field: "tcb_status", substr: `TDX module TCB status is "OutOfDate"`, gotdx: `TDX Module TCB Status is not "UpToDate", found "OutOfDate"`},
		{name: "TEE_TCB_SVN below every level", body: genBody(4, 0, [16]byte{}),
			field: "tcb_status", substr: "no matching TCB level found"},
		{name: "QE identity MRSIGNER mismatch", body: upToDate,
			opts:  quotetest.CollateralOptions{QEIdentity: func(q *quotetest.QEIdentity) { q.MRSIGNER = strings.Repeat("AB", 32) }},
			field: "qe_report.MRSIGNER", substr: "expected " + strings.Repeat("ab", 32) + ", got " + strings.Repeat("dc", 32),
			gotdx: "MRSIGNER value"},
		{name: "QE identity ISVPRODID mismatch", body: upToDate,
			opts:  quotetest.CollateralOptions{QEIdentity: func(q *quotetest.QEIdentity) { q.ISVProdID = 1 }},
			field: "qe_report.ISVPRODID", substr: "expected 1, got 2"},
		{name: "QE TCB OutOfDate", body: upToDate,
			opts: quotetest.CollateralOptions{QEIdentity: func(q *quotetest.QEIdentity) {
				q.TCBLevels = q.TCBLevels[1:] // the QE's ISVSVN 4 now matches the OutOfDate level only
			}},
			field: "tcb_status", substr: `QE TCB status is "OutOfDate" (ISVSVN 4)`},
		{name: "TDX module MRSIGNERSEAM mismatch", body: upToDate,
			opts:  quotetest.CollateralOptions{TCBInfo: func(i *quotetest.TCBInfo) { i.TDXModule.MRSIGNER = strings.Repeat("01", 48) }},
			field: "MRSIGNERSEAM", substr: "expected 0101"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signer := h
			if tc.col != nil {
				signer = tc.col
			}
			dir := t.TempDir()
			if err := signer.Collateral(tc.opts).WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			raw := h.Quote(tc.body)
			pol := quote.Policy{Now: at, TrustedRoots: h.Roots(), Collateral: quote.DirSource{Dir: dir}}
			if tc.pol != nil {
				tc.pol(&pol)
			}
			_, err := quote.Verify(raw, tc.body.REPORTDATA, pol)
			wantQuoteErr(t, err, tc.field, tc.substr)
			if tc.gotdx != "" {
				gerr := tdxverify.RawTdxQuote(raw, &tdxverify.Options{Now: at, TrustedRoots: h.Roots(),
					GetCollateral: true, CheckRevocations: true, Getter: quote.DirSource{Dir: dir}})
				if gerr == nil || !strings.Contains(gerr.Error(), tc.gotdx) {
					t.Fatalf("go-tdx-guest: %v, want %q", gerr, tc.gotdx)
				}
			}
		})
	}
}

// TestOutOfDateAdmittedByPolicy: the OutOfDate platform level that the
// default policy refuses is accepted when the policy lists OutOfDate,
// and the result names the status and the advisory.
func TestOutOfDateAdmittedByPolicy(t *testing.T) {
	h := quotetest.NewHierarchy(t)
	dir := h.CollateralDir(nil)
	b := genBody(5, 3, quotetest.TeeTcbSvnOutOfDate)
	pol := quote.Policy{Now: at, TrustedRoots: h.Roots(), Collateral: quote.DirSource{Dir: dir},
		AllowedTCBStatuses: []string{"UpToDate", "OutOfDate"}}
	q, err := quote.Verify(h.Quote(b), b.REPORTDATA, pol)
	if err != nil {
		t.Fatal(err)
	}
	if q.TCBStatus != "OutOfDate" || q.ModuleTCBStatus != "UpToDate" || q.QETCBStatus != "UpToDate" ||
		!slices.Equal(q.AdvisoryIDs, []string{quotetest.OutOfDateAdvisory}) {
		t.Fatalf("statuses platform %q module %q QE %q advisories %v", q.TCBStatus, q.ModuleTCBStatus, q.QETCBStatus, q.AdvisoryIDs)
	}
}

// BenchmarkVerifyWithCollateral is a full quote verification (PCK chain,
// QE report, signature, go-tdx-guest cross-check for v4, then TCB info,
// QE identity and both CRLs read from the offline cache directory and
// checked) for a v4 and a v5 quote.
func BenchmarkVerifyWithCollateral(b *testing.B) {
	h := quotetest.NewHierarchy(b)
	dir := h.CollateralDir(nil)
	for _, v := range []uint16{4, 5} {
		b.Run("v"+string(rune('0'+v)), func(b *testing.B) {
			body := genBody(v, 0, quotetest.TeeTcbSvnUpToDate)
			raw := h.Quote(body)
			pol := quote.Policy{Now: at, TrustedRoots: h.Roots(), Collateral: quote.DirSource{Dir: dir}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := quote.Verify(raw, body.REPORTDATA, pol); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
