package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/chrysalis-cc/chrysalis/image"
	"github.com/chrysalis-cc/chrysalis/measure/manifest"
	"github.com/chrysalis-cc/chrysalis/measure/manifest/dsse"
)

func init() {
	register("audit", "rebuild a release from its source commit and compare every file and measurement", runAudit)
}

func auditUsage(w io.Writer) {
	fmt.Fprint(w, `usage: chrysalis audit RELEASE_DIR [--manifest manifest.dsse.json --pub KEY.pub]
                       [--source DIR | --repo DIR] [--shape NAME[,NAME...]] [--keep DIR] [--json]
Rebuilds RELEASE_DIR from the source commit its release.json records, with
that commit's own builder and image/inputs.lock, and compares every file
(byte for byte), MRTD/RTMR0-2 and the image hash of each shape, and with
--manifest the signed manifest's values. Exit status 0 only when identical.
`)
}

// auditConfig is what one audit needs.
type auditConfig struct {
	release  string   // published release directory
	envelope string   // signed manifest (optional)
	pubs     []string // its pinned public keys
	source   string   // existing clean checkout of the commit, or ""
	repo     string   // repository to check the commit out of ("" = the one containing the working directory)
	shapes   string   // comma-separated shape names ("" = the manifest's, else dev-small)
	keep     string   // keep the checkout and rebuild here
	cache    string   // .deb cache for the rebuild
	mirror   string   // Debian mirror for the rebuild
	log      io.Writer
	// prebuilt, when set, is an existing rebuild of the release's commit
	// used instead of building again (tests share one rebuild; nothing
	// outside tests sets it).
	prebuilt string
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runAuditPrebuilt(ctx, args, stdout, stderr, "")
}

// runAuditPrebuilt is runAudit comparing against an existing rebuild
// when prebuilt is set (see auditConfig.prebuilt).
func runAuditPrebuilt(ctx context.Context, args []string, stdout, stderr io.Writer, prebuilt string) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { auditUsage(stderr); fs.PrintDefaults() }
	cfg := auditConfig{prebuilt: prebuilt}
	var pubs, shapes repeated
	fs.StringVar(&cfg.envelope, "manifest", "", "signed manifest `file` (DSSE envelope) to check against the rebuild")
	fs.Var(&pubs, "pub", "pinned public key `file` for --manifest; repeat for several")
	fs.StringVar(&cfg.source, "source", "", "existing checkout `directory` of the release's commit (must be clean); default: a temporary worktree")
	fs.StringVar(&cfg.repo, "repo", "", "git repository `directory` to take the commit from (default: the one containing the working directory)")
	fs.Var(&shapes, "shape", "VM shape `names` to compare measurements for (comma-separated or repeated; default: the manifest's shapes, else dev-small)")
	fs.StringVar(&cfg.keep, "keep", "", "keep the checkout and the rebuilt release in this new `directory`")
	fs.StringVar(&cfg.cache, "cache", "", "download cache `directory` for the rebuild (default: the builder's)")
	fs.StringVar(&cfg.mirror, "mirror", "", "Debian mirror `URL` for the rebuild (default: the builder's)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	verbose := fs.Bool("v", false, "show the rebuild's progress")
	// Accept the release directory before or after the flags.
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cfg.release, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if cfg.release == "" && fs.NArg() == 1 {
		cfg.release = fs.Arg(0)
	} else if fs.NArg() != 0 || cfg.release == "" {
		fs.Usage()
		return errors.New("give exactly one RELEASE_DIR")
	}
	if (cfg.envelope == "") != (len(pubs) == 0) {
		return errors.New("--manifest and --pub go together")
	}
	if cfg.source != "" && cfg.repo != "" {
		return errors.New("--source and --repo exclude each other")
	}
	cfg.pubs = pubs
	cfg.shapes = strings.Join(shapes, ",")
	if *verbose {
		cfg.log = stderr
	}
	rep, err := audit(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.write(stdout)
	}
	if !rep.Identical {
		return fmt.Errorf("%s differs from its rebuild: %d item(s)", cfg.release, rep.Differences)
	}
	return nil
}

