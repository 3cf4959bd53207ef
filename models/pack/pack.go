package pack

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
	"github.com/chrysalis-cc/chrysalis/models/verity"
)

// DefaultBlockSize is the squashfs data block size (mksquashfs's default).
const DefaultBlockSize = 128 << 10

// MaxNameLen is the longest file name packed (Linux NAME_MAX).
const MaxNameLen = 255

// Options tune Pack. The zero value is the canonical choice: the catalog's
// image hashes assume it.
type Options struct {
	// BlockSize is the squashfs data block size: a power of two from
	// 4 KiB to 1 MiB; 0 means DefaultBlockSize.
	BlockSize int
	// Workers is the number of verity hashing goroutines (0: GOMAXPROCS).
	Workers int
	// Progress, if set, is called with the stage ("image" or "verity"),
	// the bytes done and the total.
	Progress func(stage string, done, total int64)
}

// Result describes a packed model image.
type Result struct {
	ImageSHA256 []byte   // SHA-256 of the whole (padded) image file
	Size        int64    // image file size: a multiple of 4096
	FSSize      int64    // squashfs bytes_used, before the padding
	Files       int      // regular files packed
	Dirs        int      // directories packed, the root included
	DataBytes   int64    // file content bytes
	RootHash    []byte   // dm-verity root hash
	Salt        []byte   // verity.DeriveSalt(hex(ImageSHA256))
	UUID        [16]byte // verity.DeriveUUID(hex(ImageSHA256))
	Verity      *verity.Result
	VerityPath  string // out + ".verity"
}

// Pack writes a deterministic squashfs image of the directory dir to out
// and its dm-verity hash device (with superblock) to out+".verity", both
// atomically. See the package documentation for the format.
func Pack(ctx context.Context, dir, out string, opt Options) (*Result, error) {
	bs := opt.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	if bs < 4096 || bs > 1<<20 || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("pack: block size %d is not a power of two from 4096 to 1048576", bs)
	}
	if err := checkOutside(dir, out); err != nil {
		return nil, err
	}
	root := &node{path: dir, rel: ".", dir: true}
	st := &scanState{}
	if err := st.scan(ctx, root); err != nil {
		return nil, err
	}
	t, err := layoutTables(root, bs)
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	sb := superblock{inodes: t.count, blockSize: uint32(bs), rootRef: t.rootRef}
	sb.inodeTable = t.dataEnd
	sb.directoryTable = sb.inodeTable + uint64(len(t.inodes))
	idBlock := sb.directoryTable + uint64(len(t.dirs))
	sb.idTable = idBlock + 2 + 4 // one uncompressed metadata block with id 0
	sb.bytesUsed = sb.idTable + 8
	size := verity.PaddedSize(int64(sb.bytesUsed), verity.DefaultBlockSize)

	res := &Result{Size: size, FSSize: int64(sb.bytesUsed), Files: len(t.files), Dirs: st.dirs, DataBytes: int64(t.dataEnd - sqSuperSize), VerityPath: out + ".verity"}
	err = atomicfile.Create(out, 0o644, false, func(f *os.File) error {
		h := sha256.New()
		w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
		w.Write(sb.encode())
		if err := copyData(ctx, w, t.files, res.DataBytes, opt.Progress); err != nil {
			return err
		}
		w.Write(t.inodes)
		w.Write(t.dirs)
		var tail []byte
		tail = binary.LittleEndian.AppendUint16(tail, 4|sqMetaUncomp)
		tail = binary.LittleEndian.AppendUint32(tail, 0) // id 0 (root)
		tail = binary.LittleEndian.AppendUint64(tail, idBlock)
		tail = append(tail, make([]byte, size-int64(sb.bytesUsed))...)
		w.Write(tail)
		if err := w.Flush(); err != nil {
			return fmt.Errorf("pack: writing %s: %w", out, err)
		}
		res.ImageSHA256 = h.Sum(nil)
		return res.format(ctx, f, opt)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// format writes the verity hash device of the image f.
func (res *Result) format(ctx context.Context, f *os.File, opt Options) error {
	seed := []byte(hex.EncodeToString(res.ImageSHA256))
	p := verity.Params{
		Salt:    verity.DeriveSalt(seed),
		UUID:    verity.DeriveUUID(seed),
		Workers: opt.Workers,
	}
	if opt.Progress != nil {
		p.Progress = func(done, total int64) { opt.Progress("verity", done, total) }
	}
	var data io.ReaderAt = f
	if m, err := syscall.Mmap(int(f.Fd()), 0, int(res.Size), syscall.PROT_READ, syscall.MAP_SHARED); err == nil {
		defer syscall.Munmap(m)
		data = verity.Bytes(m)
	}
	var vr *verity.Result
	err := atomicfile.Create(res.VerityPath, 0o644, false, func(vf *os.File) error {
		var err error
		vr, err = verity.FormatContext(ctx, data, res.Size, vf, p)
		return err
	})
	if err != nil {
		return fmt.Errorf("pack: verity: %w", err)
	}
	res.RootHash, res.Salt, res.UUID, res.Verity = vr.RootHash, p.Salt, p.UUID, vr
	return nil
}

// copyData streams the files' contents in image order.
func copyData(ctx context.Context, w io.Writer, files []*node, total int64, progress func(string, int64, int64)) error {
	buf := make([]byte, 1<<20)
	var done int64
	for _, e := range files {
		if err := copyFile(ctx, w, e, buf); err != nil {
			return err
		}
		done += e.size
		if progress != nil {
			progress("image", done, total)
		}
	}
	return nil
}

func copyFile(ctx context.Context, w io.Writer, e *node, buf []byte) error {
	f, err := os.Open(e.path)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != e.size {
		return fmt.Errorf("pack: %s changed while packing", e.rel)
	}
	left := e.size
	for left > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := f.Read(buf[:min(int64(len(buf)), left)])
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			left -= int64(n)
		}
		if err == io.EOF {
			return fmt.Errorf("pack: %s shrank while packing", e.rel)
		}
		if err != nil {
			return fmt.Errorf("pack: %w", err)
		}
	}
	if n, _ := f.Read(buf[:1]); n > 0 {
		return fmt.Errorf("pack: %s grew while packing", e.rel)
	}
	return nil
}

