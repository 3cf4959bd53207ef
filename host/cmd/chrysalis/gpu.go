package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	mgpu "github.com/chrysalis-cc/chrysalis/measure/gpu"
	"github.com/chrysalis-cc/chrysalis/measure/gpu/ocsp"
	"github.com/chrysalis-cc/chrysalis/measure/gpu/rim"
)

func init() {
	register("gpu", "verify NVIDIA GPU attestation evidence offline (verify)", runGPU)
}

func gpuUsage(w io.Writer) {
	fmt.Fprint(w, `usage:
  chrysalis gpu verify --report FILE --chain FILE --nonce HEX [--rims DIR]
                       [--rim-service URL] [--policy require|soft-fail|off]
                       [--at TIME] [--driver V] [--vbios V] [--json]
      verify one H100/H200 attestation report (hex text as NVIDIA's tools
      write it, or raw bytes) and its PEM certificate chain: SPDM parsing,
      the 32-byte nonce, the device chain to the pinned NVIDIA root, FWID,
      the report signature, the driver and VBIOS RIMs (from DIR as
      <RIM id>.xml, then the RIM service if given) to the pinned CoRIM root,
      and every golden measurement. --policy is the OCSP policy (default
      off: offline). --at (RFC 3339, default now) is the time certificates
      are checked at. --driver/--vbios are NVML's versions to compare with
      the report (default: the report's own). Prints NVIDIA-named claims;
      exits non-zero when any check fails.
`)
}

func runGPU(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, gpuUsage, []subcommand{{"verify", gpuVerify}}, args, stdout, stderr)
}

func gpuVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := groupFlagSet("gpu", "verify", gpuUsage, stderr)
	reportF := fs.String("report", "", "attestation report `FILE` (hex text or raw)")
	chainF := fs.String("chain", "", "device certificate chain `FILE` (PEM, leaf first)")
	nonceH := fs.String("nonce", "", "the 32-byte nonce the report must carry, as `hex`")
	rims := fs.String("rims", "", "`DIR` of RIMs named <RIM id>.xml")
	service := fs.String("rim-service", "", "RIM service base `URL` (e.g. https://rim.attestation.nvidia.com)")
	pol := fs.String("policy", "off", "OCSP `policy`: require, soft-fail or off")
	at := fs.String("at", "", "verification `time` (RFC 3339; default now)")
	driver := fs.String("driver", "", "NVML driver `version` to compare (default: the report's)")
	vbios := fs.String("vbios", "", "NVML VBIOS `version` to compare (default: the report's)")
	asJSON := fs.Bool("json", false, "print the claims as JSON")
	if err := fs.Parse(args); err != nil {
		return mfHelpOK(err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("verify: unexpected argument %q", fs.Arg(0))
	}
	if *reportF == "" || *chainF == "" || *nonceH == "" {
		return errors.New("verify: --report, --chain and --nonce are required")
	}
	if *rims == "" && *service == "" {
		return errors.New("verify: give --rims DIR and/or --rim-service URL: measurements cannot be judged without RIMs")
	}
	n, err := hex.DecodeString(*nonceH)
	if err != nil || len(n) != 32 {
		return fmt.Errorf("verify: --nonce %q must be 64 hex characters (32 bytes)", *nonceH)
	}
	when := time.Now()
	if *at != "" {
		if when, err = time.Parse(time.RFC3339, *at); err != nil {
			return fmt.Errorf("verify: --at %q: %v", *at, err)
		}
	}
	op, err := ocsp.ParsePolicy(*pol)
	if err != nil {
		return fmt.Errorf("verify: --policy: %w", err)
	}
	report, err := readReportFile(*reportF)
	if err != nil {
		return err
	}
	chain, err := mfReadLimited(*chainF, mgpu.MaxChainPEMSize)
	if err != nil {
		return fmt.Errorf("verify: --chain: %w", err)
	}
	r, err := mgpu.ParseReport(report)
	if err != nil {
		return fmt.Errorf("verify: %s: %w", *reportF, err)
	}
	if *driver == "" {
		if *driver, err = r.DriverVersion(); err != nil {
			return fmt.Errorf("verify: %s: %w", *reportF, err)
		}
	}
	if *vbios == "" {
		if *vbios, err = r.VBIOSVersion(); err != nil {
			return fmt.Errorf("verify: %s: %w", *reportF, err)
		}
	}
	var stores []rim.Store
	if *rims != "" {
		if fi, err := os.Stat(*rims); err != nil || !fi.IsDir() {
			return fmt.Errorf("verify: --rims %s is not a directory", *rims)
		}
		stores = append(stores, rim.DirStore{Dir: *rims})
	}
	if *service != "" {
		stores = append(stores, &rim.HTTPStore{BaseURL: *service, Client: &http.Client{Timeout: 10 * time.Second}, Root: mgpu.CoRIMRoot(), At: when})
	}
	p := mgpu.Policy{RIMs: rim.Chain(stores...), RIMTime: when, Now: func() time.Time { return when }}
	if op != ocsp.Off {
		p.OCSP = &ocsp.Checker{URL: ocsp.DefaultURL, Policy: op, Timeout: ocsp.DefaultTimeout, Now: func() time.Time { return when }}
	}
	// The report alone carries no NVML state: the CC mode and ready state
	// are taken as a CC-mode GPU's; relying parties checking a worker use
	// the evidence the worker published instead (chrysalis verify).
	ev := &mgpu.Evidence{
		Report: report, CertChain: string(chain), DriverVersion: *driver, VBIOSVersion: *vbios,
		UUID: "report", Arch: mgpu.ArchHopper,
		CC: mgpu.CCState{Feature: mgpu.CCOn, Environment: mgpu.CCEnvProd, DevTools: mgpu.CCOff, MultiGPUMode: mgpu.CCMultiGPUNone},
	}
	claims, verr := mgpu.Verify(ctx, ev, [32]byte(n), p)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(claims); err != nil {
			return err
		}
	} else {
		printGPUClaims(stdout, claims)
	}
	if verr != nil {
		return fmt.Errorf("verify: %w", verr)
	}
	return nil
}

