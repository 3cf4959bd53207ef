package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chrysalis-cc/chrysalis/agent/api"
	"github.com/chrysalis-cc/chrysalis/agent/boot"
	"github.com/chrysalis-cc/chrysalis/agent/payout"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

// ledgerPath is the payout ledger on the persistent disk.
var ledgerPath = filepath.Join(guest.PersistentMountPoint, "payout", "ledger.jsonl")

// payments is the worker's side of its payment channel: the ledger on the
// persistent disk, the receipt signer (channel key B, numbering kept in
// the ledger) and the proxy-facing endpoints /v1/payment/*.
type payments struct {
	ledger     *payout.Ledger
	signer     *payout.ReceiptSigner
	handler    http.Handler
	receiptKey string
	settle     *settlement
	closeOnce  sync.Once
	closeErr   error
}

// startPayments sets up payments when the measured config names a
// channel: keys from the owner's payout secret (the config already
// checked that they derive the measured worker key), the persistent disk
// mounted, the ledger opened and bound to the channel and gas wallet. A
// channel without the persistent disk is an error: receipts numbered in
// memory would repeat after a restart.
func startPayments(log *slog.Logger, cfg *guest.Config) (*payments, error) {
	if cfg.Measured.Payment == nil {
		return nil, nil
	}
	if err := mountPersistent(log); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(ledgerPath), 0o700); err != nil {
		return nil, err
	}
	l, err := payout.OpenLedger(ledgerPath, nil)
	if err != nil {
		return nil, err
	}
	p, err := bindPayments(l, cfg, dialLiteservers, log)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("payout ledger %s: %w", ledgerPath, err)
	}
	return p, nil
}

// bindPayments binds an open ledger to the configured channel and the gas
// wallet, builds the receipt signer and the endpoints, and starts
// settlement (through dial) when the config gives chain access.
func bindPayments(l *payout.Ledger, cfg *guest.Config, dial dialChain, log *slog.Logger) (*payments, error) {
	ck, wk, err := cfg.PayoutKeys()
	if err != nil {
		return nil, err
	}
	chCfg, n, err := cfg.Measured.Channel()
	if err != nil {
		return nil, err
	}
	ch, err := chCfg.Address()
	if err != nil {
		return nil, err
	}
	w, err := payout.NewV5R1(wk.Public().(ed25519.PublicKey), n.GlobalID())
	if err != nil {
		return nil, err
	}
	if err := l.Bind(chCfg, payment.RawAddress(w.Address())); err != nil {
		return nil, err
	}
	key, err := payout.NewSecretKey(ck.Seed())
	if err != nil {
		return nil, err
	}
	wKey, err := payout.NewSecretKey(wk.Seed())
	if err != nil {
		return nil, err
	}
	threshold, err := cfg.Measured.Payment.Threshold()
	if err != nil {
		return nil, err
	}
	signer, err := payout.NewReceiptSigner(l, key, payment.RawAddress(ch))
	if err != nil {
		return nil, err
	}
	pub := hex.EncodeToString(ck.Public().(ed25519.PublicKey))
	sum := payout.Summarize(l.State())
	log.Info("payments", "channel", payment.RawAddress(ch), "worker_key", pub, "gas_wallet", w.Address().String(),
		"earned", sum.Earned, "settled", sum.Settled, "receipts", sum.Receipts)
	relay := &payout.Relay{}
	setLog := log.With("component", "settlement")
	// The settler's configuration (its Chain comes when dialled): keys
	// from the owner's secret, the settle policy from the measured terms,
	// the proxy's co-signatures through the endpoints' relay.
	sc := payout.Config{
		Ledger: l, CoSigner: relay, Channel: chCfg,
		ChannelKey: key, WalletKey: wKey, NetworkGlobalID: n.GlobalID(),
		Policy: payout.Policy{
			Threshold: threshold, Interval: cfg.Measured.Payment.SettleIntervalSeconds,
			Attach: settleAttach, Reserve: settleReserve,
		},
		Log: setLog,
	}
	return &payments{
		ledger:     l,
		signer:     signer,
		handler:    payout.Handler(l, relay, time.Now, log.With("component", "payout")),
		receiptKey: pub,
		settle:     startSettlement(cfg.TONChain, sc, dial, setLog),
	}, nil
}

// mountPersistent mounts the persistent disk (ext4, made by the host) at
// guest.PersistentMountPoint: no devices, no setuid, nothing executable.
func mountPersistent(log *slog.Logger) error {
	dev, err := boot.WaitFor(10*time.Second, func() (string, error) { return boot.FindBlockBySerial("/sys", guest.PersistentDiskSerial) })
	if err != nil {
		return fmt.Errorf("measured.payment needs the persistent disk (virtio serial %s) for the payout ledger: %w", guest.PersistentDiskSerial, err)
	}
	if err := os.MkdirAll(guest.PersistentMountPoint, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, guest.PersistentMountPoint, "ext4", unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, "errors=remount-ro"); err != nil {
		return fmt.Errorf("mount the persistent disk %s (ext4) at %s: %w", dev, guest.PersistentMountPoint, err)
	}
	log.Info("persistent disk", "device", dev, "mount", guest.PersistentMountPoint)
	return nil
}

// receiptSigner is the API's receipt signer (nil without a channel).
func (p *payments) receiptSigner() api.Signer {
	if p == nil {
		return nil
	}
	return p.signer
}

// claimKey is the claims' receipt_key ("" without a channel).
func (p *payments) claimKey() string {
	if p == nil {
		return ""
	}
	return p.receiptKey
}

// mount adds the payment endpoints to mux (nothing without a channel).
func (p *payments) mount(mux *http.ServeMux) {
	if p != nil {
		mux.Handle("/v1/payment/", p.handler)
	}
}

// earnings is the ledger summary for the status channel: one line for
// StatusReport.Earnings (alarms first, at most 256 bytes) and the whole
// Summary for StatusReport.Payout (nil without a channel).
func (p *payments) earnings() (string, *payment.Summary) {
	if p == nil {
		return guest.EarningsNA, nil
	}
	s := p.ledger.Summary()
	s.Settler = payment.ClipText(p.settle.String())
	line := fmt.Sprintf("earned %s nanoTON, settled %s, pending %s, %d receipts (%s claimed)", s.Earned, s.Settled, s.Pending, s.Receipts, s.Claimed)
	if s.Paused != "" {
		line = "SETTLEMENT PAUSED; " + line
	}
	if s.LedgerError != "" {
		line = "LEDGER ERROR (see chrysalis payout status); " + line
	}
	if len(line) > guest.MaxEarningsBytes {
		line = line[:guest.MaxEarningsBytes] // ASCII only
	}
	return line, &s
}

// close closes the ledger and unmounts the persistent disk (once).
func (p *payments) close() error {
	if p == nil {
		return nil
	}
	p.closeOnce.Do(func() {
		p.settle.stop()
		p.closeErr = errors.Join(p.ledger.Close(), unix.Unmount(guest.PersistentMountPoint, 0))
	})
	return p.closeErr
}
