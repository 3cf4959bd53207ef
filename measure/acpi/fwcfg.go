package acpi

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// fw_cfg selector keys (QEMU include/standard-headers/linux/qemu_fw_cfg.h).
const (
	// KeySignature selects the 4-byte signature "QEMU".
	KeySignature uint16 = 0x0000
	// KeyID selects the u32 (little-endian) feature bitmap.
	KeyID uint16 = 0x0001
	// KeyBootMenu selects the u16 boot-menu flag (-boot menu=on|off).
	// edk2's fw_cfg cache measures it under the name "BootMenu".
	KeyBootMenu uint16 = 0x000e
	// KeyFileDir selects the file directory.
	KeyFileDir uint16 = 0x0019
	// KeyFileFirst is the first key a file may have.
	KeyFileFirst uint16 = 0x0020
)

// FeatureDMA is the KeyID bit of the DMA interface.
const FeatureDMA = 1 << 1

// FileNameSize is the size of a name in the file directory and in the
// linker/loader script, NUL included (FW_CFG_MAX_FILE_PATH).
const FileNameSize = 56

// fileEntrySize is the size of one directory entry: be32 size, be16
// select, be16 reserved, name[56].
const fileEntrySize = 4 + 2 + 2 + FileNameSize

// MaxFiles bounds the number of directory entries ParseFileDir accepts
// (QEMU's default fw_cfg has room for 0x40 entries; a few hundred leave a
// wide margin).
const MaxFiles = 4096

// File is one entry of the fw_cfg file directory.
type File struct {
	// Name is the file name, e.g. "etc/acpi/tables".
	Name string
	// Key is the selector that reads it.
	Key uint16
	// Size is its length in bytes.
	Size uint32
}

// ParseFileDir parses the fw_cfg file directory (the bytes of key 0x19):
// a big-endian u32 count, then count entries of a big-endian u32 size, a
// big-endian u16 selector, a u16 reserved field and a NUL-terminated
// 56-byte name. Trailing bytes after the last entry are ignored, as
// firmware does. Errors name the entry and the problem.
func ParseFileDir(b []byte) ([]File, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("acpi: fw_cfg file directory of %d bytes has no entry count", len(b))
	}
	n := binary.BigEndian.Uint32(b)
	if n > MaxFiles {
		return nil, fmt.Errorf("acpi: fw_cfg file directory claims %d entries, more than the %d accepted", n, MaxFiles)
	}
	if need := 4 + uint64(n)*fileEntrySize; uint64(len(b)) < need {
		return nil, fmt.Errorf("acpi: fw_cfg file directory claims %d entries (%d bytes) but has %d bytes", n, need, len(b))
	}
	files := make([]File, 0, n)
	seen := make(map[string]int, n)
	for i := 0; i < int(n); i++ {
		e := b[4+i*fileEntrySize : 4+(i+1)*fileEntrySize]
		name, err := cName(e[8:])
		if err != nil {
			return nil, fmt.Errorf("acpi: fw_cfg file directory entry %d: %w", i, err)
		}
		f := File{Name: name, Key: binary.BigEndian.Uint16(e[4:]), Size: binary.BigEndian.Uint32(e)}
		if f.Key < KeyFileFirst {
			return nil, fmt.Errorf("acpi: fw_cfg file directory entry %d (%q): selector %#x is below the file range (%#x)", i, name, f.Key, KeyFileFirst)
		}
		if j, dup := seen[name]; dup {
			return nil, fmt.Errorf("acpi: fw_cfg file directory entry %d: name %q repeats entry %d", i, name, j)
		}
		seen[name] = i
		files = append(files, f)
	}
	return files, nil
}

// cName decodes a NUL-terminated name from a fixed-size field: non-empty,
// terminated inside the field, printable ASCII.
func cName(field []byte) (string, error) {
	end := bytes.IndexByte(field, 0)
	if end < 0 {
		return "", fmt.Errorf("name %q is not NUL-terminated within %d bytes", field, len(field))
	}
	if end == 0 {
		return "", fmt.Errorf("empty name")
	}
	for _, c := range field[:end] {
		if c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("name %q has a non-printable byte %#x", field[:end], c)
		}
	}
	return string(field[:end]), nil
}

// AppendFileDir encodes files as a fw_cfg file directory (the inverse of
// ParseFileDir, for tests and fixtures). Names longer than 55 bytes are an
// error.
func AppendFileDir(dst []byte, files []File) ([]byte, error) {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(files)))
	for _, f := range files {
		if len(f.Name) == 0 || len(f.Name) >= FileNameSize {
			return nil, fmt.Errorf("acpi: fw_cfg file name %q must be 1..%d bytes", f.Name, FileNameSize-1)
		}
		dst = binary.BigEndian.AppendUint32(dst, f.Size)
		dst = binary.BigEndian.AppendUint16(dst, f.Key)
		dst = append(dst, 0, 0)
		var name [FileNameSize]byte
		copy(name[:], f.Name)
		dst = append(dst, name[:]...)
	}
	return dst, nil
}
