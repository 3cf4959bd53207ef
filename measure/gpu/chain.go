package gpu

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	_ "embed"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// SHA-256 of the DER of the pinned NVIDIA roots (research/gpu.md §5; the
// same in nvtrust and NVIDIA's attestation SDK).
const (
	// DeviceRootSHA256 pins "NVIDIA Device Identity CA", the root of GPU device chains.
	DeviceRootSHA256 = "102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48"
	// CoRIMRootSHA256 pins "NVIDIA CoRIM signing Root CA", the root of RIM signing chains.
	CoRIMRootSHA256 = "12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1"
)

// HopperChainLength is the number of certificates in a Hopper device chain,
// leaf first, device-supplied root last.
const HopperChainLength = 5

// MaxChainPEMSize bounds the PEM text ParseChainPEM accepts; NVML's buffer
// (GPU_ATTESTATION_CERT_CHAIN_SIZE) is 5120 bytes.
const MaxChainPEMSize = 64 << 10

// fwidOID is the TCG DICE TcbInfo extension (2.23.133.5.4.1) that carries
// the Hopper FWID in its last 48 bytes.
var fwidOID = asn1.ObjectIdentifier{2, 23, 133, 5, 4, 1}

var (
	//go:embed roots/device_identity_ca.pem
	deviceRootPEM []byte
	//go:embed roots/corim_root_ca.pem
	corimRootPEM []byte

	deviceRoot = mustPinnedRoot("device identity root", deviceRootPEM, DeviceRootSHA256)
	corimRoot  = mustPinnedRoot("CoRIM root", corimRootPEM, CoRIMRootSHA256)
)

// loadPinnedRoot parses a single-certificate PEM and checks the SHA-256 of
// its DER against wantHex.
func loadPinnedRoot(name string, pemText []byte, wantHex string) (*x509.Certificate, error) {
	certs, err := ParseChainPEM(pemText)
	if err != nil {
		return nil, fmt.Errorf("gpu: pinned %s: %w", name, err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("gpu: pinned %s: %d certificates, want 1", name, len(certs))
	}
	want, err := hex.DecodeString(wantHex)
	if err != nil {
		return nil, fmt.Errorf("gpu: pinned %s: hash constant %q: %w", name, wantHex, err)
	}
	got := sha256.Sum256(certs[0].Raw)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return nil, fmt.Errorf("gpu: pinned %s: SHA-256 %x, want %s", name, got, wantHex)
	}
	return certs[0], nil
}

func mustPinnedRoot(name string, pemText []byte, wantHex string) *x509.Certificate {
	c, err := loadPinnedRoot(name, pemText, wantHex)
	if err != nil {
		panic(err)
	}
	return c
}

// DeviceRoot returns the pinned "NVIDIA Device Identity CA" certificate
// (SHA-256 DeviceRootSHA256). Callers must not modify it.
func DeviceRoot() *x509.Certificate { return deviceRoot }

// CoRIMRoot returns the pinned "NVIDIA CoRIM signing Root CA" certificate
// (SHA-256 CoRIMRootSHA256). Callers must not modify it.
func CoRIMRoot() *x509.Certificate { return corimRoot }

// ParseChainPEM parses PEM text holding only CERTIFICATE blocks (without
// PEM headers), separated and surrounded by nothing but white space, in
// the order given. At least one certificate is required.
func ParseChainPEM(text []byte) ([]*x509.Certificate, error) {
	if len(text) > MaxChainPEMSize {
		return nil, fmt.Errorf("gpu: certificate chain of %d bytes, more than %d", len(text), MaxChainPEMSize)
	}
	var certs []*x509.Certificate
	rest := text
	for {
		trimmed := bytes.TrimLeft(rest, " \t\r\n\v\f")
		if len(trimmed) == 0 {
			break
		}
		off := len(text) - len(trimmed)
		if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
			return nil, fmt.Errorf("gpu: certificate chain: unexpected text at offset %d, want a PEM block", off)
		}
		block, next := pem.Decode(trimmed)
		if block == nil {
			return nil, fmt.Errorf("gpu: certificate chain: malformed PEM block at offset %d", off)
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("gpu: certificate chain: PEM block %q at offset %d, want CERTIFICATE", block.Type, off)
		}
		if len(block.Headers) != 0 {
			return nil, fmt.Errorf("gpu: certificate chain: PEM block at offset %d has headers", off)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("gpu: certificate chain: certificate %d at offset %d: %w", len(certs), off, err)
		}
		certs = append(certs, c)
		rest = next
	}
	if len(certs) == 0 {
		return nil, errors.New("gpu: certificate chain: no certificates")
	}
	return certs, nil
}

