package channel

import (
	"crypto/ed25519"
	"math/big"
	"testing"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"
	"github.com/xssnick/tonutils-go/tvm/tuple"

	"github.com/chrysalis-cc/chrysalis/measure/tonemu"
)

func ton(s string) *big.Int { return tlb.MustFromTON(s).Nano() }

// ledger runs one channel account through full transactions (storage,
// credit, compute, action and bounce phases) on a tonemu chain with the
// mainnet config, keeping the account between messages as a chain would.
// It keeps its own clock and logical time: each message advances them.
type ledger struct {
	t    *testing.T
	emu  *tonemu.Chain
	addr *address.Address
	now  uint32
	lt   uint64
}

func newLedger(t *testing.T, addr *address.Address) *ledger {
	t.Helper()
	l := &ledger{t: t, addr: addr, now: 1_780_000_000, lt: 60_000_000_000_000}
	emu, err := tonemu.New(l.now, l.lt)
	if err != nil {
		t.Fatal(err)
	}
	l.emu = emu
	return l
}

// acc is the channel's account now.
func (l *ledger) acc() *tvm.PreparedAccount {
	l.t.Helper()
	acc, err := l.emu.Account(l.addr)
	if err != nil {
		l.t.Fatal(err)
	}
	return acc
}

// rewind puts the channel's account back to acc (an earlier state).
func (l *ledger) rewind(acc *tvm.PreparedAccount) { l.emu.SetAccount(l.addr, acc) }

// result is what one message did.
type result struct {
	tx       *tlb.Transaction
	exit     int32
	ok       bool // compute and action phases succeeded
	gasUsed  uint64
	gasFees  *big.Int
	fwdFees  *big.Int // action phase forwarding fees
	total    *big.Int // transaction total fees
	out      []*tlb.InternalMessage
	storage  *Storage
	dataHash []byte
	balance  *big.Int
	// actions are the send-message actions of the compute phase, from a
	// compute-only run (EmulateInternalMessage) of the same message on the
	// same state: the values the contract asked to send, before fees.
	actions []sendAction
}

type sendAction struct {
	mode uint8
	msg  *tlb.InternalMessage
}

// parseActions walks an out_list and returns its action_send_msg entries
// in execution order.
func parseActions(t *testing.T, c *cell.Cell) []sendAction {
	t.Helper()
	var out []sendAction
	for c != nil && (c.BitsSize() > 0 || c.RefsNum() > 0) {
		s := c.MustBeginParse()
		prev := s.MustLoadRef().MustToCell()
		if tag := s.MustLoadUInt(32); tag == 0x0ec3c86d {
			mode := uint8(s.MustLoadUInt(8))
			var m tlb.InternalMessage
			if err := tlb.LoadFromCell(&m, s.MustLoadRef()); err != nil {
				t.Fatalf("out action message: %v", err)
			}
			out = append([]sendAction{{mode: mode, msg: &m}}, out...)
		}
		c = prev
	}
	return out
}

// actionsTo returns the send actions addressed to a.
func (r result) actionsTo(a *address.Address) []sendAction {
	var out []sendAction
	for _, x := range r.actions {
		if x.msg.DstAddr.Equals(a) {
			out = append(out, x)
		}
	}
	return out
}

// checkPayout asserts that the contract's send action to dst carries
// exactly want nanoTON, is non-bounceable, and that the delivered message
// is that value less the forwarding fee.
func checkPayout(t *testing.T, r result, dst *address.Address, want *big.Int) *tlb.InternalMessage {
	t.Helper()
	acts := r.actionsTo(dst)
	if len(acts) != 1 {
		t.Fatalf("%d send actions to %s, want 1", len(acts), dst.StringRaw())
	}
	if got := acts[0].msg.Amount.Nano(); got.Cmp(want) != 0 {
		t.Fatalf("send action to %s carries %s nanoTON, want exactly %s", dst.StringRaw(), got, want)
	}
	if acts[0].msg.Bounce {
		t.Fatalf("send action to %s is bounceable", dst.StringRaw())
	}
	msgs := r.to(dst)
	if len(msgs) != 1 {
		t.Fatalf("%d delivered messages to %s, want 1", len(msgs), dst.StringRaw())
	}
	fee := new(big.Int).Sub(want, msgs[0].Amount.Nano())
	if fee.Sign() < 0 || fee.Cmp(ton("0.001")) > 0 || msgs[0].Bounce {
		t.Fatalf("delivered %s (bounce %v) for an action of %s", msgs[0].Amount.Nano(), msgs[0].Bounce, want)
	}
	t.Logf("payout to %s: action value %s (mode %d), delivered %s, forwarding fee %s", dst.StringRaw(), want, acts[0].mode, msgs[0].Amount.Nano(), fee)
	return msgs[0]
}