// auditReport is the outcome of an audit (its JSON is --json's output).
type auditReport struct {
	Release      string `json:"release"`
	SourceCommit string `json:"source_commit"`
	// Source says where the checkout came from.
	Source string `json:"source"`
	// Rebuilt is the rebuilt release directory ("" once removed).
	Rebuilt string `json:"rebuilt,omitempty"`
	// Lock is the checkout's image/inputs.lock.
	Lock auditLock `json:"inputs_lock"`
	// Inputs are every external input of the release.
	Inputs []auditInput `json:"external_inputs"`
	// Files compare every file, published (A) vs rebuilt (B).
	Files []image.FileComparison `json:"files"`
	// Checks are the other compared items (measurements, manifest).
	Checks      []auditCheck `json:"checks"`
	Differences int          `json:"differences"`
	Identical   bool         `json:"identical"`
}

type auditLock struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// MatchesRelease says its Go version and inputs are those the
	// published release.json records.
	MatchesRelease bool   `json:"matches_release"`
	Problem        string `json:"problem,omitempty"`
}

// auditInput is one external input: a pinned package or a tool version.
type auditInput struct {
	Kind    string `json:"kind"` // "deb", "go-toolchain", "go-module"
	Name    string `json:"name"`
	Version string `json:"version"`
	Source  string `json:"source"` // pool path or module path
	Size    int64  `json:"size,omitempty"`
	Hash    string `json:"hash"` // "sha256:<hex>" or go.sum's "h1:..."
}

// auditCheck is one compared value.
type auditCheck struct {
	Section   string `json:"section"`
	Name      string `json:"name"`
	Published string `json:"published"`
	Rebuilt   string `json:"rebuilt"`
	OK        bool   `json:"ok"`
}

