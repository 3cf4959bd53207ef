package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/image"
	"github.com/chrysalis-cc/chrysalis/measure/golden"
)

// auditFixture is one release built from a clean clone of HEAD and one
// audit of it (which rebuilds it a second time, in another directory).
// Both builds cost about a minute each, so every test shares them.
type auditFixture struct {
	base      string // scratch directory holding everything below
	clone     string // clean clone of HEAD
	head      string // its commit
	published string // release built from the clone
	rebuilt   string // the audit's rebuild (kept)
	stdout    string // the audit's --json output
	stderr    string
	err       error
	took      time.Duration
}

var (
	auditOnce sync.Once
	auditFix  auditFixture
)

func TestMain(m *testing.M) {
	code := m.Run()
	if auditFix.base != "" {
		os.RemoveAll(auditFix.base)
	}
	os.Exit(code)
}

func gitOut(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := auditGit(context.Background(), dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// cleanClone clones the repository holding the working directory and
// checks out commit, detached; the clone has no local changes whatever
// the state of the working tree.
func cleanClone(dir, commit string) error {
	top, err := auditGit(context.Background(), ".", "rev-parse", "--show-toplevel")
	if err != nil {
		return err
	}
	if out, err := exec.Command("git", "clone", "--quiet", "--shared", "--no-checkout", top, dir).CombinedOutput(); err != nil {
		return fmt.Errorf("git clone: %v: %s", err, out)
	}
	_, err = auditGit(context.Background(), dir, "checkout", "--quiet", "--detach", commit)
	return err
}

func setupAudit(t *testing.T) *auditFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the audit tests build a release twice (about a minute each)")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	auditOnce.Do(func() {
		f := &auditFix
		start := time.Now()
		defer func() { f.took = time.Since(start) }()
		if f.base, f.err = os.MkdirTemp("", "chrysalis-audit-test-"); f.err != nil {
			return
		}
		if f.head, f.err = auditGit(context.Background(), ".", "rev-parse", "--verify", "HEAD"); f.err != nil {
			return
		}
		f.clone = filepath.Join(f.base, "clone")
		if f.err = cleanClone(f.clone, f.head); f.err != nil {
			return
		}
		// The published release: the same builder invocation the audit
		// uses, in the clone, written outside it.
		f.published = filepath.Join(f.base, "published", "release")
		if f.err = auditRebuild(context.Background(), f.clone, f.published, auditConfig{}); f.err != nil {
			return
		}
		// The audit rebuilds in its own directory.
		var out, errb bytes.Buffer
		keep := filepath.Join(f.base, "keep")
		f.err = runAudit(context.Background(), []string{f.published, "--source", f.clone, "--keep", keep, "--json"}, &out, &errb)
		f.stdout, f.stderr = out.String(), errb.String()
		f.rebuilt = filepath.Join(keep, "release")
	})
	if auditFix.err != nil {
		t.Fatalf("audit fixture: %v\nstdout:\n%s\nstderr:\n%s", auditFix.err, auditFix.stdout, auditFix.stderr)
	}
	t.Logf("fixture (two release builds and one audit) took %s", auditFix.took.Round(time.Second))
	return &auditFix
}

