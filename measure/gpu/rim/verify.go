package rim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// The only algorithms NVIDIA uses, and the only ones accepted.
const (
	algC14N11    = "http://www.w3.org/2006/12/xml-c14n11"
	algEnveloped = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
	algSHA384    = "http://www.w3.org/2001/04/xmldsig-more#sha384"
	algECDSA384  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
)

const maxChain = 8

// SignatureResult describes a verified RIM signature.
type SignatureResult struct {
	Signer   string              // subject of the signing (L4) certificate
	Chain    []*x509.Certificate // signer first, pinned root last
	NotAfter time.Time           // earliest notAfter in Chain
	// Expired reports whether NotAfter is before time.Now(). It is
	// informational: the chain was verified at the time given to Verify.
	Expired bool
}

// Verify checks the XML signature of a RIM and its certificate chain to
// root at time at, and returns the RIM parsed from the signed content.
// Errors name the RIM by its SoftwareIdentity name and colloquialVersion;
// VerifyID names it by its RIM id instead.
func Verify(data []byte, root *x509.Certificate, at time.Time) (*RIM, *SignatureResult, error) {
	return VerifyID("", data, root, at)
}

// VerifyID is Verify for the RIM with the given id (as the store named
// it, e.g. NV_GPU_DRIVER_GH100_550.144.03), which its errors carry.
func VerifyID(id string, data []byte, root *x509.Certificate, at time.Time) (*RIM, *SignatureResult, error) {
	fail := func(label, step string, err error) (*RIM, *SignatureResult, error) {
		if id != "" {
			label = id
		}
		if err != nil {
			return nil, nil, fmt.Errorf("rim %s: %s: %w", label, step, err)
		}
		return nil, nil, fmt.Errorf("rim %s: %s", label, step)
	}
	if root == nil {
		return fail("document", "verify", errors.New("no CoRIM root certificate given"))
	}
	doc, err := load(data, MaxSize)
	if err != nil {
		return fail("document", "structure", err)
	}
	top := doc.Root()
	label := "(unnamed)"
	if r, err := fromElement(top); err == nil {
		label = r.label()
	}
	sig, err := findSignature(top)
	if err != nil {
		return fail(label, "signature element", err)
	}
	sv, err := parseSignature(sig)
	if err != nil {
		return fail(label, "algorithm or reference", err)
	}

	certs, err := parseCerts(sv.certs)
	if err != nil {
		return fail(label, "certificate chain", err)
	}
	pub := certs[0].PublicKey.(*ecdsa.PublicKey)

	// Reference: the document without the Signature element, C14N 1.1.
	body := top.Copy()
	for _, c := range body.ChildElements() {
		if is(c, nsDSig, "Signature") {
			body.RemoveChild(c)
		}
	}
	c14n := dsig.MakeC14N11Canonicalizer()
	signed, err := c14n.Canonicalize(body)
	if err != nil {
		return fail(label, "canonicalize document", err)
	}
	if d := sha512.Sum384(signed); !bytes.Equal(d[:], sv.digest) {
		return fail(label, "digest does not match the document (Reference DigestValue)", nil)
	}

	// SignedInfo, canonicalized as a document subset: it carries every
	// namespace declaration in scope from its ancestors.
	si := sv.signedInfo.Copy()
	inScope(sv.signedInfo.Parent(), si)
	siBytes, err := c14n.Canonicalize(si)
	if err != nil {
		return fail(label, "canonicalize SignedInfo", err)
	}
	h := sha512.Sum384(siBytes)
	r := new(big.Int).SetBytes(sv.value[:48])
	s := new(big.Int).SetBytes(sv.value[48:])
	if !ecdsa.Verify(pub, h[:], r, s) {
		return fail(label, "signature value does not verify", nil)
	}

	// Certificate chain: [signer, intermediates..., supplied root]; the
	// supplied root is replaced by the pinned one. Checked after the
	// signature so that each failure is reported at its own step.
	chain, err := verifyChain(certs, root, at)
	if err != nil {
		return fail(label, "certificate chain", err)
	}

	// The RIM is what was signed: parse the canonical bytes. Canonical
	// form can be longer than the input (expanded empty elements), hence
	// the larger limit.
	rim, err := parse(signed, 2*MaxSize)
	if err != nil {
		return fail(label, "signed content", err)
	}
	res := &SignatureResult{Signer: chain[0].Subject.String(), Chain: chain}
	for i, c := range chain {
		if i == 0 || c.NotAfter.Before(res.NotAfter) {
			res.NotAfter = c.NotAfter
		}
	}
	res.Expired = res.NotAfter.Before(time.Now())
	return rim, res, nil
}

