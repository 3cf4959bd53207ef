package ocsp_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	xocsp "golang.org/x/crypto/ocsp"

	"github.com/chrysalis-cc/chrysalis/measure/golden"
	"github.com/chrysalis-cc/chrysalis/measure/gpu/ocsp"
	"github.com/chrysalis-cc/chrysalis/measure/gpu/ocsp/ocsptest"
)

// nvidiaChain is NVIDIA's sample Hopper device chain (leaf first, with the
// device-supplied root), from nvtrust, kept by the sibling package gpu.
func nvidiaChain(t testing.TB) []*x509.Certificate {
	t.Helper()
	text, err := os.ReadFile("../testdata/nvidia/nvtrust/samples/gpuAkCertChain.txt")
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		if b, text = pem.Decode(text); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 5 {
		t.Fatalf("NVIDIA sample chain has %d certificates, want 5", len(certs))
	}
	return certs
}

func fixedNonce() []byte {
	n := make([]byte, ocsp.NonceSize)
	for i := range n {
		n[i] = byte(i)
	}
	return n
}

func hexLines(b []byte) []byte {
	h := hex.EncodeToString(b)
	var out bytes.Buffer
	for len(h) > 64 {
		out.WriteString(h[:64] + "\n")
		h = h[64:]
	}
	out.WriteString(h + "\n")
	return out.Bytes()
}

// TestRequestNVIDIAChain encodes the request for the BROM certificate of
// NVIDIA's sample chain: golden bytes, the same CertID as x/crypto/ocsp,
// and parsed back by ParseRequest and by x/crypto/ocsp.ParseRequest.
func TestRequestNVIDIAChain(t *testing.T) {
	certs := nvidiaChain(t)
	brom, prov := certs[1], certs[2]
	id, err := ocsp.NewCertID(brom, prov, crypto.SHA384)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ocsp.MarshalRequest(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := xocsp.CreateRequest(brom, prov, &xocsp.RequestOptions{Hash: crypto.SHA384})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, theirs) {
		t.Fatalf("request without nonce differs from x/crypto/ocsp.CreateRequest:\n%x\n%x", plain, theirs)
	}
	der, err := ocsp.MarshalRequest(id, fixedNonce())
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "request-nvidia-brom.hex", hexLines(der))
	writeSeed(t, "request-nvidia-brom.der", der)
	writeSeed(t, "request-nvidia-brom-no-nonce.der", plain)

	req, err := ocsp.ParseRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(req.CertIDs) != 1 || !req.CertIDs[0].Equal(id) || !bytes.Equal(req.Nonce, fixedNonce()) ||
		len(req.Extensions) != 1 || !req.Extensions[0].Critical {
		t.Fatalf("parsed back: %+v", req)
	}
	xr, err := xocsp.ParseRequest(der)
	if err != nil {
		t.Fatalf("x/crypto/ocsp.ParseRequest: %v", err)
	}
	if xr.SerialNumber.Cmp(brom.SerialNumber) != 0 || !bytes.Equal(xr.IssuerKeyHash, id.IssuerKeyHash) ||
		!bytes.Equal(xr.IssuerNameHash, id.IssuerNameHash) || xr.HashAlgorithm != crypto.SHA384 {
		t.Fatalf("x/crypto/ocsp reads %+v", xr)
	}
	// SHA-1 CertIDs (NVIDIA's C++ client) encode like x/crypto's too.
	id1, err := ocsp.NewCertID(brom, prov, crypto.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := ocsp.MarshalRequest(id1, nil)
	x1, _ := xocsp.CreateRequest(brom, prov, nil)
	if !bytes.Equal(d1, x1) {
		t.Fatal("SHA-1 request differs from x/crypto/ocsp.CreateRequest")
	}
}

func openssl(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func squash(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), ""))
}

