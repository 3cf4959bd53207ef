package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/chrysalis-cc/chrysalis/host/doctor"
	"github.com/chrysalis-cc/chrysalis/host/launch"
	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/image"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/manifest"
	"github.com/chrysalis-cc/chrysalis/measure/manifest/dsse"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

func init() {
	register("launch", "boot a release in a VM (dev: TCG; tdx: a TD with GPUs, after the host preflight)", runLaunch)
}

// launchDoctorEnv is the host a TDX launch's preflight inspects: the
// real one (Root "/"); tests point Root at a fake tree.
var launchDoctorEnv = doctor.Env{}

// launchList is a repeatable, comma-separable string flag.
type launchList []string

func (l *launchList) String() string { return strings.Join(*l, ",") }
func (l *launchList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

const launchUsage = `usage:
  chrysalis launch [--dev] --release DIR [--shape NAME | --shape-file FILE [--shape NAME]]
                   [--port 8443] [--state DIR] [--config config.json] [--timeout 180s] [--print-only]
  chrysalis launch --tdx --release DIR --shape NAME --gpu BDF [--gpu BDF...]
                   (--manifest M.dsse.json --pub KEY.pub... | --insecure-no-manifest)
                   [--cid 6] [--port 8443] [--listen 127.0.0.1] [--state DIR] [--disk KIND=PATH...]
                   [--qgs unix[:PATH] | --qgs vsock[:[CID:]PORT]] [--config config.json] [--timeout 180s]
  chrysalis launch --tdx --print-only --release DIR --shape NAME --gpu BDF... [same flags; no manifest needed]
  either mode: [--instance N] [--qemu PATH]

--dev boots the release under QEMU TCG emulation (no TEE; the guest reports
insecure-dev evidence), prints the API endpoint and console log, and stops
the VM cleanly on Ctrl-C or SIGTERM (poweroff request, then QMP quit, then
kill).

--tdx boots the release as an Intel TDX trust domain under KVM with the
shape's GPUs passed through (vfio-pci), with the same lifecycle: config
disk, console log, status channel, ready wait, clean stop. Before it
creates or starts anything it runs the checks of ` + "`chrysalis doctor`" + ` for
this shape, GPUs and QGS (TDX in KVM, /dev/kvm, QEMU and its tdx-guest
object, the release's OVMF, each GPU on vfio-pci alone in its IOMMU group,
memory, vhost-vsock, QGS) and refuses with the failing ✗ checks and their
fixes; warnings (GPU CC mode, which cannot be read from sysfs) are printed.
The guest must report TEE tdx when ready. The model slots need --disk;
the persistent disk defaults to STATE/persistent.img, created when missing
(ext4, 256 MiB). --print-only prints the TDX QEMU command line instead, one
argument per line, shell-quoted, exactly what the launch runs (slots
without --disk shown as STATE/KIND.img). The TD reaches Intel's
quote generation service where the shape's QEMU profile says (QEMU >= 10.1:
unix:/var/run/tdx-qgs/qgs.socket, older: vsock:2:4050); --qgs overrides it
to match /etc/qgs.conf.

--instance N (0..63) runs one of several guests on this host: API port
PORT+10·N, vsock CID CID+N, state directory STATE/instance-N (config disk,
console log, sockets), so instances never collide. The console log is
kept across launches (each boot appends a separator line). While a guest
runs, ` + "`chrysalis status`" + ` and ` + "`chrysalis logs`" + ` ask it over STATE/control.sock.

A paid worker (a config with measured.payment) needs --payout-secret (the
owner's secret, kept off the config file) and, to settle its earnings on
chain, --ton-config (a TON global config: its liteservers and
validator.init_block go on the config disk as ton_chain, unmeasured).

--manifest with --pub (TDX) verifies the signed release manifest and
refuses to start unless it lists the shape with the image hash (MRTD,
RTMR0-2, TD fields) this release and shape measure to here: proxies would
reject such a worker anyway. A TDX launch requires it; --insecure-no-manifest
skips it (bring-up of a new host or shape only: a worker whose measurements
are not in a signed manifest is rejected by every proxy).

flags:
`

func runLaunch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("launch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, launchUsage)
		fs.PrintDefaults()
	}
	var (
		dev       = fs.Bool("dev", false, "dev mode: TCG emulation, no TEE (the default)")
		tdx       = fs.Bool("tdx", false, "TDX mode: a trust domain with GPUs passed through (--print-only works on any host)")
		printOnly = fs.Bool("print-only", false, "print the QEMU command line and exit")
		release   = fs.String("release", "", "release `directory` with OVMF.fd, vmlinuz, initrd, cmdline")
		shapeName = fs.String("shape", "", "VM shape `name` (built-in, or from --shape-file); dev default "+launch.DefaultShape)
		shapeFile = fs.String("shape-file", "", "shape `file` declaring your own shapes")
		port      = fs.Int("port", launch.DefaultPort, "host `port` forwarded to the guest API")
		listen    = fs.String("listen", qemu.DefaultHostAddr, "host `address` the API port is forwarded on (tdx)")
		stateDir  = fs.String("state", "", "state `directory` (default: a per-port directory under "+os.TempDir()+")")
		cfgFile   = fs.String("config", "", "config `file` (JSON, see measure/guest); default: instance \"dev\", QEMU user network")
		tonCfgF   = fs.String("ton-config", "", "TON global config `file` (e.g. the network's global.config.json) whose liteservers and init block let a paid worker settle (needs --config with measured.payment)")
		secretF   = fs.String("payout-secret", "", "`file` holding the owner's payout secret (64 hex characters; `chrysalis payout keys` makes one), for a config with measured.payment")
		timeout   = fs.Duration("timeout", launch.DefaultReadyTimeout, "how long to wait for the guest to be ready")
		cid       = fs.Uint("cid", qemu.DefaultGuestCID, "guest vsock `CID` (tdx; the base CID with --instance)")
		instance  = fs.Int("instance", -1, "instance `N` (0..63) of several on this host: port +10·N, CID +N, state STATE/instance-N")
		mfPath    = fs.String("manifest", "", "signed release manifest `file` (DSSE) the shape must be listed in (tdx; needs --pub)")
		qemuBin   = fs.String("qemu", qemu.Binary, "QEMU `binary` to run (looked up on PATH unless it has a slash)")
		noMf      = fs.Bool("insecure-no-manifest", false, "launch a TD without checking it against a signed release manifest (bring-up only; proxies reject unlisted workers)")
		qgsFlag   = fs.String("qgs", "", "quote generation service `address` (tdx): unix[:PATH] or vsock[:[CID:]PORT]; default by the shape's QEMU profile, unix:"+qemu.DefaultQGSSocket+" for QEMU >= 10.1, else vsock:2:4050")
		gpus      launchList
		disks     launchList
		pubs      repeated
	)
	fs.Var(&pubs, "pub", "pinned manifest public key `file` (repeatable)")
	fs.Var(&gpus, "gpu", "host PCI `address` of a GPU to pass through, e.g. 0000:3b:00.0 (tdx; repeat per GPU)")
	fs.Var(&disks, "disk", "`kind=path` image for a disk slot other than config (model, model-verity, persistent)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see chrysalis launch -h)", fs.Arg(0))
	}
	if *dev && *tdx {
		return errors.New("--dev and --tdx are exclusive")
	}
	if *release == "" {
		return errors.New("--release is required: the directory holding OVMF.fd, vmlinuz, initrd and cmdline")
	}
	// Refuse a release whose files do not match its SHA256SUMS: what boots
	// must be what was built and measured.
	if _, err := image.LoadRelease(*release); err != nil {
		return err
	}
	mode := qemu.ModeDev
	if *tdx {
		mode = qemu.ModeTDX
	}

	s, err := launchShape(*shapeName, *shapeFile, mode)
	if err != nil {
		return err
	}
	diskPaths := map[shape.DiskKind]string{}
	for _, d := range disks {
		k, p, ok := strings.Cut(d, "=")
		kind := shape.DiskKind(k)
		if !ok || p == "" || !kind.Known() {
			return fmt.Errorf("--disk %q: want KIND=PATH with KIND one of %v", d, shape.DiskKinds)
		}
		if kind == shape.DiskConfig {
			return fmt.Errorf("--disk %q: the config disk is written by launch from --config", d)
		}
		if !s.HasDisk(kind) {
			return fmt.Errorf("--disk %q: shape %q has no %q slot", d, s.Name, kind)
		}
		diskPaths[kind] = p
	}
	var qgs *qemu.QGS
	if *qgsFlag != "" {
		if mode != qemu.ModeTDX {
			return errors.New("--qgs is for --tdx launches: dev guests have no quote generation service")
		}
		q, err := qemu.ParseQGS(*qgsFlag)
		if err != nil {
			return fmt.Errorf("--qgs: %w", err)
		}
		qgs = &q
	}
	if *cid > 0xFFFFFFFF {
		return fmt.Errorf("--cid %d is out of range", *cid)
	}
	state := *stateDir
	if state == "" {
		state = defaultState(*port, *instance)
	}
	state, err = filepath.Abs(state)
	if err != nil {
		return err
	}
	if *instance != -1 {
		in, err := launch.NewInstance(state, *port, uint32(*cid), *instance)
		if err != nil {
			return fmt.Errorf("--instance: %w", err)
		}
		state, *port, *cid = in.StateDir, in.Port, uint(in.GuestCID)
	}
	if *noMf {
		if mode != qemu.ModeTDX {
			return errors.New("--insecure-no-manifest is for --tdx launches")
		}
		if *mfPath != "" || len(pubs) > 0 {
			return errors.New("--insecure-no-manifest and --manifest/--pub are exclusive")
		}
	}
	if mode == qemu.ModeTDX && !*printOnly && !*noMf && *mfPath == "" && len(pubs) == 0 {
		return errors.New("--tdx needs --manifest M.dsse.json --pub KEY.pub: a TD whose measurements (MRTD, RTMR0-2) the signed release manifest does not list is rejected by every proxy, so launch refuses to start one; " +
			"--insecure-no-manifest skips the check (bring-up only)")
	}
	if *mfPath != "" || len(pubs) > 0 {
		if mode != qemu.ModeTDX {
			return errors.New("--manifest is for --tdx launches: dev guests have no TDX measurements")
		}
		if *mfPath == "" || len(pubs) == 0 {
			return errors.New("--manifest and --pub go together: the manifest is checked against pinned keys")
		}
		if err := checkManifestShape(ctx, *mfPath, pubs, *release, *shapeFile, s, stderr); err != nil {
			return err
		}
	}

	if *printOnly {
		rel, err := qemu.ReleaseFromDir(*release)
		if err != nil {
			return err
		}
		all := map[shape.DiskKind]string{}
		for _, d := range s.Disks {
			all[d.Kind] = filepath.Join(state, string(d.Kind)+".img")
		}
		all[shape.DiskConfig] = filepath.Join(state, launch.FileConfigDisk)
		for k, p := range diskPaths {
			all[k] = p
		}
		argv, err := qemu.Argv(qemu.Options{
			Mode:         mode,
			Shape:        s,
			Release:      rel,
			Disks:        all,
			HostAddr:     *listen,
			HostPort:     *port,
			ConsoleLog:   filepath.Join(state, launch.FileConsole),
			StatusSocket: filepath.Join(state, launch.FileStatusSock),
			QMPSocket:    filepath.Join(state, launch.FileQMPSock),
			GPUs:         gpus,
			GuestCID:     uint32(*cid),
			QGS:          qgs,
			Binary:       *qemuBin,
		})
		if err != nil {
			return err
		}
		for _, a := range argv {
			fmt.Fprintln(stdout, qemu.Quote(a))
		}
		return nil
	}

	if mode == qemu.ModeDev && len(gpus) > 0 {
		return errors.New("--gpu needs --tdx: dev mode has no GPU passthrough")
	}

	cfg := launch.DefaultConfig()
	var secret guest.Secret
	if *secretF != "" {
		if *cfgFile == "" {
			return errors.New("--payout-secret needs --config (a config with measured.payment)")
		}
		if secret, err = readPayoutSecretText("--payout-secret", *secretF); err != nil {
			return err
		}
	}
	if *cfgFile != "" {
		b, err := os.ReadFile(*cfgFile)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		if cfg, err = guest.ParseConfigSecret(b, secret); err != nil {
			return fmt.Errorf("--config %s: %w", *cfgFile, err)
		}
	}
	if *tonCfgF != "" {
		if cfg.Measured.Payment == nil {
			return errors.New("--ton-config needs --config with measured.payment: only a paid worker settles")
		}
		if cfg.TONChain != nil {
			return fmt.Errorf("--ton-config: the config %s already has ton_chain", *cfgFile)
		}
		b, err := os.ReadFile(*tonCfgF)
		if err != nil {
			return fmt.Errorf("--ton-config: %w", err)
		}
		if cfg.TONChain, err = guest.ParseTONGlobalConfig(b); err != nil {
			return fmt.Errorf("--ton-config %s: %w", *tonCfgF, err)
		}
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "launch: "+format+"\n", args...)
	}
	opts := launch.Options{
		Mode:         mode,
		Binary:       *qemuBin,
		ReleaseDir:   *release,
		Shape:        s,
		Disks:        diskPaths,
		Port:         *port,
		StateDir:     state,
		Config:       cfg,
		ReadyTimeout: *timeout,
		Logf:         logf,
	}
	if mode == qemu.ModeTDX {
		if *noMf {
			logf("warning: --insecure-no-manifest: shape %s of this release is not checked against a signed manifest; proxies reject the worker unless its measurements are published", s.Name)
		}
		// Disk slots without --disk live in the state directory, as
		// --print-only shows them; only the persistent disk is made here.
		for _, d := range s.Disks {
			if _, ok := diskPaths[d.Kind]; !ok && d.Kind != shape.DiskConfig {
				if d.Kind != shape.DiskPersistent {
					return fmt.Errorf("shape %s has a %s disk slot: pass --disk %s=IMAGE", s.Name, d.Kind, d.Kind)
				}
				diskPaths[d.Kind] = filepath.Join(state, string(d.Kind)+".img")
			}
		}
		opts.GPUs, opts.GuestCID, opts.QGS, opts.HostAddr = gpus, uint32(*cid), qgs, *listen
		opts.HostCheck = func(o launch.Options) error {
			return tdxPreflight(o, *release, *shapeFile, logf)
		}
	}
	vm, err := launch.Launch(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "endpoint: %s\nconsole:  %s\nstate:    %s\n", vm.Endpoint(), vm.ConsolePath(), vm.StateDir())
	if *instance != -1 {
		fmt.Fprintf(stdout, "instance: %d\n", *instance)
	}
	logf("guest ready; press Ctrl-C to stop it")
	select {
	case <-vm.Done():
		if err := vm.Wait(); err != nil {
			return fmt.Errorf("the VM exited on its own: %w (console: %s)", err, vm.ConsolePath())
		}
		logf("the VM powered off")
		return nil
	case <-ctx.Done():
	}
	// A second Ctrl-C kills chrysalis, and with it QEMU.
	signal.Reset(os.Interrupt)
	logf("stopping the VM (Ctrl-C again to kill it)")
	stopCtx, cancel := context.WithTimeout(context.Background(), launch.DefaultStopTimeout+15*time.Second)
	defer cancel()
	return vm.Stop(stopCtx)
}

