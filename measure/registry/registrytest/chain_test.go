package registrytest

import (
	"crypto/sha256"
	"math/big"
	"testing"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"

	"github.com/chrysalis-cc/chrysalis/measure/registry"
)

func addr(tag string) *address.Address {
	h := sha256.Sum256([]byte(tag))
	return address.NewAddress(0, 0, h[:])
}

func TestChainRegistry(t *testing.T) {
	c, err := NewChain(1_760_000_000)
	if err != nil {
		t.Fatal(err)
	}
	gov, other := addr("gov"), addr("other")
	reg, err := c.DeployRegistry(gov)
	if err != nil {
		t.Fatal(err)
	}
	img := sha256.Sum256([]byte("image"))
	for _, tc := range []struct {
		name     string
		from     *address.Address
		wantExit int32
		listed   bool
	}{
		{"other is refused and bounced", other, registry.ExitNotGovernance, false},
		{"governance adds", gov, 0, true},
		{"governance adds again", gov, registry.ExitAlreadyListed, true},
	} {
		tx, err := c.SendInternal(&tlb.InternalMessage{IHRDisabled: true, Bounce: true, SrcAddr: tc.from, DstAddr: reg, Amount: tlb.MustFromTON("0.05"), Body: registry.AddImage(1, img)})
		if err != nil {
			t.Fatal(err)
		}
		if tx.ExitCode != tc.wantExit || tx.Success != (tc.wantExit == 0) || tx.Bounced != (tc.wantExit != 0) {
			t.Fatalf("%s: exit %d success %v bounced %v, want exit %d", tc.name, tx.ExitCode, tx.Success, tx.Bounced, tc.wantExit)
		}
		if tc.wantExit != 0 {
			// The bounce reaches the sender's (nonexistent) account.
			next, err := c.Deliver(tx)
			if err != nil || len(next) != 1 || !next[0].Account.Equals(tc.from) {
				t.Fatalf("%s: delivering the bounce: %v, %d transactions", tc.name, err, len(next))
			}
		}
		st, err := c.RegistryState(reg)
		if err != nil {
			t.Fatal(err)
		}
		stack, err := c.RunGetMethod(reg, registry.MethodIsImageAllowed, new(big.Int).SetBytes(img[:]))
		if err != nil {
			t.Fatal(err)
		}
		v, err := stack.PopInt()
		if err != nil {
			t.Fatal(err)
		}
		if st.ImageAllowed(img) != tc.listed || (v.Sign() != 0) != tc.listed {
			t.Fatalf("%s: ParseData listed %v, get-method %s, want %v", tc.name, st.ImageAllowed(img), v, tc.listed)
		}
	}
	if _, err := c.RegistryState(other); err == nil {
		t.Fatal("RegistryState of a non-registry account succeeded")
	}
	if _, err := c.Data(addr("nobody")); err == nil {
		t.Fatal("Data of a nonexistent account succeeded")
	}
}