// TestOpenSSLReadsNonce has OpenSSL, an independent parser, read the
// nonce from our request and from the test responder's response.
func TestOpenSSLReadsNonce(t *testing.T) {
	p := newPKI(t, true)
	c := p.checker(ocsp.Require)
	c.Rand = bytes.NewReader(fixedNonce())
	if r := c.Check(context.Background(), p.prov.Cert, p.identity.Cert, p.root.Cert); r.Status != ocsp.StatusGood || !r.NonceMatched {
		t.Fatalf("%+v", r)
	}
	req, resp, _ := p.resp.Last()
	dir := t.TempDir()
	reqF, respF := filepath.Join(dir, "req.der"), filepath.Join(dir, "resp.der")
	if err := os.WriteFile(reqF, req, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(respF, resp, 0o600); err != nil {
		t.Fatal(err)
	}
	want := "ocspnonce:0420" + hex.EncodeToString(fixedNonce())
	out := openssl(t, "ocsp", "-reqin", reqF, "-req_text")
	if !strings.Contains(squash(out), "ocspnonce:critical0420"+hex.EncodeToString(fixedNonce())) || !strings.Contains(out, "sha384") {
		t.Errorf("openssl does not read nonce %s with a SHA-384 CertID from the request:\n%s", want, out)
	}
	out = openssl(t, "ocsp", "-respin", respF, "-resp_text", "-noverify")
	if !strings.Contains(squash(out), "responseextensions:"+want) || !strings.Contains(out, "Cert Status: good") {
		t.Errorf("openssl does not read the response nonce %s:\n%s", want, out)
	}
}

func TestParseRequestErrors(t *testing.T) {
	certs := nvidiaChain(t)
	id, err := ocsp.NewCertID(certs[1], certs[2], crypto.SHA384)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := ocsp.MarshalRequest(id, fixedNonce())
	short, err := ocsp.MarshalRequest(ocsp.CertID{HashAlgorithm: crypto.SHA384, IssuerNameHash: id.IssuerNameHash[:47],
		IssuerKeyHash: id.IssuerKeyHash, SerialNumber: id.SerialNumber}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// OCSPRequest with an optionalSignature [0] after tbsRequest.
	signed := append([]byte{0x30, 0x81, byte(len(good) - 3 + 2)}, good[3:]...)
	signed = append(signed, 0xa0, 0x00)
	dup := mustExts(t, ocsp.NonceExtension([]byte{1}), ocsp.NonceExtension([]byte{2}))
	big := mustExts(t, pkix.Extension{Id: ocsp.OIDNonce, Value: append([]byte{0x04, 33}, make([]byte, 33)...)})
	raw := mustExts(t, pkix.Extension{Id: ocsp.OIDNonce, Value: fixedNonce()})
	empty := mustExts(t, pkix.Extension{Id: ocsp.OIDNonce, Value: []byte{0x04, 0}})
	cid, err := id.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	withExts := func(exts []byte) []byte {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(cid) })
				})
				b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(exts) })
			})
		})
		return b.BytesOrPanic()
	}
	if r, err := ocsp.ParseRequest(withExts(mustExts(t, ocsp.NonceExtension(fixedNonce())))); err != nil || !bytes.Equal(r.Nonce, fixedNonce()) {
		t.Fatalf("hand-built request with nonce: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		der        []byte
	}{
		{"empty", "not one DER SEQUENCE", nil},
		{"trailing", "not one DER SEQUENCE", append(append([]byte{}, good...), 0)},
		{"truncated", "not one DER SEQUENCE", good[:len(good)-1]},
		{"duplicate nonce", "appears twice", withExts(dup)},
		{"33-byte nonce", "33 bytes", withExts(big)},
		{"nonce not an OCTET STRING", "not one OCTET STRING", withExts(raw)},
		{"empty nonce", "0 bytes", withExts(empty)},
		{"extensions not a SEQUENCE", "not a SEQUENCE OF Extension", withExts([]byte{0x04, 0})},
		{"SHA-384 name hash of 47 bytes", "want 48", short},
		{"unknown hash", "not supported", bytes.Replace(good, []byte{0x65, 0x03, 0x04, 0x02, 0x02}, []byte{0x65, 0x03, 0x04, 0x02, 0x09}, 1)},
		{"signed request", "signed requests", signed},
	} {
		_, err := ocsp.ParseRequest(tc.der)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func mustExts(t *testing.T, exts ...pkix.Extension) []byte {
	t.Helper()
	b, err := ocsp.MarshalExtensions(exts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseResponseDataErrors(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		der        []byte
	}{
		{"empty", "not one DER SEQUENCE", nil},
		{"try later", "try later", xocsp.TryLaterErrorResponse},
		{"unauthorized", "unauthorized", xocsp.UnauthorizedErrorResponse},
		{"success without body", "malformed responseBytes", []byte{0x30, 0x03, 0x0a, 0x01, 0x00}},
	} {
		_, err := ocsp.ParseResponseData(tc.der)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// writeSeed writes a fuzz seed under testdata/ when the tests run with
// -update (the flag of measure/golden).
func writeSeed(t testing.TB, name string, der []byte) {
	t.Helper()
	if f := flag.Lookup("update"); f == nil || f.Value.String() != "true" {
		return
	}
	if err := os.WriteFile(filepath.Join("testdata", name), der, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestResponseSeeds checks ParseResponseData on responses of the test
// responder (and rewrites them as fuzz seeds under -update).
func TestResponseSeeds(t *testing.T) {
	p := newPKI(t, true)
	direct := newPKI(t, false)
	for _, tc := range []struct {
		name   string
		p      *pki
		answer ocsptest.Answer
		nonce  bool
	}{
		{"response-good-delegated.der", p, ocsptest.Answer{Status: xocsp.Good}, true},
		{"response-good-issuer.der", direct, ocsptest.Answer{Status: xocsp.Good}, true},
		{"response-revoked.der", p, ocsptest.Answer{Status: xocsp.Revoked, RevokedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Reason: xocsp.CertificateHold}, true},
		{"response-unknown.der", p, ocsptest.Answer{Status: xocsp.Unknown}, true},
		{"response-no-nonce.der", p, ocsptest.Answer{Status: xocsp.Good, Fault: ocsptest.NonceMissing}, false},
	} {
		tc.p.resp.Set(tc.p.prov.Cert.SerialNumber, tc.answer)
		c := tc.p.checker(ocsp.SoftFail)
		c.Rand = bytes.NewReader(fixedNonce())
		r := c.Check(context.Background(), tc.p.prov.Cert, tc.p.identity.Cert, tc.p.root.Cert)
		if r.Err != nil {
			t.Fatalf("%s: %v", tc.name, r.Err)
		}
		_, der, _ := tc.p.resp.Last()
		d, err := ocsp.ParseResponseData(der)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want, _ := ocsp.NewCertID(tc.p.prov.Cert, tc.p.identity.Cert, crypto.SHA384)
		if len(d.CertIDs) != 1 || !d.CertIDs[0].Equal(want) {
			t.Errorf("%s: CertIDs %+v", tc.name, d.CertIDs)
		}
		if tc.nonce != bytes.Equal(d.Nonce, fixedNonce()) || tc.nonce != (len(d.Extensions) == 1) {
			t.Errorf("%s: nonce %x, extensions %v", tc.name, d.Nonce, d.Extensions)
		}
		writeSeed(t, tc.name, der)
	}
}

func seeds(f *testing.F, prefix string) {
	files, err := filepath.Glob(filepath.Join("testdata", prefix+"*.der"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata/%s*.der seeds (run go test -update): %v", prefix, err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseResponse(f *testing.F) {
	seeds(f, "response-")
	f.Add(xocsp.TryLaterErrorResponse)
	f.Fuzz(func(t *testing.T, der []byte) {
		d, err := ocsp.ParseResponseData(der)
		if err != nil {
			return
		}
		if len(d.CertIDs) == 0 {
			t.Fatal("accepted a response without SingleResponse")
		}
		if d.Nonce != nil && (len(d.Nonce) == 0 || len(d.Nonce) > ocsp.MaxNonceSize) {
			t.Fatalf("accepted nonce of %d bytes", len(d.Nonce))
		}
		for _, id := range d.CertIDs {
			if len(id.IssuerKeyHash) != id.HashAlgorithm.Size() || id.SerialNumber == nil {
				t.Fatalf("accepted CertID %+v", id)
			}
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	seeds(f, "request-")
	f.Fuzz(func(t *testing.T, der []byte) {
		r, err := ocsp.ParseRequest(der)
		if err != nil {
			return
		}
		if len(r.CertIDs) == 0 {
			t.Fatal("accepted a request without CertID")
		}
		// One-certificate requests re-encode to the same bytes when they
		// carry nothing but the critical nonce (our own encoding).
		if len(r.CertIDs) == 1 && len(r.Extensions) == 1 && r.Nonce != nil && r.Extensions[0].Critical {
			again, err := ocsp.MarshalRequest(r.CertIDs[0], r.Nonce)
			if err != nil {
				t.Fatalf("parsed request does not re-encode: %v", err)
			}
			back, err := ocsp.ParseRequest(again)
			if err != nil || !back.CertIDs[0].Equal(r.CertIDs[0]) || !bytes.Equal(back.Nonce, r.Nonce) {
				t.Fatalf("re-encoded request reads back differently: %v", err)
			}
		}
	})
}
