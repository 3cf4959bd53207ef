package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/image"
	"github.com/chrysalis-cc/chrysalis/measure/manifest"
	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// cli runs `chrysalis args...` and returns the exit code, stdout, stderr.
func cli(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func hexSHA(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// writeTestManifest writes a valid manifest with made-up register values.
func writeTestManifest(t *testing.T, path string) *manifest.Manifest {
	t.Helper()
	rel := manifest.Release{
		SourceCommit: strings.Repeat("ab", 20), KernelVersion: "7.3.4", Cmdline: "console=ttyS0",
		ReleaseJSONSHA256: hexSHA("release.json"),
		Files:             []manifest.File{{Name: "release.json", Size: 1, SHA256: hexSHA("release.json")}, {Name: "vmlinuz", Size: 1, SHA256: hexSHA("k")}},
	}
	var vals []manifest.ShapeValues
	for _, n := range []string{"dev-small", "h100-1g-32c-100g"} {
		s, err := shape.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		vals = append(vals, manifest.ShapeValues{
			Shape: s,
			MRTD:  manifest.Variant{Name: s.QEMU.MRTDPageOrder, Value: tdxmr.Sum384([]byte("mrtd"))},
			RTMR0: tdxmr.Sum384([]byte(n)),
			RTMR1: manifest.Variant{Name: manifest.KernelVariant(s), Value: tdxmr.Sum384([]byte(manifest.KernelVariant(s)))},
			RTMR2: manifest.Variant{Name: s.OVMF.InitrdOption, Value: tdxmr.Sum384([]byte("rtmr2"))},
			TD:    manifest.DefaultTDFields(),
		})
	}
	m, err := manifest.New(rel, nil, vals)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, enc, 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestManifestKeygenSignVerify(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	code, out, errs := cli("manifest", "keygen", "--out", key)
	if code != 0 || !strings.Contains(out, "key id") {
		t.Fatalf("keygen: %d %s %s", code, out, errs)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode: %v %v", st.Mode(), err)
	}
	if code, _, errs := cli("manifest", "keygen", "--out", key); code != 1 || !strings.Contains(errs, "not overwriting") {
		t.Errorf("second keygen: %d %s", code, errs)
	}

	mpath := filepath.Join(dir, "manifest.json")
	m := writeTestManifest(t, mpath)
	env := filepath.Join(dir, "manifest.dsse.json")
	code, out, errs = cli("manifest", "sign", "--key", key, "--in", mpath, "--out", env)
	if code != 0 {
		t.Fatalf("sign: %d %s %s", code, out, errs)
	}
	digest, _ := m.Digest()
	if !strings.Contains(out, digest) {
		t.Errorf("sign output lacks %s:\n%s", digest, out)
	}

	code, out, errs = cli("manifest", "verify", "--pub", key+".pub", env)
	if code != 0 {
		t.Fatalf("verify: %d %s %s", code, out, errs)
	}
	for _, want := range []string{digest, "shape dev-small", "shape h100-1g-32c-100g", "image hash", "verified       signed by"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	// The envelope may also come first.
	if code, _, errs := cli("manifest", "verify", env, "--pub", key+".pub"); code != 0 {
		t.Errorf("verify, envelope first: %s", errs)
	}

	// Failures: exit 1 with one line on stderr.
	other := filepath.Join(dir, "other")
	if code, _, errs := cli("manifest", "keygen", "--out", other); code != 0 {
		t.Fatal(errs)
	}
	good, _ := os.ReadFile(env)
	tampered := filepath.Join(dir, "tampered.json")
	for _, tc := range []struct {
		name string
		env  []byte
		pub  string
		want string
	}{
		{"wrong key", good, other + ".pub", "is not a pinned key"},
		{"payload changed", bytes.Replace(good, []byte(`"payload":"ey`), []byte(`"payload":"ez`), 1), key + ".pub", "does not verify"},
		{"trailing data", append(bytes.Clone(good), "x"...), key + ".pub", "trailing data"},
		{"payload type", bytes.Replace(good, []byte(manifest.PayloadType), []byte("application/json"), 1), key + ".pub", "payloadType is"},
	} {
		if err := os.WriteFile(tampered, tc.env, 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errs := cli("manifest", "verify", "--pub", tc.pub, tampered)
		if code != 1 || !strings.Contains(errs, tc.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q, want one line with %q", tc.name, code, errs, tc.want)
		}
	}

	// Signing refuses an invalid manifest and a private key readable by others.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"format_version":1}`), 0o644)
	if code, _, errs := cli("manifest", "sign", "--key", key, "--in", bad, "--out", filepath.Join(dir, "x")); code != 1 || !strings.Contains(errs, "is missing") {
		t.Errorf("sign invalid manifest: %d %s", code, errs)
	}
	os.Chmod(key, 0o644)
	if code, _, errs := cli("manifest", "sign", "--key", key, "--in", mpath, "--out", filepath.Join(dir, "x")); code != 1 || !strings.Contains(errs, "chmod 600") {
		t.Errorf("sign with a 0644 key: %d %s", code, errs)
	}
}

func TestManifestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"manifest"}, "missing subcommand"},
		{[]string{"manifest", "frobnicate"}, `unknown subcommand "frobnicate"`},
		{[]string{"manifest", "keygen"}, "--out is required"},
		{[]string{"manifest", "sign", "--key", "k"}, "--key, --in and --out are required"},
		{[]string{"manifest", "verify", "x.json"}, "at least one --pub"},
		{[]string{"manifest", "verify", "--pub", "k"}, "exactly one envelope"},
		{[]string{"manifest", "build", "--shape", "dev-small"}, "--shape and --out are required"},
		{[]string{"manifest", "build", "--shape", "nope", "--out", "m.json"}, "--shape"},
		{[]string{"manifest", "build", "--shape", "dev-small", "--out", "m.json", "--rtmr0", "dev-small=zz"}, "--rtmr0 dev-small"},
		{[]string{"manifest", "build", "--shape", "dev-small", "--out", "m.json", "--rtmr0", "cpu-4c-8g=" + strings.Repeat("00", 48)}, "no such shape"},
	} {
		code, _, errs := cli(tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errs, tc.want)
		}
	}
	if err := runManifest(context.Background(), []string{"verify", "-h"}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Errorf("-h: %v", err)
	}
}

