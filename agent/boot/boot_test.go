package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindBySysfs(t *testing.T) {
	sys := t.TempDir()
	write(t, filepath.Join(sys, "block/vda/serial"), "model-disk\n")
	write(t, filepath.Join(sys, "block/vdb/serial"), guest.ConfigDiskSerial+"\n")
	write(t, filepath.Join(sys, "class/virtio-ports/vport0p1/name"), "other\n")
	write(t, filepath.Join(sys, "class/virtio-ports/vport1p1/name"), guest.StatusPortName+"\n")
	for _, tc := range []struct {
		name string
		find func() (string, error)
		want string
	}{
		{"config disk", func() (string, error) { return FindBlockBySerial(sys, guest.ConfigDiskSerial) }, "/dev/vdb"},
		{"status port", func() (string, error) { return FindVirtioPort(sys, guest.StatusPortName) }, "/dev/vport1p1"},
	} {
		got, err := tc.find()
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := FindBlockBySerial(sys, "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing serial: err = %v", err)
	}
}

func TestWaitForTimesOut(t *testing.T) {
	start := time.Now()
	_, err := WaitFor(100*time.Millisecond, func() (string, error) { return "/nonexistent/dev", nil })
	if err == nil || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
}

func TestReadLoadOrder(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "load.order"), "# deps first\nconfigfs.ko.xz\n\nvirtio_blk.ko.xz\n")
	got, err := ReadLoadOrder(dir)
	if err != nil || strings.Join(got, ",") != "configfs.ko.xz,virtio_blk.ko.xz" {
		t.Fatalf("%v, %v", got, err)
	}
	write(t, filepath.Join(dir, "load.order"), "../../etc/evil.ko\n")
	if _, err := ReadLoadOrder(dir); err == nil {
		t.Fatal("path in load.order accepted")
	}
	if _, err := ReadLoadOrder(t.TempDir()); err == nil {
		t.Fatal("missing load.order accepted")
	}
}
