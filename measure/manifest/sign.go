package manifest

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/manifest/dsse"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// Threshold is the number of distinct pinned keys that must have signed a
// manifest.
const Threshold = 1

// Sign returns the DSSE envelope of the manifest's canonical JSON signed
// by keys, and the envelope's canonical JSON.
func Sign(m *Manifest, keys ...*dsse.PrivateKey) (*dsse.Envelope, []byte, error) {
	payload, err := m.Encode()
	if err != nil {
		return nil, nil, err
	}
	env, err := dsse.Sign(PayloadType, payload, keys...)
	if err != nil {
		return nil, nil, err
	}
	b, err := env.Marshal()
	if err != nil {
		return nil, nil, err
	}
	return env, b, nil
}

// Signed is a verified manifest.
type Signed struct {
	Manifest *Manifest
	// Payload is the signed canonical JSON.
	Payload []byte
	// KeyIDs are the pinned keys whose signatures verified.
	KeyIDs []string
}

// Verify parses a DSSE envelope strictly, checks its payload type and
// signatures against the pinned keys (Threshold of them), and parses the
// payload, which must be exactly the manifest's canonical JSON.
func Verify(envelope []byte, keys []*dsse.PublicKey) (*Signed, error) {
	env, err := dsse.Parse(envelope)
	if err != nil {
		return nil, err
	}
	v, err := dsse.Verify(env, PayloadType, keys, Threshold)
	if err != nil {
		return nil, err
	}
	c, err := canon.Canonicalize(v.Payload)
	if err != nil {
		return nil, fmt.Errorf("manifest: signed payload: %w", err)
	}
	if !bytes.Equal(c, v.Payload) {
		return nil, fmt.Errorf("manifest: signed payload is not canonical JSON")
	}
	m, err := Parse(v.Payload)
	if err != nil {
		return nil, fmt.Errorf("signed payload: %w", err)
	}
	return &Signed{Manifest: m, Payload: v.Payload, KeyIDs: v.KeyIDs}, nil
}

// WriteSummary prints a human summary: release, variants, and per shape
// the registers and image hash.
func (m *Manifest) WriteSummary(w io.Writer) error {
	d, err := m.Digest()
	if err != nil {
		return err
	}
	r := &m.Release
	state := "clean"
	if r.SourceDirty {
		state = "DIRTY work tree"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "manifest       %s (format %d)\n", d, m.FormatVersion)
	fmt.Fprintf(&b, "source         %s (%s)\n", r.SourceCommit, state)
	fmt.Fprintf(&b, "kernel         %s\n", r.KernelVersion)
	fmt.Fprintf(&b, "cmdline        %q\n", r.Cmdline)
	fmt.Fprintf(&b, "release.json   sha256 %s\n", r.ReleaseJSONSHA256)
	for _, f := range r.Files {
		fmt.Fprintf(&b, "  %-12s %s %d bytes\n", f.Name, f.SHA256, f.Size)
	}
	fmt.Fprintf(&b, "inputs         %d pinned packages\n", len(m.Inputs))
	for _, l := range []struct {
		what string
		vs   []Variant
	}{{"MRTD", m.MRTD}, {"RTMR1", m.RTMR1}, {"RTMR2", m.RTMR2}} {
		for _, v := range l.vs {
			fmt.Fprintf(&b, "%-6s %-24s %s\n", l.what, v.Name, v.Value)
		}
	}
	for _, s := range m.Shapes {
		fmt.Fprintf(&b, "shape %s %s\n", s.Name, s.Digest)
		fmt.Fprintf(&b, "  image hash    %s\n", s.ImageHash)
		fmt.Fprintf(&b, "  MRTD  %s (%s)\n", s.MRTD, s.MRTDVariant)
		fmt.Fprintf(&b, "  RTMR0 %s\n", s.RTMR0)
		fmt.Fprintf(&b, "  RTMR1 %s (%s)\n", s.RTMR1, s.RTMR1Variant)
		fmt.Fprintf(&b, "  RTMR2 %s (%s)\n", s.RTMR2, s.RTMR2Variant)
		fmt.Fprintf(&b, "  TD    %s: attributes %s, xfam %s, mrconfigid/mrowner/mrownerconfig %s\n",
			s.TD.Profile, s.TD.TDAttributes, s.TD.XFAM, zeroOrSet(s.TD))
	}
	_, err = io.WriteString(w, b.String())
	return err
}

func zeroOrSet(t TDFields) string {
	var z tdxmr.Digest
	if t.MRConfigID == z && t.MROwner == z && t.MROwnerConfig == z {
		return "zero"
	}
	return fmt.Sprintf("%s/%s/%s", t.MRConfigID, t.MROwner, t.MROwnerConfig)
}
