package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/host/doctor"
	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/host/qemu/qemutest"
	"github.com/chrysalis-cc/chrysalis/image"
	"github.com/chrysalis-cc/chrysalis/measure/manifest"
	"github.com/chrysalis-cc/chrysalis/measure/manifest/dsse"
)

func TestLaunchPrintOnly(t *testing.T) {
	rel := t.TempDir()
	qemutest.WriteSealedFakeRelease(t, rel)
	state := filepath.Join(t.TempDir(), "st")
	var out, errb bytes.Buffer
	err := runLaunch(context.Background(), []string{
		"--tdx", "--print-only", "--release", rel, "--shape", "h100-1g-32c-100g",
		"--gpu", "0000:3b:00.0", "--cid", "7", "--state", state, "--disk", "model=/models/m.tar",
	}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if lines[0] != "qemu-system-x86_64" {
		t.Errorf("first line %q", lines[0])
	}
	text := out.String()
	for _, want := range []string{
		"\n-accel\nkvm\n",
		"\nvhost-vsock-pci,guest-cid=7\n",
		"\nvfio-pci,host=0000:3b:00.0,bus=rp0,rombar=0,iommufd=iommufd0\n",
		"\nfile=/models/m.tar,if=none,id=model,format=raw,readonly=on\n",
		"\nfile=" + filepath.Join(state, "persistent.img") + ",if=none,id=persistent,format=raw\n",
		"\n'console=ttyS0 panic=-1 loglevel=4'\n",
		`'{"qom-type":"tdx-guest"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}

	// The shape's QEMU 10.1 profile takes QGS on its unix socket; --qgs
	// overrides it.
	if want := `'{"qom-type":"tdx-guest","id":"tdx","quote-generation-socket":{"type":"unix","path":"/var/run/tdx-qgs/qgs.socket"}}'`; !strings.Contains(text, "\n"+want+"\n") {
		t.Errorf("output lacks %s:\n%s", want, text)
	}
	out.Reset()
	if err := runLaunch(context.Background(), []string{
		"--tdx", "--print-only", "--release", rel, "--shape", "h100-1g-32c-100g", "--gpu", "0000:3b:00.0", "--state", state, "--qgs", "vsock:4051",
	}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if want := `'{"qom-type":"tdx-guest","id":"tdx","quote-generation-socket":{"type":"vsock","cid":"2","port":"4051"}}'`; !strings.Contains(out.String(), "\n"+want+"\n") {
		t.Errorf("--qgs vsock:4051: output lacks %s:\n%s", want, out.String())
	}

	out.Reset()
	if err := runLaunch(context.Background(), []string{"--print-only", "--release", rel, "--state", state}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "\n-accel\ntcg\n") || !strings.Contains(out.String(), "serial=chrysalis-config") {
		t.Errorf("dev print-only:\n%s", out.String())
	}
}

func TestLaunchFlagErrors(t *testing.T) {
	rel := t.TempDir()
	qemutest.WriteSealedFakeRelease(t, rel)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{}, "--release is required"},
		{[]string{"--dev", "--tdx", "--release", rel}, "exclusive"},
		{[]string{"--tdx", "--print-only", "--release", rel}, "--tdx needs --shape"},
		{[]string{"--release", rel, "--shape", "nope", "--print-only"}, `unknown shape "nope"`},
		{[]string{"--tdx", "--print-only", "--release", rel, "--shape", "h100-1g-32c-100g"}, "needs 1 GPU(s), but 0"},
		{[]string{"--tdx", "--print-only", "--release", rel, "--shape", "h100-1g-32c-100g", "--gpu", "3b:00"}, `"3b:00" is not a PCI address`},
		{[]string{"--release", rel, "--print-only", "--disk", "swap=/x"}, `--disk "swap=/x"`},
		{[]string{"--release", rel, "--print-only", "--disk", "model=/x"}, `has no "model" slot`},
		{[]string{"--release", rel, "--print-only", "--shape-file", "/nonexistent.json"}, "nonexistent.json"},
		{[]string{"--release", rel, "--gpu", "3b:00.0"}, "--gpu needs --tdx"},
		{[]string{"--release", rel, "extra"}, `unexpected argument "extra"`},
		{[]string{"--release", rel, "--ton-config", "/nonexistent.json"}, "--ton-config needs --config with measured.payment"},
		{[]string{"--release", rel, "--print-only", "--qgs", "unix"}, "--qgs is for --tdx launches"},
		{[]string{"--tdx", "--print-only", "--release", rel, "--shape", "h100-1g-32c-100g", "--gpu", "3b:00.0", "--qgs", "tcp:4050"}, `--qgs: quote generation service "tcp:4050"`},
		{[]string{"--release", filepath.Join(rel, "missing"), "--print-only"}, "missing"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		err := runLaunch(context.Background(), tt.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("launch %q: err = %v, want it to mention %q", tt.args, err, tt.want)
		}
	}
}

func TestLaunchShapeFile(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "one.json")
	two := filepath.Join(dir, "two.json")
	shapeJSON := func(names ...string) string {
		var parts []string
		for _, n := range names {
			parts = append(parts, `{"name":"`+n+`","vcpus":2,"memory_mib":2048,"gpus":0,"nics":1,`+
				`"disks":[{"kind":"config"}],"qemu_profile":"qemu-10.1","ovmf_profile":"edk2-2025.02"}`)
		}
		return `{"version":1,"shapes":[` + strings.Join(parts, ",") + `]}`
	}
	if err := os.WriteFile(one, []byte(shapeJSON("mine")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(two, []byte(shapeJSON("a", "b")), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := launchShape("", one, qemu.ModeDev)
	if err != nil || s.Name != "mine" || s.VCPUs != 2 {
		t.Fatalf("single-shape file: %+v, %v", s, err)
	}
	if _, err := launchShape("", two, qemu.ModeDev); err == nil || !strings.Contains(err.Error(), "pick one with --shape") {
		t.Errorf("two-shape file err = %v", err)
	}
	if s, err := launchShape("b", two, qemu.ModeDev); err != nil || s.Name != "b" {
		t.Errorf("--shape b: %+v, %v", s, err)
	}
	if s, err := launchShape("", "", qemu.ModeDev); err != nil || s.Name != "dev-small" {
		t.Errorf("default: %+v, %v", s, err)
	}
}

func TestLaunchRefusesTamperedRelease(t *testing.T) {
	rel := t.TempDir()
	qemutest.WriteSealedFakeRelease(t, rel)
	if err := os.WriteFile(filepath.Join(rel, image.FileInitrd), []byte("evil"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	err := runLaunch(context.Background(), []string{"--tdx", "--print-only", "--release", rel, "--shape", "dev-small"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "initrd does not match SHA256SUMS") {
		t.Fatalf("err = %v", err)
	}
}

func TestLaunchInstancePrintOnly(t *testing.T) {
	rel := t.TempDir()
	qemutest.WriteSealedFakeRelease(t, rel)
	state := filepath.Join(t.TempDir(), "st")
	var out, errb bytes.Buffer
	err := runLaunch(context.Background(), []string{
		"--tdx", "--print-only", "--release", rel, "--shape", "h100-1g-32c-100g", "--gpu", "0000:3b:00.0",
		"--port", "12000", "--instance", "3", "--state", state,
	}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	for _, want := range []string{
		"\nvhost-vsock-pci,guest-cid=9\n",
		"hostfwd=tcp:127.0.0.1:12030-:8443\n",
		"path=" + filepath.Join(state, "instance-3", "console.log") + ",append=on\n",
		"path=" + filepath.Join(state, "instance-3", "status.sock") + ",server=on",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("instance 3 argv lacks %q:\n%s", want, out.String())
		}
	}
	if err := runLaunch(context.Background(), []string{"--print-only", "--release", rel, "--instance", "64"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "instance 64 is out of range 0..63") {
		t.Errorf("--instance 64: %v", err)
	}
}

// signedTestManifest signs writeTestManifest's manifest (shapes dev-small
// and h100-1g-32c-100g, made-up registers) and returns the envelope and
// public key paths.
func signedTestManifest(t *testing.T, m *manifest.Manifest) (env, pub string) {
	t.Helper()
	dir := t.TempDir()
	k, err := dsse.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key")
	if err := dsse.WriteKeyPair(key, k); err != nil {
		t.Fatal(err)
	}
	_, b, err := manifest.Sign(m, k)
	if err != nil {
		t.Fatal(err)
	}
	env = filepath.Join(dir, "m.dsse.json")
	if err := os.WriteFile(env, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return env, dsse.PublicKeyPath(key)
}

func TestLaunchManifestRefusal(t *testing.T) {
	rel := t.TempDir()
	qemutest.WriteSealedFakeRelease(t, rel)
	m := writeTestManifest(t, filepath.Join(t.TempDir(), "m.json"))
	env, pub := signedTestManifest(t, m)
	tampered := filepath.Join(t.TempDir(), "tampered.dsse.json")
	b, _ := os.ReadFile(env)
	var e map[string]any
	json.Unmarshal(b, &e)
	e["payload"] = strings.Replace(e["payload"].(string), "A", "B", 1)
	tb, _ := json.Marshal(e)
	os.WriteFile(tampered, tb, 0o644)
	tdx := []string{"--tdx", "--print-only", "--release", rel}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(tdx, "--shape", "cpu-4c-8g", "--manifest", env, "--pub", pub), "manifest " + env + " has no entry for shape cpu-4c-8g (it lists dev-small, h100-1g-32c-100g)"},
		{append(tdx, "--shape", "dev-small", "--manifest", tampered, "--pub", pub), "--manifest " + tampered},
		{append(tdx, "--shape", "dev-small", "--manifest", env), "--manifest and --pub go together"},
		{[]string{"--print-only", "--release", rel, "--manifest", env, "--pub", pub}, "--manifest is for --tdx"},
	} {
		var out, errb bytes.Buffer
		err := runLaunch(context.Background(), tc.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("launch %q: err = %v, want %q", tc.args, err, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("launch %q printed a command line despite refusing", tc.args)
		}
	}
}

// TestLaunchManifestRealRelease measures the repository's release for
// dev-small (RTMR0 from the local QEMU) and checks that a manifest with
// those values lets the launch through, and that one whose RTMR0 differs
// is refused naming RTMR0.
func TestLaunchManifestRealRelease(t *testing.T) {
	relDir := filepath.Join("..", "..", "..", "release")
	if _, err := image.LoadRelease(relDir); err != nil {
		t.Skipf("no release at %s: %v", relDir, err)
	}
	if _, err := exec.LookPath(qemu.Binary); err != nil {
		t.Skip(qemu.Binary + " not installed")
	}
	src := &mfSource{release: relDir, shapes: "dev-small"}
	var errb bytes.Buffer
	good, err := src.build(&errb, "test")
	if err != nil {
		t.Fatal(err)
	}
	env, pub := signedTestManifest(t, good)
	args := []string{"--tdx", "--print-only", "--release", relDir, "--shape", "dev-small", "--manifest", env, "--pub", pub}
	var out bytes.Buffer
	if err := runLaunch(context.Background(), args, &out, &errb); err != nil || !strings.Contains(out.String(), "tdx-guest") {
		t.Fatalf("matching manifest refused: %v", err)
	}
	bad, err := (&mfSource{release: relDir, shapes: "dev-small", rtmr0: repeated{"dev-small=" + strings.Repeat("00", 48)}}).build(&errb, "test")
	if err != nil {
		t.Fatal(err)
	}
	env, pub = signedTestManifest(t, bad)
	args = []string{"--tdx", "--print-only", "--release", relDir, "--shape", "dev-small", "--manifest", env, "--pub", pub}
	out.Reset()
	err = runLaunch(context.Background(), args, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "refusing to launch") || !strings.Contains(err.Error(), "RTMR0 ") || out.Len() != 0 {
		t.Fatalf("wrong-RTMR0 manifest: %v", err)
	}
	t.Log(err)
}

// TestLaunchTDXNeedsManifest: a TDX launch (not --print-only) needs the
// signed manifest check or the explicitly insecure opt-out.
func TestLaunchTDXNeedsManifest(t *testing.T) {
	rel := t.TempDir()
	qemutest.WriteSealedFakeRelease(t, rel)
	tdx := []string{"--tdx", "--release", rel, "--shape", "h100-1g-32c-100g", "--gpu", "0000:17:00.0"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{tdx, "--tdx needs --manifest M.dsse.json --pub KEY.pub"},
		{append(slices.Clone(tdx), "--insecure-no-manifest", "--manifest", "m.dsse.json"), "--insecure-no-manifest and --manifest/--pub are exclusive"},
		{[]string{"--release", rel, "--insecure-no-manifest"}, "--insecure-no-manifest is for --tdx launches"},
		{append(slices.Clone(tdx), "--insecure-no-manifest"), "shape h100-1g-32c-100g has a model disk slot: pass --disk model=IMAGE"},
	} {
		var out, errb bytes.Buffer
		err := runLaunch(context.Background(), tc.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("launch %q: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestLaunchTDXPreflightRefuses runs `launch --tdx` against a fake host
// tree without TDX, GPU or QGS: it refuses before creating anything,
// naming the fatal checks with their fixes and the doctor command for the
// full report, and logs the warnings.
func TestLaunchTDXPreflightRefuses(t *testing.T) {
	rel := t.TempDir()
	qemutest.WriteSealedFakeRelease(t, rel)
	root := doctorTree(t, map[string]string{
		"/sys/module/kvm_intel/parameters/tdx": "N\n",
		"/proc/meminfo":                        doctorMeminfo,
	})
	saved := launchDoctorEnv
	launchDoctorEnv = doctor.Env{Root: root}
	t.Cleanup(func() { launchDoctorEnv = saved })
	state := filepath.Join(t.TempDir(), "st")
	disks := t.TempDir()
	for _, n := range []string{"model.img", "verity.img"} {
		if err := os.WriteFile(filepath.Join(disks, n), make([]byte, 4096), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	err := runLaunch(context.Background(), []string{
		"--tdx", "--insecure-no-manifest", "--release", rel, "--shape", "h100-1g-32c-100g", "--gpu", "0000:17:00.0",
		"--state", state, "--qemu", "/nonexistent/qemu-system-x86_64", "--qgs", "vsock:4051",
		"--disk", "model=" + filepath.Join(disks, "model.img"), "--disk", "model-verity=" + filepath.Join(disks, "verity.img"),
	}, &out, &errb)
	if err == nil {
		t.Fatal("launch --tdx passed the preflight on a host without TDX")
	}
	var refusal *doctor.RefusalError
	if !errors.As(err, &refusal) {
		t.Fatalf("err = %v, want a doctor refusal", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"refusing to launch: host preflight: ",
		`✗ kvm-tdx `, `/sys/module/kvm_intel/parameters/tdx is "N"`, "fix: use a host kernel >= 6.16",
		"✗ dev-kvm ", "✗ qemu-version ", "/nonexistent/qemu-system-x86_64 --version",
		"✗ ovmf-tdvf ", "✗ memory ", "✗ vhost-vsock ", "✗ gpu-device/0000:17:00.0 ",
		"the full report: chrysalis doctor --shape h100-1g-32c-100g --release " + rel + " --gpu 0000:17:00.0 --qgs vsock:2:4051",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "✗ qgs") || strings.Contains(msg, "! ") {
		t.Errorf("refusal lists warnings:\n%s", msg)
	}
	for _, want := range []string{"launch: warning: --insecure-no-manifest", "launch: preflight ! qgs: "} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if _, err := os.Stat(state); err == nil {
		t.Errorf("state directory %s created despite the refusal", state)
	}
	if out.Len() != 0 {
		t.Errorf("stdout: %s", out.String())
	}
}
