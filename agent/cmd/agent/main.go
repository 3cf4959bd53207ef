// Command agent is the guest's PID 1 payload, started by u-root's init as
// uinit. It loads kernel modules, reads and measures the config disk,
// detects the TEE, brings up the network, issues its RA-TLS identity and
// serves the attested API. On a fatal error it reports "failed" on the
// status channel and powers off; it never returns to init.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chrysalis-cc/chrysalis/agent/attest"
	"github.com/chrysalis-cc/chrysalis/agent/boot"
	agpu "github.com/chrysalis-cc/chrysalis/agent/gpu"
	"github.com/chrysalis-cc/chrysalis/agent/ratls"
	"github.com/chrysalis-cc/chrysalis/agent/rtmr"
	"github.com/chrysalis-cc/chrysalis/agent/server"
	"github.com/chrysalis-cc/chrysalis/agent/verity"
	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/evidence"
	mgpu "github.com/chrysalis-cc/chrysalis/measure/gpu"
	"github.com/chrysalis-cc/chrysalis/measure/gpu/ocsp"
	"github.com/chrysalis-cc/chrysalis/measure/gpu/rim"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/guest/configdisk"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

func main() {
	log := slog.New(agentLogs.Wrap(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo})))
	log = log.With("component", "agent")
	st := openStatus(log)
	err := run(log, st)
	log.Error("agent failed", "err", err)
	st.Send(guest.Status{State: guest.StateFailed, Detail: err.Error()})
	time.Sleep(500 * time.Millisecond)
	if perr := boot.PowerOff(); perr != nil {
		log.Error("power off", "err", perr)
	}
	select {}
}

// openModel opens the model disk through dm-verity with the root hash the
// measured config names, mounts it read-only and records the model event.
// A model disk the config does not name, or a configured model without its
// disks, is an error: the agent never serves unmeasured weights.
func openModel(log *slog.Logger, cfg *guest.Config, rec *rtmr.Recorder) error {
	m := cfg.Measured
	find := func(serial string) (string, error) {
		return boot.FindBlockBySerial("/sys", serial)
	}
	if m.ModelRoot != "" {
		// The disks are probed asynchronously; the config names them.
		find = func(serial string) (string, error) {
			return boot.WaitFor(10*time.Second, func() (string, error) { return boot.FindBlockBySerial("/sys", serial) })
		}
	}
	data, derr := find(guest.ModelDiskSerial)
	if m.ModelRoot == "" {
		if derr == nil {
			return fmt.Errorf("a model disk (%s) is attached but the measured config names no model_root: refusing to use it", data)
		}
		return nil
	}
	if derr != nil {
		return fmt.Errorf("the measured config names model %s but no model disk is attached: %w", m.Model, derr)
	}
	hash, err := find(guest.ModelVerityDiskSerial)
	if err != nil {
		return fmt.Errorf("model %s: no verity hash disk: %w", m.Model, err)
	}
	root, err := hex.DecodeString(m.ModelRoot)
	if err != nil {
		return err
	}
	dev, err := verity.Open("model", data, hash, root, verity.Options{})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(guest.ModelMountPoint, 0o755); err != nil {
		return err
	}
	// squashfs refuses to mount when its superblock does not verify, so a
	// wrong root fails here rather than at the first request.
	// Executable: the disk may carry the inference engine, which is as
	// measured as the weights (its bytes are under the verity root).
	if err := unix.Mount(dev.Path, guest.ModelMountPoint, "squashfs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		dev.Close()
		return fmt.Errorf("mount %s (dm-verity over %s, root %s) at %s: %w", dev.Path, data, m.ModelRoot, guest.ModelMountPoint, err)
	}
	files, size := 0, int64(0)
	err = filepath.WalkDir(guest.ModelMountPoint, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files++
		size += info.Size()
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing the model: %w", err)
	}
	ev, err := event.New(event.NameModel, 1, event.ModelPayload{Name: m.Model, RootHash: m.ModelRoot})
	if err != nil {
		return err
	}
	d, err := rec.Record(ev)
	if err != nil {
		return fmt.Errorf("measure model: %w", err)
	}
	log.Info("model mounted", "model", m.Model, "root", m.ModelRoot, "device", dev.Path, "files", files, "bytes", size)
	log.Info("rtmr3 event", "name", ev.Name, "digest", d.String())
	return nil
}

// GPU policy of the agent: RIMs bundled in the image first, then NVIDIA's
// RIM service (cached in memory-backed /run after signature checks);
// OCSP soft-fail (revocations fail, an unreachable responder is recorded).
const (
	bundledRIMs = "/etc/chrysalis/rims"
	rimCache    = "/run/chrysalis/rims"
	rimService  = "https://rim.attestation.nvidia.com"
)