// audit runs the whole audit: load and check the published release, get
// a checkout of its commit, rebuild with that checkout's builder, compare.
func audit(ctx context.Context, cfg auditConfig, stderr io.Writer) (*auditReport, error) {
	pub, err := image.LoadRelease(cfg.release)
	if err != nil {
		return nil, err
	}
	if pub.SourceCommit == "unknown" || pub.SourceDirty {
		return nil, fmt.Errorf("release %s was built from a dirty or unknown source tree (source_commit %s, source_dirty %v): there is no commit to rebuild it from", cfg.release, pub.SourceCommit, pub.SourceDirty)
	}
	var signed *manifest.Manifest
	if cfg.envelope != "" {
		if signed, err = auditLoadManifest(cfg.envelope, cfg.pubs); err != nil {
			return nil, err
		}
	}

	work := cfg.keep
	if work != "" {
		if err := os.Mkdir(work, 0o755); err != nil {
			return nil, fmt.Errorf("--keep: %w (give a directory that does not exist yet)", err)
		}
	} else {
		if work, err = os.MkdirTemp("", "chrysalis-audit-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
	}
	checkout, how := cfg.source, ""
	if checkout != "" {
		if err := auditCheckSource(ctx, checkout, pub.SourceCommit); err != nil {
			return nil, err
		}
		how = "given checkout"
	} else {
		wt, cleanup, err := auditWorktree(ctx, cfg.repo, pub.SourceCommit, filepath.Join(work, "source"))
		if err != nil {
			return nil, err
		}
		if cfg.keep == "" {
			defer cleanup()
		}
		checkout, how = wt, "temporary git worktree"
	}

	rep := &auditReport{Release: cfg.release, SourceCommit: pub.SourceCommit, Source: how}
	rep.Lock, err = auditReadLock(checkout, pub)
	if err != nil {
		return nil, err
	}
	rep.Inputs = auditInputs(checkout, pub)

	rebuilt := filepath.Join(work, "release")
	if cfg.prebuilt != "" {
		rebuilt = cfg.prebuilt
	} else if err := auditRebuild(ctx, checkout, rebuilt, cfg); err != nil {
		return nil, err
	}
	if cfg.keep != "" {
		rep.Rebuilt = rebuilt
	}
	if err := auditCompare(rep, pub, rebuilt, cfg.shapes, signed, stderr); err != nil {
		return nil, err
	}
	return rep, nil
}

// auditLoadManifest verifies the signed manifest against the pinned keys.
func auditLoadManifest(envelope string, pubs []string) (*manifest.Manifest, error) {
	var keys []*dsse.PublicKey
	for _, p := range pubs {
		k, err := dsse.LoadPublicKey(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	b, err := mfReadLimited(envelope, dsse.MaxEnvelopeSize)
	if err != nil {
		return nil, err
	}
	s, err := manifest.Verify(b, keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envelope, err)
	}
	return s.Manifest, nil
}

// auditGit runs git in dir and returns its trimmed standard output.
func auditGit(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0", "LC_ALL=C")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s in %s: %v: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// auditCheckSource refuses a checkout whose HEAD is not commit or whose
// work tree has changes (untracked files included).
func auditCheckSource(ctx context.Context, dir, commit string) error {
	head, err := auditGit(ctx, dir, "rev-parse", "--verify", "HEAD")
	if err != nil {
		return fmt.Errorf("--source %s: %w", dir, err)
	}
	if head != commit {
		return fmt.Errorf("--source %s: HEAD is %s, but the release was built from %s", dir, head, commit)
	}
	st, err := auditGit(ctx, dir, "status", "--porcelain=v1", "--untracked-files=all")
	if err != nil {
		return fmt.Errorf("--source %s: %w", dir, err)
	}
	if st != "" {
		first, _, _ := strings.Cut(st, "\n")
		return fmt.Errorf("--source %s: the work tree has uncommitted changes (%d path(s), first: %q); the rebuild would not be of %s", dir, strings.Count(st, "\n")+1, first, commit)
	}
	return nil
}

// auditWorktree adds a detached worktree of commit at path, from the
// repository containing repo (or the working directory), and returns a
// function removing it again.
func auditWorktree(ctx context.Context, repo, commit, path string) (string, func(), error) {
	if repo == "" {
		repo = "."
	}
	top, err := auditGit(ctx, repo, "rev-parse", "--show-toplevel")
	if err != nil {
		return "", nil, fmt.Errorf("finding the repository to check %s out of (run audit inside a clone, or give --source or --repo): %w", commit, err)
	}
	if _, err := auditGit(ctx, top, "cat-file", "-e", commit+"^{commit}"); err != nil {
		return "", nil, fmt.Errorf("repository %s does not have the release's commit %s (fetch it, or give --source)", top, commit)
	}
	if _, err := auditGit(ctx, top, "worktree", "add", "--detach", path, commit); err != nil {
		return "", nil, err
	}
	cleanup := func() {
		if _, err := auditGit(context.Background(), top, "worktree", "remove", "--force", path); err != nil {
			os.RemoveAll(path)
			auditGit(context.Background(), top, "worktree", "prune")
		}
	}
	return path, cleanup, nil
}

// auditReadLock hashes the checkout's inputs.lock and checks it against
// what the published release.json records.
func auditReadLock(checkout string, pub *image.Release) (auditLock, error) {
	p := filepath.Join(checkout, "image", "inputs.lock")
	b, err := os.ReadFile(p)
	if err != nil {
		return auditLock{}, fmt.Errorf("source commit %s: %w", pub.SourceCommit, err)
	}
	l := auditLock{Path: "image/inputs.lock", SHA256: mfSHA256Hex(b)}
	lock, err := image.ParseLock(b)
	if err != nil {
		l.Problem = fmt.Sprintf("does not parse: %v", err)
		return l, nil
	}
	var probs []string
	if lock.Go != pub.GoVersion {
		probs = append(probs, fmt.Sprintf("go %s, release.json go_version %s", lock.Go, pub.GoVersion))
	}
	if len(lock.Inputs) != len(pub.Inputs) {
		probs = append(probs, fmt.Sprintf("%d inputs, release.json %d", len(lock.Inputs), len(pub.Inputs)))
	}
	for _, ri := range pub.Inputs {
		in, ok := lock.Input(ri.Role)
		switch {
		case !ok:
			probs = append(probs, fmt.Sprintf("no %s input", ri.Role))
		case in.Package != ri.Package || in.Version != ri.Version || in.Arch != ri.Arch || in.Filename != ri.Filename || in.Size != ri.Size || in.SHA256 != ri.SHA256:
			probs = append(probs, fmt.Sprintf("%s input %s %s (sha256 %s), release.json %s %s (sha256 %s)", ri.Role, in.Package, in.Version, in.SHA256, ri.Package, ri.Version, ri.SHA256))
		}
	}
	l.MatchesRelease = len(probs) == 0
	l.Problem = strings.Join(probs, "; ")
	return l, nil
}

// auditInputs lists the release's external inputs: the pinned packages
// from release.json, the Go toolchain, and the initramfs tool modules
// with their go.sum hashes from the checkout.
func auditInputs(checkout string, pub *image.Release) []auditInput {
	var out []auditInput
	for _, in := range pub.Inputs {
		out = append(out, auditInput{Kind: "deb", Name: string(in.Role) + " " + in.Package, Version: in.Version + " " + in.Arch,
			Source: in.Filename, Size: in.Size, Hash: "sha256:" + in.SHA256})
	}
	out = append(out, auditInput{Kind: "go-toolchain", Name: "go", Version: pub.GoVersion, Source: "https://go.dev/dl/", Hash: "(toolchain named by version)"})
	sums := map[string]string{}
	if f, err := os.Open(filepath.Join(checkout, "go.sum")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if w := strings.Fields(sc.Text()); len(w) == 3 {
				sums[w[0]+" "+w[1]] = w[2]
			}
		}
		f.Close()
	}
	for _, m := range []struct{ path, version string }{
		{"github.com/u-root/u-root", pub.URootVersion},
		{"github.com/u-root/mkuimage", pub.MkuimageVersion},
	} {
		h, ok := sums[m.path+" "+m.version]
		if !ok {
			h = "(not in go.sum)"
		}
		out = append(out, auditInput{Kind: "go-module", Name: m.path, Version: m.version, Source: m.path + "@" + m.version, Hash: h})
	}
	return out
}

// auditRebuild runs the checkout's own builder: `go run
// ./host/cmd/chrysalis build --out OUT` inside the checkout.
func auditRebuild(ctx context.Context, checkout, out string, cfg auditConfig) error {
	args := []string{"run", "./host/cmd/chrysalis", "build", "--out", out}
	if cfg.cache != "" {
		args = append(args, "--cache", cfg.cache)
	}
	if cfg.mirror != "" {
		args = append(args, "--mirror", cfg.mirror)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = checkout
	var logb bytes.Buffer
	var w io.Writer = &logb
	if cfg.log != nil {
		w = io.MultiWriter(&logb, cfg.log)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		tail := logb.String()
		if len(tail) > 2000 {
			tail = "..." + tail[len(tail)-2000:]
		}
		return fmt.Errorf("rebuild in %s (go %s) failed: %v\n%s", checkout, strings.Join(args, " "), err, strings.TrimSpace(tail))
	}
	return nil
}

// auditCompare fills rep's file comparison and checks: published vs the
// rebuilt release directory, the measurements of every shape, and the
// signed manifest when there is one.
func auditCompare(rep *auditReport, pub *image.Release, rebuiltDir, shapes string, signed *manifest.Manifest, stderr io.Writer) error {
	files, err := image.CompareReleases(pub.Dir, rebuiltDir)
	if err != nil {
		return err
	}
	rep.Files = files
	if shapes == "" {
		if signed != nil {
			var names []string
			for _, s := range signed.Shapes {
				names = append(names, s.Name)
			}
			shapes = strings.Join(names, ",")
		} else {
			shapes = "dev-small"
		}
	}
	// Measurements are recomputed from both releases. The rebuilt one
	// must load (its SHA256SUMS verify) like the published one did.
	if _, err := image.LoadRelease(rebuiltDir); err != nil {
		return fmt.Errorf("rebuilt release: %w", err)
	}
	warn := &auditWarnings{w: stderr}
	mPub, err := (&mfSource{release: pub.Dir, shapes: shapes}).build(warn, "audit: published")
	if err != nil {
		return fmt.Errorf("measurements of the published release: %w", err)
	}
	mNew, err := (&mfSource{release: rebuiltDir, shapes: shapes}).build(warn, "audit: rebuilt")
	if err != nil {
		return fmt.Errorf("measurements of the rebuilt release: %w", err)
	}
	add := func(section, name, a, b string) {
		rep.Checks = append(rep.Checks, auditCheck{Section: section, Name: name, Published: a, Rebuilt: b, OK: a == b})
	}
	lockDetail := "sha256:" + rep.Lock.SHA256
	if rep.Lock.MatchesRelease {
		add("inputs", "inputs.lock at the commit vs release.json inputs", lockDetail, lockDetail)
	} else {
		add("inputs", "inputs.lock at the commit vs release.json inputs", "release.json inputs", lockDetail+": "+rep.Lock.Problem)
	}
	for i := range mPub.Shapes {
		a, b := &mPub.Shapes[i], &mNew.Shapes[i]
		sec := "shape " + a.Name
		add(sec, "MRTD ("+a.MRTDVariant+")", a.MRTD.String(), b.MRTD.String())
		add(sec, "RTMR0 (local QEMU tables)", a.RTMR0.String(), b.RTMR0.String())
		add(sec, "RTMR1 ("+a.RTMR1Variant+")", a.RTMR1.String(), b.RTMR1.String())
		add(sec, "RTMR2 ("+a.RTMR2Variant+")", a.RTMR2.String(), b.RTMR2.String())
		add(sec, "image hash", a.ImageHash.String(), b.ImageHash.String())
	}
	if signed != nil {
		if err := auditSigned(rep, signed, rebuiltDir, add); err != nil {
			return err
		}
	}
	for _, f := range rep.Files {
		if !f.Same {
			rep.Differences++
		}
	}
	for _, c := range rep.Checks {
		if !c.OK {
			rep.Differences++
		}
	}
	rep.Identical = rep.Differences == 0
	return nil
}

// auditSigned compares the signed manifest with the rebuilt release's
// manifest for the same shapes. RTMR0 depends on the host's QEMU, so the
// signed RTMR0 is used for the rebuilt image hash; every other register,
// the release identity and the inputs are recomputed.
func auditSigned(rep *auditReport, signed *manifest.Manifest, rebuiltDir string, add func(section, name, a, b string)) error {
	var names []string
	src := &mfSource{release: rebuiltDir}
	for _, s := range signed.Shapes {
		names = append(names, s.Name)
		src.rtmr0 = append(src.rtmr0, s.Name+"="+s.RTMR0.String())
	}
	src.shapes = strings.Join(names, ",")
	m, err := src.build(io.Discard, "audit")
	if err != nil {
		return fmt.Errorf("manifest of the rebuilt release: %w", err)
	}
	const sec = "signed manifest"
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	add(sec, "release identity (commit, files, release.json sha256)", js(signed.Release), js(m.Release))
	add(sec, "inputs", js(signed.Inputs), js(m.Inputs))
	for i := range signed.Shapes {
		a, b := &signed.Shapes[i], &m.Shapes[i]
		add(sec, "shape "+a.Name+" digest", a.Digest, b.Digest)
		add(sec, "shape "+a.Name+" MRTD", a.MRTD.String(), b.MRTD.String())
		add(sec, "shape "+a.Name+" RTMR1", a.RTMR1.String(), b.RTMR1.String())
		add(sec, "shape "+a.Name+" RTMR2", a.RTMR2.String(), b.RTMR2.String())
		add(sec, "shape "+a.Name+" image hash (signed RTMR0)", a.ImageHash.String(), b.ImageHash.String())
	}
	return nil
}

// auditWarnings passes the measurement warnings on once each (both
// releases give the same QEMU warnings).
type auditWarnings struct {
	w    io.Writer
	seen map[string]bool
}

func (a *auditWarnings) Write(p []byte) (int, error) {
	if a.seen == nil {
		a.seen = map[string]bool{}
	}
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line == "" {
			continue
		}
		_, rest, _ := strings.Cut(line, ": shape ")
		if a.seen[rest] {
			continue
		}
		a.seen[rest] = true
		io.WriteString(a.w, line)
	}
	return len(p), nil
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

// write prints the labelled human report.
func (r *auditReport) write(w io.Writer) {
	fmt.Fprintf(w, "audit of %s\n", r.Release)
	fmt.Fprintf(w, "  source commit  %s (%s)\n", r.SourceCommit, r.Source)
	if r.Rebuilt != "" {
		fmt.Fprintf(w, "  rebuilt into   %s\n", r.Rebuilt)
	}
	fmt.Fprintf(w, "  inputs.lock    sha256 %s\n", r.Lock.SHA256)
	fmt.Fprintln(w, "external inputs:")
	for _, in := range r.Inputs {
		size := ""
		if in.Size > 0 {
			size = fmt.Sprintf(", %d bytes", in.Size)
		}
		fmt.Fprintf(w, "  %-12s %s %s\n  %12s %s%s, %s\n", in.Kind, in.Name, in.Version, "", in.Source, size, in.Hash)
	}
	fmt.Fprintln(w, "files (published vs rebuilt):")
	for _, f := range r.Files {
		switch {
		case f.Same:
			fmt.Fprintf(w, "  %s %-12s %d bytes, sha256 %s\n", mark(true), f.Name, f.A.Size, f.A.SHA256)
		case !f.A.Present || !f.B.Present:
			fmt.Fprintf(w, "  %s %-12s published: %s, rebuilt: %s\n", mark(false), f.Name, presence(f.A), presence(f.B))
		default:
			fmt.Fprintf(w, "  %s %s\n", mark(false), f.Name)
			fmt.Fprintf(w, "      published %d bytes, sha256 %s\n", f.A.Size, f.A.SHA256)
			fmt.Fprintf(w, "      rebuilt   %d bytes, sha256 %s\n", f.B.Size, f.B.SHA256)
			fmt.Fprintf(w, "      first difference at offset %d (0x%x)\n", f.Offset, f.Offset)
			fmt.Fprintf(w, "      published @0x%x: %s\n", f.ContextStart, markByte(f.ContextA, f.Offset-f.ContextStart))
			fmt.Fprintf(w, "      rebuilt   @0x%x: %s\n", f.ContextStart, markByte(f.ContextB, f.Offset-f.ContextStart))
			for _, d := range f.Fields {
				fmt.Fprintf(w, "      field %s: published %s, rebuilt %s\n", d.Path, orAbsent(d.A), orAbsent(d.B))
			}
		}
	}
	section := ""
	for _, c := range r.Checks {
		if c.Section != section {
			section = c.Section
			fmt.Fprintf(w, "%s:\n", section)
		}
		if c.OK {
			fmt.Fprintf(w, "  %s %s %s\n", mark(true), c.Name, c.Published)
		} else {
			fmt.Fprintf(w, "  %s %s\n      published %s\n      rebuilt   %s\n", mark(false), c.Name, c.Published, c.Rebuilt)
		}
	}
	if r.Identical {
		fmt.Fprintln(w, "result: IDENTICAL: the release is exactly what its source commit builds")
	} else {
		fmt.Fprintf(w, "result: DIFFERENT: %d item(s) differ\n", r.Differences)
	}
}

func presence(s image.FileState) string {
	if !s.Present {
		return "missing"
	}
	return fmt.Sprintf("%d bytes, sha256 %s", s.Size, s.SHA256)
}

func orAbsent(s string) string {
	if s == "" {
		return "(absent)"
	}
	return s
}

// markByte brackets the byte at index i of the hex string h.
func markByte(h string, i int64) string {
	if i < 0 || 2*i+2 > int64(len(h)) {
		return h + "[]"
	}
	return h[:2*i] + "[" + h[2*i:2*i+2] + "]" + h[2*i+2:]
}
