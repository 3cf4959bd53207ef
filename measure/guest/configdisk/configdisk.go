package configdisk

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

const (
	// ImageSize is the size of the disk image Write creates: the smallest
	// whole MiB at which a FAT32 filesystem with 512-byte clusters has the
	// 65525 clusters the FAT32 specification asks for, so every FAT tool
	// (Linux vfat, dosfstools, mtools) agrees it is FAT32. The file is
	// sparse; it takes well under 1 MiB on disk.
	ImageSize = 33 << 20
	// SectorSize is the logical sector size of the image.
	SectorSize = 512
	// VolumeLabel is the FAT volume label.
	VolumeLabel = "CHRYSALIS"
	// MaxImageSize bounds what Read accepts as a config disk.
	MaxImageSize = 1 << 30
	// maxFATBytes bounds one FAT copy (a 1 GiB image with 512-byte
	// clusters needs 8 MiB).
	maxFATBytes = 16 << 20
)

// fileTime is the timestamp of config.json, fixed so that Write is
// byte-reproducible for a given config (FAT's epoch is 1980).
var fileTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// Encode returns the config document Write stores: indented JSON and a
// newline. It validates cfg the way the guest will (guest.ParseConfig).
func Encode(cfg *guest.Config) ([]byte, error) {
	if cfg == nil {
		return nil, errors.New("config disk: no config given")
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("config disk: %w", err)
	}
	b = append(b, '\n')
	if _, err := guest.ParseConfig(b); err != nil {
		return nil, fmt.Errorf("config disk: %w", err)
	}
	return b, nil
}

// Write creates the config disk at path: a raw, sparse ImageSize image
// holding a FAT32 filesystem (no partition table) with the single file
// guest.ConfigFileName. cfg is validated first. The image appears
// atomically: it is written to a temporary file in the same directory and
// renamed over path. For a given config the image is byte-reproducible.
func Write(path string, cfg *guest.Config) (err error) {
	doc, err := Encode(cfg)
	if err != nil {
		return err
	}
	err = atomicfile.Create(path, 0o644, false, func(f *os.File) error {
		if err := f.Truncate(ImageSize); err != nil {
			return err
		}
		return format(file.New(f, false), doc)
	})
	if err != nil {
		return fmt.Errorf("config disk %s: %w", path, err)
	}
	return nil
}

func format(b backend.Storage, doc []byte) error {
	fsys, err := fat32.Create(b, ImageSize, 0, SectorSize, VolumeLabel, true)
	if err != nil {
		return fmt.Errorf("creating FAT32: %w", err)
	}
	f, err := fsys.OpenFile("/"+guest.ConfigFileName, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return fmt.Errorf("creating %s: %w", guest.ConfigFileName, err)
	}
	if _, err := f.Write(doc); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", guest.ConfigFileName, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", guest.ConfigFileName, err)
	}
	if err := fsys.Chtimes("/"+guest.ConfigFileName, fileTime, fileTime, fileTime); err != nil {
		return fmt.Errorf("setting times of %s: %w", guest.ConfigFileName, err)
	}
	return nil
}

// Read opens the config disk at pathOrDevice read-only (a regular image
// file, or a block device such as /dev/vdb in the guest), reads
// guest.ConfigFileName from its FAT32 filesystem and validates it with
// guest.ParseConfig. It returns the parsed config and the file's exact
// bytes. Every failure is one line naming the disk and the problem. The
// disk is untrusted input: its structure is bounds-checked before the FAT
// driver sees it.
func Read(pathOrDevice string) (*guest.Config, []byte, error) {
	f, err := os.Open(pathOrDevice)
	if err != nil {
		return nil, nil, fmt.Errorf("config disk: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("config disk %s: %w", pathOrDevice, err)
	}
	if !st.Mode().IsRegular() && st.Mode()&fs.ModeDevice == 0 {
		return nil, nil, fmt.Errorf("config disk %s: not a regular file or block device", pathOrDevice)
	}
	// Seeking to the end gives the size of regular files and block
	// devices alike.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, nil, fmt.Errorf("config disk %s: cannot determine its size: %w", pathOrDevice, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, fmt.Errorf("config disk %s: %w", pathOrDevice, err)
	}
	cfg, doc, err := read(storage{File: f, size: size, mode: st.Mode()}, size)
	if err != nil {
		return nil, nil, fmt.Errorf("config disk %s: %w", pathOrDevice, err)
	}
	return cfg, doc, nil
}

// ReadBytes is Read on an in-memory disk image.
func ReadBytes(img []byte) (*guest.Config, []byte, error) {
	r := bytes.NewReader(img)
	cfg, doc, err := read(storage{File: memFile{r}, size: int64(len(img)), mode: 0o444}, int64(len(img)))
	if err != nil {
		return nil, nil, fmt.Errorf("config disk: %w", err)
	}
	return cfg, doc, nil
}

func read(b backend.Storage, size int64) (cfg *guest.Config, doc []byte, err error) {
	if size > MaxImageSize {
		return nil, nil, fmt.Errorf("%d bytes is larger than a config disk can be (%d)", size, MaxImageSize)
	}
	if err := precheck(b, size); err != nil {
		return nil, nil, err
	}
	// The FAT driver indexes slices with on-disk values; precheck rules
	// out what we know of, and this turns anything left into an error.
	defer func() {
		if r := recover(); r != nil {
			cfg, doc, err = nil, nil, fmt.Errorf("no usable FAT32 filesystem: corrupt structure (%v)", r)
		}
	}()
	fsys, err := fat32.Read(b, size, 0, SectorSize)
	if err != nil {
		return nil, nil, fmt.Errorf("no usable FAT32 filesystem: %w", err)
	}
	f, err := fsys.OpenFile("/"+guest.ConfigFileName, os.O_RDONLY)
	if err != nil {
		return nil, nil, fmt.Errorf("no %s on its FAT32 filesystem", guest.ConfigFileName)
	}
	defer f.Close()
	doc, err = readLimited(f, guest.MaxConfigSize+1)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", guest.ConfigFileName, err)
	}
	if len(doc) > guest.MaxConfigSize {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", guest.ConfigFileName, guest.MaxConfigSize)
	}
	cfg, err = guest.ParseConfig(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", guest.ConfigFileName, err)
	}
	return cfg, doc, nil
}

