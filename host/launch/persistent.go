package launch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DefaultPersistentMiB is the size of a persistent disk launch creates;
// PersistentLabel its ext4 label (at most 16 bytes).
const (
	DefaultPersistentMiB = 256
	PersistentLabel      = "chrysalis-data"
)

// EnsurePersistentDisk creates the worker's persistent disk at path when
// it does not exist: a sparse raw image of sizeMiB holding an empty ext4
// filesystem (mkfs.ext4 from e2fsprogs), labelled with the disk's serial.
// It is made under a temporary name and renamed into place, so a failed
// or interrupted creation never leaves a half-formatted disk for the
// agent. An existing path is left alone (it is the worker's state); it
// returns whether it created the disk.
func EnsurePersistentDisk(path string, sizeMiB int) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("persistent disk: %w", err)
	}
	if sizeMiB < 16 {
		return false, fmt.Errorf("persistent disk %s: size %d MiB is below the 16 MiB minimum", path, sizeMiB)
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return false, fmt.Errorf("persistent disk %s: mkfs.ext4 not found (install it with `apt-get install e2fsprogs`)", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("persistent disk: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	err = f.Truncate(int64(sizeMiB) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("persistent disk %s: %w", path, err)
	}
	// -F: a regular file; -q: quiet; no lazy init left for the guest to
	// do in the background; a label for people who mount the image.
	out, err := exec.Command(mkfs, "-F", "-q", "-L", PersistentLabel, "-E", "lazy_itable_init=0,lazy_journal_init=0", tmp).CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("persistent disk %s: mkfs.ext4: %v: %s", path, err, strings.TrimSpace(string(out)))
	}
	if err := syncFile(tmp); err != nil {
		return false, fmt.Errorf("persistent disk %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("persistent disk: %w", err)
	}
	return true, nil
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
