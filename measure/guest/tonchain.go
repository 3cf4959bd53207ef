package guest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/xssnick/tonutils-go/liteclient"
)

// MaxLiteservers bounds TONChain.Liteservers (the mainnet global config
// lists about 20).
const MaxLiteservers = 64

// TONChain is how the worker's settler reaches the TON chain: the
// liteservers to ask and the masterchain block their answers are proved
// from (the network global config's validator.init_block). It is host
// input on the config disk and not measured: the host can only keep its
// own worker from settling (it is the owner the settlements pay), and
// the field names are those of TON's global config so the owner can copy
// them from one (`chrysalis launch --ton-config`).
type TONChain struct {
	Liteservers []Liteserver  `json:"liteservers"`
	Validator   TONValidators `json:"validator"`
}

// Liteserver is one liteserver of a TON global config.
type Liteserver struct {
	// IP is the IPv4 address as TON configs write it: a signed 32-bit
	// integer of the big-endian address.
	IP   int64        `json:"ip"`
	Port int          `json:"port"`
	ID   LiteserverID `json:"id"`
}

// LiteserverID is a liteserver's ADNL public key.
type LiteserverID struct {
	Type string `json:"@type"`
	// Key is the ed25519 public key, standard base64.
	Key string `json:"key"`
}

// TONValidators holds the trusted block of a global config.
type TONValidators struct {
	InitBlock TONBlock `json:"init_block"`
}

// TONBlock is a masterchain block id.
type TONBlock struct {
	Workchain int32  `json:"workchain"`
	Shard     int64  `json:"shard"`
	SeqNo     uint32 `json:"seqno"`
	RootHash  []byte `json:"root_hash"`
	FileHash  []byte `json:"file_hash"`
}

// masterShard is the masterchain's only shard (0x8000000000000000).
const masterShard = math.MinInt64

// Validate checks every liteserver and the trusted block; errors name the
// field as ton_chain.<field>.
func (t *TONChain) Validate() error {
	if len(t.Liteservers) == 0 {
		return errors.New("ton_chain.liteservers: none given (the settler needs at least one)")
	}
	if len(t.Liteservers) > MaxLiteservers {
		return fmt.Errorf("ton_chain.liteservers: %d given, at most %d", len(t.Liteservers), MaxLiteservers)
	}
	for i, ls := range t.Liteservers {
		if ls.IP == 0 || ls.IP < math.MinInt32 || ls.IP > math.MaxUint32 {
			return fmt.Errorf("ton_chain.liteservers[%d].ip %d: want a non-zero 32-bit IPv4 address", i, ls.IP)
		}
		if ls.Port < 1 || ls.Port > 65535 {
			return fmt.Errorf("ton_chain.liteservers[%d].port %d: want 1..65535", i, ls.Port)
		}
		if ls.ID.Type != "pub.ed25519" {
			return fmt.Errorf("ton_chain.liteservers[%d].id.@type %q: want pub.ed25519", i, ls.ID.Type)
		}
		k, err := base64.StdEncoding.DecodeString(ls.ID.Key)
		if err != nil || len(k) != 32 {
			return fmt.Errorf("ton_chain.liteservers[%d].id.key %q: want a 32-byte ed25519 public key in base64", i, ls.ID.Key)
		}
	}
	b := t.Validator.InitBlock
	if b.Workchain != -1 || b.Shard != masterShard {
		return fmt.Errorf("ton_chain.validator.init_block: workchain %d shard %d is not the masterchain (-1, %d)", b.Workchain, b.Shard, int64(masterShard))
	}
	if len(b.RootHash) != 32 || len(b.FileHash) != 32 {
		return fmt.Errorf("ton_chain.validator.init_block: root_hash and file_hash must be 32 bytes (got %d and %d)", len(b.RootHash), len(b.FileHash))
	}
	return nil
}

// ParseTONGlobalConfig reads what the settler needs from a TON global
// config document (the network's global.config.json): its liteservers
// and validator.init_block. Everything else (DHT, hardforks) is ignored.
func ParseTONGlobalConfig(b []byte) (*TONChain, error) {
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("TON global config: %d bytes exceeds the 1 MiB limit", len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var t TONChain
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("TON global config: %w", err)
	}
	if dec.More() {
		return nil, errors.New("TON global config: trailing data after the JSON document")
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("TON global config: %w", err)
	}
	return &t, nil
}

// GlobalConfig is t as tonutils-go's liteclient global config (what
// payment.DialTON takes).
func (t *TONChain) GlobalConfig() *liteclient.GlobalConfig {
	gc := &liteclient.GlobalConfig{Type: "config.global"}
	for _, ls := range t.Liteservers {
		gc.Liteservers = append(gc.Liteservers, liteclient.LiteserverConfig{IP: ls.IP, Port: ls.Port, ID: liteclient.ServerID{Type: ls.ID.Type, Key: ls.ID.Key}})
	}
	b := t.Validator.InitBlock
	gc.Validator = liteclient.ValidatorConfig{Type: "validator.config.global", InitBlock: liteclient.ConfigBlock{
		Workchain: b.Workchain, Shard: b.Shard, SeqNo: b.SeqNo, RootHash: b.RootHash, FileHash: b.FileHash}}
	return gc
}
