package gpu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

func TestPinnedRoots(t *testing.T) {
	for _, tc := range []struct {
		cert     *x509.Certificate
		hash, cn string
		file     string
	}{
		{DeviceRoot(), DeviceRootSHA256, "NVIDIA Device Identity CA", nv + "nvtrust/certs/verifier_device_root.pem"},
		{CoRIMRoot(), CoRIMRootSHA256, "NVIDIA CoRIM signing Root CA", nv + "nvtrust/certs/verifier_RIM_root.pem"},
	} {
		sum := sha256.Sum256(tc.cert.Raw)
		if hex.EncodeToString(sum[:]) != tc.hash || tc.cert.Subject.CommonName != tc.cn {
			t.Errorf("root %q has SHA-256 %x", tc.cert.Subject.CommonName, sum)
		}
		// The embedded copy is the NVIDIA file.
		want := readChain(t, tc.file)
		if len(want) != 1 || !want[0].Equal(tc.cert) {
			t.Errorf("embedded %q differs from %s", tc.cn, tc.file)
		}
	}
	// A root whose hash does not match the pin is refused.
	if _, err := loadPinnedRoot("device identity root", corimRootPEM, DeviceRootSHA256); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Errorf("CoRIM root loaded under the device pin: %v", err)
	}
	two := append(append(append([]byte(nil), deviceRootPEM...), '\n'), corimRootPEM...)
	if _, err := loadPinnedRoot("device identity root", two, DeviceRootSHA256); err == nil || !strings.Contains(err.Error(), "2 certificates") {
		t.Errorf("two-certificate root file: %v", err)
	}
}