// tdxPreflight runs chrysalis doctor's checks for a TDX launch of o and
// refuses it, naming the fatal ✗ checks with their fixes; warnings are
// logged.
func tdxPreflight(o launch.Options, release, shapeFile string, logf func(string, ...any)) error {
	env := launchDoctorEnv
	env.QEMU = o.Binary
	checks := doctor.Run(env, doctor.Options{Release: release, Shape: o.Shape.Name, ShapeFile: shapeFile, GPUs: o.GPUs, QGS: o.QGS})
	for _, c := range checks {
		if c.Status == doctor.StatusWarn {
			logf("preflight ! %s: %s", c.ID, c.Detail)
		}
	}
	if err := doctor.Gate(checks); err != nil {
		args := []string{"--shape", o.Shape.Name, "--release", release}
		if shapeFile != "" {
			args = append(args, "--shape-file", shapeFile)
		}
		for _, g := range o.GPUs {
			args = append(args, "--gpu", g)
		}
		if o.QGS != nil {
			args = append(args, "--qgs", o.QGS.String())
		}
		return fmt.Errorf("refusing to launch: %w\nthe full report: chrysalis doctor %s", err, strings.Join(quoteArgs(args), " "))
	}
	logf("preflight: %d checks, none fatal", len(checks))
	return nil
}

