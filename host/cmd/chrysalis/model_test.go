package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestModelVerity(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data.img")
	b := make([]byte, 129*4096)
	for i := range b {
		b[i] = byte(i*7 + i/4096)
	}
	if err := os.WriteFile(data, b, 0o600); err != nil {
		t.Fatal(err)
	}
	salt := strings.Repeat("5a", 32)
	uuid := "12345678-1234-8234-9234-123456789abc"
	hashOut := filepath.Join(dir, "data.hash")
	code, out, errs := cli("model", "verity", "--data", data, "--hash-out", hashOut, "--salt", salt, "--uuid", uuid)
	if code != 0 {
		t.Fatalf("rc %d: %s%s", code, out, errs)
	}
	m := regexp.MustCompile(`(?m)^root hash\s+([0-9a-f]{64})$`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "uuid          "+uuid) || !strings.Contains(out, "2 levels") {
		t.Fatalf("output:\n%s", out)
	}
	if errs != "" {
		t.Errorf("stderr not empty without a terminal: %q", errs)
	}
	root := m[1]
	if vs, err := exec.LookPath("veritysetup"); err == nil {
		ref := filepath.Join(dir, "ref.hash")
		vout, err := exec.Command(vs, "format", data, ref, "--salt="+salt, "--uuid="+uuid).CombinedOutput()
		if err != nil {
			t.Fatalf("veritysetup: %v\n%s", err, vout)
		}
		if !strings.Contains(string(vout), root) {
			t.Errorf("veritysetup root differs:\n%s", vout)
		}
		a, _ := os.ReadFile(ref)
		c, _ := os.ReadFile(hashOut)
		if !bytes.Equal(a, c) {
			t.Error("hash device differs from veritysetup's")
		}
	}
	if code, out, errs := cli("model", "verity-check", "--data", data, "--hash-dev", hashOut, "--root", root); code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Errorf("verity-check: rc %d %s%s", code, out, errs)
	}
	b[70*4096+1] ^= 1
	if err := os.WriteFile(data, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli("model", "verity-check", "--data", data, "--hash-dev", hashOut, "--root", root); code != 1 || !strings.Contains(errs, "data block 70 ") {
		t.Errorf("tampered verity-check: rc %d %s", code, errs)
	}

	// Derived salt and UUID are deterministic.
	code, out1, errs := cli("model", "verity", "--data", data, "--hash-out", hashOut)
	if code != 0 || !strings.Contains(out1, "derived from  SHA-256 of the data") {
		t.Fatalf("rc %d: %s%s", code, out1, errs)
	}
	_, out2, _ := cli("model", "verity", "--data", data, "--hash-out", hashOut+"2")
	if strings.Split(out1, "\n")[0] != strings.Split(out2, "\n")[0] {
		t.Errorf("derived runs differ:\n%s\n%s", out1, out2)
	}
	_, out3, _ := cli("model", "verity", "--data", data, "--hash-out", hashOut+"3", "--seed", "abc")
	if strings.Split(out1, "\n")[0] == strings.Split(out3, "\n")[0] {
		t.Error("--seed did not change the root hash")
	}
}

func TestModelVerityErrors(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "odd.img")
	if err := os.WriteFile(data, make([]byte, 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	hashOut := filepath.Join(dir, "h")
	if code, _, errs := cli("model", "verity", "--data", data, "--hash-out", hashOut, "--seed", "s"); code != 1 || !strings.Contains(errs, "pass --pad") {
		t.Errorf("odd size: rc %d %s", code, errs)
	}
	if _, err := os.Stat(hashOut); err == nil {
		t.Error("hash file written on error")
	}
	if code, out, errs := cli("model", "verity", "--data", data, "--hash-out", hashOut, "--seed", "s", "--pad"); code != 0 || !strings.Contains(out, "2 blocks") {
		t.Errorf("--pad: rc %d %s%s", code, out, errs)
	}
	for _, args := range [][]string{
		{"model"},
		{"model", "pack"},
		{"model", "verity", "--data", data},
		{"model", "verity", "--data", data, "--hash-out", hashOut, "--salt", "zz"},
		{"model", "verity", "--data", data, "--hash-out", hashOut, "--uuid", "nope"},
		{"model", "verity", "--data", data, "--hash-out", hashOut, "--hash", "md5", "--seed", "s"},
		{"model", "verity-check", "--data", data, "--hash-dev", data, "--root", "00"},
	} {
		if code, _, _ := cli(args...); code == 0 {
			t.Errorf("%q succeeded", args)
		}
	}
}

func TestModelPack(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "model")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "model.gguf"), bytes.Repeat([]byte("w"), 300000), 0o600)
	os.WriteFile(filepath.Join(src, "sub", "config.json"), []byte("{}"), 0o600)
	img := filepath.Join(dir, "model.img")
	code, out, errs := cli("model", "pack", "--dir", src, "--out", img)
	if code != 0 {
		t.Fatalf("rc %d: %s%s", code, out, errs)
	}
	m := regexp.MustCompile(`(?m)^root hash\s+([0-9a-f]{64})$`).FindStringSubmatch(out)
	if m == nil || !regexp.MustCompile(`(?m)^image sha256\s+[0-9a-f]{64}$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^uuid\s+[0-9a-f-]{36}$`).MatchString(out) || !strings.Contains(out, "2 files, 2 directories") {
		t.Fatalf("output:\n%s", out)
	}
	// The hash device checks out with the printed root hash.
	code, out2, errs := cli("model", "verity-check", "--data", img, "--hash-dev", img+".verity", "--root", m[1])
	if code != 0 || !strings.HasPrefix(out2, "ok:") {
		t.Fatalf("verity-check rc %d: %s%s", code, out2, errs)
	}
	// Packing again gives the same image.
	code, out3, _ := cli("model", "pack", "--dir", src, "--out", filepath.Join(dir, "again.img"))
	if code != 0 || !strings.Contains(out3, m[1]) {
		t.Fatalf("second pack differs:\n%s\n%s", out, out3)
	}
	if code, _, errs := cli("model", "pack", "--dir", src, "--out", filepath.Join(src, "in.img")); code == 0 || !strings.Contains(errs, "inside the input") {
		t.Fatalf("output inside the input accepted: rc %d %s", code, errs)
	}
	if code, _, _ := cli("model", "pack", "--dir", src); code == 0 {
		t.Fatal("missing --out accepted")
	}
}

func TestModelCatalog(t *testing.T) {
	code, out, errs := cli("model", "catalog")
	if code != 0 || !strings.Contains(out, "catalog version 1") && !strings.Contains(out, "NAME") {
		t.Fatalf("rc %d: %s%s", code, out, errs)
	}
}
