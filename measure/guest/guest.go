package guest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
)

// Fixed names shared by host and guest.
const (
	// HTTPSPort is the guest TCP port of the RA-TLS API.
	HTTPSPort = 8443
	// ConfigDiskSerial is the virtio-blk serial of the config disk.
	ConfigDiskSerial = "chrysalis-config"
	// ConfigFileName is the file on the config disk's FAT filesystem.
	ConfigFileName = "config.json"
	// StatusPortName is the virtio-serial port name of the status channel.
	StatusPortName = "org.chrysalis.status"
	// ModelDiskSerial and ModelVerityDiskSerial are the virtio-blk serials
	// of the model image and its verity hash device (virtio-blk keeps at
	// most 20 bytes of a serial).
	ModelDiskSerial       = "chrysalis-model"
	ModelVerityDiskSerial = "chrysalis-verity"
	// ModelMountPoint is where the agent mounts the verified model.
	ModelMountPoint = "/model"
	// PersistentDiskSerial is the virtio-blk serial of the writable
	// persistent disk (ext4, formatted by the host; it holds the payout
	// ledger), mounted at PersistentMountPoint. It is untrusted storage:
	// see SECURITY.md.
	PersistentDiskSerial = "chrysalis-persistent"
	PersistentMountPoint = "/data"
	// MaxGPUs bounds MeasuredConfig.GPUs.
	MaxGPUs = 8
	// MaxConfigSize bounds the config document.
	MaxConfigSize = 64 << 10
)

// Config is the document on the config disk.
type Config struct {
	// Version is the config format version; only 1 exists.
	Version int `json:"version"`
	// Measured is hashed in canonical form and becomes the first RTMR3
	// event: everything a relying party may want to judge goes here.
	Measured MeasuredConfig `json:"measured"`
	// Network is host-chosen addressing; it is not measured because the
	// network is untrusted whatever it says.
	Network Network `json:"network"`
	// PayoutSecret is the owner's payout secret, 64 hex characters: the
	// worker's channel and gas-wallet keys derive from it
	// (payment.DeriveKeys). Required with measured.payment, refused
	// without it. It is a secret, so it is not measured (relying parties
	// see the worker key it derives, measured.payment.worker_key) and
	// never printed (Secret redacts itself).
	PayoutSecret Secret `json:"payout_secret,omitempty"`
	// TONChain is the settler's chain access (liteservers and the block
	// proofs start from). Optional with measured.payment, refused without:
	// without it the worker signs receipts and keeps its ledger but does
	// not settle. Host input, not measured (see TONChain).
	TONChain *TONChain `json:"ton_chain,omitempty"`
}

// Secret is a hex secret carried by the config disk. It formats and logs
// as "[redacted]"; only Bytes reveals it.
type Secret string

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Bytes decodes the secret.
func (s Secret) Bytes() ([]byte, error) {
	b, err := hex.DecodeString(string(s))
	if err != nil || len(b) != payment.PayoutSecretSize || strings.ToLower(string(s)) != string(s) {
		return nil, fmt.Errorf("payout_secret: want %d lowercase hex characters", 2*payment.PayoutSecretSize)
	}
	return b, nil
}

// MeasuredConfig is the part of the config that relying parties see in
// the RTMR3 event log and judge by policy.
type MeasuredConfig struct {
	// Instance is a free-form name the owner gives this worker.
	Instance string `json:"instance"`
	// OwnerAddress is where payouts go: a TON address, user-friendly or
	// raw, checked (CRC, workchain, network flag) by payment.ParseOwnerAddress.
	OwnerAddress string `json:"owner_address,omitempty"`
	// TONNetwork is the network payouts are made on: "" or "mainnet", or
	// "testnet".
	TONNetwork string `json:"ton_network,omitempty"`
	// Model names the catalog model this worker serves ("" = none yet).
	Model string `json:"model,omitempty"`
	// ModelRoot is the hex dm-verity root hash of the model disk. The
	// agent serves a model disk only when its verity tree has exactly
	// this root; it is required when a model disk is attached.
	ModelRoot string `json:"model_root,omitempty"`
	// GPUs is the number of NVIDIA GPUs the agent must attest before it
	// serves (0: a CPU worker). The agent fails closed when it finds a
	// different number or any of them does not verify.
	GPUs int `json:"gpus,omitempty"`
	// PriceInPer1M and PriceOutPer1M are what this worker charges, in
	// nanoTON per one million prompt and completion tokens: decimal
	// strings without sign or leading zeros, both set or both empty. They
	// go into every receipt (measure/payment.Receipt), so a proxy can check
	// receipts against the measured prices.
	PriceInPer1M  string `json:"price_in_per_1m_nanoton,omitempty"`
	PriceOutPer1M string `json:"price_out_per_1m_nanoton,omitempty"`
	// Debug asks the agent for verbose logs; it is measured so a proxy can
	// refuse debug workers.
	Debug bool `json:"debug,omitempty"`
	// Payment is the payment channel this worker is paid through (nil: no
	// payments, no receipts). It needs owner_address (the channel pays
	// the owner), prices, the unmeasured payout_secret and a data disk.
	Payment *payment.ChannelTerms `json:"payment,omitempty"`
}