// attestGPUs is the GPU gate: with GPUs in the measured config, attest
// every one (agent/gpu.Boot: verified before the ready state is set),
// record the gpu event, and return the RA-TLS option that puts fresh GPU
// evidence in every bundle. Any failure stops the boot: the worker never
// serves on unattested GPUs.
func attestGPUs(log *slog.Logger, cfg *guest.Config, rec *rtmr.Recorder) ([]ratls.Option, error) {
	want := cfg.Measured.GPUs
	if want == 0 {
		return nil, nil
	}
	col, err := agpu.NewNVML("")
	if err != nil {
		return nil, fmt.Errorf("gpu: the measured config expects %d GPUs: %w", want, err)
	}
	pol := mgpu.Policy{
		RIMs: rim.Chain(rim.DirStore{Dir: bundledRIMs}, &rim.HTTPStore{
			BaseURL: rimService, Client: &http.Client{Timeout: 10 * time.Second},
			Cache: &rim.DirStore{Dir: rimCache}, Root: mgpu.CoRIMRoot(),
		}),
		OCSP: &ocsp.Checker{URL: ocsp.DefaultURL, Policy: ocsp.SoftFail, Timeout: ocsp.DefaultTimeout, Cache: ocsp.NewCache(ocsp.DefaultCacheTTL)},
	}
	var nonce [32]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	evs, claims, err := agpu.Boot(ctx, col, pol, nonce)
	if err != nil {
		return nil, err
	}
	if len(evs) != want {
		col.SetReady(false)
		return nil, fmt.Errorf("gpu: the measured config expects %d GPUs, the driver shows %d", want, len(evs))
	}
	payload := event.GPUPayload{Policy: pol.Doc().Hash()}
	for i, e := range evs {
		d := e.Digest()
		payload.GPUs = append(payload.GPUs, event.GPUPayloadEntry{UUID: e.UUID, DriverVersion: e.DriverVersion, VBIOSVersion: e.VBIOSVersion, Evidence: hex.EncodeToString(d[:])})
		log.Info("gpu attested", "uuid", e.UUID, "driver", e.DriverVersion, "vbios", e.VBIOSVersion, "hwmodel", claims[i].HWModel, "rim_chains_not_after", claims[i].RIMChainsNotAfter)
	}
	ev, err := event.New(event.NameGPU, 1, payload)
	if err != nil {
		return nil, err
	}
	d, err := rec.Record(ev)
	if err != nil {
		return nil, fmt.Errorf("measure gpu: %w", err)
	}
	log.Info("rtmr3 event", "name", ev.Name, "digest", d.String(), "gpus", len(evs))
	return []ratls.Option{ratls.WithGPU(func(n [32]byte) ([]mgpu.Evidence, error) { return agpu.Collect(col, n) })}, nil
}

// routes serves the attestation API and, with a model, the inference API,
// and with a payment channel the payment endpoints.
func routes(attestation http.Handler, inf *inference, pay *payments) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", attestation)
	inf.mount(mux)
	pay.mount(mux)
	return mux
}

// recordPayout measures where this worker's earnings go: the owner address
// of the measured config, normalised, as the RTMR3 payout event.
func recordPayout(log *slog.Logger, cfg *guest.Config, rec *rtmr.Recorder) error {
	m := cfg.Measured
	if m.OwnerAddress == "" {
		return nil
	}
	n, err := payment.ParseNetwork(m.TONNetwork)
	if err != nil {
		return err
	}
	a, err := payment.ParseOwnerAddress(m.OwnerAddress, n)
	if err != nil {
		return err
	}
	ev, err := event.New(event.NamePayout, 1, a.Event())
	if err != nil {
		return err
	}
	d, err := rec.Record(ev)
	if err != nil {
		return err
	}
	log.Info("rtmr3 event", "name", ev.Name, "digest", d.String(), "owner", a.String(), "network", n)
	return nil
}

// openStatus finds the status port; without one (a host that does not
// attach it) the agent runs and simply does not report.
func openStatus(log *slog.Logger) *boot.StatusChannel {
	p, err := boot.WaitFor(5*time.Second, func() (string, error) { return boot.FindVirtioPort("/sys", guest.StatusPortName) })
	if err != nil {
		log.Warn("no status channel", "err", err)
		return nil
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		log.Warn("status channel", "port", p, "err", err)
		return nil
	}
	log.Info("status channel", "port", p)
	return boot.NewStatusChannel(f, log)
}

