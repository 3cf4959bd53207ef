package payout

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"
)

// SendMode is the wallet send mode of every settlement: pay the forwarding
// fees separately, plus "ignore errors" because wallet v5r1 refuses any
// other mode in an external-initiated send (exit code 137, after it has
// already consumed the seqno; TestV5R1RefusesModeWithoutIgnoreErrors).
// So a send that cannot be made is skipped silently by the wallet: the
// settler therefore checks every wallet transaction for exactly one
// message created to the channel, and marks the intent failed otherwise.
const SendMode = wallet.PayGasSeparately + wallet.IgnoreErrors

// Policy decides when to settle. Amounts are nanoTON, times chain seconds.
type Policy struct {
	// Threshold: settle as soon as due ≥ Threshold.
	Threshold *big.Int
	// Interval: settle any due > 0 once Interval seconds have passed since
	// the last confirmed settlement (0 disables).
	Interval uint32
	// Attach is the value sent with the commit (≥ channel.FeeCommit); the
	// contract returns what its fees do not use.
	Attach *big.Int
	// Reserve is kept on the gas wallet on top of Attach: below
	// Attach+Reserve the settler refuses to send and reports it.
	Reserve *big.Int
	// TTL is valid_until − now for an external (default 120 s).
	TTL uint32
	// Skew is how long after valid_until an unused seqno is judged
	// expired (default 15 s).
	Skew uint32
}

// Config configures a Settler.
type Config struct {
	Ledger   *Ledger
	Chain    Chain
	CoSigner CoSigner
	// Channel is the channel configuration (B's public key must be the
	// ChannelKey's).
	Channel channel.Config
	// ChannelKey is the worker's channel key B; WalletKey the gas
	// wallet's key.
	ChannelKey, WalletKey KeyProvider
	// NetworkGlobalID of the gas wallet (wallet.MainnetGlobalID, …).
	NetworkGlobalID int32
	Policy          Policy
	// Hook is called at every durable step and chain call (tests).
	Hook Hook
	Log  *slog.Logger
}

// Report is what one Step did, for status endpoints and logs.
type Report struct {
	// Action is one of: idle, waiting, planned, signed, sent, resent,
	// pending, confirmed, expired, failed, bounced, paused, underfunded.
	Action string
	Intent string
	Due    *big.Int
	Detail string
}

// Settler is the single writer of settlements: one goroutine, one
// external in flight.
type Settler struct {
	mu      sync.Mutex
	c       Config
	wallet  *V5R1
	chAddr  *address.Address
	chRaw   string
	hook    Hook
	log     *slog.Logger
	lastRep Report
	// dueSince is the chain time this process first saw something due.
	dueSince uint32
}

