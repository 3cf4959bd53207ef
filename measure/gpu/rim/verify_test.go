package rim

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestVerifyFixtures covers every RIM row of the vectors' README.
func TestVerifyFixtures(t *testing.T) {
	root := corimRoot(t)
	for _, tc := range []struct {
		path, version string
		want          string // error substring; "" = verifies
	}{
		{driver545, "545.00", ""},
		{vbiosTest, "96.00.5E.00.01", ""},
		{vbiosProd, "96.00.5E.00.01", ""},
		{driver550, "550.144.03", ""},
		{vbiosIdx9, "96.00.5E.00.01", ""},
		{badSig, "", "rim GH100 550.144.03: signature value does not verify"},
		{badChain, "", "rim GB100 97.00.83.00.09: certificate chain: signer \"CN=HCC RIM L4 Signer"},
		{badDigest, "", "rim GH100 535.86.09: digest does not match the document"},
	} {
		t.Run(tc.path[strings.LastIndex(tc.path, "/")+1:], func(t *testing.T) {
			data := read(t, tc.path)
			r, res, err := Verify(data, root, at)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || r != nil || res != nil {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := r.CheckVersion(tc.version); err != nil {
				t.Error(err)
			}
			if !strings.HasPrefix(res.Signer, "CN=HCC RIM L4 Signer,O=NVIDIA Corporation") {
				t.Errorf("signer %q", res.Signer)
			}
			if len(res.Chain) != 4 || res.Chain[3].Subject.CommonName != "NVIDIA CoRIM signing Root CA" || !res.Chain[3].Equal(root) {
				t.Errorf("chain %v", res.Chain)
			}
			if !res.NotAfter.Equal(res.Chain[0].NotAfter) || !res.NotAfter.After(at) {
				t.Errorf("NotAfter %v, leaf %v", res.NotAfter, res.Chain[0].NotAfter)
			}
			if res.Expired != res.NotAfter.Before(time.Now()) {
				t.Errorf("Expired %v with NotAfter %v", res.Expired, res.NotAfter)
			}
			// What was signed is what the document says.
			if p := mustParse(t, tc.path); !reflect.DeepEqual(p, r) {
				t.Errorf("verified RIM %+v differs from parsed %+v", r, p)
			}
		})
	}
}

func TestVerifyLeafWindow(t *testing.T) {
	root := corimRoot(t)
	data := read(t, driver550)
	_, res, err := Verify(data, root, at)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 12, 30, 16, 56, 50, 0, time.UTC); !res.NotAfter.Equal(want) {
		t.Fatalf("NotAfter %v, want %v", res.NotAfter, want)
	}
	for _, when := range []time.Time{
		res.Chain[0].NotBefore.Add(-time.Second),
		res.NotAfter.Add(time.Second),
	} {
		_, _, err := Verify(data, root, when)
		if err == nil || !strings.Contains(err.Error(), "certificate chain") || !strings.Contains(err.Error(), "expired or is not yet valid") {
			t.Errorf("at %v: err = %v", when, err)
		}
	}
}

