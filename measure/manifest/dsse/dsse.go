// Package dsse signs and verifies DSSE envelopes (Dead Simple Signing
// Envelope, github.com/secure-systems-lab/dsse, protocol v1) with
// ed25519 keys, and reads and writes the key files Chrysalis uses.
//
// # Signing
//
// A signature covers PAE(payloadType, payload), the pre-authentication
// encoding of the DSSE specification:
//
//	"DSSEv1" SP LEN(payloadType) SP payloadType SP LEN(payload) SP payload
//
// where SP is one space (0x20) and LEN is the byte length in ASCII
// decimal without leading zeros. The envelope is JSON:
//
//	{"payload":"<base64>","payloadType":"<type>","signatures":[{"keyid":"<hex>","sig":"<base64>"}]}
//
// with standard base64 (RFC 4648 §4, with padding). Marshal writes it in
// canonical JSON (measure/canon), so an envelope is byte-reproducible:
// ed25519 signatures are deterministic.
//
// # Verification
//
// Parse is strict: at most MaxEnvelopeSize bytes, valid UTF-8, no
// duplicate or unknown fields, no trailing data, every field present,
// standard padded base64 only, 1..MaxSignatures signatures of 64 bytes.
// Verify checks the payload type first, then counts the distinct pinned
// keys with a valid signature; the envelope is accepted when that count
// reaches the threshold (1 today). The keyid is only a hint (DSSE leaves
// it unauthenticated): a signature whose keyid names no pinned key is
// tried against every pinned key.
//
// # Key files
//
// Private key: PEM block "PRIVATE KEY" holding the PKCS #8 DER of an
// ed25519 key (what `openssl genpkey -algorithm ed25519` writes); file
// mode 0600, refused when readable by group or others. Public key: PEM
// block "PUBLIC KEY" holding the PKIX (SubjectPublicKeyInfo) DER (`openssl
// pkey -pubout`). A key's id is the lower-case hex SHA-256 of its PKIX
// DER. WriteKeyPair writes both files atomically (temporary file, fsync,
// link into place) and never overwrites an existing file.
package dsse

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
)

// Limits enforced by Parse.
const (
	// MaxEnvelopeSize bounds an envelope's JSON.
	MaxEnvelopeSize = 4 << 20
	// MaxSignatures bounds the signatures of one envelope.
	MaxSignatures = 16
	// MaxPayloadTypeLen bounds the payload type.
	MaxPayloadTypeLen = 256
	// MaxKeyIDLen bounds a keyid.
	MaxKeyIDLen = 256
)

// Signature is one DSSE signature.
type Signature struct {
	// KeyID is the signing key's id (hex SHA-256 of its PKIX DER).
	KeyID string `json:"keyid"`
	// Sig is the base64 ed25519 signature of PAE(payloadType, payload).
	Sig string `json:"sig"`
}

// Envelope is a DSSE envelope as it appears in JSON.
type Envelope struct {
	// Payload is the base64 of the signed bytes.
	Payload string `json:"payload"`
	// PayloadType names the payload's format.
	PayloadType string `json:"payloadType"`
	// Signatures are one or more signatures over PAE(PayloadType, payload).
	Signatures []Signature `json:"signatures"`
}

// PAE returns the DSSE v1 pre-authentication encoding of a payload: the
// bytes a signature covers.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// Sign returns an envelope of payload signed by every key, in order.
func Sign(payloadType string, payload []byte, keys ...*PrivateKey) (*Envelope, error) {
	if err := checkPayloadType(payloadType); err != nil {
		return nil, err
	}
	if len(keys) == 0 || len(keys) > MaxSignatures {
		return nil, fmt.Errorf("dsse: sign with 1..%d keys, not %d", MaxSignatures, len(keys))
	}
	pae := PAE(payloadType, payload)
	e := &Envelope{Payload: base64.StdEncoding.EncodeToString(payload), PayloadType: payloadType}
	for _, k := range keys {
		if k == nil || len(k.Key) != ed25519.PrivateKeySize {
			return nil, errors.New("dsse: invalid signing key")
		}
		e.Signatures = append(e.Signatures, Signature{
			KeyID: k.ID,
			Sig:   base64.StdEncoding.EncodeToString(ed25519.Sign(k.Key, pae)),
		})
	}
	return e, nil
}

func checkPayloadType(t string) error {
	if t == "" || len(t) > MaxPayloadTypeLen {
		return fmt.Errorf("dsse: payloadType must be 1..%d bytes", MaxPayloadTypeLen)
	}
	for i := 0; i < len(t); i++ {
		if t[i] < 0x21 || t[i] > 0x7e {
			return fmt.Errorf("dsse: payloadType %q has a byte outside printable ASCII at %d", t, i)
		}
	}
	return nil
}

// Marshal returns the envelope's canonical JSON.
func (e *Envelope) Marshal() ([]byte, error) { return canon.Marshal(e) }

// decodeB64 decodes standard padded base64 and rejects any other form
// (URL alphabet, missing padding, non-zero trailing bits, white space).
func decodeB64(s, what string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("dsse: %s is not standard padded base64: %v", what, err)
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("dsse: %s is not in canonical standard padded base64 (no white space, zero padding bits)", what)
	}
	return b, nil
}

