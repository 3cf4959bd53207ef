package payment

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/xssnick/tonutils-go/address"
)

// MaxMessage bounds every protocol message (receipt, payment state, commit
// request and response) as it arrives on the wire.
const MaxMessage = 16 << 10

// MaxSafeInt is the largest integer the protocol carries as a JSON number
// (2^53−1): every JavaScript proxy reads it exactly.
const MaxSafeInt = 1<<53 - 1

// ReceiptVersion is the version of the Receipt format.
const ReceiptVersion = 1

// receiptDomain prefixes the signed bytes, so a receipt signature can never
// be replayed as a signature over a channel state or anything else.
const receiptDomain = "chrysalis/receipt/v1\n"

// Receipt is the worker's statement about one served request. Prices and
// the amount are nanoTON, as decimal strings; Amount must equal
// floor((TokensIn·PriceInPer1M + TokensOut·PriceOutPer1M) / 1,000,000).
type Receipt struct {
	Version int `json:"v"`
	// Channel is the payment channel's address, raw form "0:<64 hex>".
	Channel string `json:"channel"`
	// RequestID is the hex SHA-256 of the proxy's request id.
	RequestID string `json:"request_id_sha256"`
	Model     string `json:"model"`
	TokensIn  uint64 `json:"tokens_in"`
	TokensOut uint64 `json:"tokens_out"`
	// PriceInPer1M and PriceOutPer1M are nanoTON per one million tokens.
	PriceInPer1M  string `json:"price_in_per_1m_nanoton"`
	PriceOutPer1M string `json:"price_out_per_1m_nanoton"`
	Amount        string `json:"amount_nanoton"`
	// Seq numbers the worker's receipts on this channel from 1, without gaps.
	Seq uint64 `json:"seq"`
	// IssuedAt is unix seconds.
	IssuedAt int64 `json:"issued_at"`
}

// SignedReceipt is a Receipt with the worker's ed25519 signature (channel
// key B) over receiptDomain ‖ canonical JSON of Receipt, base64 (standard,
// padded).
type SignedReceipt struct {
	Receipt   Receipt `json:"receipt"`
	Signature string  `json:"signature"`
}

var (
	modelRE = regexp.MustCompile(`^[A-Za-z0-9._:/@+-]{1,128}$`)
	hex64RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ReceiptAmount returns floor((in·priceIn + out·priceOut) / 1e6) nanoTON,
// or an error when it does not fit in 64 bits.
func ReceiptAmount(in, out, priceInPer1M, priceOutPer1M uint64) (uint64, error) {
	a := new(big.Int).Mul(new(big.Int).SetUint64(in), new(big.Int).SetUint64(priceInPer1M))
	a.Add(a, new(big.Int).Mul(new(big.Int).SetUint64(out), new(big.Int).SetUint64(priceOutPer1M)))
	a.Quo(a, big.NewInt(1_000_000))
	if !a.IsUint64() {
		return 0, fmt.Errorf("receipt amount %s nanoTON exceeds 64 bits", a)
	}
	return a.Uint64(), nil
}

// nano parses a decimal nanoTON string: digits only, no sign, no leading
// zeros, at most 2^64−1.
func nano(what, s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%s %q: want a decimal nanoTON amount without sign or leading zeros", what, s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %v", what, s, errors.Unwrap(err))
	}
	return v, nil
}

// Check validates every field of r and that Amount is the computed one.
func (r Receipt) Check() error {
	if r.Version != ReceiptVersion {
		return fmt.Errorf("receipt: version %d, want %d", r.Version, ReceiptVersion)
	}
	if _, err := ParseChannelAddress(r.Channel); err != nil {
		return fmt.Errorf("receipt seq %d: %w", r.Seq, err)
	}
	if !hex64RE.MatchString(r.RequestID) {
		return fmt.Errorf("receipt seq %d: request id %q is not a lowercase hex SHA-256", r.Seq, r.RequestID)
	}
	if !modelRE.MatchString(r.Model) {
		return fmt.Errorf("receipt seq %d: model %q: want 1-128 of [A-Za-z0-9._:/@+-]", r.Seq, r.Model)
	}
	for _, f := range []struct {
		n string
		v uint64
	}{{"tokens_in", r.TokensIn}, {"tokens_out", r.TokensOut}, {"seq", r.Seq}} {
		if f.v > MaxSafeInt {
			return fmt.Errorf("receipt seq %d: %s %d exceeds 2^53-1", r.Seq, f.n, f.v)
		}
	}
	if r.Seq == 0 {
		return errors.New("receipt: seq 0 (receipts are numbered from 1)")
	}
	if r.IssuedAt <= 0 || r.IssuedAt > MaxSafeInt {
		return fmt.Errorf("receipt seq %d: issued_at %d is not a unix time", r.Seq, r.IssuedAt)
	}
	pin, err := nano("receipt price_in_per_1m_nanoton", r.PriceInPer1M)
	if err != nil {
		return err
	}
	pout, err := nano("receipt price_out_per_1m_nanoton", r.PriceOutPer1M)
	if err != nil {
		return err
	}
	amt, err := nano("receipt amount_nanoton", r.Amount)
	if err != nil {
		return err
	}
	want, err := ReceiptAmount(r.TokensIn, r.TokensOut, pin, pout)
	if err != nil {
		return fmt.Errorf("receipt seq %d: %w", r.Seq, err)
	}
	if amt != want {
		return fmt.Errorf("receipt seq %d: amount %d nanoTON, but %d in + %d out tokens at %d/%d nanoTON per 1M make %d",
			r.Seq, amt, r.TokensIn, r.TokensOut, pin, pout, want)
	}
	return nil
}

