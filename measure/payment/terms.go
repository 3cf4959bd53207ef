package payment

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"regexp"

	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/ton/wallet"
)

// ChannelTerms are a worker's payment channel with its proxy, as the
// measured config states them (measured.payment): with the contract code
// and the owner address (the channel's DestB) they fix the channel's
// address, so a relying party reading the config event knows exactly
// which channel the worker is paid through, who pays (proxy_key) and
// which key signs its receipts (worker_key, also claims.receipt_key).
// Every field is required except settle_interval_seconds; the values
// must be those the channel contract was deployed with.
type ChannelTerms struct {
	// ProxyKey is party A's (the proxy's) ed25519 public key, hex.
	ProxyKey string `json:"proxy_key"`
	// WorkerKey is party B's (this worker's) ed25519 public key, hex: the
	// channel key DeriveKeys derives from the owner's payout secret. The
	// agent refuses to start when the secret does not derive it.
	WorkerKey string `json:"worker_key"`
	// ChannelID is the channel's 128-bit id, 32 hex characters.
	ChannelID string `json:"channel_id"`
	// ProxyAddress is where A's withdrawals go (the channel's DestA).
	ProxyAddress string `json:"proxy_address"`
	// StorageFee, MisbehaviorFine: decimal nanoTON; QuarantineSeconds,
	// ConditionalCloseSeconds: the contract's closing configuration.
	StorageFee              string `json:"storage_fee_nanoton"`
	MisbehaviorFine         string `json:"misbehavior_fine_nanoton"`
	QuarantineSeconds       uint32 `json:"quarantine_seconds"`
	ConditionalCloseSeconds uint32 `json:"conditional_close_seconds"`
	// SettleThreshold (decimal nanoTON, > 0): the worker settles to the
	// owner as soon as this much is due; SettleIntervalSeconds (0: off):
	// and any amount due once this long has passed since the last
	// settlement.
	SettleThreshold       string `json:"settle_threshold_nanoton"`
	SettleIntervalSeconds uint32 `json:"settle_interval_seconds,omitempty"`
}

var (
	keyHexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	idHexRE  = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// Config checks every field (errors name it as measured.payment.<field>)
// and returns the channel's configuration, paying B's share to owner.
func (t ChannelTerms) Config(owner OwnerAddress) (channel.Config, error) {
	var c channel.Config
	key := func(field, v string) (ed25519.PublicKey, error) {
		if !keyHexRE.MatchString(v) {
			return nil, fmt.Errorf("measured.payment.%s %q: want 64 lowercase hex characters (an ed25519 public key)", field, v)
		}
		b, _ := hex.DecodeString(v)
		return ed25519.PublicKey(b), nil
	}
	var err error
	if c.KeyA, err = key("proxy_key", t.ProxyKey); err != nil {
		return c, err
	}
	if c.KeyB, err = key("worker_key", t.WorkerKey); err != nil {
		return c, err
	}
	if !idHexRE.MatchString(t.ChannelID) {
		return c, fmt.Errorf("measured.payment.channel_id %q: want 32 lowercase hex characters (a 128-bit channel id)", t.ChannelID)
	}
	hex.Decode(c.ID[:], []byte(t.ChannelID))
	proxy, err := ParseOwnerAddress(t.ProxyAddress, owner.Network)
	if err != nil {
		return c, fmt.Errorf("measured.payment.proxy_address: %w", err)
	}
	fee, err := nano("measured.payment.storage_fee_nanoton", t.StorageFee)
	if err != nil {
		return c, err
	}
	fine, err := nano("measured.payment.misbehavior_fine_nanoton", t.MisbehaviorFine)
	if err != nil {
		return c, err
	}
	if _, err := t.Threshold(); err != nil {
		return c, err
	}
	if t.QuarantineSeconds == 0 {
		return c, errors.New("measured.payment.quarantine_seconds must be positive (how long an uncooperative close can be challenged)")
	}
	c.Closing = channel.ClosingConfig{QuarantineDuration: t.QuarantineSeconds, MisbehaviorFine: new(big.Int).SetUint64(fine), ConditionalCloseDuration: t.ConditionalCloseSeconds}
	c.Payment = channel.PaymentConfig{StorageFee: new(big.Int).SetUint64(fee), DestA: proxy.Address(), DestB: owner.Address()}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("measured.payment: %w", err)
	}
	return c, nil
}

// Threshold is SettleThreshold in nanoTON (> 0).
func (t ChannelTerms) Threshold() (*big.Int, error) {
	v, err := nano("measured.payment.settle_threshold_nanoton", t.SettleThreshold)
	if err != nil {
		return nil, err
	}
	if v == 0 {
		return nil, errors.New("measured.payment.settle_threshold_nanoton must be positive")
	}
	return new(big.Int).SetUint64(v), nil
}

// PayoutSecretSize is the size of the owner's payout secret.
const PayoutSecretSize = 32

// DeriveKeys derives the worker's two payout keys from the owner's
// payout secret: the channel key B (signs receipts, commits and is the
// channel's key B) and the gas wallet key (the V5R1 wallet that pays for
// settlement messages). Each is the ed25519 key whose seed is
// SHA-256(label ‖ secret), with distinct labels, so neither key reveals
// the other or the secret.
func DeriveKeys(secret []byte) (channelKey, walletKey ed25519.PrivateKey, err error) {
	if len(secret) != PayoutSecretSize {
		return nil, nil, fmt.Errorf("payout secret: %d bytes, want %d", len(secret), PayoutSecretSize)
	}
	derive := func(label string) ed25519.PrivateKey {
		h := sha256.New()
		h.Write([]byte(label))
		h.Write(secret)
		return ed25519.NewKeyFromSeed(h.Sum(nil))
	}
	return derive("chrysalis/payout/channel-key/v1\x00"), derive("chrysalis/payout/wallet-key/v1\x00"), nil
}

// GlobalID is the network's global id, which V5R1 wallets sign.
func (n Network) GlobalID() int32 {
	if n == Testnet {
		return wallet.TestnetGlobalID
	}
	return wallet.MainnetGlobalID
}

// GasWalletAddress is the worker's gas wallet for walletPub on network n:
// a V5R1 wallet (workchain 0, default subwallet), which the owner funds
// and which pays for settlement messages. Its testnet flag follows n and
// it is shown non-bounceable (an address to fund before it exists).
func GasWalletAddress(walletPub ed25519.PublicKey, n Network) (*address.Address, error) {
	w, err := wallet.FromPubKeyWithOptions(walletPub, wallet.ConfigV5R1Final{NetworkGlobalID: n.GlobalID(), Workchain: 0})
	if err != nil {
		return nil, fmt.Errorf("gas wallet: %w", err)
	}
	a := w.WalletAddress().Copy()
	a.SetTestnetOnly(n == Testnet)
	a.SetBounce(false)
	return a, nil
}
