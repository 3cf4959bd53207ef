package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/image"
	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
	"github.com/chrysalis-cc/chrysalis/measure/manifest"
	"github.com/chrysalis-cc/chrysalis/measure/manifest/dsse"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

func init() {
	register("manifest", "build, sign and verify a release's measurement manifest (keygen|build|sign|verify)", runManifest)
}

func manifestUsage(w io.Writer) {
	fmt.Fprint(w, `usage:
  chrysalis manifest keygen --out KEY
      write an ed25519 signing key to KEY (PEM PKCS#8, mode 0600) and its
      public key to KEY.pub (PEM PKIX); never overwrites
  chrysalis manifest build --release DIR --shape NAME[,NAME...] [--shape-file FILE]
                           [--rtmr0 NAME=HEX...] --out manifest.json
      compute MRTD, RTMR1, RTMR2 and the image hash of each shape and write
      the canonical manifest JSON (RTMR0 is given until measure/tdxmr computes it)
  chrysalis manifest sign --key KEY --in manifest.json --out manifest.dsse.json
      check the manifest and sign it as a DSSE envelope
  chrysalis manifest verify --pub KEY.pub [--pub KEY.pub...] manifest.dsse.json
      verify the envelope against the pinned public keys and print the manifest
`)
}

func runManifest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	noCtx := func(f func([]string, io.Writer, io.Writer) error) func(context.Context, []string, io.Writer, io.Writer) error {
		return func(_ context.Context, args []string, stdout, stderr io.Writer) error { return f(args, stdout, stderr) }
	}
	err := runGroup(ctx, manifestUsage, []subcommand{
		{"keygen", noCtx(manifestKeygen)},
		{"build", noCtx(manifestBuild)},
		{"sign", noCtx(manifestSign)},
		{"verify", noCtx(manifestVerify)},
	}, args, stdout, stderr)
	if err != nil && strings.HasPrefix(err.Error(), "manifest: ") {
		// main prefixes "chrysalis manifest: " already.
		return errors.New(strings.TrimPrefix(err.Error(), "manifest: "))
	}
	return err
}

// mfParseFlags parses fs and rejects positional arguments beyond max.
func mfParseFlags(fs *flag.FlagSet, args []string, max int) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > max {
		return fmt.Errorf("unexpected arguments %q", fs.Args()[max:])
	}
	return nil
}

func mfFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	return groupFlagSet("manifest", name, manifestUsage, stderr)
}

// mfHelpOK turns -h into success.
func mfHelpOK(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func manifestKeygen(args []string, stdout, stderr io.Writer) error {
	fs := mfFlagSet("keygen", stderr)
	out := fs.String("out", "", "private key `file` to create (the public key goes to FILE.pub)")
	if err := mfParseFlags(fs, args, 0); err != nil {
		return mfHelpOK(err)
	}
	if *out == "" {
		return errors.New("keygen: --out is required")
	}
	k, err := dsse.GenerateKey(nil)
	if err != nil {
		return err
	}
	if err := dsse.WriteKeyPair(*out, k); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "private key  %s (mode 0600; keep it offline)\n", *out)
	fmt.Fprintf(stdout, "public key   %s\n", dsse.PublicKeyPath(*out))
	fmt.Fprintf(stdout, "key id       %s\n", k.ID)
	return nil
}

