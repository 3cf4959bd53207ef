package channel

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares b with testdata/name, or writes it with -update.
func golden(t *testing.T, name string, b []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("%s differs from the golden file", p)
	}
}

func goldenState(t *testing.T) SignedSemiChannel {
	f := newFixture()
	cp := SemiState{Seqno: 3, Sent: big.NewInt(0)}
	s, err := Sign(f.a.priv, SemiChannel{ID: f.cfg.ID, Data: SemiState{Seqno: 7, Sent: ton("2.5"),
		ConditionalsHash: [32]byte{1, 2, 3}}, Counterparty: &cp})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func goldenCommit(t *testing.T) SignedCommit {
	f := newFixture()
	c := Commit{ID: f.cfg.ID, SentA: ton("2.5"), SentB: new(big.Int), SeqnoA: 7, SeqnoB: 2,
		WithdrawA: new(big.Int), WithdrawB: ton("2.5")}
	sa, _ := SignBody(f.a.priv, c)
	sb, _ := SignBody(f.b.priv, c)
	return SignedCommit{Commit: c, SigA: sa, SigB: sb}
}

func TestGoldenSignedState(t *testing.T) {
	s := goldenState(t)
	b, err := s.BOC()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "signed_state.boc", b)
	got, err := ParseSignedSemiChannelBOC(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip: got %+v want %+v", got, s)
	}
	f := newFixture()
	if err := got.Verify(f.a.pub); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(f.b.pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("verify with B's key: %v", err)
	}
	tampered := got
	tampered.State.Data.Sent = ton("25")
	if err := tampered.Verify(f.a.pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("verify tampered amount: %v", err)
	}
}

func TestGoldenCommit(t *testing.T) {
	s := goldenCommit(t)
	body, err := s.Body()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "commit.boc", body.ToBOC())
	got, err := ParseCommitBOC(body.ToBOC())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip: got %+v want %+v", got, s)
	}
	f := newFixture()
	if err := got.Verify(f.a.pub, f.b.pub); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(f.b.pub, f.a.pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("verify with swapped keys: %v", err)
	}
}

func TestGoldenStorage(t *testing.T) {
	f := newFixture()
	st := f.cfg.InitialStorage()
	st.Initialized = true
	st.Balance = Balance{DepositA: ton("10"), DepositB: new(big.Int), WithdrawA: new(big.Int),
		WithdrawB: ton("1"), SentA: ton("1"), SentB: new(big.Int)}
	st.CommittedSeqnoA, st.CommittedSeqnoB = 1, 1
	st.Quarantine = &Quarantine{StateA: SemiState{Seqno: 2, Sent: ton("2")}, StateB: SemiState{Seqno: 1, Sent: new(big.Int)},
		StartedAt: 1_780_000_000}
	c, err := st.Cell()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "storage.boc", c.ToBOC())
	got, err := ParseStorageBOC(c.ToBOC())
	if err != nil {
		t.Fatal(err)
	}
	c2, err := got.Cell()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c2.Hash(), c.Hash()) {
		t.Fatal("storage does not round-trip")
	}
	if got.State(1_780_000_000+3599) != StateClosureStarted || got.State(1_780_000_000+3600) != StateSettlingConditional ||
		got.State(1_780_000_000+5400) != StateAwaitingFinalize {
		t.Fatal("State does not follow the closing config")
	}
}

func TestGoldenNotification(t *testing.T) {
	f := newFixture()
	c := cell.BeginCell().MustStoreUInt(OpWithdrawNotification, 32).MustStoreSlice(f.cfg.ID[:], 128).EndCell()
	golden(t, "notification.boc", c.ToBOC())
	n, err := ParseNotification(c)
	if err != nil || n.Closed || n.ID != f.cfg.ID {
		t.Fatalf("%+v %v", n, err)
	}
}

func TestAddressIsStable(t *testing.T) {
	// The address follows from code + config only: pin it so an encoding
	// change cannot move channels silently.
	f := newFixture()
	a, err := f.cfg.Address()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "address.txt", []byte(a.StringRaw()+"\n"))
	g := f
	g.cfg.Payment.DestB = stdAddr(0x0C)
	b, err := g.cfg.Address()
	if err != nil {
		t.Fatal(err)
	}
	if a.Equals(b) {
		t.Fatal("changing the owner's payout address did not change the channel address")
	}
}

