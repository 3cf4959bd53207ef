package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Cmdline is the kernel command line of every release. It is measured
// into RTMR2 (by TDVF, as the EFI stub's load options), so changing it
// changes the image identity:
//   - console=ttyS0: the serial console the host reads status from;
//   - panic=-1: reboot at once on a kernel panic (the VM is launched
//     with -no-reboot, so it stops rather than running on in an unknown
//     state);
//   - loglevel=4: warnings and worse on the console.
const Cmdline = "console=ttyS0 panic=-1 loglevel=4"

// Go packages compiled into the initramfs.
const (
	// InitPackage is u-root's init (PID 1), built in busybox mode.
	InitPackage = "github.com/u-root/u-root/cmds/core/init"
	// AgentPackage is our agent, built as a binary and run as uinit.
	AgentPackage = ModulePath + "/agent/cmd/agent"
)

// DefaultModules are the kernel modules the initramfs carries (their
// dependencies are added from each module's depends=).
var DefaultModules = []string{
	"configfs",                   // /sys/kernel/config (TSM reports)
	"tsm_report",                 // configfs-tsm quote interface
	"tdx-guest",                  // /dev/tdx_guest, RTMR sysfs
	"virtio_blk",                 // config and model disks
	"virtio_net",                 // network
	"vsock",                      // host <-> guest status channel
	"vmw_vsock_virtio_transport", // vsock over virtio
	"dm-mod",                     // device mapper
	"dm-verity",                  // verified model disks
	"squashfs",                   // model disk filesystem (models/pack writes squashfs 4.0)
	"virtio-rng",                 // entropy from the host
}

// DefaultKernelConfig are the kernel options every release checks in the
// kernel's config file.
var DefaultKernelConfig = map[string]string{
	"CONFIG_INTEL_TDX_GUEST":     "y", // boots as a TDX guest
	"CONFIG_TSM_MEASUREMENTS":    "y", // RTMR sysfs (…/measurements/rtmrN:sha384)
	"CONFIG_UNACCEPTED_MEMORY":   "y", // TDVF hands over unaccepted memory
	"CONFIG_MODULE_DECOMPRESS":   "y", // finit_module(MODULE_INIT_COMPRESSED_FILE)
	"CONFIG_MODULE_COMPRESS_XZ":  "y", // modules are .ko.xz
	"CONFIG_BLK_DEV_INITRD":      "y", // the u-root initramfs
	"CONFIG_DEVTMPFS":            "y", // u-root init mounts /dev
	"CONFIG_EFI_STUB":            "y", // TDVF boots vmlinuz as an EFI app
	"CONFIG_SERIAL_8250_CONSOLE": "y", // console=ttyS0
}

// Recipe is what a release is made of besides the pinned inputs.
type Recipe struct {
	// Cmdline is the kernel command line.
	Cmdline string
	// Modules are the kernel modules to ship (module or file names).
	Modules []string
	// KernelConfig maps CONFIG_ names to the value the kernel config
	// must have.
	KernelConfig map[string]string
	// InitPackage and AgentPackage are the Go packages compiled into the
	// initramfs: u-root's init (busybox) and the agent (uinit).
	InitPackage, AgentPackage string
}

// DefaultRecipe is the recipe of chrysalis releases.
func DefaultRecipe() Recipe {
	kc := map[string]string{}
	for k, v := range DefaultKernelConfig {
		kc[k] = v
	}
	return Recipe{
		Cmdline:      Cmdline,
		Modules:      append([]string(nil), DefaultModules...),
		KernelConfig: kc,
		InitPackage:  InitPackage,
		AgentPackage: AgentPackage,
	}
}