func manifestBuild(args []string, stdout, stderr io.Writer) error {
	fs := mfFlagSet("build", stderr)
	src := mfSourceFlags(fs)
	out := fs.String("out", "", "manifest `file` to write (canonical JSON)")
	if err := mfParseFlags(fs, args, 0); err != nil {
		return mfHelpOK(err)
	}
	if *out == "" || src.shapes == "" {
		return errors.New("build: --shape and --out are required")
	}
	m, err := src.build(stderr, "manifest build")
	if err != nil {
		return err
	}
	enc, err := m.Encode()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(*out, enc, 0o644); err != nil {
		return err
	}
	if err := m.WriteSummary(stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

// mfSource is where a manifest is built from: the flags `manifest build`
// and `publish` share.
type mfSource struct {
	release, shapes, shapeFile string
	rtmr0                      repeated
	fw                         *firmwareFlags
}

func mfSourceFlags(fs *flag.FlagSet) *mfSource {
	s := &mfSource{}
	fs.StringVar(&s.release, "release", "release", "release `directory`")
	fs.StringVar(&s.shapes, "shape", "", "comma-separated VM shape `names` (built-in, or from --shape-file)")
	fs.StringVar(&s.shapeFile, "shape-file", "", "shape `file` to take the shapes from instead of the built-in catalog")
	s.fw = addFirmwareFlags(fs)
	fs.Var(&s.rtmr0, "rtmr0", "`NAME=HEX`: use this RTMR0 for shape NAME (96 hex digits, e.g. captured on the target host with its QEMU) instead of computing it with the local QEMU; repeat per shape")
	return s
}

// build computes the manifest of the release for the shapes; warnings go
// to stderr prefixed with who.
func (src *mfSource) build(stderr io.Writer, who string) (*manifest.Manifest, error) {
	shapes, err := lookupShapes(src.shapeFile, src.shapes)
	if err != nil {
		return nil, err
	}
	given := map[string]tdxmr.Digest{}
	for _, kv := range src.rtmr0 {
		name, hexv, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--rtmr0 %q: want NAME=HEX", kv)
		}
		d, err := tdxmr.ParseDigest(hexv)
		if err != nil {
			return nil, fmt.Errorf("--rtmr0 %s: %w", name, err)
		}
		if _, dup := given[name]; dup {
			return nil, fmt.Errorf("--rtmr0 %s given twice", name)
		}
		given[name] = d
	}
	for name := range given {
		found := false
		for _, s := range shapes {
			found = found || s.Name == name
		}
		if !found {
			return nil, fmt.Errorf("--rtmr0 %s: no such shape in --shape", name)
		}
	}

	rel, err := image.LoadRelease(src.release)
	if err != nil {
		return nil, err
	}
	files, err := mfReleaseFiles(rel)
	if err != nil {
		return nil, err
	}
	qrel, err := qemu.ReleaseFromDir(src.release)
	if err != nil {
		return nil, err
	}
	r0 := func(s *shape.VMShape) (tdxmr.Digest, error) {
		if d, ok := given[s.Name]; ok {
			return d, nil
		}
		// Capture the ACPI tables of the shape's TDX argv with the local
		// QEMU, as `chrysalis measure` does.
		m, err := measureShape(context.Background(), src.release, qrel, s, src.fw)
		if err != nil {
			return tdxmr.Digest{}, fmt.Errorf("RTMR0 of shape %s: %w (or pass --rtmr0 %s=<96 hex digits> captured on the target host)", s.Name, err, s.Name)
		}
		for _, w := range m.Warnings {
			fmt.Fprintf(stderr, "%s: shape %s: %s\n", who, s.Name, w)
		}
		return m.RTMR0.Value, nil
	}
	return manifest.BuildWithRTMR0(mfRelease(rel), mfInputs(rel), files, shapes, r0)
}

// mfReleaseFiles reads what the registers depend on from a loaded (and
// therefore checked) release.
func mfReleaseFiles(rel *image.Release) (*manifest.Files, error) {
	fw, err := tdvf.Load(rel.Path(image.FileFirmware))
	if err != nil {
		return nil, err
	}
	k, err := os.ReadFile(rel.Path(image.FileKernel))
	if err != nil {
		return nil, err
	}
	initrd, err := os.ReadFile(rel.Path(image.FileInitrd))
	if err != nil {
		return nil, err
	}
	// LoadRelease verified every file against SHA256SUMS; a file changed
	// since then would give wrong measurements.
	for name, b := range map[string][]byte{image.FileFirmware: fw.Image(), image.FileKernel: k, image.FileInitrd: initrd} {
		if mfSHA256Hex(b) != rel.Sums[name] {
			return nil, fmt.Errorf("release %s: %s changed while it was read", rel.Dir, name)
		}
	}
	return &manifest.Files{Firmware: fw, Kernel: k, Initrd: initrd, Cmdline: rel.Cmdline}, nil
}

// mfRelease is the release identity of a loaded release.
func mfRelease(rel *image.Release) manifest.Release {
	r := manifest.Release{
		SourceCommit:      rel.SourceCommit,
		SourceDirty:       rel.SourceDirty,
		KernelVersion:     rel.KernelVersion,
		Cmdline:           rel.Cmdline,
		ReleaseJSONSHA256: rel.Sums[image.FileReleaseJSON],
	}
	names := append([]string(nil), image.ReleaseFiles...)
	sort.Strings(names)
	for _, n := range names {
		f, _ := rel.File(n)
		r.Files = append(r.Files, manifest.File{Name: n, Size: f.Size, SHA256: rel.Sums[n]})
	}
	return r
}

func mfInputs(rel *image.Release) []manifest.Input {
	out := []manifest.Input{}
	for _, in := range rel.Inputs {
		out = append(out, manifest.Input{
			Role: string(in.Role), Package: in.Package, Version: in.Version, Arch: in.Arch,
			Filename: in.Filename, Size: in.Size, SHA256: in.SHA256,
		})
	}
	return out
}

func mfReadLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

func manifestSign(args []string, stdout, stderr io.Writer) error {
	fs := mfFlagSet("sign", stderr)
	keyPath := fs.String("key", "", "private key `file` (from manifest keygen)")
	in := fs.String("in", "", "manifest `file` to sign")
	out := fs.String("out", "", "envelope `file` to write")
	if err := mfParseFlags(fs, args, 0); err != nil {
		return mfHelpOK(err)
	}
	if *keyPath == "" || *in == "" || *out == "" {
		return errors.New("sign: --key, --in and --out are required")
	}
	k, err := dsse.LoadPrivateKey(*keyPath)
	if err != nil {
		return err
	}
	b, err := mfReadLimited(*in, manifest.MaxSize)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	_, env, err := manifest.Sign(m, k)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(*out, env, 0o644); err != nil {
		return err
	}
	d, _ := m.Digest()
	fmt.Fprintf(stdout, "signed %s (shapes: %d) with key %s\nwrote %s\n", d, len(m.Shapes), k.ID, *out)
	return nil
}

func manifestVerify(args []string, stdout, stderr io.Writer) error {
	fs := mfFlagSet("verify", stderr)
	var pubs repeated
	fs.Var(&pubs, "pub", "pinned public key `file`; repeat for several (1 valid signature needed)")
	// Accept the envelope before or after the flags.
	var path string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		path, args = args[0], args[1:]
	}
	if err := mfParseFlags(fs, args, 1); err != nil {
		return mfHelpOK(err)
	}
	if path == "" && fs.NArg() == 1 {
		path = fs.Arg(0)
	} else if fs.NArg() != 0 || path == "" {
		return errors.New("verify: give exactly one envelope file")
	}
	if len(pubs) == 0 {
		return errors.New("verify: at least one --pub is required")
	}
	var keys []*dsse.PublicKey
	for _, p := range pubs {
		k, err := dsse.LoadPublicKey(p)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	b, err := mfReadLimited(path, dsse.MaxEnvelopeSize)
	if err != nil {
		return err
	}
	s, err := manifest.Verify(b, keys)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := s.Manifest.WriteSummary(stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "verified       signed by %s\n", strings.Join(s.KeyIDs, ", "))
	if s.Manifest.Release.SourceDirty || s.Manifest.Release.SourceCommit == "unknown" {
		fmt.Fprintln(stdout, "warning        built from a dirty or unknown source tree: not reproducible from a commit")
	}
	return nil
}

func mfSHA256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
