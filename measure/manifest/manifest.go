package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// FormatVersion is the manifest format this package writes and reads.
const FormatVersion = 1

// PayloadType is the DSSE payload type of a signed manifest.
const PayloadType = "application/vnd.chrysalis.manifest+json"

// Limits enforced by Parse and New.
const (
	MaxSize     = 1 << 20
	MaxShapes   = 64
	MaxInputs   = 1024
	MaxFiles    = 64
	MaxVariants = 64
)

// ReleaseJSONName is the release file release_json_sha256 describes.
const ReleaseJSONName = "release.json"

// Manifest is everything a verifier needs to accept a TD as an instance
// of one release on one VM shape. Its canonical JSON (Encode) is what is
// signed (Sign) and published; Digest names it.
type Manifest struct {
	// FormatVersion is FormatVersion.
	FormatVersion int `json:"format_version"`
	// Release identifies the release the values were computed from.
	Release Release `json:"release"`
	// Inputs are the pinned packages the release was built from, as
	// release.json lists them.
	Inputs []Input `json:"inputs"`
	// MRTD lists MRTD per page-add order ("single-pass", "two-pass").
	MRTD []Variant `json:"mrtd"`
	// RTMR1 lists RTMR1 per kernel variant: "unpatched" (QEMU >= 10.2
	// serves the file as is) or "patched-below4g-<N>mib" (QEMU <= 10.1
	// patches the setup header; the patch depends on the RAM below 4 GiB).
	RTMR1 []Variant `json:"rtmr1"`
	// RTMR2 lists RTMR2 per OVMF initrd= placement ("suffix", "prefix").
	RTMR2 []Variant `json:"rtmr2"`
	// Shapes are the allowed VM shapes with their full set of expected
	// quote fields and image hash.
	Shapes []Shape `json:"shapes"`
}

// Release identifies a release directory.
type Release struct {
	// SourceCommit is the git commit it was built from, or "unknown".
	SourceCommit string `json:"source_commit"`
	// SourceDirty says the work tree had uncommitted changes.
	SourceDirty bool `json:"source_dirty"`
	// KernelVersion is the guest kernel release (uname -r).
	KernelVersion string `json:"kernel_version"`
	// Cmdline is the kernel command line.
	Cmdline string `json:"cmdline"`
	// ReleaseJSONSHA256 is the SHA-256 of release.json.
	ReleaseJSONSHA256 string `json:"release_json_sha256"`
	// Files are every file SHA256SUMS covers, sorted by name.
	Files []File `json:"files"`
}