// Options configure Build.
type Options struct {
	// Out is the release directory to create or replace (required).
	Out string
	// SourceDir is the root of the chrysalis module to build from;
	// empty means the module containing the working directory.
	SourceDir string
	// LockFile is the inputs lock; empty means SourceDir/image/inputs.lock.
	LockFile string
	// Lock, if set, is used instead of reading LockFile.
	Lock *Lock
	// Mirror is the Debian archive root; empty means $CHRYSALIS_DEBIAN_MIRROR,
	// then the apt sources under AptRoot. Only consulted on a cache miss.
	Mirror string
	// AptRoot is the root directory apt's sources are read below ("/").
	AptRoot string
	// CacheDir is the download cache; empty means DefaultCacheDir().
	CacheDir string
	// SourceCommit overrides the commit recorded in release.json (and
	// then SourceDirty is false); empty means ask git.
	SourceCommit string
	// Recipe overrides DefaultRecipe (tests).
	Recipe *Recipe
	// HTTPClient overrides the download client.
	HTTPClient *http.Client
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// TDX metadata GUID (e47a6535-984a-4798-865e-4685a7bf8ec2) as stored in
// TDVF images: TDVF's metadata offset block carries it, and without it
// the firmware cannot launch a TD.
var tdxMetadataGUID = []byte{0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47, 0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2}

var sourceCommitRE = regexp.MustCompile(`^[A-Za-z0-9._/+-]{1,100}$`)

// Paths inside the pinned packages.
const (
	firmwarePath = "usr/share/ovmf/OVMF.fd"
	kernelGlob   = "usr/lib/modules/*/vmlinuz"
	configGlob   = "usr/lib/modules/*/config"
	builtinGlob  = "usr/lib/modules/*/modules.builtin"
)

// Build downloads and verifies the pinned inputs, checks the kernel
// config, extracts the kernel, firmware and modules, builds the u-root
// initramfs with the agent, and writes the release directory
// opts.Out atomically (nothing half-written is left on error).
//
// ctx cancels downloads and is checked between steps; the Go compilation
// inside the initramfs step runs to completion (its go processes get the
// terminal's interrupt themselves).
func Build(ctx context.Context, opts Options) (*Release, error) {
	start := time.Now()
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "[%5.1fs] "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
		}
	}
	if opts.Out == "" {
		return nil, errors.New("no output directory")
	}
	out, err := filepath.Abs(opts.Out)
	if err != nil {
		return nil, err
	}
	if opts.Mirror != "" {
		if _, err := CheckMirrorURL(opts.Mirror); err != nil {
			return nil, err
		}
	}
	recipe := DefaultRecipe()
	if opts.Recipe != nil {
		recipe = *opts.Recipe
	}
	if recipe.Cmdline == "" || strings.ContainsAny(recipe.Cmdline, "\n\x00") {
		return nil, fmt.Errorf("kernel command line %q must be one non-empty line", recipe.Cmdline)
	}

	// Source tree and toolchain.
	root := opts.SourceDir
	if root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		if root, err = findModuleRoot(ctx, wd); err != nil {
			return nil, err
		}
	} else if root, err = filepath.Abs(root); err != nil {
		return nil, err
	}
	if err := checkModuleRoot(root); err != nil {
		return nil, err
	}
	lock := opts.Lock
	if lock == nil {
		lf := opts.LockFile
		if lf == "" {
			lf = filepath.Join(root, "image", "inputs.lock")
		}
		if lock, err = ReadLock(lf); err != nil {
			return nil, err
		}
	} else if err := lock.Validate(); err != nil {
		return nil, err
	}
	genv, err := goEnvIn(ctx, root)
	if err != nil {
		return nil, err
	}
	if genv.Version != lock.Go {
		return nil, fmt.Errorf("the Go toolchain is %s but inputs.lock pins %s (the agent and init binaries depend on the compiler); use %s (e.g. GOTOOLCHAIN=%s) or update the lock", genv.Version, lock.Go, lock.Go, lock.Go)
	}
	if err := genv.checkReproducible(); err != nil {
		return nil, err
	}
	if !sameFile(genv.GOMOD, filepath.Join(root, "go.mod")) {
		return nil, fmt.Errorf("%s is not a module root (go env GOMOD there says %q)", root, genv.GOMOD)
	}
	urootV, mkuimageV, err := moduleVersions(root)
	if err != nil {
		return nil, err
	}
	commit, dirty := opts.SourceCommit, false
	if commit != "" && !sourceCommitRE.MatchString(commit) {
		return nil, fmt.Errorf("source commit %q must be 1-100 characters of [A-Za-z0-9._/+-]", commit)
	}
	if commit == "" {
		commit, dirty = gitState(ctx, root, []string{out})
	}
	logf("source %s (dirty=%v), %s, u-root %s, mkuimage %s", commit, dirty, genv.Version, urootV, mkuimageV)

	// Inputs.
	cache := opts.CacheDir
	if cache == "" {
		if cache, err = DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	f := &Fetcher{CacheDir: cache, Client: opts.HTTPClient, FindMirror: func() (string, error) {
		m, err := ResolveMirror(opts.Mirror, opts.AptRoot)
		if err == nil {
			logf("downloading from %s", m)
		}
		return m, err
	}}
	debs := map[Role][]byte{}
	for _, r := range Roles {
		in, _ := lock.Input(r)
		data, err := f.Fetch(ctx, in)
		if err != nil {
			return nil, err
		}
		debs[r] = data
	}
	logf("inputs verified (%d from cache, %d downloaded, %d bytes)", f.Hits, f.Misses, f.Downloaded)

	inputs := map[Role]Input{}
	for _, r := range Roles {
		inputs[r], _ = lock.Input(r)
	}
	// Kernel config and version.
	cfgIn := inputs[RoleKernelConfig]
	cfgFiles, err := ExtractDeb(cfgIn.Package, debs[RoleKernelConfig], configGlob, builtinGlob)
	if err != nil {
		return nil, err
	}
	var config, builtinList []byte
	kver := ""
	for _, cf := range cfgFiles {
		v := strings.Split(cf.Path, "/")[3]
		if kver != "" && v != kver {
			return nil, fmt.Errorf("%s has files for two kernels (%s and %s)", cfgIn.Package, kver, v)
		}
		kver = v
		switch path.Base(cf.Path) {
		case "config":
			config = cf.Data
		case "modules.builtin":
			builtinList = cf.Data
		}
	}
	if config == nil {
		return nil, fmt.Errorf("%s has no usr/lib/modules/<version>/config", cfgIn.Package)
	}
	kconf, err := CheckKernelConfig(config, recipe.KernelConfig)
	if err != nil {
		return nil, fmt.Errorf("kernel %s (%s): %w", kver, cfgIn.Package, err)
	}

	// Kernel image.
	kIn := inputs[RoleKernel]
	kFiles, err := ExtractDeb(kIn.Package, debs[RoleKernel], kernelGlob)
	if err != nil {
		return nil, err
	}
	if len(kFiles) != 1 {
		return nil, fmt.Errorf("%s has %d files matching %s, want 1", kIn.Package, len(kFiles), kernelGlob)
	}
	if v := strings.Split(kFiles[0].Path, "/")[3]; v != kver {
		return nil, fmt.Errorf("%s is kernel %s but %s is for %s", kIn.Package, v, cfgIn.Package, kver)
	}
	vmlinuz := kFiles[0].Data
	if err := checkBzImage(vmlinuz); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", kIn.Package, kFiles[0].Path, err)
	}

	// Firmware.
	fwIn := inputs[RoleFirmware]
	fwFiles, err := ExtractDeb(fwIn.Package, debs[RoleFirmware], firmwarePath)
	if err != nil {
		return nil, err
	}
	ovmf := fwFiles[0].Data
	if !bytes.Contains(ovmf, tdxMetadataGUID) {
		return nil, fmt.Errorf("%s: %s has no TDX metadata (TDVF GUID e47a6535-984a-4798-865e-4685a7bf8ec2); it cannot launch a TD", fwIn.Package, firmwarePath)
	}

	// Kernel modules.
	modIn := inputs[RoleKernelModules]
	modPrefix := "usr/lib/modules/" + kver + "/kernel/"
	modFiles, err := ExtractDebFunc(modIn.Package, debs[RoleKernelModules], func(name string) bool {
		return strings.HasPrefix(name, modPrefix) && strings.HasSuffix(name, ".ko.xz")
	})
	if err != nil {
		return nil, err
	}
	if len(modFiles) == 0 {
		return nil, fmt.Errorf("%s has no modules under %s", modIn.Package, modPrefix)
	}
	set, err := NewModuleSet(kver, modFiles, ParseModulesBuiltin(builtinList))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", modIn.Package, err)
	}
	mods, builtin, err := set.Resolve(recipe.Modules)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", modIn.Package, err)
	}
	modNames := make([]string, len(mods))
	for i, m := range mods {
		modNames[i] = m.File
	}
	logf("kernel %s, firmware and modules extracted and checked", kver)
	logf("kernel %s: %d modules in load order: %s", kver, len(mods), strings.Join(modNames, " "))
	debs = nil // let the package bytes go before the Go build

	rel := &Release{
		Format:          ReleaseFormat,
		SourceCommit:    commit,
		SourceDirty:     dirty,
		GoVersion:       genv.Version,
		URootVersion:    urootV,
		MkuimageVersion: mkuimageV,
		KernelVersion:   kver,
		KernelConfig:    kconf,
		Cmdline:         recipe.Cmdline,
		Modules:         modNames,
		BuiltinModules:  append([]string{}, builtin...),
		Inputs:          releaseInputs(lock),
	}
	work, err := os.MkdirTemp("", "chrysalis-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	err = writeReleaseDir(out, func(stage string) error {
		for _, wf := range []struct {
			name string
			data []byte
		}{
			{FileKernel, vmlinuz},
			{FileFirmware, ovmf},
			{FileCmdline, []byte(recipe.Cmdline)},
		} {
			if err := writeFileMode(filepath.Join(stage, wf.name), wf.data, 0o644); err != nil {
				return err
			}
		}
		logf("building initramfs (u-root %s: init + agent)", urootV)
		spec := initramfsSpec{
			moduleRoot: root,
			goroot:     genv.GOROOT,
			initPkg:    recipe.InitPackage,
			agentPkg:   recipe.AgentPackage,
			modules:    mods,
			logOut:     opts.Log,
		}
		if err := buildInitramfs(ctx, spec, work, filepath.Join(stage, FileInitrd)); err != nil {
			return err
		}
		return Seal(stage, rel)
	})
	if err != nil {
		return nil, err
	}
	rel.Dir = out
	rel.Stats = BuildStats{Duration: time.Since(start), CacheHits: f.Hits, Downloads: f.Misses, Downloaded: f.Downloaded}
	return rel, nil
}

