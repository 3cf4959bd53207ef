package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
	"github.com/chrysalis-cc/chrysalis/models/catalog"
	"github.com/chrysalis-cc/chrysalis/models/pack"
	"github.com/chrysalis-cc/chrysalis/models/verity"
)

func init() {
	register("model", "model disks: images, dm-verity hash trees, catalog (pack|verity|verity-check|catalog)", runModel)
}

func modelUsage(w io.Writer) {
	fmt.Fprint(w, `usage:
  chrysalis model pack --dir MODELDIR --out IMAGE [--block-size N] [--workers N]
      pack MODELDIR into a deterministic read-only squashfs image IMAGE
      (models/pack) and write its dm-verity hash device to IMAGE.verity;
      print the image SHA-256, size, root hash, salt and UUID
  chrysalis model catalog
      list the pinned models of the embedded catalog (models/catalog)
  chrysalis model verity --data FILE --hash-out FILE [--salt HEX] [--uuid UUID]
                         [--seed TEXT] [--block-size N] [--hash-block-size N]
                         [--hash sha256|sha512|sha1] [--no-superblock] [--pad]
                         [--workers N]
      compute the dm-verity hash device of FILE, byte-identical to
      'veritysetup format FILE HASH --salt=HEX --uuid=UUID', and print the
      root hash. Without --salt the salt is SHA-256("chrysalis verity
      salt\0" || SEED) and without --uuid the UUID is derived from SEED the
      same way (models/verity.DeriveSalt/DeriveUUID); SEED is --seed (by
      convention the hex SHA-256 of the model archive) or, if absent, the
      hex SHA-256 of FILE (one extra pass over it). With --salt but no seed
      the UUID is derived from the salt bytes.
  chrysalis model verity-check --data FILE --hash-dev FILE --root HEX
                         [--no-superblock --salt HEX ...]
      verify FILE against the hash device and the trusted root hash, with
      the parameters read from the hash device's superblock
`)
}

func runModel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, modelUsage, []subcommand{
		{"pack", modelPack},
		{"verity", modelVerity},
		{"verity-check", modelVerityCheck},
		{"catalog", func(_ context.Context, args []string, stdout, stderr io.Writer) error {
			return modelCatalog(args, stdout, stderr)
		}},
	}, args, stdout, stderr)
}

func modelFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	return groupFlagSet("model", name, modelUsage, stderr)
}

// verityFlags are the format parameters shared by both subcommands.
type verityFlags struct {
	salt, uuid, seed, hash *string
	dataBS, hashBS         *int
	noSB                   *bool
	workers                *int
}

func addVerityFlags(fs *flag.FlagSet) *verityFlags {
	return &verityFlags{
		salt:    fs.String("salt", "", "salt as `hex` (default: derived from the seed); '-' for none"),
		uuid:    fs.String("uuid", "", "superblock `UUID` (default: derived from the seed)"),
		seed:    fs.String("seed", "", "`text` the salt and UUID are derived from (default: hex SHA-256 of the data file)"),
		hash:    fs.String("hash", "sha256", "hash `algorithm`: sha256, sha512 or sha1"),
		dataBS:  fs.Int("block-size", verity.DefaultBlockSize, "data block size in `bytes`"),
		hashBS:  fs.Int("hash-block-size", verity.DefaultBlockSize, "hash block size in `bytes`"),
		noSB:    fs.Bool("no-superblock", false, "write no superblock (veritysetup --no-superblock)"),
		workers: fs.Int("workers", 0, "hashing goroutines (default: GOMAXPROCS)"),
	}
}

// params builds the verity parameters; seedFn supplies the default seed.
func (v *verityFlags) params(seedFn func() ([]byte, error)) (verity.Params, string, error) {
	p := verity.Params{
		DataBlockSize: *v.dataBS,
		HashBlockSize: *v.hashBS,
		Hash:          *v.hash,
		NoSuperblock:  *v.noSB,
		Workers:       *v.workers,
	}
	var seed []byte
	seedNote := ""
	if *v.seed != "" {
		seed, seedNote = []byte(*v.seed), "--seed"
	}
	if seed == nil && *v.salt == "" {
		if seedFn == nil {
			return p, "", errors.New("--salt or --seed is required")
		}
		s, err := seedFn()
		if err != nil {
			return p, "", err
		}
		seed, seedNote = s, "SHA-256 of the data"
	}
	switch {
	case *v.salt == "-":
		p.Salt = []byte{}
	case *v.salt != "":
		b, err := hex.DecodeString(*v.salt)
		if err != nil {
			return p, "", fmt.Errorf("--salt: %v", err)
		}
		p.Salt = b
	default:
		p.Salt = verity.DeriveSalt(seed)
	}
	switch {
	case *v.uuid != "":
		u, err := verity.ParseUUID(*v.uuid)
		if err != nil {
			return p, "", err
		}
		p.UUID = u
	case seed != nil:
		p.UUID = verity.DeriveUUID(seed)
	default:
		p.UUID = verity.DeriveUUID(p.Salt)
		seedNote = "salt"
	}
	return p, seedNote, nil
}

