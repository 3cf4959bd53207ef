package swtpm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/u-root/mkuimage/cpio"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/measure/acpi"
	"github.com/chrysalis-cc/chrysalis/measure/eventlog"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// shapeName is the shape whose dev-mode command line the test boots.
const shapeName = "dev-small"

// Environment variables naming an existing release (ci/test.sh sets
// CHRYSALIS_TEST_OVMF to the release it builds).
const (
	envRelease = "CHRYSALIS_TEST_RELEASE"
	envOVMF    = "CHRYSALIS_TEST_OVMF"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func run(t *testing.T, dir string, timeout time.Duration, env []string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// release returns a release directory: CHRYSALIS_TEST_RELEASE, the
// directory of CHRYSALIS_TEST_OVMF when it holds a release, else one
// built from the pinned inputs.
func release(t *testing.T, root string) string {
	t.Helper()
	if d := os.Getenv(envRelease); d != "" {
		return d
	}
	if p := os.Getenv(envOVMF); p != "" {
		if d := filepath.Dir(p); fileExists(filepath.Join(d, tdxmr.FileKernel)) {
			return d
		}
	}
	d := filepath.Join(t.TempDir(), "release")
	bin := filepath.Join(t.TempDir(), "chrysalis")
	run(t, root, 5*time.Minute, nil, "go", "build", "-o", bin, "./host/cmd/chrysalis")
	run(t, root, 15*time.Minute, nil, bin, "build", "--out", d)
	return d
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startTPM creates a fresh TPM 2.0 state with SHA-256 and SHA-384 PCR
// banks and serves it on a unix control socket; the process is killed at
// cleanup.
func startTPM(t *testing.T, dir string) string {
	t.Helper()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, dir, time.Minute, nil, "swtpm_setup", "--tpm2", "--pcr-banks", "sha256,sha384", "--tpmstate", state, "--overwrite")
	sock := filepath.Join(dir, "swtpm.sock")
	cmd := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+state,
		"--ctrl", "type=unixio,path="+sock, "--flags", "startup-clear")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() && out.Len() > 0 {
			t.Logf("swtpm: %s", out.Bytes())
		}
	})
	for i := 0; i < 100 && !fileExists(sock); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if !fileExists(sock) {
		t.Fatalf("swtpm did not create %s: %s", sock, out.Bytes())
	}
	return sock
}

func tpmArgs(sock string) []string {
	return []string{
		"-chardev", "socket,id=chrtpm,path=" + sock,
		"-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
		"-device", "tpm-crb,tpmdev=tpm0",
	}
}

// overlayInitrd is the release initrd followed by a newc archive holding
// only /init (the dumper), which the kernel unpacks over the release's.
func overlayInitrd(t *testing.T, base, initBin []byte) []byte {
	t.Helper()
	var ov bytes.Buffer
	w := cpio.Newc.Writer(&ov)
	rec := cpio.StaticRecord(initBin, cpio.Info{Name: "init", Mode: cpio.S_IFREG | 0o755})
	if err := cpio.WriteRecords(w, []cpio.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), base...)
	for len(out)%4 != 0 {
		out = append(out, 0)
	}
	return append(out, ov.Bytes()...)
}

// guestDump is what dumpinit printed.
type guestDump struct {
	cmdline string
	pcrs    map[int][]byte // SHA-384 PCRs
	log     []byte         // binary_bios_measurements
}

var pcrLine = regexp.MustCompile(`^DUMPINIT-PCR-SHA384 (\d+) ([0-9A-Fa-f]{96})$`)

