package rim

import (
	"bytes"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// Namespaces of the elements and attributes a RIM is read from.
const (
	nsSWID   = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
	nsTCGRIM = "https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/"
	nsSHA384 = "http://www.w3.org/2001/04/xmlenc#sha384"
	nsDSig   = "http://www.w3.org/2000/09/xmldsig#"
)

// Limits on the input. NVIDIA's RIMs are about 21 KB, 5 levels deep, with
// 64 measurements of 48 bytes and at most a handful of alternatives.
const (
	MaxSize         = 1 << 20 // bytes of XML
	maxDepth        = 16
	maxElements     = 4096
	maxAttrs        = 64
	maxIndex        = 253 // SPDM block indices are 1..254
	maxAlternatives = 32
	maxValueSize    = 512
)

// RIM is the part of a reference integrity manifest that attestation uses.
type RIM struct {
	Name                   string // SoftwareIdentity/@name, e.g. "GH100"
	TagID                  string // SoftwareIdentity/@tagId
	Version                string // SoftwareIdentity/@version
	ColloquialVersion      string // Meta/@colloquialVersion: driver or VBIOS version
	FirmwareManufacturerID string // Meta/@FirmwareManufacturerId (TCG RIM namespace); "" if absent

	measurements []Measurement // sorted by Index
}

// Measurement is one Payload/Resource of a RIM: the golden values of the
// SPDM measurement block Index+1.
type Measurement struct {
	Index        int    // RIM index, 0-based
	Name         string // e.g. "Measurement_7"
	Size         int    // length in bytes of every alternative and of the runtime value
	Active       bool   // only active measurements are compared
	Alternatives [][]byte
}

// Measurements returns a copy of the RIM's measurements ordered by index.
func (r *RIM) Measurements() []Measurement {
	out := make([]Measurement, len(r.measurements))
	for i, m := range r.measurements {
		alts := make([][]byte, len(m.Alternatives))
		for j, a := range m.Alternatives {
			alts[j] = bytes.Clone(a)
		}
		m.Alternatives = alts
		out[i] = m
	}
	return out
}

// CheckVersion checks that the RIM's colloquialVersion is want, ignoring
// case (NVIDIA prints VBIOS versions in either case).
func (r *RIM) CheckVersion(want string) error {
	if !strings.EqualFold(r.ColloquialVersion, want) {
		return fmt.Errorf("rim %s: colloquialVersion %q, want %q", r.label(), r.ColloquialVersion, want)
	}
	return nil
}

func (r *RIM) label() string {
	return r.Name + " " + r.ColloquialVersion
}

// Parse reads a RIM without checking its signature. Use Verify for RIMs
// from anywhere but a trusted source.
func Parse(data []byte) (*RIM, error) {
	return parse(data, MaxSize)
}

func parse(data []byte, limit int) (*RIM, error) {
	doc, err := load(data, limit)
	if err != nil {
		return nil, fmt.Errorf("rim: %w", err)
	}
	return fromElement(doc.Root())
}

// load checks the document with encoding/xml (size, depth, element and
// attribute counts, no DTD or entities, no duplicate attributes, one root
// element) before etree reads it, since etree keeps only one of duplicate
// attributes and has no limits of its own besides depth.
func load(data []byte, limit int) (*etree.Document, error) {
	if len(data) == 0 {
		return nil, errors.New("empty document")
	}
	if len(data) > limit {
		return nil, fmt.Errorf("document is %d bytes, limit %d", len(data), limit)
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	depth, elements, roots := 0, 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if roots > 1 {
					return nil, fmt.Errorf("second root element <%s> at offset %d", t.Name.Local, d.InputOffset())
				}
			}
			depth++
			elements++
			if depth > maxDepth {
				return nil, fmt.Errorf("element <%s> nested deeper than %d", t.Name.Local, maxDepth)
			}
			if elements > maxElements {
				return nil, fmt.Errorf("more than %d elements", maxElements)
			}
			if len(t.Attr) > maxAttrs {
				return nil, fmt.Errorf("element <%s> has %d attributes, limit %d", t.Name.Local, len(t.Attr), maxAttrs)
			}
			seen := make(map[xml.Name]bool, len(t.Attr))
			for _, a := range t.Attr {
				if seen[a.Name] {
					return nil, fmt.Errorf("element <%s> repeats attribute %s", t.Name.Local, attrName(a.Name))
				}
				seen[a.Name] = true
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) != 0 {
				return nil, errors.New("text outside the root element")
			}
		case xml.Directive:
			return nil, errors.New("DTDs and other directives are not allowed")
		case xml.ProcInst:
			if t.Target != "xml" || depth != 0 || roots != 0 {
				return nil, fmt.Errorf("processing instruction <?%s?> not allowed", t.Target)
			}
		}
	}
	if roots == 0 {
		return nil, errors.New("no root element")
	}
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{MaxDepth: maxDepth + 1}
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, fmt.Errorf("malformed XML: %w", err)
	}
	if doc.Root() == nil {
		return nil, errors.New("no root element")
	}
	return doc, nil
}

func attrName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return "{" + n.Space + "}" + n.Local
}

func is(e *etree.Element, space, local string) bool {
	return e.Tag == local && e.NamespaceURI() == space
}

// attr returns the value of the attribute local in namespace space ("" for
// unqualified attributes).
func attr(e *etree.Element, space, local string) (string, bool) {
	for i := range e.Attr {
		a := &e.Attr[i]
		if a.Key != local || a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		if space == "" && a.Space == "" || space != "" && a.Space != "" && a.NamespaceURI() == space {
			return a.Value, true
		}
	}
	return "", false
}

