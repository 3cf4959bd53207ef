package launch

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsurePersistentDisk(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 (e2fsprogs) not installed")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "data.img")
	created, err := EnsurePersistentDisk(p, 32)
	if err != nil || !created {
		t.Fatalf("create: %v, %v", created, err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Size() != 32<<20 {
		t.Fatalf("stat %v, %v", st, err)
	}
	// e2fsck -n: a clean ext4 filesystem; dumpe2fs: its label.
	if out, err := exec.Command("e2fsck", "-n", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck: %v\n%s", err, out)
	}
	out, err := exec.Command("dumpe2fs", "-h", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Filesystem volume name:   chrysalis-data") || !strings.Contains(string(out), "has_journal") {
		t.Fatalf("dumpe2fs: %v\n%s", err, out)
	}
	// An existing disk is the worker's state: never reformatted.
	if err := os.WriteFile(p, []byte("state"), 0o600); err != nil {
		t.Fatal(err)
	}
	if created, err := EnsurePersistentDisk(p, 32); err != nil || created {
		t.Fatalf("second call: %v, %v", created, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "state" {
		t.Error("an existing persistent disk was rewritten")
	}
	if _, err := EnsurePersistentDisk(filepath.Join(dir, "small.img"), 8); err == nil || !strings.Contains(err.Error(), "below the 16 MiB minimum") {
		t.Errorf("small: %v", err)
	}
	if _, err := EnsurePersistentDisk(filepath.Join(dir, "missing", "d.img"), 32); err == nil || !strings.Contains(err.Error(), "persistent disk") {
		t.Errorf("missing dir: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