func TestConfigValidate(t *testing.T) {
	base := newFixture().cfg
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"short key", func(c *Config) { c.KeyA = c.KeyA[:31] }, "keys of 31 and 32 bytes"},
		{"same keys", func(c *Config) { c.KeyB = c.KeyA }, "share the key"},
		{"no storage fee", func(c *Config) { c.Payment.StorageFee = nil }, "storage fee"},
		{"storage fee at the minimum", func(c *Config) { c.Payment.StorageFee = new(big.Int).Set(MinStorageFee) }, "must exceed"},
		{"no dest B", func(c *Config) { c.Payment.DestB = nil }, "dest B: nil address"},
		{"dest A addr_none", func(c *Config) { c.Payment.DestA = address.NewAddressNone() }, "not a standard internal address"},
		{"dest B on workchain 7", func(c *Config) { c.Payment.DestB = address.NewAddress(0, 7, make([]byte, 32)) }, "workchain 7"},
		{"negative fine", func(c *Config) { c.Closing.MisbehaviorFine = big.NewInt(-1) }, "outside 0..2^120-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want error containing %q", err, tc.want)
			}
			if _, err := c.Address(); err == nil {
				t.Fatal("Address accepted an invalid config")
			}
		})
	}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyAccountRefusals(t *testing.T) {
	f := newFixture()
	si, err := f.cfg.StateInit()
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := f.cfg.Address()
	other := f
	other.cfg.Payment.DestB = stdAddr(0x0C)
	otherData, _ := other.cfg.Data()
	for _, tc := range []struct {
		name       string
		addr       *address.Address
		code, data *cell.Cell
		want       string
	}{
		{"foreign code", addr, cell.BeginCell().MustStoreUInt(1, 8).EndCell(), si.Data, "code hash"},
		{"payout address swapped in the data", addr, si.Code, otherData, "derives address"},
		{"garbage data", addr, si.Code, cell.BeginCell().MustStoreUInt(1, 8).EndCell(), "channel storage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyAccount(tc.addr, tc.code, tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("VerifyAccount: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseRefusals(t *testing.T) {
	good := goldenState(t)
	gc, _ := good.Cell()
	sc, _ := good.State.Cell()
	for _, tc := range []struct {
		name string
		c    *cell.Cell
		want string
	}{
		{"trailing bits", cell.BeginCell().MustStoreBuilder(gc.ToBuilder()).MustStoreUInt(0, 1).EndCell(), "trailing"},
		{"wrong tag", cell.BeginCell().MustStoreSlice(good.Signature[:], 512).MustStoreRef(
			cell.BeginCell().MustStoreUInt(0xdeadbeef, 32).MustStoreBuilder(sc.ToBuilder().MustStoreUInt(0, 0)).EndCell()).EndCell(), "tag 0xdeadbeef"},
		{"short signature", cell.BeginCell().MustStoreUInt(0, 100).EndCell(), "signature"},
		{"missing body", cell.BeginCell().MustStoreSlice(good.Signature[:], 512).EndCell(), "missing reference"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSignedSemiChannel(tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := ParseSignedSemiChannelBOC(make([]byte, MaxBOCSize+1)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized BOC: %v", err)
	}
	if _, err := ParseSignedSemiChannelBOC(nil); err == nil {
		t.Fatal("empty BOC accepted")
	}
	if _, err := ParseNotification(cell.BeginCell().MustStoreUInt(OpExcesses, 32).MustStoreUInt(0, 64).EndCell()); err == nil {
		t.Fatal("excess body parsed as a payout notification")
	}
	// A payment config with an extra currency ($10 id:uint32) is refused.
	f := newFixture()
	badPC := cell.BeginCell().MustStoreBigCoins(f.cfg.Payment.StorageFee).MustStoreAddr(f.cfg.Payment.DestA).
		MustStoreAddr(f.cfg.Payment.DestB).MustStoreUInt(0b10, 2).MustStoreUInt(7, 32)
	if _, err := loadPayment(badPC.EndCell().MustBeginParse()); err == nil || !strings.Contains(err.Error(), "only Toncoin") {
		t.Fatalf("extra-currency payment config: %v", err)
	}
}

func TestApplyCommitTable(t *testing.T) {
	f := newFixture()
	st := f.cfg.InitialStorage()
	st.Initialized = true
	st.Balance = Balance{DepositA: ton("10"), DepositB: new(big.Int), WithdrawA: new(big.Int), WithdrawB: ton("1"),
		SentA: ton("1"), SentB: new(big.Int)}
	st.CommittedSeqnoA, st.CommittedSeqnoB = 3, 1
	a := SemiState{Seqno: 4, Sent: ton("2.5")}
	b := SemiState{Seqno: 2, Sent: new(big.Int)}
	c, due, err := st.WithdrawB(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if due.Cmp(ton("1.5")) != 0 || c.WithdrawB.Cmp(ton("2.5")) != 0 {
		t.Fatalf("due %s withdrawB %s", due, c.WithdrawB)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Commit)
		want string
	}{
		{"seqno A not above committed", func(c *Commit) { c.SeqnoA = 3 }, "do not exceed"},
		{"seqno B not above committed", func(c *Commit) { c.SeqnoB = 1 }, "do not exceed"},
		{"other channel", func(c *Commit) { c.ID[0] ^= 1 }, "sent to channel"},
		{"withdraw regress", func(c *Commit) { c.WithdrawB = ton("0.5") }, "go below"},
		{"overdraw", func(c *Commit) { c.WithdrawB = ton("2.6") }, "non-negative"},
		{"negative sent", func(c *Commit) { c.SentA = big.NewInt(-1) }, "outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := c
			tc.mod(&cc)
			_, _, _, err := st.ApplyCommit(cc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ApplyCommit: %v, want %q", err, tc.want)
			}
		})
	}
	if _, _, err := st.WithdrawB(SemiState{Seqno: 3, Sent: ton("2.5")}, b); err == nil {
		t.Fatal("WithdrawB accepted A's already-committed seqno")
	}
}

func TestSignRejectsBadKeys(t *testing.T) {
	f := newFixture()
	if _, err := Sign(ed25519.PrivateKey{1, 2}, SemiChannel{ID: f.cfg.ID}); err == nil {
		t.Fatal("Sign accepted a 2-byte key")
	}
	if _, err := InitBody(nil, true, f.cfg.ID); err == nil {
		t.Fatal("InitBody accepted a nil key")
	}
	if err := goldenState(t).Verify(nil); err == nil {
		t.Fatal("Verify accepted a nil key")
	}
}