func TestVerifyWrongRoot(t *testing.T) {
	dev := loadCert(t, fixtures+"nvtrust/certs/verifier_device_root.pem")
	_, _, err := Verify(read(t, driver550), dev, at)
	if err == nil || !strings.Contains(err.Error(), "certificate chain") || !strings.Contains(err.Error(), "NVIDIA Device Identity CA") {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := Verify(read(t, driver550), nil, at); err == nil || !strings.Contains(err.Error(), "no CoRIM root") {
		t.Fatalf("nil root: err = %v", err)
	}
}

func TestVerifyIDNamesTheRIM(t *testing.T) {
	_, _, err := VerifyID("NV_GPU_DRIVER_GH100_550.144.03", read(t, badSig), corimRoot(t), at)
	if err == nil || err.Error() != "rim NV_GPU_DRIVER_GH100_550.144.03: signature value does not verify" {
		t.Fatalf("err = %v", err)
	}
}

// TestVerifyTampered edits the signed 550.144.03 RIM in ways that must each
// fail at the named step.
func TestVerifyTampered(t *testing.T) {
	root := corimRoot(t)
	orig := string(read(t, driver550))
	const hash7 = `ns2:Hash0="4a5e4b3d501fe31f91bd8b6f2921b58437704a504dbedba971440e840c938c805612689ae3ac04b1009515a179063d49"`
	sv := orig[strings.Index(orig, "<ds:SignatureValue>")+len("<ds:SignatureValue>"):]
	sv = sv[:strings.Index(sv, "<")]
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"hash attribute", hash7, strings.Replace(hash7, "4a5e", "4a5f", 1), "digest does not match"},
		{"active flag", `index="8" active="False"`, `index="8" active="True"`, "digest does not match"},
		{"colloquialVersion", `colloquialVersion="550.144.03"`, `colloquialVersion="550.144.04"`, "digest does not match"},
		{"signature value", sv, strings.Replace(sv, sv[:4], "AAAA", 1), "signature value does not verify"},
		{"short signature value", sv, sv[:64], "want 96"},
		{"signature method", "xmldsig-more#ecdsa-sha384", "xmldsig-more#ecdsa-sha256", "algorithm or reference: ds:SignatureMethod Algorithm"},
		{"rsa", "xmldsig-more#ecdsa-sha384", "xmldsig#rsa-sha1", "ds:SignatureMethod Algorithm"},
		{"digest method", "xmldsig-more#sha384", "xmlenc#sha256", "ds:DigestMethod Algorithm"},
		{"canonicalization", `<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2006/12/xml-c14n11"/>`, `<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>`, "ds:CanonicalizationMethod Algorithm"},
		{"transform order", `<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2006/12/xml-c14n11"/>`, `<ds:Transform Algorithm="http://www.w3.org/2006/12/xml-c14n11"/><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>`, "ds:Transform Algorithm"},
		{"extra transform", `<ds:Transforms>`, `<ds:Transforms><ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"/>`, "ds:Transforms has 3 child elements"},
		{"reference URI", `<ds:Reference URI="">`, `<ds:Reference URI="#x">`, "URI must be present and empty"},
		{"no reference URI", `<ds:Reference URI="">`, `<ds:Reference>`, "URI must be present and empty"},
		{"reference Type", `<ds:Reference URI="">`, `<ds:Reference URI="" Type="x">`, "unexpected attribute Type"},
		{"second reference", `</ds:Reference>`, `</ds:Reference><ds:Reference URI=""/>`, "ds:SignedInfo has 4 child elements"},
		{"object", `</ds:KeyInfo>`, `</ds:KeyInfo><ds:Object>x</ds:Object>`, "ds:Signature has 4 child elements"},
		{"second signature", `<ns0:Payload`, `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/><ns0:Payload`, "2 ds:Signature elements"},
		{"no signature", `<ds:Signature xmlns:ds=`, `<ds:Signaturx xmlns:ds=`, "malformed XML"},
		{"digest not base64", `<ds:DigestValue>`, `<ds:DigestValue>!`, "not base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(orig, tc.old) {
				t.Fatalf("fixture lacks %q", tc.old)
			}
			data := strings.Replace(orig, tc.old, tc.new, 1)
			_, _, err := Verify([]byte(data), root, at)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "rim ") {
				t.Errorf("error %q does not name the RIM", err)
			}
		})
	}
}

// TestVerifyUnsignedAdditionsIgnored: comments and whitespace outside the
// root are not signed (C14N drops them) and do not change the result.
func TestVerifyUnsignedAdditionsIgnored(t *testing.T) {
	root := corimRoot(t)
	orig := read(t, driver550)
	want, _, err := Verify(orig, root, at)
	if err != nil {
		t.Fatal(err)
	}
	data := strings.Replace(string(orig), `<ns0:Payload`, `<!-- <ns0:Resource index="7"/> --><ns0:Payload`, 1)
	data = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + data + "\n<!-- trailing -->\n"
	got, _, err := Verify([]byte(data), root, at)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("RIM changed by unsigned comments")
	}
}

// TestVerifyChainOfTwo: a KeyInfo with only the signer and a root leaves
// the signer without its intermediates.
func TestVerifyChainOfTwo(t *testing.T) {
	orig := string(read(t, driver550))
	start := strings.Index(orig, "</ds:X509Certificate>") + len("</ds:X509Certificate>")
	end := strings.LastIndex(orig, "<ds:X509Certificate>")
	data := orig[:start] + orig[end:]
	_, _, err := Verify([]byte(data), corimRoot(t), at)
	if err == nil || !strings.Contains(err.Error(), "certificate chain") {
		t.Fatalf("err = %v", err)
	}
}

func TestVerifyShapeErrors(t *testing.T) {
	orig := string(read(t, driver550))
	firstEnd := strings.Index(orig, "</ds:X509Certificate>") + len("</ds:X509Certificate>")
	sigStart := strings.Index(orig, "<ds:Signature ")
	sigEnd := strings.Index(orig, "</ds:Signature>") + len("</ds:Signature>")
	for _, tc := range []struct{ name, xml, want string }{
		{"one certificate", orig[:firstEnd] + orig[strings.Index(orig, "</ds:X509Data>"):], "1 certificates in ds:X509Data"},
		{"unsigned", orig[:sigStart] + orig[sigEnd:], "no ds:Signature element"},
		{"signature not enveloped by root", orig[:sigStart] + "<ns0:Link>" + orig[sigStart:sigEnd] + "</ns0:Link>" + orig[sigEnd:], "not a child of the root"},
		{"not a RIM", "<a/>", "no ds:Signature element"},
		{"malformed", orig[:len(orig)/2], "rim document: structure: malformed XML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Verify([]byte(tc.xml), corimRoot(t), at)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	root := corimRoot(b)
	data := read(b, driver550)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Verify(data, root, at); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	data := read(b, driver550)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