func parseConsole(console []byte) (*guestDump, error) {
	d := &guestDump{pcrs: map[int][]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(console))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	in, want := false, -1
	var hexLog strings.Builder
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if i := strings.Index(line, "DUMPINIT-"); i > 0 {
			line = line[i:] // firmware escape sequences before the first line
		}
		switch {
		case strings.HasPrefix(line, "DUMPINIT-ERROR"):
			return nil, fmt.Errorf("guest: %s", line)
		case strings.HasPrefix(line, "DUMPINIT-CMDLINE "):
			d.cmdline = strings.TrimPrefix(line, "DUMPINIT-CMDLINE ")
		case pcrLine.MatchString(line):
			m := pcrLine.FindStringSubmatch(line)
			n, _ := strconv.Atoi(m[1])
			d.pcrs[n], _ = hex.DecodeString(m[2])
		case strings.HasPrefix(line, "DUMPINIT-EVENTLOG-BEGIN "):
			in = true
			want, _ = strconv.Atoi(strings.TrimPrefix(line, "DUMPINIT-EVENTLOG-BEGIN "))
		case line == "DUMPINIT-EVENTLOG-END":
			in = false
		case in:
			hexLog.WriteString(line)
		}
	}
	if want < 0 {
		return nil, fmt.Errorf("no event log on the console")
	}
	b, err := hex.DecodeString(hexLog.String())
	if err != nil {
		return nil, fmt.Errorf("event log hex: %v", err)
	}
	if len(b) != want {
		return nil, fmt.Errorf("event log has %d bytes, the guest announced %d", len(b), want)
	}
	d.log = b
	return d, nil
}

// outcome is one line of the cross-check report.
type outcome struct {
	what, result string
}

// tpmBoot is the dev-mode launch of shapeName (host/qemu's argv) with the
// release's initrd plus /init = dumpinit, a blank config disk and a swtpm,
// which the cross-checks capture and boot.
type tpmBoot struct {
	rel              *tdxmr.Release
	s                *shape.VMShape
	relDir, work     string
	initrd           []byte
	initrdPath, disk string
	console          string
	extra            []string
}