// inScope copies onto el every namespace declaration in scope at parent
// that el does not itself declare. An xml:* attribute in scope would also
// be inherited by C14N; NVIDIA's RIMs have none, and a RIM with one fails
// (the signature will not match) rather than being canonicalized loosely.
func inScope(parent, el *etree.Element) {
	declared := map[string]bool{}
	for _, a := range el.Attr {
		if a.Space == "xmlns" {
			declared[a.Key] = true
		} else if a.Space == "" && a.Key == "xmlns" {
			declared[""] = true
		}
	}
	for p := parent; p != nil; p = p.Parent() {
		for _, a := range p.Attr {
			switch {
			case a.Space == "xmlns" && !declared[a.Key]:
				declared[a.Key] = true
				el.CreateAttr("xmlns:"+a.Key, a.Value)
			case a.Space == "" && a.Key == "xmlns" && !declared[""]:
				declared[""] = true
				el.CreateAttr("xmlns", a.Value)
			}
		}
	}
}

// findSignature returns the single ds:Signature element, which must be a
// child of the root element (enveloped).
func findSignature(top *etree.Element) (*etree.Element, error) {
	var sig *etree.Element
	var n int
	var walk func(e *etree.Element, depth int)
	walk = func(e *etree.Element, depth int) {
		for _, c := range e.ChildElements() {
			if is(c, nsDSig, "Signature") {
				n++
				if depth == 1 {
					sig = c
				}
			}
			walk(c, depth+1)
		}
	}
	walk(top, 1)
	switch {
	case n == 0:
		return nil, errors.New("no ds:Signature element")
	case n > 1:
		return nil, fmt.Errorf("%d ds:Signature elements, want 1", n)
	case sig == nil:
		return nil, errors.New("ds:Signature is not a child of the root element")
	}
	return sig, nil
}

type sigValues struct {
	signedInfo *etree.Element
	digest     []byte
	value      []byte // r‖s
	certs      [][]byte
}

// children returns e's child elements, all of which must be ds elements
// with the given local names in order, and checks that e has no text
// other than whitespace and no attributes other than those allowed.
func children(e *etree.Element, allowedAttrs []string, names ...string) ([]*etree.Element, error) {
	if err := onlyAttrs(e, allowedAttrs...); err != nil {
		return nil, err
	}
	var out []*etree.Element
	for _, t := range e.Child {
		switch c := t.(type) {
		case *etree.Element:
			out = append(out, c)
		case *etree.CharData:
			if strings.TrimSpace(c.Data) != "" {
				return nil, fmt.Errorf("text in ds:%s", e.Tag)
			}
		}
	}
	if len(out) != len(names) {
		return nil, fmt.Errorf("ds:%s has %d child elements, want %d (%s)", e.Tag, len(out), len(names), strings.Join(names, ", "))
	}
	for i, c := range out {
		if !is(c, nsDSig, names[i]) {
			return nil, fmt.Errorf("ds:%s child %d is <%s>, want ds:%s", e.Tag, i, c.Tag, names[i])
		}
	}
	return out, nil
}

// onlyAttrs checks that e has no attributes except namespace declarations
// and the named unqualified ones.
func onlyAttrs(e *etree.Element, allowed ...string) error {
	for _, a := range e.Attr {
		if a.Space == "xmlns" || a.Space == "" && a.Key == "xmlns" {
			continue
		}
		ok := a.Space == ""
		if ok {
			ok = false
			for _, n := range allowed {
				ok = ok || a.Key == n
			}
		}
		if !ok {
			return fmt.Errorf("ds:%s has unexpected attribute %s", e.Tag, a.FullKey())
		}
	}
	return nil
}

// algorithm checks that e is an empty element whose Algorithm is want.
func algorithm(e *etree.Element, want string) error {
	if _, err := children(e, []string{"Algorithm"}); err != nil {
		return err
	}
	got, _ := attr(e, "", "Algorithm")
	if got != want {
		return fmt.Errorf("ds:%s Algorithm %q not accepted, want %q", e.Tag, got, want)
	}
	return nil
}

