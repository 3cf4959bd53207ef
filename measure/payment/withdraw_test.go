package payment

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/tonemu"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

const withdrawNow = 1_780_000_000

var withdrawSecret = bytes.Repeat([]byte{0x07}, PayoutSecretSize)

func withdrawOwner(t testing.TB, n Network) OwnerAddress {
	t.Helper()
	o, err := ParseOwnerAddress(foundationRaw, n)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// decodedWithdrawal is what a withdrawal BOC says, read back field by
// field from the wallet v5r1 layout.
type decodedWithdrawal struct {
	ext               *tlb.ExternalMessage
	walletID          uint32
	validUntil, seqno uint32
	sigOK             bool
	modes             []uint8
	msgs              []*tlb.InternalMessage
}

// decodeWithdrawal parses a v5r1 external: op "sign", wallet_id,
// valid_until, seqno, the out-action list (Maybe ^OutList), no extended
// actions, and the signature over the rest, checked with pub.
func decodeWithdrawal(boc []byte, pub ed25519.PublicKey) (decodedWithdrawal, error) {
	var d decodedWithdrawal
	c, err := cell.FromBOC(boc)
	if err != nil {
		return d, err
	}
	d.ext = new(tlb.ExternalMessage)
	if err := tlb.LoadFromCell(d.ext, c.MustBeginParse()); err != nil {
		return d, err
	}
	s := d.ext.Body.MustBeginParse()
	if op, err := s.LoadUInt(32); err != nil || op != 0x7369676e {
		return d, fmt.Errorf("op %x (%v)", op, err)
	}
	v, _ := s.LoadUInt(32)
	d.walletID = uint32(v)
	v, _ = s.LoadUInt(32)
	d.validUntil = uint32(v)
	v, _ = s.LoadUInt(32)
	d.seqno = uint32(v)
	has, err := s.LoadBoolBit()
	if err != nil || !has {
		return d, fmt.Errorf("no out actions (%v)", err)
	}
	list, err := s.LoadRefCell()
	if err != nil {
		return d, err
	}
	if ext, err := s.LoadBoolBit(); err != nil || ext {
		return d, fmt.Errorf("extended actions %v (%v)", ext, err)
	}
	if s.BitsLeft() != 512 || s.RefsNum() != 0 {
		return d, fmt.Errorf("%d bits %d refs left, want the 512-bit signature", s.BitsLeft(), s.RefsNum())
	}
	sig, _ := s.LoadSlice(512)
	signed := d.ext.Body.MustBeginParse()
	payload, _ := signed.LoadSlice(d.ext.Body.BitsSize() - 512)
	pb := cell.BeginCell().MustStoreSlice(payload, d.ext.Body.BitsSize()-512)
	for i := 0; i < int(d.ext.Body.RefsNum()); i++ {
		pb.MustStoreRef(d.ext.Body.MustPeekRef(i))
	}
	d.sigOK = ed25519.Verify(pub, pb.EndCell().Hash(), sig)
	for {
		if list.BitsSize() == 0 && list.RefsNum() == 0 {
			break
		}
		ls := list.MustBeginParse()
		prev, err := ls.LoadRefCell()
		if err != nil {
			return d, err
		}
		if tag, err := ls.LoadUInt(32); err != nil || tag != 0x0ec3c86d {
			return d, fmt.Errorf("action tag %x (%v)", tag, err)
		}
		mode, _ := ls.LoadUInt(8)
		mc, err := ls.LoadRef()
		if err != nil {
			return d, err
		}
		var m tlb.InternalMessage
		if err := tlb.LoadFromCell(&m, mc); err != nil {
			return d, err
		}
		d.modes = append(d.modes, uint8(mode))
		d.msgs = append(d.msgs, &m)
		list = prev
	}
	return d, nil
}

func TestWithdrawMessageShape(t *testing.T) {
	_, key, _ := DeriveKeys(withdrawSecret)
	pub := key.Public().(ed25519.PublicKey)
	for _, n := range []Network{Mainnet, Testnet} {
		for _, seqno := range []uint32{0, 7} {
			owner := withdrawOwner(t, n)
			w, err := WithdrawMessage(withdrawSecret, owner, seqno, withdrawNow+600)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := GasWalletAddress(pub, n)
			if !w.Wallet.Equals(want) || w.Wallet.IsBounceable() || w.Wallet.IsTestnetOnly() != (n == Testnet) {
				t.Fatalf("%s: wallet %s, want %s", n, w.Wallet, want)
			}
			d, err := decodeWithdrawal(w.BOC, pub)
			if err != nil {
				t.Fatalf("%s seqno %d: %v", n, seqno, err)
			}
			c, _ := cell.FromBOC(w.BOC)
			id := wallet.V5R1ID{NetworkGlobalID: n.GlobalID()}
			switch {
			case !bytes.Equal(c.Hash(), w.Hash):
				t.Errorf("Hash %x, want the message cell's %x", w.Hash, c.Hash())
			case !d.ext.DstAddr.Equals(want):
				t.Errorf("external to %s, want %s", d.ext.DstAddr, want)
			case (d.ext.StateInit != nil) != (seqno == 0) || w.StateInit != (seqno == 0):
				t.Errorf("seqno %d: state init %v / %v", seqno, d.ext.StateInit != nil, w.StateInit)
			case d.seqno != seqno || w.Seqno != seqno || d.validUntil != withdrawNow+600 || w.ValidUntil != withdrawNow+600:
				t.Errorf("seqno %d valid_until %d", d.seqno, d.validUntil)
			case d.walletID != id.Serialized():
				t.Errorf("wallet id %x, want %x (%s)", d.walletID, id.Serialized(), n)
			case !d.sigOK:
				t.Error("signature does not verify with the gas wallet key")
			case len(d.msgs) != 1 || d.modes[0] != 130:
				t.Errorf("%d messages, modes %v; want one with mode 130", len(d.msgs), d.modes)
			case d.msgs[0].Bounce || d.msgs[0].DstAddr.StringRaw() != owner.Raw() || d.msgs[0].Amount.Nano().Sign() != 0:
				t.Errorf("message %+v, want non-bounceable 0 TON to %s", d.msgs[0], owner.Raw())
			}
		}
	}
}

func TestWithdrawMessageErrors(t *testing.T) {
	_, key, _ := DeriveKeys(withdrawSecret)
	gw, _ := GasWalletAddress(key.Public().(ed25519.PublicKey), Mainnet)
	self, err := ParseOwnerAddress(gw.String(), Mainnet)
	if err != nil {
		t.Fatal(err)
	}
	owner := withdrawOwner(t, Mainnet)
	odd := owner
	odd.Workchain = 5
	noNet := owner
	noNet.Network = "devnet"
	for _, tc := range []struct {
		name       string
		secret     []byte
		owner      OwnerAddress
		validUntil uint32
		want       string
	}{
		{"short secret", withdrawSecret[:31], owner, withdrawNow, "payout secret: 31 bytes, want 32"},
		{"no secret", nil, owner, withdrawNow, "payout secret: 0 bytes"},
		{"unknown network", withdrawSecret, noNet, withdrawNow, `network "devnet"`},
		{"zero owner", withdrawSecret, OwnerAddress{}, withdrawNow, `network ""`},
		{"workchain", withdrawSecret, odd, withdrawNow, "workchain 5"},
		{"no valid_until", withdrawSecret, owner, 0, "valid_until must be a positive"},
		{"owner is the wallet", withdrawSecret, self, withdrawNow, "is the gas wallet itself"},
	} {
		w, err := WithdrawMessage(tc.secret, tc.owner, 1, tc.validUntil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || w.BOC != nil {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// gasWallet is the test's view of the gas wallet on a tonemu chain.
type gasWallet struct {
	c     *tonemu.Chain
	addr  *address.Address
	key   ed25519.PrivateKey
	owner OwnerAddress
}

func newGasWallet(t *testing.T, fund string) *gasWallet {
	t.Helper()
	c, err := tonemu.New(withdrawNow, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := DeriveKeys(withdrawSecret)
	a, _ := GasWalletAddress(key.Public().(ed25519.PublicKey), Mainnet)
	if err := c.Fund(a, tlb.MustFromTON(fund)); err != nil {
		t.Fatal(err)
	}
	return &gasWallet{c: c, addr: a, key: key, owner: withdrawOwner(t, Mainnet)}
}

func (g *gasWallet) send(t *testing.T, boc []byte) *tonemu.Tx {
	t.Helper()
	m, err := cell.FromBOC(boc)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := g.c.Execute(g.addr, nil, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

func (g *gasWallet) balance() *big.Int { return g.c.State(g.addr).Balance.Nano() }

func (g *gasWallet) seqno(t *testing.T) uint32 {
	t.Helper()
	s, err := g.c.RunGetMethod(g.addr, "seqno")
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.PopInt()
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v.Uint64())
}

// deploy uses the wallet the way the settler does: a seqno-0 external
// with its state init paying 1 TON elsewhere (mode 1+2).
func (g *gasWallet) deploy(t *testing.T) {
	t.Helper()
	pay := &wallet.Message{Mode: wallet.PayGasSeparately + wallet.IgnoreErrors, InternalMessage: &tlb.InternalMessage{
		IHRDisabled: true, DstAddr: address.NewAddress(0, 0, bytes.Repeat([]byte{0xCC}, 32)), Amount: tlb.MustFromTON("1"),
	}}
	ext, err := v5r1External(g.key, Mainnet, 0, withdrawNow+60, true, []*wallet.Message{pay})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := tlb.ToCell(ext)
	if tx := g.send(t, c.ToBOC()); !tx.Success || len(tx.Out) != 1 {
		t.Fatalf("deploy: success %v exit %d, %d messages", tx.Success, tx.ExitCode, len(tx.Out))
	}
	if g.c.State(g.addr).Status != tlb.AccountStatusActive || g.seqno(t) != 1 {
		t.Fatal("deploy: wallet not active at seqno 1")
	}
}

// checkDrained checks a withdrawal transaction: accepted and successful,
// exactly one non-bounceable message to the owner, the wallet left active
// with nothing, and every nanoTON it had accounted for as the message's
// value, its forwarding fee or the transaction's fees. The owner's
// (never deployed) account then receives it.
func (g *gasWallet) checkDrained(t *testing.T, tx *tonemu.Tx, before *big.Int, seqno uint32) {
	t.Helper()
	if !tx.Accepted || !tx.Success || tx.Actions == nil {
		t.Fatalf("withdrawal: accepted %v success %v exit %d", tx.Accepted, tx.Success, tx.ExitCode)
	}
	if a := tx.Actions; a.TotalActions != 1 || a.MessagesCreated != 1 || a.SkippedActions != 0 || len(tx.Out) != 1 {
		t.Fatalf("action phase %+v, %d messages; want exactly one message", a, len(tx.Out))
	}
	m := tx.Out[0]
	if m.Bounce || m.DstAddr.StringRaw() != g.owner.Raw() || !m.SrcAddr.Equals(g.addr) {
		t.Fatalf("message %s → %s bounce %v, want non-bounceable to the owner %s", m.SrcAddr, m.DstAddr, m.Bounce, g.owner.Raw())
	}
	st := g.c.State(g.addr)
	if st.Status != tlb.AccountStatusActive || st.Balance.Nano().Sign() != 0 {
		t.Fatalf("wallet after withdrawal: %s with %s nanoTON, want active with 0", st.Status, st.Balance.Nano())
	}
	if got := g.seqno(t); got != seqno+1 {
		t.Fatalf("seqno %d after the withdrawal, want %d", got, seqno+1)
	}
	spent := new(big.Int).Add(m.Amount.Nano(), m.FwdFee.Nano())
	spent.Add(spent, tx.Transaction.TotalFees.Coins.Nano())
	if spent.Cmp(before) != 0 {
		t.Fatalf("value %s + forward fee %s + fees %s = %s, want the whole balance %s",
			m.Amount.Nano(), m.FwdFee.Nano(), tx.Transaction.TotalFees.Coins.Nano(), spent, before)
	}
	ownerBefore := new(big.Int)
	if st := g.c.State(g.owner.Address()); st != nil {
		ownerBefore = st.Balance.Nano()
	}
	d, err := g.c.Deliver(tx)
	if err != nil || len(d) != 1 || d[0].Bounced { // compute skipped on an uninit account: not Success
		t.Fatalf("delivery to the owner: %v, %d transactions", err, len(d))
	}
	got := new(big.Int).Sub(g.c.State(g.owner.Address()).Balance.Nano(), ownerBefore)
	if got.Cmp(m.Amount.Nano()) != 0 {
		t.Fatalf("owner received %s, want %s", got, m.Amount.Nano())
	}
	t.Logf("drained %s nanoTON: %s to the owner, fees %s + forwarding %s", before, m.Amount.Nano(), tx.Transaction.TotalFees.Coins.Nano(), m.FwdFee.Nano())
}

func TestWithdrawDeployedWallet(t *testing.T) {
	g := newGasWallet(t, "5")
	g.deploy(t)
	before := g.balance()
	w, err := WithdrawMessage(withdrawSecret, g.owner, 1, withdrawNow+600)
	if err != nil {
		t.Fatal(err)
	}
	if w.StateInit {
		t.Fatal("seqno 1 withdrawal carries the state init")
	}
	tx := g.send(t, w.BOC)
	g.checkDrained(t, tx, before, 1)
	if got := tx.Transaction.IO.In; got == nil || !bytes.Equal(mustCellHash(t, got), w.Hash) {
		t.Fatal("the transaction's inbound message is not the one whose hash Withdrawal reports")
	}
	// Funded again, the wallet refuses the same message (its seqno is
	// spent) and is still the owner's to drain at seqno 2.
	if err := g.c.Fund(g.addr, tlb.MustFromTON("0.5")); err != nil {
		t.Fatal(err)
	}
	if tx := g.send(t, w.BOC); tx.Accepted {
		t.Fatal("replayed withdrawal accepted")
	}
	w, _ = WithdrawMessage(withdrawSecret, g.owner, 2, withdrawNow+600)
	before = g.balance()
	g.checkDrained(t, g.send(t, w.BOC), before, 2)
}

func mustCellHash(t *testing.T, m *tlb.Message) []byte {
	t.Helper()
	c, err := tlb.ToCell(m.Msg)
	if err != nil {
		t.Fatal(err)
	}
	return c.Hash()
}

func TestWithdrawUndeployedWallet(t *testing.T) {
	g := newGasWallet(t, "3")
	if st := g.c.State(g.addr); st.Status != tlb.AccountStatusUninit {
		t.Fatalf("funded wallet %s, want uninit", st.Status)
	}
	before := g.balance()
	w, err := WithdrawMessage(withdrawSecret, g.owner, 0, withdrawNow+1)
	if err != nil {
		t.Fatal(err)
	}
	g.checkDrained(t, g.send(t, w.BOC), before, 0)
}

func TestWithdrawRejected(t *testing.T) {
	other := bytes.Repeat([]byte{0x08}, PayoutSecretSize)
	for _, tc := range []struct {
		name   string
		secret []byte
		net    Network
		seqno  uint32
		valid  uint32
		redir  bool // re-address the message to our wallet
	}{
		{"seqno behind", withdrawSecret, Mainnet, 0, withdrawNow + 60, false},
		{"seqno ahead", withdrawSecret, Mainnet, 2, withdrawNow + 60, false},
		{"expired", withdrawSecret, Mainnet, 1, withdrawNow - 1, false},
		{"wrong key", other, Mainnet, 1, withdrawNow + 60, true},
		{"signed for testnet", withdrawSecret, Testnet, 1, withdrawNow + 60, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGasWallet(t, "2")
			g.deploy(t)
			before := g.balance()
			w, err := WithdrawMessage(tc.secret, withdrawOwner(t, tc.net), tc.seqno, tc.valid)
			if err != nil {
				t.Fatal(err)
			}
			boc := w.BOC
			if tc.redir {
				if w.Wallet.Equals(g.addr) {
					t.Fatal("the message already goes to our wallet")
				}
				c, _ := cell.FromBOC(boc)
				var ext tlb.ExternalMessage
				if err := tlb.LoadFromCell(&ext, c.MustBeginParse()); err != nil {
					t.Fatal(err)
				}
				ext.DstAddr = g.addr
				ec, _ := tlb.ToCell(&ext)
				boc = ec.ToBOC()
			}
			tx := g.send(t, boc)
			if tx.Accepted || len(tx.Out) != 0 {
				t.Fatalf("accepted %v (exit %d), %d messages", tx.Accepted, tx.ExitCode, len(tx.Out))
			}
			if g.balance().Cmp(before) != 0 || g.seqno(t) != 1 {
				t.Fatalf("wallet changed: %s nanoTON (was %s), seqno %d", g.balance(), before, g.seqno(t))
			}
		})
	}
}

// FuzzWithdrawMessage: for any secret, owner, seqno and valid_until,
// WithdrawMessage either fails or yields a signed external to the gas
// wallet of that secret carrying exactly one mode-130 non-bounceable
// message to the owner.
func FuzzWithdrawMessage(f *testing.F) {
	f.Add(withdrawSecret, []byte(strings.Repeat("\x83", 32)), int8(0), false, uint32(0), uint32(withdrawNow))
	f.Add(withdrawSecret, make([]byte, 32), int8(-1), true, uint32(9), uint32(1))
	f.Add([]byte("short"), make([]byte, 32), int8(3), false, uint32(1), uint32(0))
	f.Fuzz(func(t *testing.T, secret, hash []byte, wc int8, testnet bool, seqno, validUntil uint32) {
		var o OwnerAddress
		copy(o.Hash[:], hash)
		o.Workchain = int32(wc)
		o.Network = Mainnet
		if testnet {
			o.Network = Testnet
		}
		w, err := WithdrawMessage(secret, o, seqno, validUntil)
		if err != nil {
			if w.BOC != nil {
				t.Fatal("BOC with an error")
			}
			return
		}
		_, key, _ := DeriveKeys(secret)
		d, err := decodeWithdrawal(w.BOC, key.Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		if !d.sigOK || d.seqno != seqno || d.validUntil != validUntil || (d.ext.StateInit != nil) != (seqno == 0) ||
			!d.ext.DstAddr.Equals(w.Wallet) || len(d.msgs) != 1 || d.modes[0] != WithdrawMode ||
			d.msgs[0].Bounce || d.msgs[0].DstAddr.StringRaw() != o.Raw() {
			t.Fatalf("withdrawal %+v", d)
		}
	})
}
