package payment

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/crc16"
)

// Network is a TON network: addresses carry a testnet-only flag, and a
// payout to the wrong network is lost money, so every address is checked
// against the network the worker is configured for.
type Network string

// The TON networks.
const (
	Mainnet Network = "mainnet"
	Testnet Network = "testnet"
)

// ParseNetwork accepts "" (mainnet), "mainnet" and "testnet".
func ParseNetwork(s string) (Network, error) {
	switch Network(s) {
	case "", Mainnet:
		return Mainnet, nil
	case Testnet:
		return Testnet, nil
	}
	return "", fmt.Errorf("ton network %q: want mainnet or testnet", s)
}

// OwnerAddress is a validated payout destination: a standard (non-anycast)
// address on the basechain (0) or masterchain (-1).
type OwnerAddress struct {
	Workchain int32
	Hash      [32]byte
	Network   Network
}

// user-friendly address tags (TEP-2): 0x11 bounceable, 0x51 non-bounceable,
// +0x80 testnet-only.
const (
	tagBounceable    = 0x11
	tagNonBounceable = 0x51
	tagTestnet       = 0x80
)

// ParseOwnerAddress validates s as the owner's payout address for network
// n. It accepts the user-friendly form (48 characters, standard or
// URL-safe base64, any bounceable flag) with its CRC16 checked, or the raw
// form "wc:hex". A user-friendly address flagged testnet-only is refused on
// mainnet, and one without the flag is refused on testnet: a wallet shows
// addresses with the flag of its own network, so a mismatch means the
// owner copied an address from the other network.
func ParseOwnerAddress(s string, n Network) (OwnerAddress, error) {
	var a OwnerAddress
	if n != Mainnet && n != Testnet {
		return a, fmt.Errorf("owner address %q: unknown network %q", s, n)
	}
	a.Network = n
	if strings.Contains(s, ":") {
		wcs, hx, _ := strings.Cut(s, ":")
		wc, err := strconv.ParseInt(wcs, 10, 32)
		if err != nil {
			return a, fmt.Errorf("owner address %q: workchain %q is not a number", s, wcs)
		}
		h, err := hex.DecodeString(hx)
		if err != nil || len(h) != 32 {
			return a, fmt.Errorf("owner address %q: the account id must be 64 hex characters", s)
		}
		a.Workchain = int32(wc)
		copy(a.Hash[:], h)
	} else {
		if len(s) != 48 {
			return a, fmt.Errorf("owner address %q: a user-friendly TON address is 48 base64 characters, got %d", s, len(s))
		}
		norm := strings.NewReplacer("+", "-", "/", "_").Replace(s)
		b, err := base64.RawURLEncoding.DecodeString(norm)
		if err != nil || len(b) != 36 {
			return a, fmt.Errorf("owner address %q: not valid base64", s)
		}
		if sum := crc16.ChecksumXMODEM(b[:34]); sum != binary.BigEndian.Uint16(b[34:]) {
			return a, fmt.Errorf("owner address %q: checksum mismatch (a typo?)", s)
		}
		tag := b[0]
		testnet := tag&tagTestnet != 0
		if t := tag &^ tagTestnet; t != tagBounceable && t != tagNonBounceable {
			return a, fmt.Errorf("owner address %q: unknown address tag 0x%02x", s, tag)
		}
		if testnet && n == Mainnet {
			return a, fmt.Errorf("owner address %q is a testnet address, but the worker pays out on mainnet", s)
		}
		if !testnet && n == Testnet {
			return a, fmt.Errorf("owner address %q is a mainnet address, but the worker pays out on testnet", s)
		}
		a.Workchain = int32(int8(b[1]))
		copy(a.Hash[:], b[2:34])
	}
	if a.Workchain != 0 && a.Workchain != -1 {
		return a, fmt.Errorf("owner address %q: workchain %d is not the basechain (0) or masterchain (-1)", s, a.Workchain)
	}
	return a, nil
}

// Raw is the raw form "wc:hex" (lowercase), the identity relying parties
// compare.
func (a OwnerAddress) Raw() string {
	return fmt.Sprintf("%d:%s", a.Workchain, hex.EncodeToString(a.Hash[:]))
}

// Address is the tonutils-go address for building messages: non-bounceable
// (a payout must reach an owner wallet that was never deployed, instead of
// bouncing back), testnet-flagged on testnet.
func (a OwnerAddress) Address() *address.Address {
	ad := address.NewAddress(0, byte(a.Workchain), a.Hash[:])
	ad.SetBounce(false)
	ad.SetTestnetOnly(a.Network == Testnet)
	return ad
}

// String is the normalised user-friendly form: non-bounceable, URL-safe,
// with the testnet flag of the network.
func (a OwnerAddress) String() string { return a.Address().String() }

// PayoutEvent is the payload of the RTMR3 "payout" event (version 1): where
// this worker's earnings go, in raw and display form.
type PayoutEvent struct {
	Network string `json:"network"`
	Raw     string `json:"raw"`
	Address string `json:"address"`
}

// Event returns the payout event payload for a.
func (a OwnerAddress) Event() PayoutEvent {
	return PayoutEvent{Network: string(a.Network), Raw: a.Raw(), Address: a.String()}
}