// File is one release file.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Input is one pinned input package (release.json "inputs").
type Input struct {
	Role     string `json:"role"`
	Package  string `json:"package"`
	Version  string `json:"version"`
	Arch     string `json:"arch"`
	Filename string `json:"filename"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// Variant is a register value under a named condition.
type Variant struct {
	Name  string       `json:"name"`
	Value tdxmr.Digest `json:"value"`
}

// Shape is one allowed VM shape and what a TD of it must show.
type Shape struct {
	// Name is the shape's name.
	Name string `json:"name"`
	// Digest is shape.VMShape.Digest(): "sha256:" + hex SHA-256 of Shape.
	Digest string `json:"digest"`
	// Shape is the shape's canonical JSON (shape.VMShape.Canonical).
	Shape json.RawMessage `json:"shape"`
	// MRTDVariant, RTMR1Variant and RTMR2Variant name the entries of
	// Manifest.MRTD, RTMR1 and RTMR2 this shape uses.
	MRTDVariant  string `json:"mrtd_variant"`
	RTMR1Variant string `json:"rtmr1_variant"`
	RTMR2Variant string `json:"rtmr2_variant"`
	// MRTD, RTMR0, RTMR1, RTMR2 are the expected registers.
	MRTD  tdxmr.Digest `json:"mrtd"`
	RTMR0 tdxmr.Digest `json:"rtmr0"`
	RTMR1 tdxmr.Digest `json:"rtmr1"`
	RTMR2 tdxmr.Digest `json:"rtmr2"`
	// TD are the other expected quote fields.
	TD TDFields `json:"td"`
	// ImageHash is ImageHash(QuoteFields()).
	ImageHash Hash `json:"image_hash"`
}

// QuoteFields are the shape's expected image-hash fields.
func (s *Shape) QuoteFields() QuoteFields {
	return QuoteFields{
		MRTD: s.MRTD, RTMR0: s.RTMR0, RTMR1: s.RTMR1, RTMR2: s.RTMR2,
		TDAttributes: s.TD.TDAttributes, XFAM: s.TD.XFAM,
		MRConfigID: s.TD.MRConfigID, MROwner: s.TD.MROwner, MROwnerConfig: s.TD.MROwnerConfig,
	}
}

// ShapeValues are the already-computed measurements of one shape, the
// input of New. Variant names label the condition a value depends on
// (see Manifest); two shapes that name the same variant must agree on
// its value.
type ShapeValues struct {
	Shape *shape.VMShape
	MRTD  Variant
	RTMR0 tdxmr.Digest
	RTMR1 Variant
	RTMR2 Variant
	TD    TDFields
}

// New assembles and validates a manifest from computed values. Files
// are sorted by name; inputs and shapes keep their order.
func New(rel Release, inputs []Input, shapes []ShapeValues) (*Manifest, error) {
	m := &Manifest{FormatVersion: FormatVersion, Release: rel, Inputs: inputs}
	m.Release.Files = append([]File(nil), rel.Files...)
	sort.Slice(m.Release.Files, func(i, j int) bool { return m.Release.Files[i].Name < m.Release.Files[j].Name })
	if m.Inputs == nil {
		m.Inputs = []Input{}
	}
	variants := [3]map[string]tdxmr.Digest{{}, {}, {}}
	add := func(k int, what string, v Variant) error {
		if old, ok := variants[k][v.Name]; ok && old != v.Value {
			return fmt.Errorf("manifest: %s variant %q has two values, %s and %s", what, v.Name, old, v.Value)
		}
		variants[k][v.Name] = v.Value
		return nil
	}
	for _, sv := range shapes {
		if sv.Shape == nil {
			return nil, fmt.Errorf("manifest: a shape is nil")
		}
		raw, err := sv.Shape.Canonical()
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		digest, err := sv.Shape.Digest()
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		for k, v := range []Variant{sv.MRTD, sv.RTMR1, sv.RTMR2} {
			if err := add(k, []string{"mrtd", "rtmr1", "rtmr2"}[k], v); err != nil {
				return nil, err
			}
		}
		s := Shape{
			Name: sv.Shape.Name, Digest: digest, Shape: raw,
			MRTDVariant: sv.MRTD.Name, RTMR1Variant: sv.RTMR1.Name, RTMR2Variant: sv.RTMR2.Name,
			MRTD: sv.MRTD.Value, RTMR0: sv.RTMR0, RTMR1: sv.RTMR1.Value, RTMR2: sv.RTMR2.Value,
			TD: sv.TD,
		}
		s.ImageHash = ImageHash(s.QuoteFields())
		m.Shapes = append(m.Shapes, s)
	}
	list := func(vs map[string]tdxmr.Digest) []Variant {
		out := []Variant{}
		for n, v := range vs {
			out = append(out, Variant{Name: n, Value: v})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	m.MRTD, m.RTMR1, m.RTMR2 = list(variants[0]), list(variants[1]), list(variants[2])
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

var (
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	commitRE  = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64}|unknown)$`)
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	variantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._+-]{0,63}$`)
)

// Validate checks every field and every cross-reference: variant names
// resolve and agree with the shape's values, each embedded shape hashes
// to its digest and carries its name, TD fields are allowed, and each
// image hash is recomputed.
func (m *Manifest) Validate() error {
	if m.FormatVersion != FormatVersion {
		return fmt.Errorf("manifest: format_version %d is not supported (want %d)", m.FormatVersion, FormatVersion)
	}
	r := &m.Release
	if !commitRE.MatchString(r.SourceCommit) {
		return fmt.Errorf("manifest: release.source_commit %q is not a git commit id or \"unknown\"", r.SourceCommit)
	}
	if !sha256RE.MatchString(r.ReleaseJSONSHA256) {
		return fmt.Errorf("manifest: release.release_json_sha256 %q is not 64 lower-case hex digits", r.ReleaseJSONSHA256)
	}
	if len(r.Files) == 0 || len(r.Files) > MaxFiles {
		return fmt.Errorf("manifest: release.files has %d entries, want 1..%d", len(r.Files), MaxFiles)
	}
	for i, f := range r.Files {
		if !nameRE.MatchString(f.Name) {
			return fmt.Errorf("manifest: release.files[%d].name %q is not a plain file name", i, f.Name)
		}
		if i > 0 && r.Files[i-1].Name >= f.Name {
			return fmt.Errorf("manifest: release.files must be sorted by name without repeats (%q after %q)", f.Name, r.Files[i-1].Name)
		}
		if !sha256RE.MatchString(f.SHA256) || f.Size < 0 {
			return fmt.Errorf("manifest: release.files[%d] (%s): bad sha256 %q or size %d", i, f.Name, f.SHA256, f.Size)
		}
		if f.Name == ReleaseJSONName && f.SHA256 != r.ReleaseJSONSHA256 {
			return fmt.Errorf("manifest: release.files lists %s with sha256 %s but release.release_json_sha256 is %s", f.Name, f.SHA256, r.ReleaseJSONSHA256)
		}
	}
	if m.Inputs == nil {
		return fmt.Errorf("manifest: field inputs is null (an empty list is [])")
	}
	if len(m.Inputs) > MaxInputs {
		return fmt.Errorf("manifest: %d inputs, more than %d", len(m.Inputs), MaxInputs)
	}
	for i, in := range m.Inputs {
		if in.Role == "" || in.Package == "" || in.Version == "" || in.Filename == "" || in.Size < 0 || !sha256RE.MatchString(in.SHA256) {
			return fmt.Errorf("manifest: inputs[%d] (%s): role, package, version, filename and a sha256 of 64 lower-case hex digits are required", i, in.Package)
		}
	}
	lists := []struct {
		what string
		vs   []Variant
	}{{"mrtd", m.MRTD}, {"rtmr1", m.RTMR1}, {"rtmr2", m.RTMR2}}
	index := make([]map[string]tdxmr.Digest, len(lists))
	for k, l := range lists {
		if len(l.vs) == 0 || len(l.vs) > MaxVariants {
			return fmt.Errorf("manifest: %s has %d variants, want 1..%d", l.what, len(l.vs), MaxVariants)
		}
		index[k] = map[string]tdxmr.Digest{}
		for i, v := range l.vs {
			if !variantRE.MatchString(v.Name) {
				return fmt.Errorf("manifest: %s[%d].name %q must be 1-64 of [a-z0-9._+-]", l.what, i, v.Name)
			}
			if i > 0 && l.vs[i-1].Name >= v.Name {
				return fmt.Errorf("manifest: %s must be sorted by name without repeats (%q after %q)", l.what, v.Name, l.vs[i-1].Name)
			}
			index[k][v.Name] = v.Value
		}
	}
	if len(m.Shapes) == 0 || len(m.Shapes) > MaxShapes {
		return fmt.Errorf("manifest: %d shapes, want 1..%d", len(m.Shapes), MaxShapes)
	}
	used := make([]map[string]bool, len(lists))
	for k := range used {
		used[k] = map[string]bool{}
	}
	seen := map[string]bool{}
	for i := range m.Shapes {
		s := &m.Shapes[i]
		where := fmt.Sprintf("manifest: shapes[%d] (%s)", i, s.Name)
		if seen[s.Name] {
			return fmt.Errorf("%s: shape name repeats", where)
		}
		seen[s.Name] = true
		if err := checkShapeJSON(s); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		for k, ref := range []struct {
			name string
			val  tdxmr.Digest
		}{{s.MRTDVariant, s.MRTD}, {s.RTMR1Variant, s.RTMR1}, {s.RTMR2Variant, s.RTMR2}} {
			v, ok := index[k][ref.name]
			if !ok {
				return fmt.Errorf("%s: %s_variant %q is not in %s", where, lists[k].what, ref.name, lists[k].what)
			}
			if v != ref.val {
				return fmt.Errorf("%s: %s %s differs from %s variant %q (%s)", where, lists[k].what, ref.val, lists[k].what, ref.name, v)
			}
			used[k][ref.name] = true
		}
		if err := s.TD.Validate(); err != nil {
			return fmt.Errorf("%s: td: %w", where, err)
		}
		if want := Hash(ImageHash(s.QuoteFields())); s.ImageHash != want {
			return fmt.Errorf("%s: image_hash %s does not match its fields (SHA-256 of MRTD..MROWNERCONFIG is %s)", where, s.ImageHash, want)
		}
	}
	for k, l := range lists {
		for _, v := range l.vs {
			if !used[k][v.Name] {
				return fmt.Errorf("manifest: %s variant %q is used by no shape", l.what, v.Name)
			}
		}
	}
	return nil
}

// checkShapeJSON: the embedded shape is canonical JSON, hashes to the
// digest, and carries the entry's name.
func checkShapeJSON(s *Shape) error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("name %q is not a shape name", s.Name)
	}
	c, err := canon.Canonicalize(s.Shape)
	if err != nil {
		return fmt.Errorf("shape: %w", err)
	}
	if !bytes.Equal(c, s.Shape) {
		return fmt.Errorf("shape is not canonical JSON")
	}
	sum := sha256.Sum256(s.Shape)
	if want := shape.DigestPrefix + hex.EncodeToString(sum[:]); s.Digest != want {
		return fmt.Errorf("digest %q does not match the embedded shape (%s)", s.Digest, want)
	}
	var named struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(s.Shape, &named); err != nil || named.Name != s.Name {
		return fmt.Errorf("embedded shape is named %q", named.Name)
	}
	return nil
}

// Encode returns the manifest's canonical JSON (measure/canon): the bytes
// that are signed. It validates first.
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return canon.Marshal(m)
}

// Digest is "sha256:" + hex SHA-256 of Encode(): the name to publish
// (e.g. in the on-chain registry).
func (m *Manifest) Digest() (string, error) {
	b, err := m.Encode()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Parse decodes a manifest strictly: at most MaxSize bytes, valid
// UTF-8, no duplicate, unknown, missing or null fields, no trailing data,
// every value in its canonical form (lower-case hex), then Validate.
// White space and member order are free; Encode gives the canonical
// bytes.
func Parse(b []byte) (*Manifest, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("manifest: %d bytes, more than the %d-byte limit", len(b), MaxSize)
	}
	in, err := canon.Canonicalize(b)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %v", err)
	}
	// Re-encoding must give the input back: this rejects missing and
	// null members and non-canonical values, which decoding accepts.
	out, err := canon.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("manifest: %v", err)
	}
	if !bytes.Equal(in, out) {
		return nil, fmt.Errorf("manifest: %s", jsonDiff(in, out))
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// jsonDiff names the first member where the input (a) and its
// re-encoding (b) differ.
func jsonDiff(a, b []byte) string {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return "does not round-trip"
	}
	if p, what := firstDiff("", x, y); p != "" {
		return fmt.Sprintf("field %s %s", strings.TrimPrefix(p, "."), what)
	}
	return "does not round-trip"
}

func firstDiff(path string, x, y any) (string, string) {
	switch xv := x.(type) {
	case map[string]any:
		yv, ok := y.(map[string]any)
		if !ok {
			return orRoot(path), "has the wrong type"
		}
		keys := make([]string, 0, len(yv))
		for k := range yv {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, ok := xv[k]; !ok {
				return path + "." + k, "is missing"
			}
		}
		for _, k := range keys {
			if p, w := firstDiff(path+"."+k, xv[k], yv[k]); p != "" {
				return p, w
			}
		}
		return "", ""
	case []any:
		yv, ok := y.([]any)
		if !ok || len(xv) != len(yv) {
			return orRoot(path), "has the wrong type or length"
		}
		for i := range xv {
			if p, w := firstDiff(fmt.Sprintf("%s[%d]", path, i), xv[i], yv[i]); p != "" {
				return p, w
			}
		}
		return "", ""
	case nil:
		if y != nil {
			return orRoot(path), "is null"
		}
		return "", ""
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	if !bytes.Equal(xb, yb) {
		return orRoot(path), fmt.Sprintf("is %s, not in canonical form %s", xb, yb)
	}
	return "", ""
}

func orRoot(p string) string {
	if p == "" {
		return "(root)"
	}
	return p
}