func modelVerity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := modelFlagSet("verity", stderr)
	dataPath := fs.String("data", "", "data image `file`")
	hashOut := fs.String("hash-out", "", "hash device `file` to write (replaced atomically)")
	pad := fs.Bool("pad", false, "extend the data file in place with zeros to a multiple of the block size first")
	vf := addVerityFlags(fs)
	if err := mfParseFlags(fs, args, 0); err != nil {
		return mfHelpOK(err)
	}
	if *dataPath == "" || *hashOut == "" {
		return errors.New("verity: --data and --hash-out are required")
	}
	if *pad {
		added, err := verity.PadFile(*dataPath, *vf.dataBS)
		if err != nil {
			return err
		}
		if added > 0 {
			fmt.Fprintf(stderr, "padded %s with %d zero bytes\n", *dataPath, added)
		}
	}
	f, err := os.Open(*dataPath)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if !fi.Mode().IsRegular() {
		// A block device: its size is where it ends.
		if size, err = f.Seek(0, io.SeekEnd); err != nil {
			return err
		}
	}
	if *vf.dataBS > 0 && size%int64(*vf.dataBS) != 0 {
		return fmt.Errorf("verity: %s is %d bytes, not a multiple of the block size %d (veritysetup would leave the last %d bytes unprotected); pass --pad to extend it with zeros to %d bytes",
			*dataPath, size, *vf.dataBS, size%int64(*vf.dataBS), verity.PaddedSize(size, *vf.dataBS))
	}
	p, seedNote, err := vf.params(func() ([]byte, error) {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(h.Sum(nil))), nil
	})
	if err != nil {
		return err
	}
	bar := newProgress(stderr)
	p.Progress = bar.update
	start := time.Now()
	data, unmap := mapData(f, size)
	defer unmap()
	var res *verity.Result
	err = atomicfile.Create(*hashOut, 0o644, false, func(out *os.File) error {
		var ferr error
		res, ferr = verity.FormatContext(ctx, data, size, out, p)
		return ferr
	})
	bar.done()
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "root hash     %x\n", res.RootHash)
	fmt.Fprintf(stdout, "salt          %x\n", p.Salt)
	if !p.NoSuperblock {
		fmt.Fprintf(stdout, "uuid          %s\n", verity.FormatUUID(p.UUID))
	}
	if seedNote != "" {
		fmt.Fprintf(stdout, "derived from  %s\n", seedNote)
	}
	fmt.Fprintf(stdout, "hash          %s, data block %d, hash block %d\n", *vf.hash, *vf.dataBS, *vf.hashBS)
	fmt.Fprintf(stdout, "data          %s: %d bytes, %d blocks\n", *dataPath, size, res.DataBlocks)
	fmt.Fprintf(stdout, "hash device   %s: %d bytes, %d hash blocks, %d levels\n", *hashOut, res.HashDeviceSize, res.HashBlocks, res.Levels)
	fmt.Fprintf(stdout, "tree time     %.3f s, %.0f MB/s\n", el.Seconds(), float64(size)/el.Seconds()/1e6)
	return nil
}

func modelVerityCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := modelFlagSet("verity-check", stderr)
	dataPath := fs.String("data", "", "data image `file`")
	hashDev := fs.String("hash-dev", "", "hash device `file`")
	root := fs.String("root", "", "trusted root hash (`hex`)")
	vf := addVerityFlags(fs)
	if err := mfParseFlags(fs, args, 0); err != nil {
		return mfHelpOK(err)
	}
	if *dataPath == "" || *hashDev == "" || *root == "" {
		return errors.New("verity-check: --data, --hash-dev and --root are required")
	}
	rootHash, err := hex.DecodeString(*root)
	if err != nil {
		return fmt.Errorf("--root: %v", err)
	}
	d, err := os.Open(*dataPath)
	if err != nil {
		return err
	}
	defer d.Close()
	h, err := os.Open(*hashDev)
	if err != nil {
		return err
	}
	defer h.Close()
	var p verity.Params
	var size int64
	if *vf.noSB {
		if p, _, err = vf.params(nil); err != nil {
			return err
		}
		fi, err := d.Stat()
		if err != nil {
			return err
		}
		size = fi.Size()
	} else {
		b := make([]byte, 512)
		if _, err := io.ReadFull(h, b); err != nil {
			return fmt.Errorf("reading the superblock of %s: %w", *hashDev, err)
		}
		sb, err := verity.ParseSuperblock(b)
		if err != nil {
			return err
		}
		p = sb.Params()
		p.Workers = *vf.workers
		size = int64(sb.DataBlocks) * int64(sb.DataBlockSize)
	}
	start := time.Now()
	data, unmap := mapData(d, size)
	defer unmap()
	if err := verity.VerifyContext(ctx, data, size, h, rootHash, p); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ok: %s (%d bytes) matches root hash %x (%.3f s)\n", *dataPath, size, rootHash, time.Since(start).Seconds())
	return nil
}