func quoteArgs(args []string) []string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = qemu.Quote(a)
	}
	return q
}

// defaultState is the state directory when --state is not given: per
// port, or the base of all instances.
func defaultState(port, instance int) string {
	if instance != -1 {
		return filepath.Join(os.TempDir(), "chrysalis-launch")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("chrysalis-launch-%d", port))
}

// checkManifestShape verifies the signed manifest against the pinned keys
// and requires it to list shape s, with the same shape digest and the
// image hash this release measures to for s (computed as `chrysalis
// measure` does, RTMR0 from the local QEMU's ACPI tables).
func checkManifestShape(ctx context.Context, mfPath string, pubs []string, release, shapeFile string, s *shape.VMShape, stderr io.Writer) error {
	var keys []*dsse.PublicKey
	for _, p := range pubs {
		k, err := dsse.LoadPublicKey(p)
		if err != nil {
			return fmt.Errorf("--pub: %w", err)
		}
		keys = append(keys, k)
	}
	b, err := mfReadLimited(mfPath, dsse.MaxEnvelopeSize)
	if err != nil {
		return fmt.Errorf("--manifest: %w", err)
	}
	signed, err := manifest.Verify(b, keys)
	if err != nil {
		return fmt.Errorf("--manifest %s: %w", mfPath, err)
	}
	var entry *manifest.Shape
	var names []string
	for i := range signed.Manifest.Shapes {
		names = append(names, signed.Manifest.Shapes[i].Name)
		if signed.Manifest.Shapes[i].Name == s.Name {
			entry = &signed.Manifest.Shapes[i]
		}
	}
	if entry == nil {
		return fmt.Errorf("refusing to launch: manifest %s has no entry for shape %s (it lists %s); its RTMR0 is unknown, so proxies would reject this worker", mfPath, s.Name, strings.Join(names, ", "))
	}
	if d, err := s.Digest(); err != nil || d != entry.Digest {
		return fmt.Errorf("refusing to launch: shape %s here has digest %s, the manifest's has %s: the shapes differ", s.Name, d, entry.Digest)
	}
	src := &mfSource{release: release, shapes: s.Name, shapeFile: shapeFile}
	built, err := src.build(stderr, "launch")
	if err != nil {
		return fmt.Errorf("measuring shape %s of release %s: %w", s.Name, release, err)
	}
	want := built.Shapes[0]
	if want.ImageHash == entry.ImageHash {
		return nil
	}
	var diff []string
	for _, r := range []struct {
		name      string
		got, want tdxmr.Digest
	}{{"MRTD", entry.MRTD, want.MRTD}, {"RTMR0", entry.RTMR0, want.RTMR0}, {"RTMR1", entry.RTMR1, want.RTMR1}, {"RTMR2", entry.RTMR2, want.RTMR2}} {
		if r.got != r.want {
			diff = append(diff, fmt.Sprintf("%s %s here, %s in the manifest", r.name, r.want, r.got))
		}
	}
	if entry.TD != want.TD {
		diff = append(diff, "the TD fields differ")
	}
	return fmt.Errorf("refusing to launch: shape %s of this release measures to image hash %s, manifest %s expects %s (%s)",
		s.Name, want.ImageHash, mfPath, entry.ImageHash, strings.Join(diff, "; "))
}

// launchShape resolves --shape and --shape-file.
func launchShape(name, file string, mode qemu.Mode) (*shape.VMShape, error) {
	if file != "" {
		c, err := shape.Load(file)
		if err != nil {
			return nil, err
		}
		if name == "" {
			names := c.Names()
			if len(names) != 1 {
				return nil, fmt.Errorf("--shape-file %s declares %d shapes %v: pick one with --shape", file, len(names), names)
			}
			name = names[0]
		}
		s, err := c.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("--shape-file %s: %w", file, err)
		}
		return s, nil
	}
	if name == "" {
		if mode == qemu.ModeTDX {
			return nil, fmt.Errorf("--tdx needs --shape (built-in: %s)", strings.Join(shape.Names(), ", "))
		}
		name = launch.DefaultShape
	}
	s, err := shape.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("--shape: %w", err)
	}
	return s, nil
}
