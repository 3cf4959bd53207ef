package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Create writes path atomically. fill writes the content into the
// temporary file (it may also truncate, seek or write sparsely). With
// noReplace the file is linked into place and an existing path is an
// error wrapping fs.ErrExist; otherwise it is renamed over path.
func Create(path string, mode os.FileMode, noReplace bool, fill func(*os.File) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		// After a rename the name is gone; after a link it must go.
		if err != nil || noReplace {
			os.Remove(tmp.Name())
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if noReplace {
		if err = os.Link(tmp.Name(), path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s exists; not overwriting it: %w", path, fs.ErrExist)
			}
			return err
		}
	} else if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// WriteFile writes data to path atomically, replacing any existing file.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	return Create(path, mode, false, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteNew writes data to a new file at path; an existing path is an error.
func WriteNew(path string, data []byte, mode os.FileMode) error {
	return Create(path, mode, true, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}