func text(e *etree.Element) (string, error) {
	if err := onlyAttrs(e); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, t := range e.Child {
		switch c := t.(type) {
		case *etree.CharData:
			b.WriteString(c.Data)
		case *etree.Element:
			return "", fmt.Errorf("ds:%s has a child element", e.Tag)
		}
	}
	return b.String(), nil
}

func base64Text(e *etree.Element) ([]byte, error) {
	s, err := text(e)
	if err != nil {
		return nil, err
	}
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("ds:%s is not base64: %w", e.Tag, err)
	}
	return b, nil
}

// parseSignature checks the exact shape NVIDIA signs with and extracts
// the digest, the signature value and the certificates.
func parseSignature(sig *etree.Element) (*sigValues, error) {
	var sv sigValues
	parts, err := children(sig, nil, "SignedInfo", "SignatureValue", "KeyInfo")
	if err != nil {
		return nil, err
	}
	sv.signedInfo = parts[0]
	si, err := children(parts[0], nil, "CanonicalizationMethod", "SignatureMethod", "Reference")
	if err != nil {
		return nil, err
	}
	if err := algorithm(si[0], algC14N11); err != nil {
		return nil, err
	}
	if err := algorithm(si[1], algECDSA384); err != nil {
		return nil, err
	}
	ref, err := children(si[2], []string{"URI"}, "Transforms", "DigestMethod", "DigestValue")
	if err != nil {
		return nil, err
	}
	if uri, ok := attr(si[2], "", "URI"); !ok || uri != "" {
		return nil, fmt.Errorf("ds:Reference URI must be present and empty (whole document), got %q", uri)
	}
	tr, err := children(ref[0], nil, "Transform", "Transform")
	if err != nil {
		return nil, err
	}
	if err := algorithm(tr[0], algEnveloped); err != nil {
		return nil, err
	}
	if err := algorithm(tr[1], algC14N11); err != nil {
		return nil, err
	}
	if err := algorithm(ref[1], algSHA384); err != nil {
		return nil, err
	}
	if sv.digest, err = base64Text(ref[2]); err != nil {
		return nil, err
	}
	if len(sv.digest) != sha512.Size384 {
		return nil, fmt.Errorf("ds:DigestValue is %d bytes, want %d", len(sv.digest), sha512.Size384)
	}
	if sv.value, err = base64Text(parts[1]); err != nil {
		return nil, err
	}
	if len(sv.value) != 96 {
		return nil, fmt.Errorf("ds:SignatureValue is %d bytes, want 96 (raw P-384 r‖s)", len(sv.value))
	}
	ki, err := children(parts[2], nil, "X509Data")
	if err != nil {
		return nil, err
	}
	var names []string
	for range ki[0].ChildElements() {
		names = append(names, "X509Certificate")
	}
	if len(names) > maxChain {
		return nil, fmt.Errorf("ds:X509Data has %d certificates, limit %d", len(names), maxChain)
	}
	certs, err := children(ki[0], nil, names...)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		der, err := base64Text(c)
		if err != nil {
			return nil, err
		}
		sv.certs = append(sv.certs, der)
	}
	return &sv, nil
}

// parseCerts parses [signer, intermediates..., supplied root] and drops
// the supplied root. Every certificate kept must carry a P-384 ECDSA key.
func parseCerts(ders [][]byte) ([]*x509.Certificate, error) {
	if len(ders) < 2 {
		return nil, fmt.Errorf("%d certificates in ds:X509Data, want the signer, its intermediates and a root", len(ders))
	}
	var certs []*x509.Certificate
	for i, der := range ders[:len(ders)-1] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i, err)
		}
		if err := p384(c); err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	return certs, nil
}

func p384(c *x509.Certificate) error {
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P384() {
		return fmt.Errorf("certificate %q has a %T key, want ECDSA P-384", c.Subject, c.PublicKey)
	}
	return nil
}

// verifyChain verifies certs[0] through certs[1:] to the pinned root at
// time at and returns the chain, signer first and root last.
func verifyChain(certs []*x509.Certificate, root *x509.Certificate, at time.Time) ([]*x509.Certificate, error) {
	if err := p384(root); err != nil {
		return nil, fmt.Errorf("CoRIM root: %w", err)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("signer %q does not chain to the CoRIM root %q at %s: %w",
			certs[0].Subject, root.Subject, at.UTC().Format(time.RFC3339), err)
	}
	return chains[0], nil
}