// readReportFile reads a report as hex text (whitespace ignored) or raw
// bytes (an SPDM report starts with version 0x11).
func readReportFile(path string) ([]byte, error) {
	b, err := mfReadLimited(path, 4*mgpu.MaxReportSize)
	if err != nil {
		return nil, fmt.Errorf("verify: --report: %w", err)
	}
	if len(b) > 0 && b[0] == mgpu.SPDMVersion {
		return b, nil
	}
	r, err := mgpu.DecodeHex(bytes.TrimSpace(b))
	if err != nil {
		return nil, fmt.Errorf("verify: %s: neither a raw SPDM report nor hex text: %w", path, err)
	}
	return r, nil
}

func printGPUClaims(w io.Writer, c *mgpu.Claims) {
	mark := func(ok bool) string {
		if ok {
			return "✓"
		}
		return "✗"
	}
	rows := []struct {
		ok   bool
		name string
	}{
		{c.ArchCheck, "architecture"},
		{c.ReportParsed, "report parsed"},
		{c.NonceMatch, "nonce"},
		{c.DeviceChainStatus == "valid", "device chain to the NVIDIA root (" + c.HWModel + ")"},
		{c.FWIDMatch, "FWID"},
		{c.SignatureVerified, "report signature"},
		{c.DriverRIMSignature && c.DriverRIMVersion, "driver RIM " + c.DriverRIMID},
		{c.VBIOSRIMSignature && c.VBIOSRIMVersion, "VBIOS RIM " + c.VBIOSRIMID},
		{c.MeasRes == "success", "measurements"},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%s %s\n", mark(r.ok), r.name)
	}
	for _, o := range c.OCSP {
		if o.Subject != "" || o.Status != ocsp.StatusSkipped {
			fmt.Fprintf(w, "  ocsp %-10s %-8s %s %s\n", o.Chain, o.Status, o.Subject, o.Error)
		}
	}
	for _, m := range c.Mismatches {
		fmt.Fprintf(w, "  mismatch %s\n", m.String())
	}
	if c.Failure != "" {
		fmt.Fprintf(w, "result: fail: %s\n", c.Failure)
	} else {
		fmt.Fprintf(w, "result: success (driver %s, VBIOS %s, RIM chains valid until %s)\n", c.DriverVersion, c.VBIOSVersion, strings.TrimSuffix(c.RIMChainsNotAfter, "T00:00:00Z"))
	}
}