func TestAuditRebuildIsIdentical(t *testing.T) {
	f := setupAudit(t)
	var rep auditReport
	if err := json.Unmarshal([]byte(f.stdout), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, f.stdout)
	}
	if !rep.Identical || rep.Differences != 0 || rep.SourceCommit != f.head || rep.Rebuilt != f.rebuilt {
		t.Fatalf("report: identical=%v differences=%d commit=%s rebuilt=%s", rep.Identical, rep.Differences, rep.SourceCommit, rep.Rebuilt)
	}
	if f.published == f.rebuilt {
		t.Fatal("the rebuild went into the published directory")
	}
	var names []string
	for _, c := range rep.Files {
		names = append(names, c.Name)
		if !c.Same || c.A.SHA256 == "" || c.A.SHA256 != c.B.SHA256 {
			t.Errorf("file %+v", c)
		}
	}
	want := append(append([]string(nil), image.ReleaseFiles...), image.FileSHA256SUMS)
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("compared files %v, want %v", names, want)
	}
	regs := map[string]bool{}
	for _, c := range rep.Checks {
		if !c.OK || c.Published == "" {
			t.Errorf("check %+v", c)
		}
		regs[strings.Fields(c.Name)[0]] = true
	}
	for _, r := range []string{"MRTD", "RTMR0", "RTMR1", "RTMR2", "image", "inputs.lock"} {
		if !regs[r] {
			t.Errorf("no %s check in %+v", r, rep.Checks)
		}
	}
	if !rep.Lock.MatchesRelease || len(rep.Lock.SHA256) != 64 {
		t.Errorf("lock %+v", rep.Lock)
	}
	lockBytes, err := os.ReadFile(filepath.Join(f.clone, "image", "inputs.lock"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lock.SHA256 != mfSHA256Hex(lockBytes) {
		t.Errorf("lock sha256 %s, file's %s", rep.Lock.SHA256, mfSHA256Hex(lockBytes))
	}
	pub, err := image.LoadRelease(f.published)
	if err != nil {
		t.Fatal(err)
	}
	debs := 0
	for _, in := range rep.Inputs {
		if in.Hash == "" || in.Source == "" || strings.Contains(in.Hash, "not in go.sum") {
			t.Errorf("input %+v", in)
		}
		if in.Kind == "deb" {
			debs++
		}
	}
	if debs != len(pub.Inputs) || debs == 0 {
		t.Errorf("%d deb inputs listed, release has %d", debs, len(pub.Inputs))
	}
	// The clone is untouched and the temporary worktree is not used with
	// --source.
	if st := gitOut(t, f.clone, "status", "--porcelain"); st != "" {
		t.Errorf("clone dirty after the audit: %s", st)
	}
}

// copyRelease copies a release directory into a new temporary directory.
func copyRelease(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "release")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// reseal rewrites release.json (files entries, cmdline) and SHA256SUMS
// to match the files of dir, as a publisher of a modified release would,
// so that LoadRelease accepts it.
func reseal(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, image.FileReleaseJSON))
	if err != nil {
		t.Fatal(err)
	}
	var rel image.Release
	if err := json.Unmarshal(b, &rel); err != nil {
		t.Fatal(err)
	}
	for i, f := range rel.Files {
		c, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		rel.Files[i].Size, rel.Files[i].SHA256 = int64(len(c)), mfSHA256Hex(c)
		if f.Name == image.FileCmdline {
			rel.Cmdline = string(c)
		}
	}
	rj, err := json.MarshalIndent(&rel, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	rj = append(rj, '\n')
	if err := os.WriteFile(filepath.Join(dir, image.FileReleaseJSON), rj, 0o644); err != nil {
		t.Fatal(err)
	}
	names := append([]string(nil), image.ReleaseFiles...)
	sort.Strings(names)
	var sums bytes.Buffer
	for _, n := range names {
		c, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&sums, "%s  %s\n", mfSHA256Hex(c), n)
	}
	if err := os.WriteFile(filepath.Join(dir, image.FileSHA256SUMS), sums.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := image.LoadRelease(dir); err != nil {
		t.Fatalf("resealed release does not load: %v", err)
	}
}

var (
	goldenHex   = regexp.MustCompile(`\b[0-9a-f]{40,}\b`)
	goldenBytes = regexp.MustCompile(`\b\d+ bytes\b`)
	goldenH1    = regexp.MustCompile(`h1:[A-Za-z0-9+/=]+`)
	// goldenOffset and goldenContext match a difference's offset and
	// byte context lines.
	goldenOffset  = regexp.MustCompile(`(offset )\d+ \(0x[0-9a-f]+\)`)
	goldenContext = regexp.MustCompile(`(@)0x[0-9a-f]+: [0-9a-f\[\]]+`)
)

// normalizeReport removes what changes with every commit (digests,
// sizes) and the temporary paths, keeping the report's structure and
// the offsets and byte contexts.
//
// The byte contexts of release.json and SHA256SUMS are digests too, so
// theirs are replaced as well; the initrd's (a cpio header) are kept.
func normalizeReport(s, release string) string {
	s = strings.ReplaceAll(s, release, "RELEASE")
	var b strings.Builder
	file := ""
	for _, line := range strings.SplitAfter(s, "\n") {
		if strings.HasPrefix(line, "  ✓ ") || strings.HasPrefix(line, "  ✗ ") {
			file = strings.Fields(line)[1]
		}
		if file == image.FileReleaseJSON || file == image.FileSHA256SUMS {
			line = goldenOffset.ReplaceAllString(line, "${1}<offset>")
			line = goldenContext.ReplaceAllString(line, "${1}<context>")
		}
		b.WriteString(line)
	}
	s = b.String()
	s = goldenHex.ReplaceAllString(s, "<hex>")
	s = goldenBytes.ReplaceAllString(s, "N bytes")
	return goldenH1.ReplaceAllString(s, "h1:<go.sum>")
}

