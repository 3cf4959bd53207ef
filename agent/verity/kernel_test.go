package verity

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// attachLoop attaches path read-only to a free loop device and returns
// the device path.
func attachLoop(t *testing.T, path string) string {
	t.Helper()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no loop devices: %v", err)
	}
	defer ctl.Close()
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		t.Skipf("LOOP_CTL_GET_FREE: %v", err)
	}
	dev := fmt.Sprintf("/dev/loop%d", n)
	if _, err := os.Stat(dev); errors.Is(err, os.ErrNotExist) {
		if err := unix.Mknod(dev, unix.S_IFBLK|0o600, int(unix.Mkdev(7, uint32(n)))); err != nil {
			t.Skipf("creating %s: %v", dev, err)
		}
	}
	back, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	lf, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		t.Skipf("opening %s: %v", dev, err)
	}
	cfg := unix.LoopConfig{Fd: uint32(back.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY
	if err := unix.IoctlLoopConfigure(int(lf.Fd()), &cfg); err != nil {
		lf.Close()
		t.Skipf("LOOP_CONFIGURE %s: %v", dev, err)
	}
	t.Cleanup(func() {
		unix.IoctlSetInt(int(lf.Fd()), unix.LOOP_CLR_FD, 0)
		lf.Close()
	})
	return dev
}

// TestKernel activates a real dm-verity device over loop devices. It needs
// root, device-mapper with dm-verity, and loop devices, and is skipped
// without them.
func TestKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot use device-mapper")
	}
	if _, err := os.Stat(controlPath); err != nil {
		if _, err2 := os.Stat("/sys/class/misc/device-mapper"); err2 != nil {
			t.Skipf("no device-mapper in this kernel (%v)", err)
		}
	}
	const blocks, bs = 64, 4096
	dp, hp, root := writeImage(t, blocks, bs, salt32)
	want, err := os.ReadFile(dp)
	if err != nil {
		t.Fatal(err)
	}
	dataLoop, hashLoop := attachLoop(t, dp), attachLoop(t, hp)

	name := fmt.Sprintf("chrysalis-test-%d", os.Getpid())
	d, err := Open(name, dataLoop, hashLoop, root, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	t.Logf("%s: %s", d.Path, d.TableLine())
	got, err := os.ReadFile(d.Path)
	if err != nil {
		t.Fatalf("reading %s: %v", d.Path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: read %d bytes that differ from the image", d.Path, len(got))
	}
	if st, err := d.Status(); err != nil || st.Corrupted {
		t.Fatalf("status %+v, %v", st, err)
	}

	// Corrupt block 5 in the backing file and read it with O_DIRECT.
	f, err := os.OpenFile(dp, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{want[5*bs] ^ 0xff}, 5*bs); err != nil {
		t.Fatal(err)
	}
	f.Close()
	df, err := os.OpenFile(d.Path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf, err := unix.Mmap(-1, 0, bs, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE) // aligned
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	_, err = df.ReadAt(buf, 5*bs)
	df.Close()
	if !errors.Is(err, unix.EIO) {
		t.Errorf("reading corrupted block: %v, want EIO", err)
	}
	if st, err := d.Status(); err != nil || !st.Corrupted {
		t.Errorf("status after corruption %+v, %v", st, err)
	}
}