// Network is the guest's static addressing on its first NIC.
type Network struct {
	// Address is the guest address with prefix, e.g. 10.0.2.15/24.
	Address string `json:"address"`
	// Gateway is the default route, e.g. 10.0.2.2.
	Gateway string `json:"gateway"`
}

// DevNetwork is the addressing of QEMU's user-mode (slirp) network.
var DevNetwork = Network{Address: "10.0.2.15/24", Gateway: "10.0.2.2"}

var (
	instanceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	hexRootRE  = regexp.MustCompile(`^([0-9a-f]{64}|[0-9a-f]{128})$`)
)

// Validate checks every measured field and names the first bad one
// (verifiers call it on the config event, which has no secret).
func (m MeasuredConfig) Validate() error {
	if !instanceRE.MatchString(m.Instance) {
		return fmt.Errorf("config: measured.instance %q must be 1-63 of [A-Za-z0-9._-], starting alphanumeric", m.Instance)
	}
	if len(m.OwnerAddress) > 128 || len(m.Model) > 128 {
		return errors.New("config: measured.owner_address and measured.model must be at most 128 bytes")
	}
	if m.GPUs < 0 || m.GPUs > MaxGPUs {
		return fmt.Errorf("config: measured.gpus %d must be 0..%d", m.GPUs, MaxGPUs)
	}
	net, err := payment.ParseNetwork(m.TONNetwork)
	if err != nil {
		return fmt.Errorf("config: measured.ton_network: %w", err)
	}
	if m.OwnerAddress != "" {
		if _, err := payment.ParseOwnerAddress(m.OwnerAddress, net); err != nil {
			return fmt.Errorf("config: measured.owner_address: %w", err)
		}
	}
	if m.ModelRoot != "" {
		if m.Model == "" {
			return errors.New("config: measured.model_root is set but measured.model is empty")
		}
		if !hexRootRE.MatchString(m.ModelRoot) {
			return fmt.Errorf("config: measured.model_root %q must be 64 or 128 lowercase hex characters (a sha256 or sha512 verity root)", m.ModelRoot)
		}
	}
	if _, _, err := m.Prices(); err != nil {
		return err
	}
	if err := m.checkPayment(); err != nil {
		return err
	}
	return nil
}

