package contract

import (
	_ "embed"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/xssnick/tonutils-go/tvm/cell"
)

// CodeHashHex is the representation hash of the contract's code cell, as
// pinned from ton-payment-network v1.2.3 (see PROVENANCE.md).
const CodeHashHex = "ff5f2b39743b52e08d16400f792f75abe0385f337c57229be5e74cfe401d32bc"

//go:embed payment_channel.boc
var codeBOC []byte

var (
	codeOnce sync.Once
	code     *cell.Cell
	codeErr  error
)

// BOC returns a copy of the embedded code BOC bytes.
func BOC() []byte { return append([]byte(nil), codeBOC...) }

// Code returns the parsed code cell. It fails only if the embedded BOC
// does not parse or its hash is not CodeHashHex, which a test rules out.
func Code() (*cell.Cell, error) {
	codeOnce.Do(func() {
		c, err := cell.FromBOC(codeBOC)
		if err != nil {
			codeErr = fmt.Errorf("contract: embedded payment_channel.boc: %w", err)
			return
		}
		if got := hex.EncodeToString(c.Hash()); got != CodeHashHex {
			codeErr = fmt.Errorf("contract: embedded payment_channel.boc hashes to %s, pinned %s", got, CodeHashHex)
			return
		}
		code = c
	})
	return code, codeErr
}

// CodeHash returns the pinned code hash as 32 bytes.
func CodeHash() []byte {
	b, err := hex.DecodeString(CodeHashHex)
	if err != nil {
		panic(err) // constant
	}
	return b
}
