package payouttest

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math/big"

	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"
)

// Key derives a fixed test key from one byte.
func Key(b byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = b
	}
	return ed25519.NewKeyFromSeed(seed)
}

// Addr is a fixed basechain address made of one byte.
func Addr(b byte) *address.Address {
	d := make([]byte, 32)
	for i := range d {
		d[i] = b
	}
	return address.NewAddress(0, 0, d)
}

// TON converts a decimal TON string to nanoTON.
func TON(s string) *big.Int { return tlb.MustFromTON(s).Nano() }

// Fixture is a channel between the proxy (A) and the worker (B) paying
// the owner, with the worker's gas wallet.
type Fixture struct {
	KeyA, KeyB, KeyWallet ed25519.PrivateKey
	Config                channel.Config
	ChannelAddr           *address.Address
	Owner, ProxyWallet    *address.Address
	Wallet                *payout.V5R1
}

// NewFixture builds the fixed test channel.
func NewFixture() (*Fixture, error) {
	f := &Fixture{KeyA: Key(0xA1), KeyB: Key(0xB2), KeyWallet: Key(0xC3), Owner: Addr(0x0B), ProxyWallet: Addr(0xA0)}
	f.Config = channel.Config{
		KeyA: f.KeyA.Public().(ed25519.PublicKey), KeyB: f.KeyB.Public().(ed25519.PublicKey),
		ID:      channel.ID{0xc4, 0x71, 0x5a, 0x11, 0xde, 0xad, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		Closing: channel.ClosingConfig{QuarantineDuration: 3600, MisbehaviorFine: TON("0.1"), ConditionalCloseDuration: 1800},
		Payment: channel.PaymentConfig{StorageFee: TON("0.05"), DestA: Addr(0xAA), DestB: f.Owner},
	}
	var err error
	if f.ChannelAddr, err = f.Config.Address(); err != nil {
		return nil, err
	}
	if f.Wallet, err = payout.NewV5R1(f.KeyWallet.Public().(ed25519.PublicKey), wallet.MainnetGlobalID); err != nil {
		return nil, err
	}
	return f, nil
}

// Deploy deploys and initialises the channel from the proxy's wallet,
// tops A's deposit up, and funds the (not yet deployed) gas wallet with a
// non-bounceable transfer.
func (f *Fixture) Deploy(c *Chain, deposit, gas *big.Int) error {
	si, err := f.Config.StateInit()
	if err != nil {
		return err
	}
	init, err := channel.InitBody(f.KeyA, true, f.Config.ID)
	if err != nil {
		return err
	}
	if err := c.Deliver(f.ProxyWallet, f.ChannelAddr, TON("0.1"), true, init, si); err != nil {
		return err
	}
	if err := c.Deliver(f.ProxyWallet, f.ChannelAddr, new(big.Int).Add(deposit, channel.FeeTopUp), true, channel.TopUpBody(true), nil); err != nil {
		return err
	}
	st, err := c.Channel(context.Background(), f.ChannelAddr)
	if err != nil {
		return err
	}
	if !st.Initialized || st.Balance.DepositA.Cmp(deposit) != 0 {
		return fmt.Errorf("channel deploy: initialized %v, deposit A %s", st.Initialized, st.Balance.DepositA)
	}
	if gas.Sign() > 0 {
		return c.Deliver(Addr(0xFA), f.Wallet.Address(), gas, false, nil, nil)
	}
	return nil
}

// Proxy is the payer's side: it signs cumulative states and co-signs
// commits that match a state it signed, through the published formats.
type Proxy struct {
	f *Fixture
	// Issued maps each state seqno the proxy signed to its sent amount.
	Issued map[uint64]*big.Int
	Seqno  uint64
	Sent   *big.Int
	// Refuse makes CoSign refuse (payout.ErrRefused).
	Refuse bool
}

// NewProxy starts a proxy that has signed nothing.
func NewProxy(f *Fixture) *Proxy {
	return &Proxy{f: f, Issued: map[uint64]*big.Int{}, Sent: new(big.Int)}
}

// Pay adds amount nanoTON to the cumulative total and signs the new state.
func (p *Proxy) Pay(amount *big.Int) (payment.PaymentState, error) {
	return p.State(p.Seqno+1, new(big.Int).Add(p.Sent, amount))
}

// State signs a state with the given seqno and cumulative sent.
func (p *Proxy) State(seqno uint64, sent *big.Int) (payment.PaymentState, error) {
	s, err := channel.Sign(p.f.KeyA, channel.SemiChannel{ID: p.f.Config.ID, Data: channel.SemiState{Seqno: seqno, Sent: sent}})
	if err != nil {
		return payment.PaymentState{}, err
	}
	p.Issued[seqno] = new(big.Int).Set(sent)
	if seqno > p.Seqno {
		p.Seqno, p.Sent = seqno, new(big.Int).Set(sent)
	}
	return payment.NewPaymentState(p.f.Config, s)
}

// CoSign implements payout.CoSigner with the proxy's checks.
func (p *Proxy) CoSign(_ context.Context, req payment.CommitRequest) (payment.CommitResponse, error) {
	sc, err := req.Open(p.f.Config)
	if err != nil {
		return payment.CommitResponse{}, fmt.Errorf("%w: %v", payout.ErrRefused, err)
	}
	if p.Refuse {
		return payment.CommitResponse{}, fmt.Errorf("%w: test proxy refuses", payout.ErrRefused)
	}
	c := sc.Commit
	issued, ok := p.Issued[c.SeqnoA]
	if !ok || issued.Cmp(c.SentA) != 0 {
		return payment.CommitResponse{}, fmt.Errorf("%w: commit names state seqno %d sent %s, which the proxy did not sign", payout.ErrRefused, c.SeqnoA, c.SentA)
	}
	if c.SentB.Sign() != 0 || c.WithdrawB.Cmp(c.SentA) > 0 {
		return payment.CommitResponse{}, fmt.Errorf("%w: commit withdraws %s of %s", payout.ErrRefused, c.WithdrawB, c.SentA)
	}
	return payment.SignCommit(p.f.Config, p.f.KeyA, c)
}

var _ payout.CoSigner = (*Proxy)(nil)