func fromElement(root *etree.Element) (*RIM, error) {
	if !is(root, nsSWID, "SoftwareIdentity") {
		return nil, fmt.Errorf("rim: root element is <%s> in namespace %q, want SoftwareIdentity in %q", root.Tag, root.NamespaceURI(), nsSWID)
	}
	r := &RIM{}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"name", &r.Name}, {"tagId", &r.TagID}, {"version", &r.Version}} {
		v, ok := attr(root, "", f.name)
		if !ok || v == "" {
			return nil, fmt.Errorf("rim: SoftwareIdentity has no %s", f.name)
		}
		*f.dst = v
	}
	var meta, payload *etree.Element
	for _, c := range root.ChildElements() {
		switch {
		case is(c, nsSWID, "Meta"):
			if meta != nil {
				return nil, fmt.Errorf("rim %s: more than one Meta element", r.Name)
			}
			meta = c
		case is(c, nsSWID, "Payload"):
			if payload != nil {
				return nil, fmt.Errorf("rim %s: more than one Payload element", r.Name)
			}
			payload = c
		}
	}
	if meta == nil {
		return nil, fmt.Errorf("rim %s: no Meta element", r.Name)
	}
	v, ok := attr(meta, "", "colloquialVersion")
	if !ok || v == "" {
		return nil, fmt.Errorf("rim %s: Meta has no colloquialVersion", r.Name)
	}
	r.ColloquialVersion = v
	r.FirmwareManufacturerID, _ = attr(meta, nsTCGRIM, "FirmwareManufacturerId")
	if payload == nil {
		return nil, fmt.Errorf("rim %s: no Payload element", r.label())
	}
	seen := map[int]bool{}
	for _, c := range payload.ChildElements() {
		if !is(c, nsSWID, "Resource") {
			return nil, fmt.Errorf("rim %s: unexpected element <%s> in Payload", r.label(), c.Tag)
		}
		m, err := resource(c)
		if err != nil {
			return nil, fmt.Errorf("rim %s: Resource %d: %w", r.label(), len(r.measurements), err)
		}
		if seen[m.Index] {
			return nil, fmt.Errorf("rim %s: duplicate measurement index %d", r.label(), m.Index)
		}
		seen[m.Index] = true
		r.measurements = append(r.measurements, m)
	}
	if len(r.measurements) == 0 {
		return nil, fmt.Errorf("rim %s: Payload has no measurements", r.label())
	}
	sort.Slice(r.measurements, func(i, j int) bool { return r.measurements[i].Index < r.measurements[j].Index })
	return r, nil
}

func intAttr(e *etree.Element, name string, lo, hi int) (int, error) {
	v, ok := attr(e, "", name)
	if !ok {
		return 0, fmt.Errorf("no %s attribute", name)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi || strconv.Itoa(n) != v {
		return 0, fmt.Errorf("%s %q is not an integer in %d..%d", name, v, lo, hi)
	}
	return n, nil
}

func resource(e *etree.Element) (Measurement, error) {
	var m Measurement
	var err error
	if t, ok := attr(e, "", "type"); ok && t != "Measurement" {
		return m, fmt.Errorf("type %q, want Measurement", t)
	}
	if m.Index, err = intAttr(e, "index", 0, maxIndex); err != nil {
		return m, err
	}
	name, ok := attr(e, "", "name")
	if !ok || name == "" {
		return m, fmt.Errorf("index %d: no name", m.Index)
	}
	m.Name = name
	switch a, _ := attr(e, "", "active"); a {
	case "True":
		m.Active = true
	case "False":
	default:
		return m, fmt.Errorf("index %d: active %q, want True or False", m.Index, a)
	}
	n, err := intAttr(e, "alternatives", 1, maxAlternatives)
	if err != nil {
		return m, fmt.Errorf("index %d: %w", m.Index, err)
	}
	if m.Size, err = intAttr(e, "size", 1, maxValueSize); err != nil {
		return m, fmt.Errorf("index %d: %w", m.Index, err)
	}
	m.Alternatives = make([][]byte, n)
	hashes := 0
	for i := range e.Attr {
		a := &e.Attr[i]
		if a.Space == "" || a.Space == "xmlns" || a.NamespaceURI() != nsSHA384 {
			continue
		}
		k, ok := strings.CutPrefix(a.Key, "Hash")
		j, err := strconv.Atoi(k)
		if !ok || err != nil || j < 0 || j >= n || strconv.Itoa(j) != k {
			return m, fmt.Errorf("index %d: unexpected hash attribute %s with %d alternatives", m.Index, a.Key, n)
		}
		if m.Alternatives[j] != nil {
			return m, fmt.Errorf("index %d: %s given twice", m.Index, a.Key)
		}
		if len(a.Value) != 2*m.Size {
			return m, fmt.Errorf("index %d: %s has %d hex digits, want %d (size %d)", m.Index, a.Key, len(a.Value), 2*m.Size, m.Size)
		}
		b, err := hex.DecodeString(a.Value)
		if err != nil {
			return m, fmt.Errorf("index %d: %s is not hex: %w", m.Index, a.Key, err)
		}
		m.Alternatives[j] = b
		hashes++
	}
	if hashes != n {
		return m, fmt.Errorf("index %d: %d of %d Hash attributes present", m.Index, hashes, n)
	}
	return m, nil
}