// newTPMBoot checks the tools and writes the test initrd and config disk;
// extra arguments follow the TPM's in every argv.
func newTPMBoot(t *testing.T, extra ...string) *tpmBoot {
	for _, tool := range []string{"swtpm", "swtpm_setup", qemu.Binary} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install swtpm, swtpm-tools and qemu-system-x86 (.ci/run does)", tool)
		}
	}
	root := repoRoot(t)
	b := &tpmBoot{relDir: release(t, root), work: t.TempDir(), extra: extra}
	var err error
	if b.rel, err = tdxmr.ReadRelease(b.relDir); err != nil {
		t.Fatal(err)
	}
	if b.s, err = shape.Lookup(shapeName); err != nil {
		t.Fatal(err)
	}
	initBin := filepath.Join(b.work, "dumpinit")
	run(t, root, 5*time.Minute, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-o", initBin, "./ci/swtpm/testdata/dumpinit")
	ib, err := os.ReadFile(initBin)
	if err != nil {
		t.Fatal(err)
	}
	b.initrd = overlayInitrd(t, b.rel.Initrd, ib)
	b.initrdPath = filepath.Join(b.work, "initrd")
	b.disk = filepath.Join(b.work, "config.img")
	for p, c := range map[string][]byte{b.initrdPath: b.initrd, b.disk: make([]byte, 1<<20)} {
		if err := os.WriteFile(p, c, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.console = filepath.Join(b.work, "console.log")
	return b
}

// argv is the launch with a fresh swtpm in dir: host/qemu's dev argv, the
// TPM, then the extra arguments.
func (b *tpmBoot) argv(t *testing.T, dir string) []string {
	if err := os.MkdirAll(filepath.Join(b.work, dir), 0o700); err != nil {
		t.Fatal(err)
	}
	argv, err := qemu.Argv(qemu.Options{
		Mode:  qemu.ModeDev,
		Shape: b.s,
		Release: qemu.Release{
			OVMF: filepath.Join(b.relDir, tdxmr.FileFirmware), Kernel: filepath.Join(b.relDir, tdxmr.FileKernel),
			Initrd: b.initrdPath, Cmdline: b.rel.Cmdline,
		},
		Disks:        map[shape.DiskKind]string{shape.DiskConfig: b.disk},
		HostPort:     freePort(t),
		ConsoleLog:   b.console,
		StatusSocket: filepath.Join(b.work, "status.sock"),
		QMPSocket:    filepath.Join(b.work, "qmp.sock"),
	})
	if err != nil {
		t.Fatal(err)
	}
	argv = append(argv, tpmArgs(startTPM(t, filepath.Join(b.work, dir)))...)
	return append(argv, b.extra...)
}

// capture reads the ACPI blobs QEMU serves for the launch (with its own
// swtpm: the TPM adds tables and a log area); o gives the other options.
func (b *tpmBoot) capture(t *testing.T, o acpi.Options) *acpi.Tables {
	argv := b.argv(t, "capture-tpm")
	o.Binary, o.Args = argv[0], argv[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tables, err := acpi.Capture(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

// boot runs the launch (through rewrite, when set, as the argv without
// argv[0]) to its power-off and returns the console, what dumpinit
// printed and the TPM's event log.
func (b *tpmBoot) boot(t *testing.T, rewrite func([]string) []string) ([]byte, *guestDump, *eventlog.Log) {
	argv := b.argv(t, "boot-tpm")
	args := argv[1:]
	if rewrite != nil {
		args = rewrite(args)
	}
	t.Logf("boot: %s %s", argv[0], strings.Join(args, " "))
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, argv[0], args...).CombinedOutput(); err != nil {
		c, _ := os.ReadFile(b.console)
		t.Fatalf("QEMU: %v\n%s\nconsole:\n%s", err, out, c)
	}
	t.Logf("boot to power-off: %s", time.Since(start).Round(time.Millisecond))
	c, err := os.ReadFile(b.console)
	if err != nil {
		t.Fatal(err)
	}
	dump, err := parseConsole(c)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, c)
	}
	log, err := eventlog.Parse(dump.log)
	if err != nil {
		t.Fatalf("event log: %v", err)
	}
	return c, dump, log
}

func TestSwtpmCrossCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("boots the release under TCG with swtpm (~15 s); run without -short")
	}
	b := newTPMBoot(t)
	rel, s, initrd := b.rel, b.s, b.initrd
	tables := b.capture(t, acpi.Options{})
	_, dump, log := b.boot(t, nil)
	if _, ok := log.SpecID.DigestSize(eventlog.AlgSHA384); !ok {
		t.Fatalf("the TPM log has no SHA-384 bank: %+v", log.SpecID.Algorithms)
	}

	// Expected events for the same inputs.
	fw, err := tdvf.Parse(rel.Firmware)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := tdxmr.LayoutFor(s.OVMF.EventLayout)
	if err != nil {
		t.Fatal(err)
	}
	memory := uint64(s.MemoryMiB) << 20
	rtmr0, err := tdxmr.RTMR0(tdxmr.RTMR0Input{Firmware: fw, MemorySize: memory, Layout: layout, Tables: tables})
	if err != nil {
		t.Fatal(err)
	}
	opt, _ := tdxmr.ParseInitrdOption(s.OVMF.InitrdOption)
	boot := tdxmr.Boot{Kernel: rel.Kernel, Initrd: initrd, Cmdline: rel.Cmdline, MemorySize: memory, InitrdOption: opt}
	rtmr1, err := tdxmr.RTMR1Candidates(boot)
	if err != nil {
		t.Fatal(err)
	}
	rtmr2, err := tdxmr.RTMR2(boot)
	if err != nil {
		t.Fatal(err)
	}
	patched := rtmr1[tdxmr.KernelPatched]

	var report []outcome
	note := func(what, result string) { report = append(report, outcome{what, result}) }
	sha384 := func(e *eventlog.Event) tdxmr.Digest {
		var d tdxmr.Digest
		sum, _ := e.Digest(eventlog.AlgSHA384)
		copy(d[:], sum)
		return d
	}
	// compare checks one TPM event against one expected event: digest,
	// type, and data where the expectation fixes it.
	compare := func(what string, got *eventlog.Event, want tdxmr.Event) {
		t.Helper()
		if got == nil {
			t.Errorf("%s: no such event in the TPM log", what)
			note(what, "MISSING from the TPM log")
			return
		}
		switch {
		case sha384(got) != want.Digest:
			t.Errorf("%s: TPM SHA-384 %s, expected %s (%s)", what, sha384(got), want.Digest, want.Detail)
			note(what, "DIFFERS: "+want.Detail)
		case uint32(got.Type) != want.Type:
			t.Errorf("%s: TPM event type %#x, expected %#x", what, uint32(got.Type), want.Type)
			note(what, "DIFFERS in event type")
		case want.Data != nil && !bytes.Equal(got.Data, want.Data):
			t.Errorf("%s: event data %x, expected %x", what, got.Data, want.Data)
			note(what, "DIFFERS in event data")
		default:
			note(what, "equal ("+want.Digest.String()[:16]+"…)")
		}
	}
	pcrEvents := func(pcr uint32, typ eventlog.EventType) []*eventlog.Event {
		var out []*eventlog.Event
		for i := range log.Events {
			if e := &log.Events[i]; e.Index == pcr && e.Type == typ {
				out = append(out, e)
			}
		}
		return out
	}
	first := func(es []*eventlog.Event) *eventlog.Event {
		if len(es) == 0 {
			return nil
		}
		return es[0]
	}
	byName := func(r *tdxmr.Register, name string) tdxmr.Event {
		for _, e := range r.Events {
			if e.Name == name {
				return e
			}
		}
		t.Fatalf("RTMR%d has no event %q", r.Index, name)
		return tdxmr.Event{}
	}

	// Register level: the log replays to the PCRs the TPM reports, so the
	// log is complete and our reading of it is right.
	pcrs, err := log.ReplayPCRs(eventlog.AlgSHA384)
	if err != nil {
		t.Fatal(err)
	}
	for pcr := 0; pcr <= 9; pcr++ {
		want, ok := dump.pcrs[pcr]
		if !ok {
			t.Fatalf("guest did not print PCR %d", pcr)
		}
		got := pcrs[uint32(pcr)]
		if got == nil {
			got = make([]byte, 48)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("PCR%d: log replays to %x, TPM has %x", pcr, got, want)
		}
	}
	note("log replay = TPM PCR0-9 (SHA-384)", "equal")

	// RTMR1: kernel (PCR4), boot-option action and ReadyToBoot separator
	// (PCR4), ExitBootServices actions (PCR5).
	kernel := first(pcrEvents(4, eventlog.EvEFIBootServicesApp))
	if kernel == nil {
		t.Fatal("no EV_EFI_BOOT_SERVICES_APPLICATION in PCR4")
	}
	switch sha384(kernel) {
	case patched.Events[0].Digest:
		note("PCR4 kernel Authenticode (EV_EFI_BOOT_SERVICES_APPLICATION)", "equal to the patched-kernel candidate: "+patched.Events[0].Detail)
	case rtmr1[tdxmr.KernelUnpatched].Events[0].Digest:
		t.Errorf("PCR4 kernel equals the unpatched candidate; QEMU 7.2 patches the header of a non-confidential guest")
		note("PCR4 kernel", "DIFFERS: equals the unpatched candidate")
	default:
		t.Errorf("PCR4 kernel %s matches neither candidate (patched %s, unpatched %s)", sha384(kernel), patched.Events[0].Digest, rtmr1[tdxmr.KernelUnpatched].Events[0].Digest)
		note("PCR4 kernel", "DIFFERS from both candidates")
	}
	if uint32(kernel.Type) != patched.Events[0].Type {
		t.Errorf("kernel event type %#x", uint32(kernel.Type))
	}
	compare("PCR4 \"Calling EFI Application from Boot Option\"", first(pcrEvents(4, eventlog.EvEFIAction)), byName(patched, "calling-efi-application"))
	compare("PCR4 ReadyToBoot separator (RTMR1 separator)", first(pcrEvents(4, eventlog.EvSeparator)), byName(patched, "separator"))
	exits := pcrEvents(5, eventlog.EvEFIAction)
	if len(exits) != 2 {
		t.Fatalf("PCR5 has %d EV_EFI_ACTION events, want 2", len(exits))
	}
	compare("PCR5 \"Exit Boot Services Invocation\"", exits[0], byName(patched, "exit-boot-services-invocation"))
	compare("PCR5 \"Exit Boot Services Returned with Success\"", exits[1], byName(patched, "exit-boot-services-returned"))

	// RTMR2: the EFI stub's tagged events (PCR9); PCR9 holds exactly them,
	// so its value is RTMR2's.
	tags := pcrEvents(9, eventlog.EvEventTag)
	if len(tags) != 2 {
		t.Fatalf("PCR9 has %d EV_EVENT_TAG events, want 2 (LoadOptions, initrd)", len(tags))
	}
	compare("PCR9 LOADED_IMAGE::LoadOptions", tags[0], byName(rtmr2, "load-options"))
	compare("PCR9 Linux initrd", tags[1], byName(rtmr2, "initrd"))
	if !bytes.Equal(pcrs[9], rtmr2.Value[:]) {
		t.Errorf("PCR9 %x != RTMR2 %s", pcrs[9], rtmr2.Value)
	} else {
		note("PCR9 value = RTMR2 value", "equal ("+rtmr2.Value.String()[:16]+"…)")
	}
	if !strings.HasSuffix(dump.cmdline, " initrd=initrd") {
		t.Errorf("guest /proc/cmdline %q lacks OVMF's suffix initrd= option", dump.cmdline)
	}

	// RTMR0: the Secure Boot policy and its separator (PCR7), the ACPI
	// blobs, BootOrder and Boot0000 (PCR1).
	sb := pcrEvents(7, eventlog.EvEFIVariableDriverCfg)
	names := []string{"SecureBoot", "PK", "KEK", "db", "dbx"}
	if len(sb) != len(names) {
		t.Fatalf("PCR7 has %d EV_EFI_VARIABLE_DRIVER_CONFIG events, want %d", len(sb), len(names))
	}
	for i, n := range names {
		compare("PCR7 "+n, sb[i], byName(rtmr0, "secure-boot:"+n))
	}
	compare("PCR7 separator (RTMR0 separator)", first(pcrEvents(7, eventlog.EvSeparator)), byName(rtmr0, "separator"))
	acpiEvents := pcrEvents(1, eventlog.EvPlatformConfigFlags)
	var acpiWant []tdxmr.Event
	for _, e := range rtmr0.Events {
		if strings.HasPrefix(e.Name, "acpi:") {
			acpiWant = append(acpiWant, e)
		}
	}
	if len(acpiEvents) != len(acpiWant) {
		t.Errorf("PCR1 has %d ACPI DATA events, the capture gives %d", len(acpiEvents), len(acpiWant))
	}
	for i := range min(len(acpiEvents), len(acpiWant)) {
		compare("PCR1 ACPI DATA "+strings.TrimPrefix(acpiWant[i].Name, "acpi:")+" (qtest capture)", acpiEvents[i], acpiWant[i])
	}
	bootVars := pcrEvents(1, eventlog.EvEFIVariableBoot)
	if len(bootVars) != 2 {
		t.Fatalf("PCR1 has %d EV_EFI_VARIABLE_BOOT events, want 2", len(bootVars))
	}
	compare("PCR1 BootOrder", bootVars[0], byName(rtmr0, "BootOrder"))
	compare("PCR1 Boot0000", bootVars[1], byName(rtmr0, "Boot0000"))
	note("RTMR0 td-hob, cfv", "not in a TPM boot (TDX only: measured by SEC into RTMR0)")
	note("PCR0 S-CRTM version, firmware blobs; PCR0-3,5,6 separators", "TPM only (no RTMR counterpart)")
	note("capture", fmt.Sprintf("%s, accelerator %s, OVMF 64-bit window %#x, BARs %v", tables.QEMU, tables.Accelerator, tables.Window.Base, tables.BARs))

	var sb2 strings.Builder
	for _, o := range report {
		fmt.Fprintf(&sb2, "\n  %-70s %s", o.what, o.result)
	}
	t.Logf("swtpm cross-check (%s, %s, SHA-384 bank):%s", shapeName, b.relDir, sb2.String())
}