// readLimited reads r to EOF or limit bytes. Unlike io.ReadAll it treats
// a read that returns nothing and no error as a broken file (the FAT
// driver does that when a file's size exceeds its cluster chain) instead
// of retrying forever.
func readLimited(r io.Reader, limit int) ([]byte, error) {
	buf := make([]byte, 0, 4096)
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, errors.New("file is shorter than its directory entry says (broken cluster chain)")
		}
	}
	return buf, nil
}

// precheck validates the FAT32 boot sector and first FAT enough that the
// FAT driver's allocations are bounded by the image size and its cluster
// chains end.
func precheck(b io.ReaderAt, size int64) error {
	bs := make([]byte, 512)
	if n, _ := b.ReadAt(bs, 0); n < len(bs) || size < 4096 {
		return fmt.Errorf("no FAT32 filesystem: %d bytes is too small", size)
	}
	if bs[510] != 0x55 || bs[511] != 0xAA {
		return errors.New("no FAT32 filesystem: boot sector signature missing")
	}
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(bs[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(bs[o:])) }
	bps, spc := le16(0x0B), int64(bs[0x0D])
	reserved, nfats := le16(0x0E), int64(bs[0x10])
	rootEntries, fatSz16, fatSz32 := le16(0x11), le16(0x16), le32(0x24)
	rootCluster, fsInfo := le32(0x2C), le16(0x30)
	switch {
	case fatSz16 != 0 || rootEntries != 0 || fatSz32 == 0:
		return errors.New("no FAT32 filesystem: the boot sector describes FAT12/16 or something else")
	case bps != 512 && bps != 4096:
		return fmt.Errorf("no usable FAT32 filesystem: %d bytes per sector (want 512 or 4096)", bps)
	case spc == 0 || spc&(spc-1) != 0:
		return fmt.Errorf("no usable FAT32 filesystem: %d sectors per cluster is not a power of two", spc)
	case reserved == 0 || nfats != 2:
		return fmt.Errorf("no usable FAT32 filesystem: %d reserved sectors, %d FATs", reserved, nfats)
	}
	fatBytes := fatSz32 * bps
	fatStart := reserved * bps
	clusterBytes := spc * bps
	maxCluster := fatBytes / 4
	switch {
	case fatBytes > maxFATBytes || fatStart+2*fatBytes > size:
		return fmt.Errorf("no usable FAT32 filesystem: a %d-byte FAT does not fit a %d-byte disk", fatBytes, size)
	case maxCluster*clusterBytes > 2*size+(1<<20):
		return fmt.Errorf("no usable FAT32 filesystem: %d clusters of %d bytes do not fit a %d-byte disk", maxCluster, clusterBytes, size)
	case rootCluster != 2:
		return fmt.Errorf("no usable FAT32 filesystem: root directory at cluster %d (want 2)", rootCluster)
	case (fsInfo+1)*bps > size:
		return errors.New("no usable FAT32 filesystem: FSInfo sector outside the disk")
	}
	fat := make([]byte, fatBytes)
	if n, _ := b.ReadAt(fat, fatStart); int64(n) < fatBytes {
		return errors.New("no usable FAT32 filesystem: FAT unreadable")
	}
	return checkChains(fat)
}

// checkChains fails if any cluster chain in the FAT loops. The FAT maps
// each cluster to its successor; a chain ends at a value outside
// [2, len(fat)/4).
func checkChains(fat []byte) error {
	n := uint32(len(fat) / 4)
	next := func(c uint32) (uint32, bool) {
		v := binary.LittleEndian.Uint32(fat[4*c:])
		return v, v >= 2 && v < n
	}
	// state: 0 unvisited, 1 on the current walk, 2 known to terminate.
	state := make([]uint8, n)
	var path []uint32
	for start := uint32(2); start < n; start++ {
		if state[start] != 0 {
			continue
		}
		path = path[:0]
		c := start
		for {
			if state[c] == 2 {
				break
			}
			if state[c] == 1 {
				return fmt.Errorf("no usable FAT32 filesystem: cluster chain loops at cluster %d", c)
			}
			state[c] = 1
			path = append(path, c)
			nc, ok := next(c)
			if !ok {
				break
			}
			c = nc
		}
		for _, p := range path {
			state[p] = 2
		}
	}
	return nil
}

// storage adapts an *os.File or an in-memory reader to go-diskfs's
// read-only backend.
type storage struct {
	backend.File
	size int64
	mode fs.FileMode
}

func (s storage) Stat() (fs.FileInfo, error) { return fileInfo{size: s.size, mode: s.mode}, nil }
func (s storage) Sys() (*os.File, error) {
	if f, ok := s.File.(*os.File); ok {
		return f, nil
	}
	return nil, backend.ErrNotSuitable
}
func (s storage) Writable() (backend.WritableFile, error) { return nil, backend.ErrIncorrectOpenMode }
func (s storage) Path() string                            { return "" }

type fileInfo struct {
	size int64
	mode fs.FileMode
}

func (i fileInfo) Name() string       { return "config-disk" }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return i.mode }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }

type memFile struct{ *bytes.Reader }

func (memFile) Stat() (fs.FileInfo, error) { return nil, errors.New("not supported") }
func (memFile) Close() error               { return nil }