// Validate checks every field and names the first bad one.
func (c *Config) Validate() error {
	if c.Version != 1 {
		return fmt.Errorf("config: version %d is not supported (want 1)", c.Version)
	}
	if err := c.Measured.Validate(); err != nil {
		return err
	}
	if err := c.checkSecret(); err != nil {
		return err
	}
	if c.TONChain != nil {
		if c.Measured.Payment == nil {
			return errors.New("config: ton_chain is set but measured.payment is not (only the settler uses it)")
		}
		if err := c.TONChain.Validate(); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	p, err := netip.ParsePrefix(c.Network.Address)
	if err != nil || !p.Addr().Is4() {
		return fmt.Errorf("config: network.address %q must be an IPv4 address with prefix, e.g. 10.0.2.15/24", c.Network.Address)
	}
	g, err := netip.ParseAddr(c.Network.Gateway)
	if err != nil || !g.Is4() || !p.Contains(g) {
		return fmt.Errorf("config: network.gateway %q must be an IPv4 address inside %s", c.Network.Gateway, c.Network.Address)
	}
	return nil
}

// checkPayment validates measured.payment against the owner address and
// the prices.
func (m MeasuredConfig) checkPayment() error {
	if m.Payment == nil {
		return nil
	}
	if m.PriceInPer1M == "" {
		return errors.New("config: measured.payment needs measured.price_in_per_1m_nanoton and measured.price_out_per_1m_nanoton (receipts charge them)")
	}
	_, _, err := m.Channel()
	return err
}

// Channel is the payment channel measured.payment names, paying the
// measured owner address on the measured network.
func (m MeasuredConfig) Channel() (channel.Config, payment.Network, error) {
	if m.Payment == nil {
		return channel.Config{}, "", errors.New("config: no measured.payment")
	}
	if m.OwnerAddress == "" {
		return channel.Config{}, "", errors.New("config: measured.payment needs measured.owner_address (the channel pays the owner)")
	}
	n, err := payment.ParseNetwork(m.TONNetwork)
	if err != nil {
		return channel.Config{}, "", fmt.Errorf("config: measured.ton_network: %w", err)
	}
	owner, err := payment.ParseOwnerAddress(m.OwnerAddress, n)
	if err != nil {
		return channel.Config{}, "", fmt.Errorf("config: measured.owner_address: %w", err)
	}
	c, err := m.Payment.Config(owner)
	if err != nil {
		return channel.Config{}, "", fmt.Errorf("config: %w", err)
	}
	return c, n, nil
}

// PayoutKeys derives the worker's channel key B and gas-wallet key from
// payout_secret (payment.DeriveKeys).
func (c *Config) PayoutKeys() (channelKey, walletKey ed25519.PrivateKey, err error) {
	secret, err := c.PayoutSecret.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	if channelKey, walletKey, err = payment.DeriveKeys(secret); err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	return channelKey, walletKey, nil
}

// checkSecret checks that the payout secret is there exactly when a
// payment channel is, and derives the measured worker key.
func (c *Config) checkSecret() error {
	m := c.Measured
	if m.Payment == nil {
		if c.PayoutSecret != "" {
			return errors.New("config: payout_secret is set but measured.payment is not (nothing would use it)")
		}
		return nil
	}
	if c.PayoutSecret == "" {
		return errors.New("config: measured.payment needs payout_secret (the owner's secret the worker key derives from)")
	}
	ck, _, err := c.PayoutKeys()
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(ck.Public().(ed25519.PublicKey)); got != m.Payment.WorkerKey {
		return fmt.Errorf("config: payout_secret derives worker key %s, but measured.payment.worker_key is %s", got, m.Payment.WorkerKey)
	}
	return nil
}

// ParseConfig decodes and validates a config document strictly: unknown
// fields, trailing data and oversize documents are errors.
func ParseConfig(b []byte) (*Config, error) { return ParseConfigSecret(b, "") }

// ParseConfigSecret is ParseConfig with the payout secret kept apart from
// the document (`chrysalis launch --payout-secret FILE`): when secret is
// set it fills payout_secret, which the document must then leave out.
func ParseConfigSecret(b []byte, secret Secret) (*Config, error) {
	if len(b) > MaxConfigSize {
		return nil, fmt.Errorf("config: %d bytes exceeds the %d-byte limit", len(b), MaxConfigSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return nil, errors.New("config: trailing data after the JSON document")
	}
	if secret != "" {
		if c.PayoutSecret != "" {
			return nil, errors.New("config: payout_secret is given twice (in the document and apart from it)")
		}
		c.PayoutSecret = secret
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// MeasuredBytes is the canonical JSON of the measured part: the exact
// payload of the first RTMR3 event.
func (c *Config) MeasuredBytes() ([]byte, error) {
	return canon.Marshal(c.Measured)
}

// Status channel: newline-delimited JSON objects over the virtio-serial
// port StatusPortName (vsock on TDX hosts later).

// Status states the agent reports, in order.
const (
	StateBooting  = "booting"
	StateReady    = "ready"
	StateFailed   = "failed"
	StateStopping = "stopping"
)

// Status is one agent -> host message.
type Status struct {
	State string `json:"state"`
	// TEE is "tdx" or "insecure-dev".
	TEE string `json:"tee,omitempty"`
	// Port is the guest HTTPS port when State is ready.
	Port int `json:"port,omitempty"`
	// Detail explains a failure or carries a short note.
	Detail string `json:"detail,omitempty"`
}

// Host -> agent commands.
const (
	// CmdPowerOff asks the agent to stop serving, sync and power off.
	CmdPowerOff = "poweroff"
	// CmdStatus asks for a StatusReport (answered with a Reply).
	CmdStatus = "status"
	// CmdLogs asks for the agent's last Command.Lines log lines (answered
	// with a Reply).
	CmdLogs = "logs"
)

// Command is one host -> agent message (ParseCommand reads it).
type Command struct {
	Cmd string `json:"cmd"`
	// Lines is how many log lines CmdLogs wants (0: DefaultLogLines;
	// at most MaxLogLines). Other commands must leave it 0.
	Lines int `json:"lines,omitempty"`
}

// Prices returns the measured prices in nanoTON per one million input
// and output tokens (0, 0 when the config sets none).
func (m MeasuredConfig) Prices() (in, out uint64, err error) {
	if (m.PriceInPer1M == "") != (m.PriceOutPer1M == "") {
		return 0, 0, errors.New("config: measured.price_in_per_1m_nanoton and measured.price_out_per_1m_nanoton must be set together")
	}
	if m.PriceInPer1M == "" {
		return 0, 0, nil
	}
	parse := func(field, v string) (uint64, error) {
		if (len(v) > 1 && v[0] == '0') || strings.Trim(v, "0123456789") != "" {
			return 0, fmt.Errorf("config: measured.%s %q: want a decimal nanoTON amount without sign or leading zeros", field, v)
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("config: measured.%s %q exceeds 2^64-1", field, v)
		}
		return n, nil
	}
	if in, err = parse("price_in_per_1m_nanoton", m.PriceInPer1M); err != nil {
		return 0, 0, err
	}
	if out, err = parse("price_out_per_1m_nanoton", m.PriceOutPer1M); err != nil {
		return 0, 0, err
	}
	return in, out, nil
}