// send delivers an internal message from src with value and body (and a
// StateInit for deployment) at ledger time + advance seconds.
func (l *ledger) send(src *address.Address, value *big.Int, body *cell.Cell, si *tlb.StateInit, advance uint32) result {
	l.t.Helper()
	l.now += advance
	l.lt += 1_000_000
	msg := &tlb.InternalMessage{
		IHRDisabled: true,
		Bounce:      true,
		SrcAddr:     src,
		DstAddr:     l.addr,
		Amount:      tlb.FromNanoTON(value),
		CreatedLT:   l.lt,
		CreatedAt:   l.now,
		StateInit:   si,
		Body:        body,
	}
	var actions []sendAction
	computeExit := int64(-1)
	if st := l.acc().State(); st.Status == tlb.AccountStatusActive && si == nil {
		bal := new(big.Int).Add(st.Balance.Nano(), value)
		er, err := l.emu.TVM().EmulateInternalMessage(st.StateInit.Code, st.StateInit.Data, body, value.Uint64(), tvm.EmulateInternalMessageConfig{
			Address: l.addr, Now: l.now, Balance: bal, Config: l.emu.Config(), RandSeed: make([]byte, 32),
			IncomingValue: tuple.NewTupleValue(new(big.Int).Set(value), nil),
			// Tolk reads the sender and value through INMSGPARAMS, which a
			// compute-only run leaves zero unless given, as a chain would.
			InMsgParams: tuple.NewTupleValue(big.NewInt(-1), big.NewInt(0),
				cell.BeginCell().MustStoreAddr(src).ToSlice(), big.NewInt(0),
				new(big.Int).SetUint64(l.lt), big.NewInt(int64(l.now)),
				new(big.Int).Set(value), new(big.Int).Set(value), nil, nil),
		})
		if err != nil {
			l.t.Fatalf("emulate compute phase: %v", err)
		}
		computeExit = er.ExitCode
		if er.ExitCode == 0 {
			actions = parseActions(l.t, er.Actions)
		}
	}
	mc, err := tlb.ToCell(msg)
	if err != nil {
		l.t.Fatal(err)
	}
	l.emu.SetNow(l.now)
	tx, err := l.emu.Execute(l.addr, src, mc, l.lt+1)
	if err != nil {
		l.t.Fatalf("emulate: %v", err)
	}
	r := result{tx: tx.Transaction, exit: -1, actions: actions, gasFees: new(big.Int), fwdFees: new(big.Int), total: tx.Transaction.TotalFees.Coins.Nano(), out: tx.Out}
	if vmPhase := tx.Compute; vmPhase != nil {
		r.exit = vmPhase.Details.ExitCode
		r.gasUsed = vmPhase.Details.GasUsed.Uint64()
		r.gasFees = vmPhase.GasFees.Nano()
		r.ok = vmPhase.Success && tx.Actions != nil && tx.Actions.Success && !tx.Aborted
	}
	if computeExit >= 0 && computeExit != int64(r.exit) {
		l.t.Fatalf("compute-only run exited %d, full transaction %d", computeExit, r.exit)
	}
	if tx.Actions != nil && tx.Actions.TotalFwdFees != nil {
		r.fwdFees = tx.Actions.TotalFwdFees.Nano()
	}
	st := l.acc().State()
	r.balance = st.Balance.Nano()
	if st.StateInit != nil && st.StateInit.Data != nil {
		r.dataHash = st.StateInit.Data.Hash()
		if r.storage, err = ParseStorage(st.StateInit.Data); err != nil {
			l.t.Fatalf("parse storage after tx: %v", err)
		}
	}
	return r
}