// CheckKernelConfig checks that the kernel config (Kconfig's .config
// format) sets every option in want to its value, and returns the values
// found. A missing or different option is an error naming it.
func CheckKernelConfig(config []byte, want map[string]string) (map[string]string, error) {
	have := map[string]string{}
	for _, line := range strings.Split(string(config), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "# CONFIG_") && strings.HasSuffix(line, " is not set") {
			have[strings.TrimSuffix(strings.TrimPrefix(line, "# "), " is not set")] = "n"
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			have[k] = v
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	got := map[string]string{}
	var bad []string
	for _, k := range keys {
		v, ok := have[k]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s is missing (want %s=%s)", k, k, want[k]))
		case v != want[k]:
			bad = append(bad, fmt.Sprintf("%s=%s (want %s)", k, v, want[k]))
		default:
			got[k] = v
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("kernel config check failed: %s", strings.Join(bad, "; "))
	}
	return got, nil
}

// checkBzImage checks the x86 boot protocol header of a bzImage.
func checkBzImage(b []byte) error {
	if len(b) < 0x300 || b[0] != 'M' || b[1] != 'Z' {
		return errors.New("not a PE/bzImage (no MZ header)")
	}
	if string(b[0x202:0x206]) != "HdrS" {
		return errors.New("not a bzImage (no HdrS boot header)")
	}
	return nil
}