func run(log *slog.Logger, st *boot.StatusChannel) error {
	start := time.Now()
	st.Send(guest.Status{State: guest.StateBooting})

	mods, err := boot.LoadModules(boot.ModulesDir)
	if err != nil {
		return err
	}
	for _, m := range mods {
		if m.Err != nil {
			log.Info("module not loaded", "module", m.File, "err", m.Err)
		}
	}
	log.Info("modules loaded", "count", len(mods))
	if err := boot.MountConfigfs(); err != nil {
		return err
	}

	dev, err := boot.WaitFor(10*time.Second, func() (string, error) { return boot.FindBlockBySerial("/sys", guest.ConfigDiskSerial) })
	if err != nil {
		return fmt.Errorf("config disk: %w", err)
	}
	cfg, _, err := configdisk.Read(dev)
	if err != nil {
		return fmt.Errorf("config disk %s: %w", dev, err)
	}
	if cfg.Measured.Debug {
		log = slog.New(agentLogs.Wrap(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))).With("component", "agent")
	}
	log.Info("config", "disk", dev, "instance", cfg.Measured.Instance)

	issuer, why, err := attest.Detect()
	if err != nil {
		return err
	}
	tee := string(issuer.Type())
	log.Info("tee", "type", tee, "why", why)
	var reg rtmr.Register = &rtmr.Software{}
	if issuer.Type() == evidence.TypeTDX {
		reg = rtmr.TDX{}
	}
	rec := rtmr.NewRecorder(reg)

	mb, err := cfg.MeasuredBytes()
	if err != nil {
		return err
	}
	ev, err := event.New(event.NameConfig, 1, json.RawMessage(mb))
	if err != nil {
		return err
	}
	d, err := rec.Record(ev)
	if err != nil {
		return fmt.Errorf("measure config: %w", err)
	}
	log.Info("rtmr3 event", "name", ev.Name, "digest", d.String(), "register", reg.Source())

	if err := recordPayout(log, cfg, rec); err != nil {
		return fmt.Errorf("payout identity: %w", err)
	}

	if err := openModel(log, cfg, rec); err != nil {
		return fmt.Errorf("model: %w", err)
	}

	ifname, err := boot.Network(cfg.Network, 10*time.Second)
	if err != nil {
		return err
	}
	log.Info("network", "link", ifname, "address", cfg.Network.Address, "gateway", cfg.Network.Gateway)

	gpuSrc, err := attestGPUs(log, cfg, rec)
	if err != nil {
		return err
	}
	pay, err := startPayments(log, cfg)
	if err != nil {
		return fmt.Errorf("payments: %w", err)
	}
	defer pay.close()
	inf, err := startInference(log, cfg, pay.receiptSigner())
	if err != nil {
		return fmt.Errorf("inference: %w", err)
	}
	defer inf.stop()

	ready, _ := event.New(event.NameReady, 1, struct{}{})
	if d, err = rec.Record(ready); err != nil {
		return fmt.Errorf("measure ready: %w", err)
	}
	log.Info("rtmr3 event", "name", ready.Name, "digest", d.String())

	id, err := ratls.New(issuer, rec, evidence.Claims{
		Instance:     cfg.Measured.Instance,
		Model:        cfg.Measured.Model,
		OwnerAddress: cfg.Measured.OwnerAddress,
		ReceiptKey:   pay.claimKey(),
	}, cfg.Measured.Instance, nil, gpuSrc...)
	if err != nil {
		return fmt.Errorf("ra-tls identity: %w", err)
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(guest.HTTPSPort))
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           routes(server.Handler(id, rec, tee, log), inf, pay),
		TLSConfig:         id.ServerConfig(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(ln, srv.TLSConfig)) }()
	log.Info("ready", "port", guest.HTTPSPort, "tee", tee, "boot_to_ready", time.Since(start).Round(time.Millisecond))
	st.Send(guest.Status{State: guest.StateReady, TEE: tee, Port: guest.HTTPSPort})

	for {
		select {
		case err := <-errc:
			return fmt.Errorf("https server: %w", err)
		case c, ok := <-st.Commands():
			if !ok {
				log.Warn("status channel closed")
				st = nil
				continue
			}
			if c.Cmd != guest.CmdPowerOff {
				answerHost(log, st, c, hostView{start: start, tee: tee, cfg: cfg, rec: rec, engine: inf.health, earnings: pay.earnings})
				continue
			}
			log.Info("power off requested by host")
			st.Send(guest.Status{State: guest.StateStopping})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
			inf.stop()
			if err := pay.close(); err != nil {
				log.Error("closing the payout ledger", "err", err)
			}
			return errors.Join(boot.PowerOff(), errors.New("power off returned"))
		}
	}
}
