package tonemu

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

const now = 1_760_000_000

func addr(tag string) *address.Address {
	h := sha256.Sum256([]byte(tag))
	return address.NewAddress(0, 0, h[:])
}

func TestMainnetConfigIsTheRecordedFile(t *testing.T) {
	h := sha256.Sum256(MainnetConfigBOC())
	if got := hex.EncodeToString(h[:]); got != "db43843ac65795ea270f9067136a03ccb31a2650ba05b40d99c1a8fa2b9df053" {
		t.Fatalf("embedded config SHA-256 %s differs from testdata/ORIGIN.md", got)
	}
	if _, err := MainnetConfig(); err != nil {
		t.Fatal(err)
	}
}

// deployWallet deploys a real wallet v3r2 (tonutils-go's code) with an
// internal message carrying its state init and an empty body.
func deployWallet(t *testing.T, c *Chain) (*address.Address, ed25519.PublicKey) {
	t.Helper()
	pub := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	si, err := wallet.GetStateInit(pub, wallet.V3R2, 698983191)
	if err != nil {
		t.Fatal(err)
	}
	a, err := wallet.AddressFromPubKey(pub, wallet.V3R2, 698983191)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := c.SendInternal(&tlb.InternalMessage{IHRDisabled: true, SrcAddr: addr("funder"), DstAddr: a,
		Amount: tlb.MustFromTON("1"), StateInit: si, Body: cell.BeginCell().EndCell()})
	if err != nil {
		t.Fatal(err)
	}
	if !tx.Accepted || !tx.Success || tx.Compute == nil || tx.ExitCode != 0 {
		t.Fatalf("deploy: accepted %v success %v exit %d", tx.Accepted, tx.Success, tx.ExitCode)
	}
	return a, pub
}