// ChainResult is what VerifyDeviceChain established about a device chain.
type ChainResult struct {
	// Chain is the verified path, leaf first, ending in the pinned root.
	Chain []*x509.Certificate
	// HWModel is the common name of certificate 1 ("GH100 A01 GSP BROM").
	HWModel string
	// UEID is the leaf's serial number in decimal.
	UEID string
	// NotAfter is the earliest expiry on the verified path.
	NotAfter time.Time
	// SuppliedRootMatches reports whether the device-supplied last
	// certificate equals the pinned root (it is dropped either way).
	SuppliedRootMatches bool
}

// VerifyDeviceChain verifies a Hopper device chain (exactly five
// certificates, leaf first) at time at: the device-supplied last
// certificate is dropped and root (normally DeviceRoot()) is used instead;
// certificates 1..3 are the only intermediates, and the path found must use
// all of them in order. Every key on the path is ECDSA P-384 and every
// signature ecdsa-with-SHA384. Extended key
// usages are not constrained (NVIDIA's leaves carry none).
func VerifyDeviceChain(chain []*x509.Certificate, root *x509.Certificate, at time.Time) (*ChainResult, error) {
	if len(chain) != HopperChainLength {
		return nil, fmt.Errorf("gpu: device chain has %d certificates, want %d (leaf first, root last)", len(chain), HopperChainLength)
	}
	if root == nil {
		return nil, errors.New("gpu: no pinned root for the device chain")
	}
	if at.IsZero() {
		return nil, errors.New("gpu: device chain verification time is zero")
	}
	for i, c := range chain {
		if c == nil {
			return nil, fmt.Errorf("gpu: device chain certificate %d is nil", i)
		}
	}
	path := append(append([]*x509.Certificate(nil), chain[:HopperChainLength-1]...), root)
	for i, c := range path {
		if _, err := p384Key(c); err != nil {
			return nil, fmt.Errorf("gpu: device chain certificate %d: %w", i, err)
		}
		if c.SignatureAlgorithm != x509.ECDSAWithSHA384 {
			return nil, fmt.Errorf("gpu: device chain certificate %d (%q) is signed with %s, want %s", i, c.Subject.CommonName, c.SignatureAlgorithm, x509.ECDSAWithSHA384)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range chain[1 : HopperChainLength-1] {
		inter.AddCert(c)
	}
	found, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("gpu: device chain (leaf %q) does not verify to %q at %s: %w",
			chain[0].Subject.CommonName, root.Subject.CommonName, at.UTC().Format(time.RFC3339), err)
	}
	if !hasPath(found, path) {
		return nil, fmt.Errorf("gpu: device chain (leaf %q) verifies only by a path that skips a supplied intermediate", chain[0].Subject.CommonName)
	}
	res := &ChainResult{
		Chain:               path,
		HWModel:             chain[1].Subject.CommonName,
		UEID:                chain[0].SerialNumber.String(),
		NotAfter:            path[0].NotAfter,
		SuppliedRootMatches: chain[HopperChainLength-1].Equal(root),
	}
	for _, c := range path[1:] {
		if c.NotAfter.Before(res.NotAfter) {
			res.NotAfter = c.NotAfter
		}
	}
	return res, nil
}

func hasPath(found [][]*x509.Certificate, want []*x509.Certificate) bool {
	for _, p := range found {
		if len(p) != len(want) {
			continue
		}
		same := true
		for i := range p {
			if !p[i].Equal(want[i]) {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

// CheckFWID compares the report's FWID (opaque field 20) with the last 48
// bytes of the leaf's TCG DICE TcbInfo extension (OID 2.23.133.5.4.1). A
// report without an FWID (older firmware) gives present=false and no
// error, as NVIDIA's verifiers skip the check then.
func CheckFWID(leaf *x509.Certificate, r *Report) (present bool, err error) {
	if r == nil {
		return false, errNoReport
	}
	fwid, present, err := r.FWID()
	if err != nil || !present {
		return present, err
	}
	if leaf == nil {
		return true, errors.New("gpu: report has an FWID but there is no leaf certificate to compare it with")
	}
	var ext []byte
	found := false
	for _, e := range leaf.Extensions {
		if e.Id.Equal(fwidOID) {
			if found {
				return true, fmt.Errorf("gpu: leaf %q has extension %s twice", leaf.Subject.CommonName, fwidOID)
			}
			ext, found = e.Value, true
		}
	}
	if !found {
		return true, fmt.Errorf("gpu: report has an FWID but leaf %q has no extension %s", leaf.Subject.CommonName, fwidOID)
	}
	if len(ext) < DigestSize {
		return true, fmt.Errorf("gpu: leaf %q extension %s has %d bytes, fewer than the %d-byte FWID", leaf.Subject.CommonName, fwidOID, len(ext), DigestSize)
	}
	certFWID := ext[len(ext)-DigestSize:]
	if subtle.ConstantTimeCompare(certFWID, fwid) != 1 {
		return true, fmt.Errorf("gpu: report FWID %x differs from leaf %q FWID %x", fwid, leaf.Subject.CommonName, certFWID)
	}
	return true, nil
}
