package evidence

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/event"
)

// Type says what produced a bundle.
type Type string

const (
	// TypeTDX evidence carries a TDX quote signed by the platform.
	TypeTDX Type = "tdx"
	// TypeInsecureDev evidence has no hardware root at all: it is produced
	// where there is no TEE (laptops, CI). Every verifier rejects it
	// unless the caller selects the insecure-dev policy by name.
	TypeInsecureDev Type = "insecure-dev"
)

// RTMR3 sources.
const (
	// RTMR3FromQuote: the RTMR3 value is read from the signed quote.
	RTMR3FromQuote = "quote"
	// RTMR3Software: no TEE register exists; the value is the agent's own
	// replay of its log and proves nothing.
	RTMR3Software = "software"
)

// Version is the bundle format version.
const Version = 1

// MaxBundleSize bounds an encoded bundle (quotes are ~5 KiB, GPU evidence
// a few KiB per GPU, event logs small).
const MaxBundleSize = 1 << 20

// Claims are what the guest asserts about this TLS endpoint. Their
// canonical hash is bound into REPORTDATA.
type Claims struct {
	// TLSKeySHA256 is the hex SHA-256 of the TLS certificate's
	// SubjectPublicKeyInfo (DER).
	TLSKeySHA256 string `json:"tls_key_sha256"`
	// IssuedAt is the guest clock in Unix seconds when the bundle was made.
	// The guest clock is host-controlled: informational only.
	IssuedAt int64 `json:"issued_at"`
	// Nonce is the verifier's hex nonce for a fresh bundle ("" otherwise).
	Nonce string `json:"nonce,omitempty"`
	// Instance, Model and OwnerAddress repeat the measured config.
	Instance     string `json:"instance"`
	Model        string `json:"model,omitempty"`
	OwnerAddress string `json:"owner_address,omitempty"`
	// GPU lists the hex SHA-384 digest (measure/gpu Evidence.Digest) of
	// each item of Bundle.GPU, in order: REPORTDATA binds the GPU
	// evidence through these.
	GPU []string `json:"gpu,omitempty"`
	// ReceiptKey is the hex ed25519 public key the worker's usage receipts
	// (measure/payment.SignedReceipt) verify with, bound into REPORTDATA
	// like every claim ("" for a worker that signs no receipts).
	ReceiptKey string `json:"receipt_key,omitempty"`
}

// Bundle is the evidence a guest presents.
type Bundle struct {
	Version int  `json:"version"`
	Type    Type `json:"type"`
	// Quote is the raw TDX quote (TypeTDX only).
	Quote []byte `json:"quote,omitempty"`
	// ReportData is the 64-byte REPORTDATA the quote must carry.
	ReportData HexBytes `json:"report_data"`
	Claims     Claims   `json:"claims"`
	// EventLog is the RTMR3 runtime event log.
	EventLog event.Log `json:"event_log"`
	// RTMR3 is the register value; RTMR3Source says where it comes from.
	RTMR3       event.Digest `json:"rtmr3"`
	RTMR3Source string       `json:"rtmr3_source"`
	// FirmwareLog is the CCEL event log, when the guest has one.
	FirmwareLog []byte `json:"firmware_log,omitempty"`
	// GPU carries raw GPU evidence items (format owned by the GPU verifier).
	GPU []json.RawMessage `json:"gpu,omitempty"`
}

// HexBytes encodes as lowercase hex in JSON.
type HexBytes []byte

// MarshalText implements encoding.TextMarshaler.
func (h HexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *HexBytes) UnmarshalText(b []byte) error {
	out := make([]byte, hex.DecodedLen(len(b)))
	if _, err := hex.Decode(out, b); err != nil {
		return err
	}
	*h = out
	return nil
}

var receiptKeyRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// reportDataDomain separates our REPORTDATA from any other use of it.
const reportDataDomain = "chrysalis/ra-tls/v1\x00"

// ReportData computes SHA-512(domain ‖ SHA-256(SPKI DER) ‖ SHA-256(canonical claims)).
func ReportData(spkiDER []byte, c Claims) ([64]byte, error) {
	cb, err := canon.Marshal(c)
	if err != nil {
		return [64]byte{}, err
	}
	k := sha256.Sum256(spkiDER)
	ch := sha256.Sum256(cb)
	h := sha512.New()
	h.Write([]byte(reportDataDomain))
	h.Write(k[:])
	h.Write(ch[:])
	var out [64]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}

// SPKIHash is the hex SHA-256 of a SubjectPublicKeyInfo.
func SPKIHash(spkiDER []byte) string {
	s := sha256.Sum256(spkiDER)
	return hex.EncodeToString(s[:])
}

// Encode returns the canonical encoding of b.
func (b *Bundle) Encode() ([]byte, error) {
	out, err := canon.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("evidence: encode: %w", err)
	}
	if len(out) > MaxBundleSize {
		return nil, fmt.Errorf("evidence: encoded bundle is %d bytes, over the %d-byte limit", len(out), MaxBundleSize)
	}
	return out, nil
}

// Decode parses an encoded bundle strictly: size-bounded, canonical form
// required, unknown fields rejected, structure checked. It does not judge
// trust; measure/verify does.
func Decode(b []byte) (*Bundle, error) {
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("evidence: bundle is %d bytes, over the %d-byte limit", len(b), MaxBundleSize)
	}
	c, err := canon.Canonicalize(b)
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	if !bytes.Equal(c, b) {
		return nil, errors.New("evidence: bundle is not in canonical form")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var out Bundle
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	if err := out.checkStructure(); err != nil {
		return nil, err
	}
	return &out, nil
}

func (b *Bundle) checkStructure() error {
	if b.Version != Version {
		return fmt.Errorf("evidence: version %d is not supported (want %d)", b.Version, Version)
	}
	switch b.Type {
	case TypeTDX:
		if len(b.Quote) == 0 {
			return errors.New("evidence: tdx bundle has no quote")
		}
		if b.RTMR3Source != RTMR3FromQuote {
			return fmt.Errorf("evidence: tdx bundle has rtmr3_source %q (want %q)", b.RTMR3Source, RTMR3FromQuote)
		}
	case TypeInsecureDev:
		if len(b.Quote) != 0 {
			return errors.New("evidence: insecure-dev bundle must not carry a quote")
		}
		if b.RTMR3Source != RTMR3Software {
			return fmt.Errorf("evidence: insecure-dev bundle has rtmr3_source %q (want %q)", b.RTMR3Source, RTMR3Software)
		}
	default:
		return fmt.Errorf("evidence: unknown type %q", b.Type)
	}
	if len(b.ReportData) != 64 {
		return fmt.Errorf("evidence: report_data is %d bytes (want 64)", len(b.ReportData))
	}
	if len(b.Claims.TLSKeySHA256) != 64 {
		return errors.New("evidence: claims.tls_key_sha256 must be 64 hex characters")
	}
	if k := b.Claims.ReceiptKey; k != "" && !receiptKeyRE.MatchString(k) {
		return fmt.Errorf("evidence: claims.receipt_key %q must be 64 lowercase hex characters (an ed25519 public key)", k)
	}
	if b.EventLog.Version != event.LogVersion {
		return fmt.Errorf("evidence: event log version %d is not supported", b.EventLog.Version)
	}
	return nil
}