// Parse decodes an envelope strictly (see the package documentation).
func Parse(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("dsse: envelope is %d bytes, more than the %d-byte limit", len(b), MaxEnvelopeSize)
	}
	if _, err := canon.Canonicalize(b); err != nil {
		return nil, fmt.Errorf("dsse: envelope: %w", err)
	}
	// Every member must be present and non-null.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("dsse: envelope is not a JSON object: %v", err)
	}
	for _, k := range []string{"payload", "payloadType", "signatures"} {
		if v, ok := raw[k]; !ok || string(v) == "null" {
			return nil, fmt.Errorf("dsse: envelope has no %q", k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var e Envelope
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("dsse: envelope: %v", err)
	}
	if err := checkPayloadType(e.PayloadType); err != nil {
		return nil, err
	}
	if _, err := decodeB64(e.Payload, "payload"); err != nil {
		return nil, err
	}
	if len(e.Signatures) == 0 || len(e.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("dsse: envelope has %d signatures, want 1..%d", len(e.Signatures), MaxSignatures)
	}
	var sigs []map[string]json.RawMessage
	if err := json.Unmarshal(raw["signatures"], &sigs); err != nil {
		return nil, fmt.Errorf("dsse: signatures: %v", err)
	}
	for i, s := range e.Signatures {
		for _, k := range []string{"keyid", "sig"} {
			if v, ok := sigs[i][k]; !ok || string(v) == "null" {
				return nil, fmt.Errorf("dsse: signatures[%d] has no %q", i, k)
			}
		}
		if len(s.KeyID) > MaxKeyIDLen {
			return nil, fmt.Errorf("dsse: signatures[%d].keyid is longer than %d bytes", i, MaxKeyIDLen)
		}
		sig, err := decodeB64(s.Sig, fmt.Sprintf("signatures[%d].sig", i))
		if err != nil {
			return nil, err
		}
		if len(sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("dsse: signatures[%d].sig is %d bytes, want a %d-byte ed25519 signature", i, len(sig), ed25519.SignatureSize)
		}
	}
	return &e, nil
}

// DecodedPayload returns the payload bytes.
func (e *Envelope) DecodedPayload() ([]byte, error) { return decodeB64(e.Payload, "payload") }

// Verified is the result of a successful Verify.
type Verified struct {
	// Payload is the authenticated payload.
	Payload []byte
	// KeyIDs are the ids of the pinned keys whose signature verified, in
	// the order of the keys given to Verify.
	KeyIDs []string
}

// ErrUnverified is wrapped by every verification failure.
var ErrUnverified = errors.New("dsse: envelope not verified")

// Verify checks e against the pinned public keys: the payload type must
// be payloadType, and signatures of at least threshold distinct pinned
// keys must verify over PAE(payloadType, payload). threshold must be at
// least 1.
func Verify(e *Envelope, payloadType string, keys []*PublicKey, threshold int) (*Verified, error) {
	if threshold < 1 {
		return nil, fmt.Errorf("%w: threshold %d, want at least 1", ErrUnverified, threshold)
	}
	if len(keys) < threshold {
		return nil, fmt.Errorf("%w: %d pinned keys cannot meet a threshold of %d", ErrUnverified, len(keys), threshold)
	}
	if e.PayloadType != payloadType {
		return nil, fmt.Errorf("%w: payloadType is %q, want %q", ErrUnverified, e.PayloadType, payloadType)
	}
	payload, err := e.DecodedPayload()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnverified, err)
	}
	if len(e.Signatures) == 0 {
		return nil, fmt.Errorf("%w: no signatures", ErrUnverified)
	}
	pae := PAE(payloadType, payload)
	ok := make([]bool, len(keys))
	var bad []string
	for i, s := range e.Signatures {
		sig, err := decodeB64(s.Sig, fmt.Sprintf("signatures[%d].sig", i))
		if err != nil || len(sig) != ed25519.SignatureSize {
			bad = append(bad, fmt.Sprintf("signatures[%d] is malformed", i))
			continue
		}
		named := false
		for _, k := range keys {
			if k.ID == s.KeyID {
				named = true
			}
		}
		matched := false
		for j, k := range keys {
			if named && k.ID != s.KeyID {
				continue
			}
			if ed25519.Verify(k.Key, pae, sig) {
				ok[j], matched = true, true
			}
		}
		if !matched {
			if named {
				bad = append(bad, fmt.Sprintf("the signature by pinned key %s does not verify (payload, payloadType or signature modified)", short(s.KeyID)))
			} else {
				bad = append(bad, fmt.Sprintf("keyid %s is not a pinned key and its signature verifies under none", short(s.KeyID)))
			}
		}
	}
	v := &Verified{Payload: payload}
	for j, k := range keys {
		if ok[j] {
			v.KeyIDs = append(v.KeyIDs, k.ID)
		}
	}
	if len(v.KeyIDs) < threshold {
		msg := fmt.Sprintf("%d of %d required pinned keys signed", len(v.KeyIDs), threshold)
		if len(bad) > 0 {
			msg += ": " + bad[0]
			if len(bad) > 1 {
				msg += fmt.Sprintf(" (and %d more)", len(bad)-1)
			}
		}
		return nil, fmt.Errorf("%w: %s", ErrUnverified, msg)
	}
	return v, nil
}

func short(id string) string {
	if id == "" {
		return `""`
	}
	if len(id) > 16 {
		return id[:16] + "…"
	}
	return id
}