// NewSettler checks the configuration and binds the ledger to the channel
// and gas wallet.
func NewSettler(c Config) (*Settler, error) {
	if c.Ledger == nil || c.Chain == nil || c.CoSigner == nil || c.ChannelKey == nil || c.WalletKey == nil {
		return nil, errors.New("settler: ledger, chain, co-signer and both keys are required")
	}
	p := &c.Policy
	if p.Threshold == nil || p.Threshold.Sign() <= 0 {
		return nil, errors.New("settler: threshold must be a positive nanoTON amount")
	}
	if p.Attach == nil || p.Attach.Cmp(channel.FeeCommit) < 0 {
		return nil, fmt.Errorf("settler: attach %v nanoTON is below the contract's commit fee %s", p.Attach, channel.FeeCommit)
	}
	if p.Reserve == nil || p.Reserve.Sign() < 0 {
		return nil, errors.New("settler: reserve must be a non-negative nanoTON amount")
	}
	if p.TTL == 0 {
		p.TTL = 120
	}
	if p.Skew == 0 {
		p.Skew = 15
	}
	kb, err := c.ChannelKey.PrivateKey()
	if err != nil {
		return nil, err
	}
	if !kb.Public().(ed25519.PublicKey).Equal(c.Channel.KeyB) {
		return nil, errors.New("settler: the channel key is not the channel's key B")
	}
	kw, err := c.WalletKey.PrivateKey()
	if err != nil {
		return nil, err
	}
	w, err := NewV5R1(kw.Public().(ed25519.PublicKey), c.NetworkGlobalID)
	if err != nil {
		return nil, err
	}
	a, err := c.Channel.Address()
	if err != nil {
		return nil, err
	}
	if err := c.Ledger.Bind(c.Channel, payment.RawAddress(w.Address())); err != nil {
		return nil, err
	}
	s := &Settler{c: c, wallet: w, chAddr: a, chRaw: payment.RawAddress(a), hook: c.Hook, log: c.Log}
	if s.hook == nil {
		s.hook = func(string) {}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Wallet is the gas wallet's address (to be funded by the owner).
func (s *Settler) Wallet() *address.Address { return s.wallet.Address() }

// Last returns the report of the last Step.
func (s *Settler) Last() Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastRep
}

// Run steps every period until ctx ends, logging errors (a failed step is
// retried on the next tick; the ledger keeps the state).
func (s *Settler) Run(ctx context.Context, period time.Duration) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		if r, err := s.Step(ctx); err != nil {
			s.log.Warn("payout step failed", "err", err)
		} else if r.Action != "idle" && r.Action != "waiting" {
			s.log.Info("payout", "action", r.Action, "intent", r.Intent, "due", r.Due, "detail", r.Detail)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Step advances the state machine by at most one intent transition chain:
// it reconciles the open intent if there is one, otherwise settles what is
// due when the policy says so.
func (s *Settler) Step(ctx context.Context) (Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.step(ctx)
	if r.Due == nil {
		r.Due = s.c.Ledger.State().Due()
	}
	s.lastRep = r
	return r, err
}

func (s *Settler) step(ctx context.Context) (Report, error) {
	st := s.c.Ledger.State()
	if in := st.OpenIntent(); in != nil {
		return s.advance(ctx, st, in)
	}
	if st.Paused != "" {
		return Report{Action: "paused", Detail: st.Paused}, nil
	}
	due := st.Due()
	if due.Sign() <= 0 {
		s.dueSince = 0
		return Report{Action: "idle", Due: due}, nil
	}
	now, err := s.now(ctx)
	if err != nil {
		return Report{}, err
	}
	p := s.c.Policy
	if s.dueSince == 0 {
		s.dueSince = now
	}
	// The interval runs from the last confirmed settlement (durable), or,
	// before the first one, from when this process first saw something due.
	ref := st.LastSettled
	if ref == 0 {
		ref = s.dueSince
	}
	if due.Cmp(p.Threshold) < 0 && (p.Interval == 0 || uint64(now) < uint64(ref)+uint64(p.Interval)) {
		return Report{Action: "waiting", Due: due, Detail: fmt.Sprintf("due %s nanoTON below threshold %s", due, p.Threshold)}, nil
	}
	return s.plan(ctx, st, now)
}

func (s *Settler) now(ctx context.Context) (uint32, error) {
	s.hook("chain-now")
	return s.c.Chain.Now(ctx)
}

func (s *Settler) walletState(ctx context.Context) (WalletState, error) {
	s.hook("chain-wallet")
	return s.c.Chain.Wallet(ctx, s.wallet.Address())
}

func (s *Settler) pause(reason string) (Report, error) {
	s.log.Error("payout paused: ACTION REQUIRED", "reason", reason)
	if err := s.c.Ledger.Pause(reason); err != nil {
		return Report{}, err
	}
	return Report{Action: "paused", Detail: reason}, nil
}

func (s *Settler) plan(ctx context.Context, st *State, now uint32) (Report, error) {
	s.hook("chain-channel")
	chst, err := s.c.Chain.Channel(ctx, s.chAddr)
	if err != nil {
		return Report{}, fmt.Errorf("settle: read channel %s: %w", s.chRaw, err)
	}
	if chst.State(now) != channel.StateOpen {
		return Report{Action: "waiting", Detail: fmt.Sprintf("channel %s is not open (state %d)", s.chRaw, chst.State(now))}, nil
	}
	if w := chst.Balance.WithdrawB; w == nil || w.Cmp(st.ConfirmedTotal()) != 0 {
		return s.pause(fmt.Sprintf("channel %s has withdrawB %v on chain but the ledger confirmed %s", s.chRaw, w, st.ConfirmedTotal()))
	}
	ws, err := s.walletState(ctx)
	if err != nil {
		return Report{}, err
	}
	if r, ok := s.funded(ws); !ok {
		return r, nil
	}
	a, err := (payment.PaymentState{Channel: s.chRaw, State: st.Accepted.State}).Signed()
	if err != nil {
		return Report{}, err
	}
	seqB := max(st.LastSeqnoB, chst.CommittedSeqnoB) + 1
	c, _, err := chst.WithdrawB(a.State.Data, channel.SemiState{Seqno: seqB, Sent: new(big.Int)})
	if err != nil {
		return Report{Action: "waiting", Detail: err.Error()}, nil
	}
	if c.WithdrawB.Cmp(st.Earned()) > 0 {
		return s.pause(fmt.Sprintf("channel %s: commit would withdraw %s, more than the %s earned (B has deposits?)", s.chRaw, c.WithdrawB, st.Earned()))
	}
	kb, err := s.c.ChannelKey.PrivateKey()
	if err != nil {
		return Report{}, err
	}
	_, sc, err := payment.NewCommitRequest(s.c.Channel, kb, c)
	if err != nil {
		return Report{}, err
	}
	id := IntentID(s.chRaw, c.WithdrawB)
	attempt := 1
	if prev := st.Intents[id]; prev != nil {
		attempt = prev.Attempt + 1
	}
	in := Intent{
		ID: id, Status: Planned, Attempt: attempt,
		Target: c.WithdrawB.String(), Amount: new(big.Int).Sub(c.WithdrawB, st.ConfirmedTotal()).String(),
		SeqnoA: c.SeqnoA, SentA: c.SentA.String(), SeqnoB: c.SeqnoB, WithdrawA: c.WithdrawA.String(),
		SigB: hex.EncodeToString(sc.SigB[:]), At: now,
	}
	if err := s.c.Ledger.Record(in); err != nil {
		return Report{}, err
	}
	s.log.Info("payout planned", "intent", id, "amount", in.Amount, "target", in.Target, "seqno_a", c.SeqnoA, "seqno_b", c.SeqnoB)
	return s.advance(ctx, s.c.Ledger.State(), &in)
}

func (s *Settler) funded(ws WalletState) (Report, bool) {
	need := new(big.Int).Add(s.c.Policy.Attach, s.c.Policy.Reserve)
	if ws.Balance == nil || ws.Balance.Cmp(need) < 0 {
		return Report{Action: "underfunded", Detail: fmt.Sprintf("ACTION REQUIRED: fund gas wallet %s: balance %v nanoTON, a settlement needs %s (attach %s + reserve %s)",
			s.wallet.Address().String(), ws.Balance, need, s.c.Policy.Attach, s.c.Policy.Reserve)}, false
	}
	return Report{}, true
}

// advance moves the open intent on.
func (s *Settler) advance(ctx context.Context, st *State, in *Intent) (Report, error) {
	switch in.Status {
	case Planned:
		return s.cosignAndSend(ctx, in)
	case Signed, Sent:
		return s.reconcile(ctx, in)
	}
	return Report{}, fmt.Errorf("intent %s: cannot advance from %s", in.ID, in.Status)
}

func (s *Settler) signedCommit(in *Intent) (channel.SignedCommit, error) {
	c, err := in.Commit(s.c.Channel.ID)
	if err != nil {
		return channel.SignedCommit{}, err
	}
	sc := channel.SignedCommit{Commit: c}
	b, err := hex.DecodeString(in.SigB)
	if err != nil || len(b) != 64 {
		return sc, fmt.Errorf("intent %s: bad sig_b", in.ID)
	}
	copy(sc.SigB[:], b)
	return sc, nil
}

func (s *Settler) cosignAndSend(ctx context.Context, in *Intent) (Report, error) {
	sc, err := s.signedCommit(in)
	if err != nil {
		return Report{}, err
	}
	body, err := sc.Body()
	if err != nil {
		return Report{}, err
	}
	req := payment.CommitRequest{Channel: s.chRaw, Commit: base64.StdEncoding.EncodeToString(body.ToBOC())}
	s.hook("cosign")
	resp, err := s.c.CoSigner.CoSign(ctx, req)
	if errors.Is(err, ErrRefused) {
		f := *in
		f.Status, f.Reason = Failed, err.Error()
		if err := s.c.Ledger.Record(f); err != nil {
			return Report{}, err
		}
		return Report{Action: "failed", Intent: in.ID, Detail: f.Reason}, nil
	}
	if err != nil {
		return Report{}, fmt.Errorf("intent %s: co-sign: %w", in.ID, err)
	}
	full, err := resp.Complete(s.c.Channel, sc)
	if err != nil {
		return Report{}, fmt.Errorf("intent %s: %w", in.ID, err)
	}
	now, err := s.now(ctx)
	if err != nil {
		return Report{}, err
	}
	ws, err := s.walletState(ctx)
	if err != nil {
		return Report{}, err
	}
	if r, ok := s.funded(ws); !ok {
		r.Intent = in.ID
		return r, nil
	}
	kw, err := s.c.WalletKey.PrivateKey()
	if err != nil {
		return Report{}, err
	}
	cbody, err := full.Body()
	if err != nil {
		return Report{}, err
	}
	msg := &wallet.Message{Mode: SendMode, InternalMessage: &tlb.InternalMessage{
		IHRDisabled: true, Bounce: true, DstAddr: s.chAddr, Amount: tlb.FromNanoTON(s.c.Policy.Attach), Body: cbody,
	}}
	validUntil := now + s.c.Policy.TTL
	ext, err := s.wallet.External(kw, ws.Seqno, validUntil, !ws.Active, []*wallet.Message{msg})
	if err != nil {
		return Report{}, err
	}
	ec, err := tlb.ToCell(ext)
	if err != nil {
		return Report{}, err
	}
	sg := *in
	sg.Status, sg.SigA, sg.At = Signed, hex.EncodeToString(full.SigA[:]), now
	sg.WalletSeqno, sg.ValidUntil = ws.Seqno, validUntil
	sg.ExtBOC, sg.ExtHash = base64.StdEncoding.EncodeToString(ec.ToBOC()), hex.EncodeToString(ec.Hash())
	sg.BodyHash = hex.EncodeToString(ext.Body.Hash())
	if err := s.c.Ledger.Record(sg); err != nil {
		return Report{}, err
	}
	s.log.Info("payout signed", "intent", in.ID, "wallet_seqno", ws.Seqno, "valid_until", validUntil, "ext_hash", sg.ExtHash)
	return s.send(ctx, &sg, "sent")
}

// send broadcasts the recorded external (the same bytes every time).
func (s *Settler) send(ctx context.Context, in *Intent, action string) (Report, error) {
	boc, err := base64.StdEncoding.DecodeString(in.ExtBOC)
	if err != nil {
		return Report{}, fmt.Errorf("intent %s: ext_boc: %w", in.ID, err)
	}
	s.hook("chain-before-send")
	if err := s.c.Chain.SendExternal(ctx, boc); err != nil {
		return Report{}, fmt.Errorf("intent %s: broadcast: %w", in.ID, err)
	}
	s.hook("chain-after-send")
	if in.Status == Signed {
		sn := *in
		sn.Status = Sent
		if err := s.c.Ledger.Record(sn); err != nil {
			return Report{}, err
		}
	}
	return Report{Action: action, Intent: in.ID}, nil
}

// reconcile settles what became of a signed or sent external, judged by
// the chain alone (ton-host.md C.2).
func (s *Settler) reconcile(ctx context.Context, in *Intent) (Report, error) {
	now, err := s.now(ctx) // time first: chain time only grows
	if err != nil {
		return Report{}, err
	}
	ws, err := s.walletState(ctx)
	if err != nil {
		return Report{}, err
	}
	switch {
	case ws.Seqno < in.WalletSeqno:
		return s.pause(fmt.Sprintf("intent %s: gas wallet seqno %d is below the recorded %d (another wallet or a rollback)", in.ID, ws.Seqno, in.WalletSeqno))
	case ws.Seqno == in.WalletSeqno:
		if uint64(now) < uint64(in.ValidUntil)+uint64(s.c.Policy.Skew) {
			return s.send(ctx, in, "resent")
		}
		e := *in
		e.Status, e.At, e.Reason = Expired, now, fmt.Sprintf("wallet seqno %d unused at chain time %d, valid_until %d", ws.Seqno, now, in.ValidUntil)
		if err := s.c.Ledger.Record(e); err != nil {
			return Report{}, err
		}
		return Report{Action: "expired", Intent: in.ID, Detail: e.Reason}, nil
	}
	// The seqno moved on: our external ran, or something else used it.
	hash, _ := hex.DecodeString(in.ExtHash)
	s.hook("chain-find-wallet-tx")
	wtx, err := s.c.Chain.FindTx(ctx, s.wallet.Address(), hash, in.At-min(in.At, 600))
	if errors.Is(err, ErrTxNotFound) {
		return s.pause(fmt.Sprintf("intent %s: gas wallet seqno advanced to %d past our %d, but no wallet transaction carries our external %s: another sender uses this wallet",
			in.ID, ws.Seqno, in.WalletSeqno, in.ExtHash))
	}
	if err != nil {
		return Report{}, err
	}
	out, err := commitOut(wtx, s.chAddr)
	if err != nil {
		f := *in
		f.Status, f.At, f.Reason, f.WalletTx = Failed, now, err.Error(), hex.EncodeToString(wtx.Hash)
		if err := s.c.Ledger.Record(f); err != nil {
			return Report{}, err
		}
		return Report{Action: "failed", Intent: in.ID, Detail: f.Reason}, nil
	}
	s.hook("chain-find-channel-tx")
	ctx2, err := s.c.Chain.FindTx(ctx, s.chAddr, out, in.At-min(in.At, 600))
	if errors.Is(err, ErrTxNotFound) {
		return Report{Action: "pending", Intent: in.ID, Detail: "wallet transaction done, channel transaction not yet seen"}, nil
	}
	if err != nil {
		return Report{}, err
	}
	d := *in
	d.At, d.WalletTx, d.TxHash, d.TxLT = now, hex.EncodeToString(wtx.Hash), hex.EncodeToString(ctx2.Hash), ctx2.LT
	if exit, ok := txSucceeded(ctx2); !ok {
		d.Status, d.ExitCode, d.Reason = Bounced, exit, fmt.Sprintf("channel refused the commit with exit code %d", exit)
		if err := s.c.Ledger.Record(d); err != nil {
			return Report{}, err
		}
		s.log.Error("payout bounced: ACTION REQUIRED", "intent", in.ID, "exit", exit)
		return Report{Action: "bounced", Intent: in.ID, Detail: d.Reason}, nil
	}
	// Cross-check with the channel's storage: the cumulative withdrawal
	// reached the target (a later commit may have moved it further).
	s.hook("chain-channel")
	chst, err := s.c.Chain.Channel(ctx, s.chAddr)
	if err != nil {
		return Report{}, err
	}
	target, _ := amount("", in.Target)
	if chst.Balance.WithdrawB == nil || chst.Balance.WithdrawB.Cmp(target) < 0 || chst.CommittedSeqnoB < in.SeqnoB {
		return s.pause(fmt.Sprintf("intent %s: channel transaction %s succeeded but withdrawB on chain is %v, below the target %s", in.ID, d.TxHash, chst.Balance.WithdrawB, target))
	}
	d.Status = Confirmed
	if err := s.c.Ledger.Record(d); err != nil {
		return Report{}, err
	}
	s.log.Info("payout confirmed", "intent", in.ID, "amount", in.Amount, "tx", d.TxHash, "lt", d.TxLT)
	return Report{Action: "confirmed", Intent: in.ID}, nil
}

// commitOut checks the wallet transaction sent our one message to the
// channel and returns that message's cell hash.
func commitOut(tx *tlb.Transaction, ch *address.Address) ([]byte, error) {
	if exit, ok := txSucceeded(tx); !ok {
		return nil, fmt.Errorf("wallet transaction %x failed (exit %d): nothing was sent", tx.Hash, exit)
	}
	if tx.IO.Out == nil {
		return nil, fmt.Errorf("wallet transaction %x sent nothing", tx.Hash)
	}
	list, err := tx.IO.Out.ToSlice()
	if err != nil {
		return nil, err
	}
	var found []byte
	for _, m := range list {
		im, ok := m.Msg.(*tlb.InternalMessage)
		if !ok || !im.DstAddr.Equals(ch) {
			continue
		}
		c, err := tlb.ToCell(m.Msg)
		if err != nil {
			return nil, err
		}
		if found != nil {
			return nil, fmt.Errorf("wallet transaction %x sent two messages to the channel", tx.Hash)
		}
		found = c.Hash()
	}
	if found == nil {
		return nil, fmt.Errorf("wallet transaction %x sent no message to the channel", tx.Hash)
	}
	return found, nil
}

// txSucceeded reports whether compute and action phases succeeded, with
// the compute exit code.
func txSucceeded(tx *tlb.Transaction) (int32, bool) {
	d, ok := tx.Description.(tlb.TransactionDescriptionOrdinary)
	if !ok {
		return -1, false
	}
	vm, ok := d.ComputePhase.Phase.(tlb.ComputePhaseVM)
	if !ok {
		return -1, false
	}
	ok = vm.Success && (vm.Details.ExitCode == 0 || vm.Details.ExitCode == 1) &&
		!d.Aborted && d.ActionPhase != nil && d.ActionPhase.Success
	return vm.Details.ExitCode, ok
}
