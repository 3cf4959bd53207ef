package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FindBlockBySerial returns /dev/<name> of the virtio-blk disk whose
// serial is serial, looking under sysRoot (normally "/sys").
func FindBlockBySerial(sysRoot, serial string) (string, error) {
	matches, _ := filepath.Glob(filepath.Join(sysRoot, "block", "*", "serial"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		if strings.TrimSpace(string(b)) == serial {
			return "/dev/" + filepath.Base(filepath.Dir(m)), nil
		}
	}
	return "", fmt.Errorf("no block device with serial %q under %s/block", serial, sysRoot)
}

// FindVirtioPort returns /dev/<vportNpM> of the virtio-serial port named name.
func FindVirtioPort(sysRoot, name string) (string, error) {
	matches, _ := filepath.Glob(filepath.Join(sysRoot, "class", "virtio-ports", "*", "name"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		if strings.TrimSpace(string(b)) == name {
			return "/dev/" + filepath.Base(filepath.Dir(m)), nil
		}
	}
	return "", fmt.Errorf("no virtio-serial port named %q under %s/class/virtio-ports", name, sysRoot)
}

// WaitFor retries find until it succeeds and the device node exists, or
// the timeout passes (devices appear asynchronously after module load).
func WaitFor(timeout time.Duration, find func() (string, error)) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		p, err := find()
		if err == nil {
			if _, serr := os.Stat(p); serr == nil {
				return p, nil
			} else {
				err = serr
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