// TestManifestBuildRealRelease builds a manifest of the release CI built
// (the directory of CHRYSALIS_TEST_OVMF), signs and verifies it.
func TestManifestBuildRealRelease(t *testing.T) {
	ovmf := os.Getenv("CHRYSALIS_TEST_OVMF")
	if ovmf == "" {
		t.Skip("CHRYSALIS_TEST_OVMF not set: no built release")
	}
	relDir := filepath.Dir(ovmf)
	rel, err := image.LoadRelease(relDir)
	if err != nil {
		t.Skipf("%s is not a release directory: %v", relDir, err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "manifest.json")
	r0 := strings.Repeat("11", 48)
	// Without --rtmr0 the shape's RTMR0 is computed from the local QEMU's
	// tables, exactly as `chrysalis measure` computes it, with a warning
	// naming the QEMU version.
	code, _, errs := cli("manifest", "build", "--release", relDir, "--shape", "dev-small,cpu-4c-8g", "--out", out, "--rtmr0", "dev-small="+r0)
	if code != 0 || !strings.Contains(errs, "match a TD only when captured with that QEMU version") {
		t.Fatalf("computed RTMR0: %d %s", code, errs)
	}
	b0, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	m0, err := manifest.Parse(b0)
	if err != nil {
		t.Fatal(err)
	}
	qrel, err := qemu.ReleaseFromDir(relDir)
	if err != nil {
		t.Fatal(err)
	}
	cpu, _ := shape.Lookup("cpu-4c-8g")
	want, err := measureShape(context.Background(), relDir, qrel, cpu, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m0.Shapes[1].RTMR0 != want.RTMR0.Value {
		t.Errorf("manifest RTMR0 %s, chrysalis measure %s", m0.Shapes[1].RTMR0, want.RTMR0.Value)
	}
	code, stdout, errs := cli("manifest", "build", "--release", relDir, "--shape", "dev-small,cpu-4c-8g", "--out", out,
		"--rtmr0", "dev-small="+r0, "--rtmr0", "cpu-4c-8g="+strings.Repeat("22", 48))
	if code != 0 {
		t.Fatalf("build: %d %s", code, errs)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Release.ReleaseJSONSHA256 != rel.Sums[image.FileReleaseJSON] || len(m.Release.Files) != len(image.ReleaseFiles) || len(m.Inputs) != len(rel.Inputs) {
		t.Errorf("release identity: %+v", m.Release)
	}
	if m.Shapes[0].RTMR0.String() != r0 || !strings.Contains(stdout, "wrote "+out) {
		t.Errorf("shape values / output:\n%s", stdout)
	}
	// The file is the canonical encoding.
	if enc, _ := m.Encode(); !bytes.Equal(enc, b) {
		t.Error("manifest file is not canonical")
	}
	key := filepath.Join(dir, "key")
	env := filepath.Join(dir, "m.dsse.json")
	for _, args := range [][]string{
		{"manifest", "keygen", "--out", key},
		{"manifest", "sign", "--key", key, "--in", out, "--out", env},
		{"manifest", "verify", "--pub", key + ".pub", env},
	} {
		if code, o, e := cli(args...); code != 0 {
			t.Fatalf("%v: %s %s", args, o, e)
		}
	}
}
