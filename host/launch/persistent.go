package launch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
)

// DefaultPersistentMiB is the size of a persistent disk launch creates;
// PersistentLabel its ext4 label (at most 16 bytes).
const (
	DefaultPersistentMiB = 256
	PersistentLabel      = "chrysalis-data"
)

// EnsurePersistentDisk creates the worker's persistent disk at path when
// it does not exist: a sparse raw image of sizeMiB holding an empty ext4
// filesystem (mkfs.ext4 from e2fsprogs) labelled PersistentLabel. It is
// made under a temporary name and linked into place (atomicfile), so a
// failed or interrupted creation never leaves a half-formatted disk for
// the agent. An existing path is left alone (it is the worker's state);
// it returns whether it created the disk.
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
	err = atomicfile.Create(path, 0o600, true, func(f *os.File) error {
		if err := f.Truncate(int64(sizeMiB) << 20); err != nil {
			return err
		}
		// -F: a regular file; -q: quiet; no lazy init left for the guest
		// to do in the background; a label for people who mount the image.
		out, err := exec.Command(mkfs, "-F", "-q", "-L", PersistentLabel, "-E", "lazy_itable_init=0,lazy_journal_init=0", f.Name()).CombinedOutput()
		if err != nil {
			return fmt.Errorf("mkfs.ext4: %v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	})
	if errors.Is(err, fs.ErrExist) {
		return false, nil // made meanwhile by someone else: theirs stands
	}
	if err != nil {
		return false, fmt.Errorf("persistent disk %s: %w", path, err)
	}
	return true, nil
}
