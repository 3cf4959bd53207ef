package contract

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// The file's SHA-256 as recorded in PROVENANCE.md; the cell hash is CodeHashHex.
const bocSHA256 = "e135673065305846a0bdb23fbcfde77f65ad5dc339867efc13113e66e013681e"

func TestEmbeddedCodeHash(t *testing.T) {
	c, err := Code()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(c.Hash()); got != CodeHashHex {
		t.Fatalf("code cell hash %s, pinned %s", got, CodeHashHex)
	}
	if !bytes.Equal(c.Hash(), CodeHash()) {
		t.Fatal("CodeHash() differs from the code cell's hash")
	}
	sum := sha256.Sum256(BOC())
	if got := hex.EncodeToString(sum[:]); got != bocSHA256 {
		t.Fatalf("payment_channel.boc SHA-256 %s, want %s", got, bocSHA256)
	}
}

func TestBOCIsCopy(t *testing.T) {
	b := BOC()
	b[0] ^= 0xff
	if BOC()[0] == b[0] {
		t.Fatal("BOC() returned the embedded slice, not a copy")
	}
}