// auditAgainst runs `chrysalis audit args...` comparing with the
// fixture's rebuild instead of building again.
func auditAgainst(f *auditFixture, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	err = runAuditPrebuilt(context.Background(), args, &out, &errb, f.rebuilt)
	return out.String(), errb.String(), err
}

func TestAuditOneByteChange(t *testing.T) {
	f := setupAudit(t)
	const off = 5
	flip := func(t *testing.T) string {
		dir := copyRelease(t, f.published)
		p := filepath.Join(dir, image.FileInitrd)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[off] ^= 0x01
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	t.Run("SHA256SUMS not updated: refused before any rebuild", func(t *testing.T) {
		dir := flip(t)
		// No prebuilt release: a refusal must come before building.
		var out, errb bytes.Buffer
		err := runAudit(context.Background(), []string{dir, "--source", f.clone}, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), "initrd does not match SHA256SUMS") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("resealed: the report names file, offset and RTMR2", func(t *testing.T) {
		dir := flip(t)
		reseal(t, dir)
		out, _, err := auditAgainst(f, dir, "--source", f.clone)
		if err == nil || !strings.Contains(err.Error(), "differs from its rebuild") {
			t.Fatalf("err = %v", err)
		}
		for _, want := range []string{
			"✗ initrd", fmt.Sprintf("first difference at offset %d (0x%x)", off, off),
			"✗ RTMR2", "✓ MRTD", "✓ RTMR1", "✗ image hash", "✗ release.json", "field files[2].sha256", "✗ SHA256SUMS",
			"✓ OVMF.fd", "✓ vmlinuz", "✓ cmdline", "result: DIFFERENT: 5 item(s) differ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("report lacks %q:\n%s", want, out)
			}
		}
		golden.Check(t, "audit/one-byte.golden", []byte(normalizeReport(out, dir)))

		// The JSON report carries the same facts.
		js, _, err := auditAgainst(f, dir, "--source", f.clone, "--json")
		if err == nil {
			t.Fatal("--json: audit passed")
		}
		var rep auditReport
		if err := json.Unmarshal([]byte(js), &rep); err != nil {
			t.Fatal(err)
		}
		for _, c := range rep.Files {
			if c.Name == image.FileInitrd && (c.Same || c.Offset != off) {
				t.Errorf("initrd %+v", c)
			}
		}
		if rep.Identical || rep.Differences != 5 {
			t.Errorf("identical=%v differences=%d", rep.Identical, rep.Differences)
		}
	})
}

func TestAuditChangedCmdline(t *testing.T) {
	f := setupAudit(t)
	dir := copyRelease(t, f.published)
	cl, err := os.ReadFile(filepath.Join(dir, image.FileCmdline))
	if err != nil {
		t.Fatal(err)
	}
	changed := string(cl) + " init=/bin/sh"
	if err := os.WriteFile(filepath.Join(dir, image.FileCmdline), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	reseal(t, dir)
	out, _, err := auditAgainst(f, dir, "--source", f.clone)
	if err == nil {
		t.Fatalf("audit of a changed cmdline passed:\n%s", out)
	}
	for _, want := range []string{
		"✗ cmdline", fmt.Sprintf("first difference at offset %d", len(cl)),
		"field cmdline: published " + mustJSON(changed), "✗ RTMR2", "✓ RTMR1", "✓ MRTD", "✓ initrd", "✗ image hash",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAuditRefusesWrongSource(t *testing.T) {
	f := setupAudit(t)
	parent, err := auditGit(context.Background(), f.clone, "rev-parse", "--verify", "HEAD^")
	if err != nil {
		t.Skipf("HEAD has no parent to check out: %v", err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if err := cleanClone(other, parent); err != nil {
		t.Fatal(err)
	}
	dirty := filepath.Join(t.TempDir(), "dirty")
	if err := cleanClone(dirty, f.head); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirty, "stray.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"other commit", []string{f.published, "--source", other}, fmt.Sprintf("--source %s: HEAD is %s, but the release was built from %s", other, parent, f.head)},
		{"dirty tree", []string{f.published, "--source", dirty}, fmt.Sprintf("--source %s: the work tree has uncommitted changes (1 path(s), first: \"?? stray.txt\")", dirty)},
		{"not a checkout", []string{f.published, "--source", t.TempDir()}, "--source "},
		{"repo is not a repository", []string{f.published, "--repo", t.TempDir()}, "finding the repository"},
		{"manifest without pub", []string{f.published, "--manifest", "m.json"}, "--manifest and --pub go together"},
		{"no release", []string{"--source", other}, "give exactly one RELEASE_DIR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// No prebuilt release: refusals come before any build.
			var out, errb bytes.Buffer
			err := runAudit(context.Background(), tc.args, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestAuditWorktree(t *testing.T) {
	f := setupAudit(t)
	path := filepath.Join(t.TempDir(), "wt")
	wt, cleanup, err := auditWorktree(context.Background(), f.clone, f.head, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := auditCheckSource(context.Background(), wt, f.head); err != nil {
		t.Errorf("fresh worktree: %v", err)
	}
	if !strings.Contains(gitOut(t, f.clone, "worktree", "list"), path) {
		t.Error("worktree not listed")
	}
	cleanup()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("worktree left behind: %v", err)
	}
	if strings.Contains(gitOut(t, f.clone, "worktree", "list"), path) {
		t.Error("worktree still registered")
	}
	if _, _, err := auditWorktree(context.Background(), f.clone, strings.Repeat("0", 40), path); err == nil || !strings.Contains(err.Error(), "does not have the release's commit") {
		t.Errorf("unknown commit: %v", err)
	}
}

func TestAuditSignedManifest(t *testing.T) {
	f := setupAudit(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	sign := func(release, name string) string {
		t.Helper()
		m := filepath.Join(dir, name+".json")
		env := filepath.Join(dir, name+".dsse.json")
		for _, args := range [][]string{
			{"manifest", "build", "--release", release, "--shape", "dev-small,cpu-4c-8g", "--out", m},
			{"manifest", "sign", "--key", key, "--in", m, "--out", env},
		} {
			if code, o, e := cli(args...); code != 0 {
				t.Fatalf("%v: %s %s", args, o, e)
			}
		}
		return env
	}
	if code, o, e := cli("manifest", "keygen", "--out", key); code != 0 {
		t.Fatalf("keygen: %s %s", o, e)
	}

	// The manifest of the genuine release agrees with the rebuild.
	env := sign(f.published, "genuine")
	out, _, err := auditAgainst(f, f.published, "--source", f.clone, "--manifest", env, "--pub", key+".pub")
	if err != nil {
		t.Fatalf("genuine: %v\n%s", err, out)
	}
	for _, want := range []string{"signed manifest:", "✓ shape cpu-4c-8g RTMR2", "✓ shape dev-small image hash (signed RTMR0)", "✓ release identity", "result: IDENTICAL"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	// A publisher that changed one byte of the initrd and signed the
	// changed release's manifest is caught on the signed values too.
	bad := copyRelease(t, f.published)
	p := filepath.Join(bad, image.FileInitrd)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x80
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	reseal(t, bad)
	env = sign(bad, "bad")
	out, _, err = auditAgainst(f, bad, "--source", f.clone, "--manifest", env, "--pub", key+".pub")
	if err == nil {
		t.Fatalf("tampered release with its own signed manifest passed:\n%s", out)
	}
	for _, want := range []string{"✗ release identity", "✗ shape dev-small RTMR2", "✗ shape cpu-4c-8g image hash (signed RTMR0)", "✓ shape dev-small MRTD", "✓ inputs",
		fmt.Sprintf("first difference at offset %d", len(b)/2)} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	// A wrong key is refused before anything is rebuilt.
	other := filepath.Join(dir, "other")
	if code, o, e := cli("manifest", "keygen", "--out", other); code != 0 {
		t.Fatalf("keygen: %s %s", o, e)
	}
	var o, e bytes.Buffer
	if err := runAudit(context.Background(), []string{f.published, "--source", f.clone, "--manifest", env, "--pub", other + ".pub"}, &o, &e); err == nil || !strings.Contains(err.Error(), env) {
		t.Errorf("wrong key: %v", err)
	}
}