func modelPack(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := modelFlagSet("pack", stderr)
	dir := fs.String("dir", "", "model `directory` to pack")
	out := fs.String("out", "", "image `file` to write (and FILE.verity), replaced atomically")
	bs := fs.Int("block-size", pack.DefaultBlockSize, "squashfs data block size in `bytes`")
	workers := fs.Int("workers", 0, "verity hashing goroutines (default: GOMAXPROCS)")
	if err := mfParseFlags(fs, args, 0); err != nil {
		return mfHelpOK(err)
	}
	if *dir == "" || *out == "" {
		return errors.New("pack: --dir and --out are required")
	}
	bar := newProgress(stderr)
	stage := ""
	opt := pack.Options{BlockSize: *bs, Workers: *workers, Progress: func(s string, done, total int64) {
		if s != stage {
			bar.done()
			bar.shown, stage = false, s
		}
		bar.update(done, total)
	}}
	start := time.Now()
	res, err := pack.Pack(ctx, *dir, *out, opt)
	bar.done()
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "image         %s: %d bytes (squashfs %d bytes, %d files, %d directories, %d data bytes)\n", *out, res.Size, res.FSSize, res.Files, res.Dirs, res.DataBytes)
	fmt.Fprintf(stdout, "image sha256  %x\n", res.ImageSHA256)
	fmt.Fprintf(stdout, "hash device   %s: %d bytes, %d levels\n", res.VerityPath, res.Verity.HashDeviceSize, res.Verity.Levels)
	fmt.Fprintf(stdout, "root hash     %x\n", res.RootHash)
	fmt.Fprintf(stdout, "salt          %x\n", res.Salt)
	fmt.Fprintf(stdout, "uuid          %s\n", verity.FormatUUID(res.UUID))
	fmt.Fprintf(stdout, "time          %.3f s, %.0f MB/s\n", el.Seconds(), float64(res.Size)/el.Seconds()/1e6)
	return nil
}

func modelCatalog(args []string, stdout, stderr io.Writer) error {
	fs := modelFlagSet("catalog", stderr)
	if err := mfParseFlags(fs, args, 0); err != nil {
		return mfHelpOK(err)
	}
	c, err := catalog.Default()
	if err != nil {
		return err
	}
	if len(c.Models) == 0 {
		fmt.Fprintf(stdout, "catalog version %d: no models\n", c.Version)
		return nil
	}
	fmt.Fprintf(stdout, "%-24s %-10s %8s %-64s %s\n", "NAME", "ENGINE", "CONTEXT", "ROOT HASH", "SOURCE")
	for _, m := range c.Models {
		name := m.Name
		if m.Test {
			name += " (test)"
		}
		fmt.Fprintf(stdout, "%-24s %-10s %8d %-64s %s@%s\n", name, m.Engine, m.ContextSize, m.RootHash, m.Source, m.Revision)
	}
	return nil
}

// mapData maps size bytes of f read-only so that the hashing reads the
// page cache in place (verity.Bytes) instead of copying it; where mapping
// fails it falls back to reading f.
func mapData(f *os.File, size int64) (io.ReaderAt, func()) {
	if size <= 0 || int64(int(size)) != size {
		return f, func() {}
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return f, func() {}
	}
	return verity.Bytes(m), func() { syscall.Munmap(m) }
}

// progress draws a progress line on stderr when stderr is a terminal.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool
	last  time.Time
	shown bool
}

func newProgress(w io.Writer) *progress {
	pr := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			pr.on = true
		}
	}
	return pr
}

func (pr *progress) update(done, total int64) {
	if !pr.on {
		return
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if now := time.Now(); now.Sub(pr.last) >= 100*time.Millisecond || done == total {
		pr.last = now
		pct := 100 * float64(done) / float64(max(total, 1))
		n := int(pct / 5)
		fmt.Fprintf(pr.w, "\r[%s%s] %5.1f%% %d/%d MiB", strings.Repeat("#", n), strings.Repeat(" ", 20-n), pct, done>>20, total>>20)
		pr.shown = true
	}
}

func (pr *progress) done() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.shown {
		fmt.Fprintln(pr.w)
	}
}