func TestDeployAndGetMethods(t *testing.T) {
	c, err := New(now, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	a, pub := deployWallet(t, c)
	if st := c.State(a); st == nil || st.Status != tlb.AccountStatusActive {
		t.Fatalf("wallet state %+v, want active", st)
	}
	if c.LT() <= 1_000_010 {
		t.Fatalf("logical time %d did not move past the transaction", c.LT())
	}
	s, err := c.RunGetMethod(a, "seqno")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.PopInt(); err != nil || v.Sign() != 0 {
		t.Fatalf("seqno %v (%v), want 0", v, err)
	}
	s, err = c.RunGetMethod(a, "get_public_key")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.PopInt(); err != nil || v.Cmp(new(big.Int).SetBytes(pub)) != 0 {
		t.Fatalf("get_public_key %v (%v), want the deployed key", v, err)
	}
	if _, err := c.RunGetMethod(a, "no_such_method"); err == nil {
		t.Fatal("unknown get-method did not fail")
	}
	if _, err := c.RunGetMethod(addr("nobody"), "seqno"); err == nil || !strings.Contains(err.Error(), "not active") {
		t.Fatalf("get-method on a missing account: %v", err)
	}
	if _, err := c.Data(addr("nobody")); err == nil {
		t.Fatal("Data of a missing account did not fail")
	}
	// An external with no valid signature is not accepted and changes nothing.
	before := c.State(a).Balance.Nano()
	tx, err := c.SendExternal(&tlb.ExternalMessage{DstAddr: a, Body: cell.BeginCell().MustStoreUInt(0, 64).EndCell()})
	if err != nil {
		t.Fatal(err)
	}
	if tx.Accepted || tx.Transaction != nil {
		t.Fatalf("unsigned external accepted: %+v", tx)
	}
	if got := c.State(a).Balance.Nano(); got.Cmp(before) != 0 {
		t.Fatalf("balance %s after a refused external, want %s", got, before)
	}
}

func TestFundAndBounce(t *testing.T) {
	c, err := New(now, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	to, from := addr("to"), addr("from")
	if err := c.Fund(to, tlb.MustFromTON("2")); err != nil {
		t.Fatal(err)
	}
	st := c.State(to)
	if st == nil || st.Status != tlb.AccountStatusUninit || st.Balance.Nano().Cmp(tlb.MustFromTON("2").Nano()) != 0 {
		t.Fatalf("funded account %+v, want uninit with 2 TON", st)
	}
	if err := c.Fund(from, tlb.MustFromTON("1")); err != nil {
		t.Fatal(err)
	}
	// A bounceable message to an account with no code bounces back.
	tx, err := c.SendInternal(&tlb.InternalMessage{IHRDisabled: true, Bounce: true, SrcAddr: from, DstAddr: addr("nowhere"),
		Amount: tlb.MustFromTON("0.5"), Body: cell.BeginCell().EndCell()})
	if err != nil {
		t.Fatal(err)
	}
	if !tx.Bounced || tx.Compute != nil || len(tx.Out) != 1 || len(tx.OutCells) != 1 {
		t.Fatalf("bounced %v compute %v out %d, want one bounce and a skipped compute phase", tx.Bounced, tx.Compute, len(tx.Out))
	}
	txs, err := c.Deliver(tx)
	if err != nil {
		t.Fatal(err)
	}
	if len(txs) != 1 || !txs[0].Account.Equals(from) {
		t.Fatalf("delivered %d transactions, want the bounce on the sender", len(txs))
	}
	// The injected message was not debited from the sender; the bounce
	// (0.5 TON less the destination's fees) is credited to it.
	back := tx.Out[0].Amount.Nano()
	if back.Cmp(tlb.MustFromTON("0.49").Nano()) < 0 || back.Cmp(tlb.MustFromTON("0.5").Nano()) >= 0 {
		t.Fatalf("bounce carries %s, want 0.5 TON less fees", back)
	}
	want := new(big.Int).Add(tlb.MustFromTON("1").Nano(), back)
	if got := c.State(from).Balance.Nano(); got.Cmp(want) != 0 {
		t.Fatalf("sender balance %s after the bounce, want 1 TON + %s", got, back)
	}
}

func TestSnapshotRestore(t *testing.T) {
	c, err := New(now, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := deployWallet(t, c)
	c.SetNow(now + 100)
	b, err := json.Marshal(c.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	r, err := Restore(s)
	if err != nil {
		t.Fatal(err)
	}
	if r.Now() != c.Now() || r.LT() != c.LT() {
		t.Fatalf("restored time %d lt %d, want %d %d", r.Now(), r.LT(), c.Now(), c.LT())
	}
	want, got := c.State(a), r.State(a)
	if got == nil || got.Status != want.Status || got.Balance.Nano().Cmp(want.Balance.Nano()) != 0 ||
		string(got.StateInit.Data.Hash()) != string(want.StateInit.Data.Hash()) {
		t.Fatalf("restored account %+v, want %+v", got, want)
	}
	// The restored chain keeps running the contract.
	if _, err := r.RunGetMethod(a, "seqno"); err != nil {
		t.Fatal(err)
	}
	if err := r.Fund(a, tlb.MustFromTON("1")); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreRefusesBadSnapshots(t *testing.T) {
	for _, tc := range []struct {
		name     string
		accounts map[string]string
		want     string
	}{
		{"bad address", map[string]string{"zz": ""}, `"zz"`},
		{"bad base64", map[string]string{addr("a").StringRaw(): "!!"}, addr("a").StringRaw()},
		{"bad BOC", map[string]string{addr("a").StringRaw(): "AAAA"}, addr("a").StringRaw()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Restore(Snapshot{Now: now, Accounts: tc.accounts})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestDeliverStopsAMessageLoop(t *testing.T) {
	c, err := New(now, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	// Out messages that keep coming back: each transaction of the queue
	// replays the same message, so Deliver must give up.
	m := &tlb.InternalMessage{IHRDisabled: true, SrcAddr: addr("x"), DstAddr: addr("y"), Amount: tlb.MustFromTON("0.01"), Body: cell.BeginCell().EndCell()}
	loop := &Tx{Out: make([]*tlb.InternalMessage, MaxDeliveries+1)}
	for i := range loop.Out {
		loop.Out[i] = m
	}
	txs, err := c.Deliver(loop)
	if err == nil || len(txs) != MaxDeliveries {
		t.Fatalf("Deliver ran %d transactions, err %v; want %d and an error", len(txs), err, MaxDeliveries)
	}
}