func (r Receipt) signedBytes() ([]byte, error) {
	c, err := canon.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("receipt seq %d: %w", r.Seq, err)
	}
	return append([]byte(receiptDomain), c...), nil
}

// SignReceipt checks r and signs it with the worker's channel key B.
func SignReceipt(key ed25519.PrivateKey, r Receipt) (SignedReceipt, error) {
	if len(key) != ed25519.PrivateKeySize {
		return SignedReceipt{}, fmt.Errorf("sign receipt seq %d: private key of %d bytes", r.Seq, len(key))
	}
	if err := r.Check(); err != nil {
		return SignedReceipt{}, err
	}
	b, err := r.signedBytes()
	if err != nil {
		return SignedReceipt{}, err
	}
	return SignedReceipt{Receipt: r, Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, b))}, nil
}

// VerifyReceipt checks a signed receipt: every field, the amount, the
// channel (raw form of channelAddr) and the signature by keyB.
func VerifyReceipt(sr SignedReceipt, keyB ed25519.PublicKey, channelAddr *address.Address) error {
	r := sr.Receipt
	if len(keyB) != ed25519.PublicKeySize {
		return fmt.Errorf("verify receipt seq %d: public key of %d bytes", r.Seq, len(keyB))
	}
	if err := r.Check(); err != nil {
		return err
	}
	if channelAddr == nil || r.Channel != RawAddress(channelAddr) {
		return fmt.Errorf("receipt seq %d names channel %s, not this channel %s", r.Seq, r.Channel, RawAddress(channelAddr))
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(sr.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("receipt seq %d: signature is not 64 bytes of base64", r.Seq)
	}
	b, err := r.signedBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(keyB, b, sig) {
		return fmt.Errorf("receipt seq %d: bad signature for worker key %x", r.Seq, []byte(keyB))
	}
	return nil
}

// decodeStrict decodes one JSON object of at most MaxMessage bytes into v,
// refusing unknown fields, duplicate keys, non-integer numbers and
// trailing data.
func decodeStrict(what string, b []byte, v any) error {
	if len(b) > MaxMessage {
		return fmt.Errorf("%s: %d bytes exceed the %d-byte limit", what, len(b), MaxMessage)
	}
	if _, err := canon.Canonicalize(b); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// DecodeSignedReceipt parses a signed receipt from the wire and checks its
// fields (not the signature: call VerifyReceipt).
func DecodeSignedReceipt(b []byte) (SignedReceipt, error) {
	var sr SignedReceipt
	if err := decodeStrict("signed receipt", b, &sr); err != nil {
		return SignedReceipt{}, err
	}
	if err := sr.Receipt.Check(); err != nil {
		return SignedReceipt{}, err
	}
	return sr, nil
}

// RawAddress is the raw form "wc:hex" (lowercase) the protocol names
// contracts by.
func RawAddress(a *address.Address) string {
	if a == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%d:%s", a.Workchain(), hex.EncodeToString(a.Data()))
}

// ParseChannelAddress parses a channel address in raw form "0:<64 hex>"
// (lowercase; channels live on the basechain).
func ParseChannelAddress(s string) (*address.Address, error) {
	wc, hx, ok := strings.Cut(s, ":")
	if !ok || wc != "0" || !hex64RE.MatchString(hx) {
		return nil, fmt.Errorf("channel address %q: want the raw form 0:<64 lowercase hex>", s)
	}
	h, _ := hex.DecodeString(hx)
	return address.NewAddress(0, 0, h).Bounce(true), nil
}