type scanState struct{ dirs int }

// scan reads the directory d recursively. os.ReadDir returns entries
// sorted by name in byte order, which is squashfs's (strcmp) order.
func (st *scanState) scan(ctx context.Context, d *node) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st.dirs++
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	for _, de := range ents {
		name := de.Name()
		c := &node{name: name, path: filepath.Join(d.path, name), rel: filepath.Join(d.rel, name), parent: d}
		if len(name) > MaxNameLen {
			return fmt.Errorf("pack: %s: name longer than %d bytes", c.rel, MaxNameLen)
		}
		switch t := de.Type(); {
		case t.IsDir():
			c.dir = true
			if err := st.scan(ctx, c); err != nil {
				return err
			}
		case t.IsRegular():
			fi, err := de.Info()
			if err != nil {
				return fmt.Errorf("pack: %w", err)
			}
			c.size = fi.Size()
			c.exec = fi.Mode().Perm()&0o100 != 0
		case t&os.ModeSymlink != 0:
			return fmt.Errorf("pack: %s is a symbolic link; model directories must hold regular files only (resolve links first, e.g. hf download --local-dir)", c.rel)
		default:
			return fmt.Errorf("pack: %s is not a regular file or directory (%v)", c.rel, t)
		}
		d.children = append(d.children, c)
	}
	return nil
}

// checkOutside refuses an output path inside the input directory (the
// image would pack itself) and a missing or non-directory input.
func checkOutside(dir, out string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("pack: %s is not a directory", dir)
	}
	if out == "" {
		return errors.New("pack: no output path")
	}
	din, err := realAbs(dir)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	odir, err := realAbs(filepath.Dir(out))
	if err != nil {
		return fmt.Errorf("pack: output directory: %w", err)
	}
	if rel, err := filepath.Rel(din, odir); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("pack: output %s is inside the input directory %s", out, dir)
	}
	return nil
}

func realAbs(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(a)
}