// to returns the out messages addressed to a.
func (r result) to(a *address.Address) []*tlb.InternalMessage {
	var out []*tlb.InternalMessage
	for _, m := range r.out {
		if m.DstAddr.Equals(a) {
			out = append(out, m)
		}
	}
	return out
}

type party struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func seededParty(b byte) party {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = b
	}
	k := ed25519.NewKeyFromSeed(seed)
	return party{pub: k.Public().(ed25519.PublicKey), priv: k}
}

func stdAddr(b byte) *address.Address {
	d := make([]byte, 32)
	for i := range d {
		d[i] = b
	}
	return address.NewAddress(0, 0, d)
}

// fixture is a channel between proxy A and worker B, with B's payouts to
// the owner's wallet and both parties' gas wallets as message senders.
type fixture struct {
	a, b             party
	ownerB, destA    *address.Address
	walletA, walletB *address.Address
	cfg              Config
}

func newFixture() fixture {
	f := fixture{
		a: seededParty(0xA1), b: seededParty(0xB2),
		destA: stdAddr(0xAA), ownerB: stdAddr(0x0B),
		walletA: stdAddr(0xA0), walletB: stdAddr(0xB0),
	}
	f.cfg = Config{
		KeyA: f.a.pub, KeyB: f.b.pub,
		ID:      ID{0xc4, 0x71, 0x5a, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		Closing: ClosingConfig{QuarantineDuration: 3600, MisbehaviorFine: ton("0.1"), ConditionalCloseDuration: 1800},
		Payment: PaymentConfig{StorageFee: ton("0.05"), DestA: f.destA, DestB: f.ownerB},
	}
	return f
}

func (f fixture) stateA(t *testing.T, seqno uint64, sent string) SignedSemiChannel {
	t.Helper()
	s, err := Sign(f.a.priv, SemiChannel{ID: f.cfg.ID, Data: SemiState{Seqno: seqno, Sent: ton(sent)}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f fixture) stateB(t *testing.T, seqno uint64) SignedSemiChannel {
	t.Helper()
	s, err := Sign(f.b.priv, SemiChannel{ID: f.cfg.ID, Data: SemiState{Seqno: seqno, Sent: new(big.Int)}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// commitBody has both parties sign c (keys may be swapped to test the
// contract's checks) and returns the message body.
func commitBody(t *testing.T, c Commit, keyA, keyB ed25519.PrivateKey) *cell.Cell {
	t.Helper()
	sa, err := SignBody(keyA, c)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := SignBody(keyB, c)
	if err != nil {
		t.Fatal(err)
	}
	body, err := SignedCommit{Commit: c, SigA: sa, SigB: sb}.Body()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// open deploys and initializes the channel and tops it up from A with
// deposit+FeeTopUp, checking each step.
func (f fixture) open(t *testing.T, deposit string) *ledger {
	t.Helper()
	addr, err := f.cfg.Address()
	if err != nil {
		t.Fatal(err)
	}
	l := newLedger(t, addr)
	si, err := f.cfg.StateInit()
	if err != nil {
		t.Fatal(err)
	}
	init, err := InitBody(f.a.priv, true, f.cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	r := l.send(f.walletA, ton("0.1"), init, si, 1)
	if !r.ok || r.exit != 0 {
		t.Fatalf("deploy+init: exit %d ok %v", r.exit, r.ok)
	}
	if !r.storage.Initialized {
		t.Fatal("deploy+init: channel not initialized")
	}
	t.Logf("deploy+init: gas %d, gas fee %s, total fees %s nanoTON, balance after %s", r.gasUsed, r.gasFees, r.total, r.balance)
	if len(r.to(f.walletA)) != 1 {
		t.Fatalf("deploy+init: want one excess message back to A's wallet, got %d out messages", len(r.out))
	}

	r = l.send(f.walletA, new(big.Int).Add(ton(deposit), FeeTopUp), TopUpBody(true), nil, 1)
	if !r.ok || r.exit != 0 {
		t.Fatalf("top-up: exit %d ok %v", r.exit, r.ok)
	}
	if got := r.storage.Balance.DepositA; got.Cmp(ton(deposit)) != 0 {
		t.Fatalf("top-up: depositA %s, want %s", got, ton(deposit))
	}
	t.Logf("top-up: gas %d, total fees %s nanoTON, channel balance %s", r.gasUsed, r.total, r.balance)
	return l
}

func TestEmulatorDeployAddressMatchesConfig(t *testing.T) {
	f := newFixture()
	l := f.open(t, "10")
	st := l.acc().State()
	if st.Status != tlb.AccountStatusActive {
		t.Fatalf("channel account status %s, want active", st.Status)
	}
	got, err := VerifyAccount(l.addr, st.StateInit.Code, st.StateInit.Data)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != f.cfg.ID || !got.Payment.DestB.Equals(f.ownerB) {
		t.Fatalf("verified storage id %s dest B %s", got.ID, got.Payment.DestB)
	}
	if got.State(l.now) != StateOpen {
		t.Fatalf("state %d, want open", got.State(l.now))
	}
	// A second init is refused.
	init, _ := InitBody(f.a.priv, true, f.cfg.ID)
	r := l.send(f.walletA, ton("0.1"), init, nil, 1)
	if r.exit != ExitAlreadyInited {
		t.Fatalf("second init: exit %d, want %d", r.exit, ExitAlreadyInited)
	}
}

func TestEmulatorInitRefusals(t *testing.T) {
	f := newFixture()
	addr, _ := f.cfg.Address()
	si, _ := f.cfg.StateInit()
	other := seededParty(0x77)
	wrongID := f.cfg.ID
	wrongID[0] ^= 1
	for _, tc := range []struct {
		name  string
		key   ed25519.PrivateKey
		id    ID
		value string
		exit  int32
	}{
		{"wrong signer", other.priv, f.cfg.ID, "0.1", ExitNotAuthorized},
		{"wrong channel id", f.a.priv, wrongID, "0.1", ExitWrongChannelID},
		{"value below storage fee", f.a.priv, f.cfg.ID, "0.04", ExitNotEnoughForStorage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLedger(t, addr)
			body, err := InitBody(tc.key, true, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			r := l.send(f.walletA, ton(tc.value), body, si, 1)
			if r.exit != tc.exit {
				t.Fatalf("exit %d, want %d", r.exit, tc.exit)
			}
			if r.storage != nil && r.storage.Initialized {
				t.Fatal("channel initialized despite refusal")
			}
		})
	}
}

// TestEmulatorCommitPaysDelta is the settlement path for "pay the owner by
// threshold while serving": A signs cumulative states (1 TON, then 2.5 TON);
// B settles each with a cooperative commit that withdraws everything B has
// earned, and the contract pays exactly the delta to the owner's wallet,
// non-bounceable, while the channel stays open.
func TestEmulatorCommitPaysDelta(t *testing.T) {
	f := newFixture()
	l := f.open(t, "10")
	var seqB uint64
	settle := func(sent string, seqA uint64, wantDelta string, attach *big.Int) result {
		t.Helper()
		sa := f.stateA(t, seqA, sent)
		if err := sa.Verify(f.a.pub); err != nil {
			t.Fatal(err)
		}
		seqB++
		before := l.acc().State()
		st, err := ParseStorage(before.StateInit.Data)
		if err != nil {
			t.Fatal(err)
		}
		c, due, err := st.WithdrawB(sa.State.Data, f.stateB(t, seqB).State.Data)
		if err != nil {
			t.Fatal(err)
		}
		if due.Cmp(ton(wantDelta)) != 0 {
			t.Fatalf("due %s, want %s", due, ton(wantDelta))
		}
		want, _, _, err := st.ApplyCommit(c)
		if err != nil {
			t.Fatal(err)
		}
		r := l.send(f.walletB, attach, commitBody(t, c, f.a.priv, f.b.priv), nil, 60)
		if !r.ok || r.exit != 0 {
			t.Fatalf("commit sent=%s: exit %d ok %v", sent, r.exit, r.ok)
		}
		// The contract sends exactly the delta (mode 0, so the forwarding
		// fee comes out of it) non-bounceable to the owner's wallet.
		p := checkPayout(t, r, f.ownerB, ton(wantDelta))
		if m := r.actionsTo(f.ownerB)[0].mode; m != 0 {
			t.Fatalf("payout send mode %d, want 0", m)
		}
		recv := p.Amount.Nano()
		n, err := ParseNotification(p.Body)
		if err != nil || n.Closed || n.ID != f.cfg.ID {
			t.Fatalf("payout body %v err %v", n, err)
		}
		if len(r.to(f.walletB)) != 1 {
			t.Fatalf("commit: want one excess back to B's gas wallet, got %d", len(r.to(f.walletB)))
		}
		excess := r.to(f.walletB)[0].Amount.Nano()
		if r.storage.Balance.WithdrawB.Cmp(want.Balance.WithdrawB) != 0 ||
			r.storage.CommittedSeqnoA != want.CommittedSeqnoA || r.storage.CommittedSeqnoB != want.CommittedSeqnoB ||
			r.storage.Balance.SentA.Cmp(want.Balance.SentA) != 0 {
			t.Fatalf("storage after commit differs from ApplyCommit's prediction")
		}
		if r.storage.State(l.now) != StateOpen {
			t.Fatal("channel not open after commit")
		}
		// The attached value paid every fee: the channel keeps exactly the
		// storage fee plus both balances.
		keep := new(big.Int).Add(f.cfg.Payment.StorageFee, r.storage.Balance.A())
		if keep.Add(keep, r.storage.Balance.B()); r.balance.Cmp(keep) != 0 {
			t.Fatalf("channel balance %s after commit, want storage fee + balances = %s", r.balance, keep)
		}
		t.Logf("commit sent=%s: payout %s to owner (fwd fee %s), gas %d, gas fee %s, action fwd fees %s, total fees %s, excess back %s of %s attached",
			sent, recv, p.FwdFee.Nano(), r.gasUsed, r.gasFees, r.fwdFees, r.total, excess, attach)
		return r
	}
	settle("1", 1, "1", ton("0.05"))
	r := settle("2.5", 2, "1.5", FeeCommit) // the least the contract accepts
	if r.storage.Balance.B().Sign() != 0 || r.storage.Balance.A().Cmp(ton("7.5")) != 0 {
		t.Fatalf("balances after commits: A %s B %s, want 7.5 TON and 0", r.storage.Balance.A(), r.storage.Balance.B())
	}
}

// TestEmulatorCommitRefusals: replayed, stale, wrongly signed and foreign
// commits do not pay and leave the contract's data unchanged.
func TestEmulatorCommitRefusals(t *testing.T) {
	f := newFixture()
	l := f.open(t, "10")
	attach := ton("0.05")

	good := Commit{ID: f.cfg.ID, SentA: ton("2.5"), SentB: new(big.Int), SeqnoA: 2, SeqnoB: 1,
		WithdrawA: new(big.Int), WithdrawB: ton("2.5")}
	goodBody := commitBody(t, good, f.a.priv, f.b.priv)
	r := l.send(f.walletB, attach, goodBody, nil, 10)
	if !r.ok || len(r.to(f.ownerB)) != 1 {
		t.Fatalf("first commit: exit %d, payouts %d", r.exit, len(r.to(f.ownerB)))
	}

	other := seededParty(0x55)
	stale := good
	stale.SeqnoA, stale.SeqnoB, stale.SentA, stale.WithdrawB = 1, 2, ton("1"), ton("2.5")
	wrongID := good
	wrongID.ID[15] ^= 0xff
	wrongID.SeqnoA, wrongID.SeqnoB, wrongID.SentA, wrongID.WithdrawB = 3, 2, ton("3"), ton("3")
	next := good
	next.SeqnoA, next.SeqnoB, next.SentA, next.WithdrawB = 3, 2, ton("3"), ton("3")
	overdraw := next
	overdraw.WithdrawB = ton("3.5")
	regress := next
	regress.WithdrawB = ton("2")

	st := r.storage
	for _, tc := range []struct {
		name   string
		body   *cell.Cell
		value  *big.Int
		exit   int32
		local  bool // ApplyCommit must refuse it too
		commit Commit
	}{
		{"replay of the settled commit", goodBody, attach, ExitSeqnoRegress, true, good},
		{"stale: lower seqno A", commitBody(t, stale, f.a.priv, f.b.priv), attach, ExitSeqnoRegress, true, stale},
		{"A's signature by another key", commitBody(t, next, other.priv, f.b.priv), attach, ExitNotAuthorized, false, next},
		{"B's signature by another key", commitBody(t, next, f.a.priv, other.priv), attach, ExitNotAuthorized, false, next},
		{"signatures swapped", commitBody(t, next, f.b.priv, f.a.priv), attach, ExitNotAuthorized, false, next},
		{"wrong channel id", commitBody(t, wrongID, f.a.priv, f.b.priv), attach, ExitWrongChannelID, true, wrongID},
		{"withdraw more than earned", commitBody(t, overdraw, f.a.priv, f.b.priv), attach, ExitNotEnoughBalance, true, overdraw},
		{"withdraw regresses", commitBody(t, regress, f.a.priv, f.b.priv), attach, ExitWithdrawRegress, true, regress},
		{"attached value below the commit fee", commitBody(t, next, f.a.priv, f.b.priv), ton("0.02"), ExitAmountNotCoversFee, false, next},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := l.acc()
			beforeHash := r.dataHash
			got := l.send(f.walletB, tc.value, tc.body, nil, 10)
			defer l.rewind(before) // every case starts from the settled state
			if got.exit != tc.exit {
				t.Fatalf("exit %d, want %d", got.exit, tc.exit)
			}
			if got.ok {
				t.Fatal("transaction succeeded")
			}
			if len(got.to(f.ownerB)) != 0 {
				t.Fatal("refused commit paid the owner")
			}
			if string(got.dataHash) != string(beforeHash) {
				t.Fatal("refused commit changed the contract data")
			}
			// The value bounces back to B's gas wallet, minus fees.
			if b := got.to(f.walletB); len(b) != 1 || !b[0].Bounced {
				t.Fatalf("want one bounced message back to B's wallet, got %d", len(b))
			}
			_, _, _, err := st.ApplyCommit(tc.commit)
			if tc.local && err == nil {
				t.Fatal("ApplyCommit accepted a commit the contract refuses")
			}
			t.Logf("exit %d, gas %d, total fees %s", got.exit, got.gasUsed, got.total)
		})
	}
	// And the correct next commit still settles after all that.
	r = l.send(f.walletB, attach, commitBody(t, next, f.a.priv, f.b.priv), nil, 10)
	if !r.ok || len(r.to(f.ownerB)) != 1 {
		t.Fatalf("next commit: exit %d", r.exit)
	}
	checkPayout(t, r, f.ownerB, ton("0.5"))
}

// TestEmulatorUncooperativeClose: without A's co-signature, B closes with
// A's latest signed state and its own; after quarantine and the
// conditional-close period the contract pays B's balance to the owner.
func TestEmulatorUncooperativeClose(t *testing.T) {
	f := newFixture()
	l := f.open(t, "10")
	attach := ton("0.05")

	// One cooperative commit first (2.5 TON withdrawn), so committed seqnos are (2, 1).
	c := Commit{ID: f.cfg.ID, SentA: ton("2.5"), SentB: new(big.Int), SeqnoA: 2, SeqnoB: 1,
		WithdrawA: new(big.Int), WithdrawB: ton("2.5")}
	if r := l.send(f.walletB, attach, commitBody(t, c, f.a.priv, f.b.priv), nil, 10); !r.ok {
		t.Fatalf("commit: exit %d", r.exit)
	}
	stA := f.stateA(t, 5, "4")
	stB := f.stateB(t, 1)
	other := seededParty(0x66)
	forged, _ := Sign(other.priv, stA.State)
	staleA := f.stateA(t, 1, "4")
	wrongIDState := stA.State
	wrongIDState.ID[3] ^= 1
	wrongID, _ := Sign(f.a.priv, wrongIDState)

	for _, tc := range []struct {
		name string
		key  ed25519.PrivateKey
		a    SignedSemiChannel
		exit int32
	}{
		{"A's state signed by another key", f.b.priv, forged, ExitNotAuthorized},
		{"message signed by another key", other.priv, stA, ExitNotAuthorized},
		{"A's state older than committed", f.b.priv, staleA, ExitOutdatedState},
		{"A's state for another channel", f.b.priv, wrongID, ExitWrongChannelID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := l.acc()
			defer l.rewind(before)
			body, err := StartUncooperativeCloseBody(tc.key, false, f.cfg.ID, tc.a, stB)
			if err != nil {
				t.Fatal(err)
			}
			r := l.send(f.walletB, attach, body, nil, 10)
			if r.exit != tc.exit || r.storage.Quarantine != nil {
				t.Fatalf("exit %d (want %d), quarantine %v", r.exit, tc.exit, r.storage.Quarantine)
			}
		})
	}

	body, err := StartUncooperativeCloseBody(f.b.priv, false, f.cfg.ID, stA, stB)
	if err != nil {
		t.Fatal(err)
	}
	r := l.send(f.walletB, attach, body, nil, 10)
	if !r.ok || r.storage.Quarantine == nil {
		t.Fatalf("start uncooperative close: exit %d", r.exit)
	}
	t.Logf("start uncooperative close: gas %d, total fees %s", r.gasUsed, r.total)
	q := r.storage.Quarantine
	if q.StateA.Seqno != 5 || q.StateA.Sent.Cmp(ton("4")) != 0 || q.CommittedByA {
		t.Fatalf("quarantine %+v", q)
	}
	if s := r.storage.State(l.now); s != StateClosureStarted {
		t.Fatalf("state %d, want closure started", s)
	}
	// A second start is refused while one is quarantined.
	if r := l.send(f.walletB, attach, body, nil, 10); r.exit != ExitQuarantineActive {
		t.Fatalf("second start: exit %d, want %d", r.exit, ExitQuarantineActive)
	}
	// Finishing before quarantine + conditional close is refused.
	if r := l.send(f.walletB, attach, FinishUncooperativeCloseBody(), nil, 3600); r.exit != ExitTooEarlyToClose {
		t.Fatalf("early finish: exit %d, want %d", r.exit, ExitTooEarlyToClose)
	}
	r = l.send(f.walletB, attach, FinishUncooperativeCloseBody(), nil, 1801)
	if !r.ok {
		t.Fatalf("finish: exit %d", r.exit)
	}
	// B is owed 4 − 2.5 = 1.5 TON.
	p := checkPayout(t, r, f.ownerB, ton("1.5"))
	if n, err := ParseNotification(p.Body); err != nil || !n.Closed {
		t.Fatalf("close notification %+v %v", n, err)
	}
	if len(r.to(f.destA)) != 1 {
		t.Fatal("finish: no payout to A")
	}
	if r.storage.Initialized || r.storage.Quarantine != nil {
		t.Fatal("channel storage not reset after close")
	}
	t.Logf("finish uncooperative close: gas %d, total fees %s, A got %s", r.gasUsed, r.total, r.to(f.destA)[0].Amount.Nano())
}

// TestEmulatorCooperativeClose: both sign the final sent amounts; the
// contract pays both sides and resets.
func TestEmulatorCooperativeClose(t *testing.T) {
	f := newFixture()
	l := f.open(t, "10")
	cl := Close{ID: f.cfg.ID, SentA: ton("3"), SentB: new(big.Int), SeqnoA: 4, SeqnoB: 1}
	sa, _ := SignBody(f.a.priv, cl)
	sb, _ := SignBody(f.b.priv, cl)
	body, err := SignedClose{Close: cl, SigA: sa, SigB: sb}.Body()
	if err != nil {
		t.Fatal(err)
	}
	r := l.send(f.walletB, ton("0.05"), body, nil, 10)
	if !r.ok {
		t.Fatalf("cooperative close: exit %d", r.exit)
	}
	checkPayout(t, r, f.ownerB, ton("3"))
	if r.storage.Initialized {
		t.Fatal("channel still initialized after cooperative close")
	}
	t.Logf("cooperative close: gas %d, total fees %s", r.gasUsed, r.total)
	// Replaying the close on the reset channel pays nothing.
	r = l.send(f.walletB, ton("0.05"), body, nil, 10)
	if r.ok || len(r.to(f.ownerB)) != 0 {
		t.Fatalf("replayed close: exit %d, payouts %d", r.exit, len(r.to(f.ownerB)))
	}
	t.Logf("replayed close: exit %d", r.exit)
}