func TestParseChainPEM(t *testing.T) {
	good, err := os.ReadFile(vec("B").chain)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(good)
	one := string(pem.EncodeToMemory(block))
	for _, tc := range []struct {
		name, in string
		n        int
		err      string
	}{
		{"set B", string(good), 5, ""},
		{"one, padded", "\n\t " + one + "\r\n\n", 1, ""},
		{"empty", "", 0, "no certificates"},
		{"white space", " \n ", 0, "no certificates"},
		{"text before", "chain:\n" + one, 0, "unexpected text at offset 0"},
		{"text after", one + "trailer", 0, "unexpected text at offset"},
		{"other block", strings.ReplaceAll(one, "CERTIFICATE", "PUBLIC KEY"), 0, `"PUBLIC KEY"`},
		{"headers", strings.Replace(one, "-----\n", "-----\nProc-Type: 4,ENCRYPTED\n\n", 1), 0, "has headers"},
		{"unterminated", one[:len(one)-10], 0, "malformed PEM block"},
		{"bad DER", pemOf([]byte{0x30, 0x03, 0x02, 0x01, 0x01}), 0, "certificate 0"},
		{"too large", strings.Repeat(" ", MaxChainPEMSize+1), 0, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := ParseChainPEM([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || len(certs) != tc.n {
				t.Errorf("%d certificates, %v; want %d", len(certs), err, tc.n)
			}
		})
	}
}

func pemOf(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestVerifyDeviceChainRejects(t *testing.T) {
	b := readChain(t, vec("B").chain)
	a := readChain(t, vec("A").chain)
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
		root  *x509.Certificate
		at    time.Time
		err   string
	}{
		{"wrong root (CoRIM)", b, CoRIMRoot(), verifyAt, "does not verify"},
		{"chain of 2", b[:2], DeviceRoot(), verifyAt, "has 2 certificates, want 5"},
		{"chain of 6", append(append([]*x509.Certificate(nil), b...), b[4]), DeviceRoot(), verifyAt, "has 6 certificates"},
		{"empty", nil, DeviceRoot(), verifyAt, "has 0 certificates"},
		{"no root", b, nil, verifyAt, "no pinned root"},
		{"zero time", b, DeviceRoot(), time.Time{}, "time is zero"},
		{"before intermediates", b, DeviceRoot(), time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), "does not verify"},
		{"leaf swapped with BROM", []*x509.Certificate{b[1], b[0], b[2], b[3], b[4]}, DeviceRoot(), verifyAt, "skips a supplied intermediate"},
		{"leaf of another GPU", []*x509.Certificate{a[0], b[1], b[2], b[3], b[4]}, DeviceRoot(), verifyAt, "does not verify"},
		{"BROM as leaf, root twice", []*x509.Certificate{b[1], b[2], b[3], b[4], b[4]}, DeviceRoot(), verifyAt, "verifies only by a path that skips"},
		{"nil certificate", []*x509.Certificate{b[0], nil, b[2], b[3], b[4]}, DeviceRoot(), verifyAt, "certificate 1 is nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyDeviceChain(tc.chain, tc.root, tc.at)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
	// The device-supplied root is dropped: a chain whose last certificate
	// is something else still verifies against the pinned root.
	swapped := append(append([]*x509.Certificate(nil), b[:4]...), CoRIMRoot())
	res, err := VerifyDeviceChain(swapped, DeviceRoot(), verifyAt)
	if err != nil || res.SuppliedRootMatches {
		t.Errorf("chain with a foreign last certificate: %+v, %v", res, err)
	}
}

// genChain builds a five-certificate chain (leaf first, root last) with
// keys on curve; notAfter[i] is certificate i's expiry; leafAlg, when
// set, is the leaf's signature algorithm.
func genChain(t *testing.T, curve elliptic.Curve, notAfter [5]time.Time, leafAlg x509.SignatureAlgorithm) []*x509.Certificate {
	t.Helper()
	names := []string{"test leaf", "test BROM", "test ICA", "test identity", "test root"}
	certs := make([]*x509.Certificate, 5)
	keys := make([]*ecdsa.PrivateKey, 5)
	for i := range keys {
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	for i := 4; i >= 0; i-- {
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(int64(1000 + i)),
			Subject:               pkix.Name{CommonName: names[i]},
			NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
			NotAfter:              notAfter[i],
			BasicConstraintsValid: true,
			IsCA:                  i > 0,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		}
		if i == 0 {
			tmpl.SignatureAlgorithm = leafAlg
		}
		parent, signer := tmpl, keys[i]
		if i < 4 {
			parent, signer = certs[i+1], keys[i+1]
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &keys[i].PublicKey, signer)
		if err != nil {
			t.Fatal(err)
		}
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			t.Fatal(err)
		}
	}
	return certs
}

func TestVerifyDeviceChainGenerated(t *testing.T) {
	y := func(year int) time.Time { return time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC) }
	c := genChain(t, elliptic.P384(), [5]time.Time{y(2040), y(2035), y(2031), y(2038), y(2050)}, x509.UnknownSignatureAlgorithm)
	res, err := VerifyDeviceChain(c, c[4], verifyAt)
	if err != nil {
		t.Fatal(err)
	}
	if !res.NotAfter.Equal(y(2031)) || res.HWModel != "test BROM" || res.UEID != "1000" || !res.SuppliedRootMatches {
		t.Errorf("result %+v", res)
	}
	// The test root is not NVIDIA's.
	if _, err := VerifyDeviceChain(c, DeviceRoot(), verifyAt); err == nil {
		t.Error("generated chain verified to the NVIDIA root")
	}
	// After the earliest expiry the chain fails.
	if _, err := VerifyDeviceChain(c, c[4], y(2032)); err == nil {
		t.Error("chain verified after an intermediate expired")
	}

	sha256Leaf := genChain(t, elliptic.P384(), [5]time.Time{y(2040), y(2040), y(2040), y(2040), y(2040)}, x509.ECDSAWithSHA256)
	if _, err := VerifyDeviceChain(sha256Leaf, sha256Leaf[4], verifyAt); err == nil || !strings.Contains(err.Error(), "certificate 0 (\"test leaf\") is signed with ECDSA-SHA256") {
		t.Errorf("leaf signed with SHA-256: %v", err)
	}
	p256 := genChain(t, elliptic.P256(), [5]time.Time{y(2040), y(2040), y(2040), y(2040), y(2040)}, x509.UnknownSignatureAlgorithm)
	if _, err := VerifyDeviceChain(p256, p256[4], verifyAt); err == nil || !strings.Contains(err.Error(), "P-256, want P-384") {
		t.Errorf("P-256 chain: %v", err)
	}
	r := mustParse(t, readReport(t, vec("B").report))
	if err := r.VerifySignature(p256[0]); err == nil || !strings.Contains(err.Error(), "want P-384") {
		t.Errorf("VerifySignature with a P-256 key: %v", err)
	}
	// A P-384 leaf without the FWID extension cannot vouch for a report FWID.
	if present, err := CheckFWID(c[0], r); !present || err == nil || !strings.Contains(err.Error(), "no extension 2.23.133.5.4.1") {
		t.Errorf("CheckFWID with a leaf lacking the extension: %v, %v", present, err)
	}
}

func TestCheckFWID(t *testing.T) {
	leafA := readChain(t, vec("A").chain)[0]
	leafB := readChain(t, vec("B").chain)[0]
	leafD := readChain(t, vec("D").chain)[0]
	rb := readReport(t, vec("B").report)
	ra := readReport(t, vec("A").report)
	flipped := append([]byte(nil), rb...)
	// The FWID is the last opaque field but one (PROTECTED_PCIE_STATUS, 1
	// byte, follows): flip its last byte.
	flipped[len(flipped)-SignatureSize-5-1] ^= 0x01
	for _, tc := range []struct {
		name    string
		leaf    *x509.Certificate
		report  []byte
		present bool
		err     string
	}{
		{"B with B", leafB, rb, true, ""},
		{"B with A's leaf", leafA, rb, true, "differs from leaf"},
		{"B with D's leaf", leafD, rb, true, "differs from leaf"},
		{"B flipped FWID byte", leafB, flipped, true, "differs from leaf"},
		{"A without FWID", leafA, ra, false, ""},
		{"A without FWID, other leaf", leafB, ra, false, ""},
		{"B without leaf", nil, rb, true, "no leaf certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			present, err := CheckFWID(tc.leaf, mustParse(t, tc.report))
			if present != tc.present {
				t.Errorf("present = %v, want %v", present, tc.present)
			}
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
		})
	}
	// Flipping the FWID also breaks the signature.
	if err := mustParse(t, flipped).VerifySignature(leafB); err == nil {
		t.Error("signature verified over a flipped FWID")
	}
}
