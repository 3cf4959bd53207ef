package verity

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

// DefaultBlockSize is veritysetup's default data and hash block size.
const DefaultBlockSize = 4096

// maxLevels is libcryptsetup's VERITY_MAX_LEVELS.
const maxLevels = 63

// Params are the veritysetup format parameters.
type Params struct {
	DataBlockSize int    // bytes; 0 means 4096
	HashBlockSize int    // bytes; 0 means 4096
	Hash          string // "sha256" (default if empty), "sha512" or "sha1"
	// Salt is required: nil is an error, a non-nil empty slice means no
	// salt (veritysetup --salt=-). At most 256 bytes.
	Salt []byte
	UUID [16]byte // stored in the superblock
	// NoSuperblock leaves out the superblock (veritysetup --no-superblock):
	// the tree starts at offset 0 of the hash device.
	NoSuperblock bool
	// Workers is the number of hashing goroutines; 0 means GOMAXPROCS.
	Workers int
	// Progress, if set, is called (serially, from worker goroutines) with
	// the number of data bytes hashed so far and the total.
	Progress func(done, total int64)
}

// Result describes a formatted hash device.
type Result struct {
	RootHash       []byte
	HashDeviceSize int64 // bytes, superblock included
	DataBlocks     int64
	HashBlocks     int64 // tree blocks, superblock excluded (veritysetup's "Hash blocks")
	Levels         int   // 0 when there is a single data block
}

// Bytes is data held in memory (or mapped) as an io.ReaderAt; Format and
// Verify hash it in place instead of copying it into buffers, which saves
// a copy of the data for a memory-mapped image.
type Bytes []byte

// ReadAt implements io.ReaderAt.
func (b Bytes) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("verity: negative offset")
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// layout is the geometry of one hash device.
type layout struct {
	p          Params
	newHash    func() hash.Hash
	digestSize int
	slotSize   int   // digest size rounded up to a power of two
	perBlock   int   // digests per hash block (a power of two)
	perBits    uint  // log2(perBlock)
	dataBlocks int64 //
	levels     int
	treeStart  int64   // hash block where the tree starts (1 with a superblock)
	levelBlock []int64 // first hash block of level i, absolute
	levelSize  []int64 // hash blocks in level i
	totalBlock int64   // hash device size in hash blocks
}

func hashFunc(name string) (func() hash.Hash, error) {
	switch name {
	case "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	case "sha1":
		return sha1.New, nil
	}
	return nil, fmt.Errorf("verity: unsupported hash %q (want sha256, sha512 or sha1)", name)
}

func validBlockSize(n int) bool {
	return n >= 512 && n <= 512*1024 && n&(n-1) == 0
}

// withDefaults fills in the zero values.
func (p Params) withDefaults() Params {
	if p.DataBlockSize == 0 {
		p.DataBlockSize = DefaultBlockSize
	}
	if p.HashBlockSize == 0 {
		p.HashBlockSize = DefaultBlockSize
	}
	if p.Hash == "" {
		p.Hash = "sha256"
	}
	if p.Workers <= 0 {
		p.Workers = runtime.GOMAXPROCS(0)
	}
	return p
}

func newLayout(size int64, p Params) (*layout, error) {
	p = p.withDefaults()
	if !validBlockSize(p.DataBlockSize) {
		return nil, fmt.Errorf("verity: data block size %d is not a power of two between 512 and 524288", p.DataBlockSize)
	}
	if !validBlockSize(p.HashBlockSize) {
		return nil, fmt.Errorf("verity: hash block size %d is not a power of two between 512 and 524288", p.HashBlockSize)
	}
	if p.Salt == nil {
		return nil, errors.New("verity: a salt is required (use DeriveSalt, or an empty non-nil salt for none)")
	}
	if len(p.Salt) > maxSalt {
		return nil, fmt.Errorf("verity: salt is %d bytes; at most %d", len(p.Salt), maxSalt)
	}
	nh, err := hashFunc(p.Hash)
	if err != nil {
		return nil, err
	}
	if size <= 0 {
		return nil, fmt.Errorf("verity: data size %d: need at least one data block", size)
	}
	if size%int64(p.DataBlockSize) != 0 {
		return nil, fmt.Errorf("verity: data size %d is not a multiple of the data block size %d (veritysetup would silently leave the last %d bytes unprotected); pad the image with zeros to %d bytes first (verity.PadFile)",
			size, p.DataBlockSize, size%int64(p.DataBlockSize), PaddedSize(size, p.DataBlockSize))
	}
	l := &layout{p: p, newHash: nh, dataBlocks: size / int64(p.DataBlockSize)}
	l.digestSize = nh().Size()
	l.slotSize = 1 << bits.Len(uint(l.digestSize-1))
	l.perBits = uint(bits.Len(uint(p.HashBlockSize/l.slotSize)) - 1)
	l.perBlock = 1 << l.perBits
	if l.perBlock < 2 {
		return nil, fmt.Errorf("verity: hash block size %d holds fewer than two %s digests", p.HashBlockSize, p.Hash)
	}
	for l.levels = 0; l.perBits*uint(l.levels) < 64 && uint64(l.dataBlocks-1)>>(l.perBits*uint(l.levels)) != 0; l.levels++ {
	}
	if l.levels > maxLevels {
		return nil, fmt.Errorf("verity: %d tree levels; at most %d", l.levels, maxLevels)
	}
	if !p.NoSuperblock {
		l.treeStart = (superblockSize + int64(p.HashBlockSize) - 1) / int64(p.HashBlockSize)
	}
	l.levelBlock = make([]int64, l.levels)
	l.levelSize = make([]int64, l.levels)
	pos := l.treeStart
	for i := l.levels - 1; i >= 0; i-- {
		l.levelBlock[i] = pos
		sh := uint(i+1) * l.perBits
		var s int64
		if sh >= 63 {
			s = 1
		} else {
			s = (l.dataBlocks + (int64(1) << sh) - 1) >> sh
		}
		l.levelSize[i] = s
		pos += s
	}
	l.totalBlock = pos
	return l, nil
}

// PaddedSize rounds size up to a multiple of blockSize.
func PaddedSize(size int64, blockSize int) int64 {
	b := int64(blockSize)
	return (size + b - 1) / b * b
}

// treeBytes is the length of the tree (all levels) in bytes.
func (l *layout) treeBytes() int64 {
	return (l.totalBlock - l.treeStart) * int64(l.p.HashBlockSize)
}

// levelRange is level i's byte range within the tree buffer.
func (l *layout) levelRange(i int) (off, n int64) {
	hb := int64(l.p.HashBlockSize)
	return (l.levelBlock[i] - l.treeStart) * hb, l.levelSize[i] * hb
}

// hashLevel hashes n blocks of blockSize bytes from src (at srcOff) into
// dst: digest k goes to slot k (slots of l.slotSize, l.perBlock per hash
// block); dst must be zeroed beforehand. Work is split into chunks of
// whole hash blocks handed to l.p.Workers goroutines. If progress is
// non-nil it is called with the source bytes done.
func (l *layout) hashLevel(ctx context.Context, src io.ReaderAt, srcOff, n int64, blockSize int, dst []byte, progress func(int64)) error {
	perChunk := int64(l.perBlock) // source blocks per chunk, a multiple of perBlock
	for perChunk*int64(blockSize) < 1<<20 {
		perChunk *= 2
	}
	chunks := (n + perChunk - 1) / perChunk
	workers := min(int64(l.p.Workers), chunks)
	var (
		next     atomic.Int64
		firstErr error
		errOnce  sync.Once
		failed   atomic.Bool
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		failed.Store(true)
	}
	for w := int64(0); w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := l.newHash()
			mem, inMemory := src.(Bytes)
			var buf []byte
			if !inMemory {
				buf = make([]byte, perChunk*int64(blockSize))
			}
			var sum [sha512.Size]byte
			for !failed.Load() {
				c := next.Add(1) - 1
				if c >= chunks {
					return
				}
				if err := ctx.Err(); err != nil {
					fail(err)
					return
				}
				first := c * perChunk
				cnt := min(perChunk, n-first)
				var b []byte
				start, length := srcOff+first*int64(blockSize), cnt*int64(blockSize)
				if inMemory {
					if start+length > int64(len(mem)) {
						fail(fmt.Errorf("verity: blocks %d..%d lie beyond the %d bytes of data", first, first+cnt-1, len(mem)))
						return
					}
					b = mem[start : start+length]
				} else if m, err := src.ReadAt(buf[:length], start); m < int(length) {
					if err == nil || err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					fail(fmt.Errorf("verity: reading blocks %d..%d: %w", first, first+cnt-1, err))
					return
				} else {
					b = buf[:length]
				}
				for k := int64(0); k < cnt; k++ {
					h.Reset()
					h.Write(l.p.Salt)
					h.Write(b[k*int64(blockSize) : (k+1)*int64(blockSize)])
					d := h.Sum(sum[:0])
					copy(dst[(first+k)*int64(l.slotSize):], d)
				}
				if progress != nil {
					progress(int64(len(b)))
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// digest returns H(salt ‖ block).
func (l *layout) digest(block []byte) []byte {
	h := l.newHash()
	h.Write(l.p.Salt)
	h.Write(block)
	return h.Sum(nil)
}

// build computes the tree of data in memory and the root hash.
func (l *layout) build(ctx context.Context, data io.ReaderAt) (tree, root []byte, err error) {
	tree = make([]byte, l.treeBytes())
	total := l.dataBlocks * int64(l.p.DataBlockSize)
	var progress func(int64)
	if l.p.Progress != nil {
		var mu sync.Mutex
		var done int64
		progress = func(n int64) {
			mu.Lock()
			defer mu.Unlock()
			done += n
			l.p.Progress(done, total)
		}
	}
	if l.levels == 0 {
		block := make([]byte, l.p.DataBlockSize)
		if m, err := data.ReadAt(block, 0); m < len(block) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, fmt.Errorf("verity: reading data block 0: %w", err)
		}
		if progress != nil {
			progress(int64(len(block)))
		}
		return tree, l.digest(block), nil
	}
	for i := 0; i < l.levels; i++ {
		off, size := l.levelRange(i)
		dst := tree[off : off+size]
		if i == 0 {
			err = l.hashLevel(ctx, data, 0, l.dataBlocks, l.p.DataBlockSize, dst, progress)
		} else {
			poff, psize := l.levelRange(i - 1)
			err = l.hashLevel(ctx, Bytes(tree[poff:poff+psize]), 0, l.levelSize[i-1], l.p.HashBlockSize, dst, nil)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	off, _ := l.levelRange(l.levels - 1)
	return tree, l.digest(tree[off : off+int64(l.p.HashBlockSize)]), nil
}

func (l *layout) result(root []byte) *Result {
	return &Result{
		RootHash:       root,
		HashDeviceSize: l.totalBlock * int64(l.p.HashBlockSize),
		DataBlocks:     l.dataBlocks,
		HashBlocks:     l.totalBlock - l.treeStart,
		Levels:         l.levels,
	}
}

func (l *layout) superblock() *Superblock {
	return &Superblock{
		Version:       1,
		HashType:      1,
		UUID:          l.p.UUID,
		Algorithm:     l.p.Hash,
		DataBlockSize: uint32(l.p.DataBlockSize),
		HashBlockSize: uint32(l.p.HashBlockSize),
		DataBlocks:    uint64(l.dataBlocks),
		Salt:          l.p.Salt,
	}
}

// Layout returns the sizes Format would produce for size bytes of data,
// without reading any (RootHash is nil).
func Layout(size int64, p Params) (*Result, error) {
	l, err := newLayout(size, p)
	if err != nil {
		return nil, err
	}
	return l.result(nil), nil
}

// Format computes the hash tree of size bytes of data and writes the hash
// device (superblock, zero padding, tree levels) to out from offset 0,
// every byte of it, as `veritysetup format` does.
func Format(data io.ReaderAt, size int64, out io.WriterAt, p Params) (*Result, error) {
	return FormatContext(context.Background(), data, size, out, p)
}

// FormatContext is Format with cancellation.
func FormatContext(ctx context.Context, data io.ReaderAt, size int64, out io.WriterAt, p Params) (*Result, error) {
	l, err := newLayout(size, p)
	if err != nil {
		return nil, err
	}
	tree, root, err := l.build(ctx, data)
	if err != nil {
		return nil, err
	}
	hb := int64(l.p.HashBlockSize)
	if !l.p.NoSuperblock {
		head := make([]byte, l.treeStart*hb)
		sb, err := l.superblock().MarshalBinary()
		if err != nil {
			return nil, err
		}
		copy(head, sb)
		if _, err := out.WriteAt(head, 0); err != nil {
			return nil, fmt.Errorf("verity: writing superblock: %w", err)
		}
	}
	if _, err := out.WriteAt(tree, l.treeStart*hb); err != nil {
		return nil, fmt.Errorf("verity: writing hash tree: %w", err)
	}
	return l.result(root), nil
}

// Verify checks size bytes of data against the hash device hash and the
// trusted rootHash, top down as dm-verity does: the top level against the
// root hash, each level against the one above, then every data block
// against level 0. The first mismatch is named in the error (for data, the
// lowest-numbered bad block). Unused slots and block tails must be zero
// and, unless p.NoSuperblock, the superblock must match p.
func Verify(data io.ReaderAt, size int64, hashDev io.ReaderAt, rootHash []byte, p Params) error {
	return VerifyContext(context.Background(), data, size, hashDev, rootHash, p)
}

// VerifyContext is Verify with cancellation.
func VerifyContext(ctx context.Context, data io.ReaderAt, size int64, hashDev io.ReaderAt, rootHash []byte, p Params) error {
	l, err := newLayout(size, p)
	if err != nil {
		return err
	}
	hb := int64(l.p.HashBlockSize)
	if !l.p.NoSuperblock {
		b := make([]byte, superblockSize)
		if _, err := hashDev.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF)) {
			return fmt.Errorf("verity: reading superblock: %w", err)
		}
		sb, err := ParseSuperblock(b)
		if err != nil {
			return err
		}
		want := l.superblock()
		if !sb.Equal(want) {
			return fmt.Errorf("verity: superblock %s does not match the parameters %s", sb, want)
		}
	}
	stored := make([]byte, l.treeBytes())
	if m, err := hashDev.ReadAt(stored, l.treeStart*hb); m < len(stored) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("verity: reading hash tree (%d bytes at %d): %w", len(stored), l.treeStart*hb, err)
	}
	if l.levels == 0 {
		block := make([]byte, l.p.DataBlockSize)
		if m, err := data.ReadAt(block, 0); m < len(block) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("verity: reading data block 0: %w", err)
		}
		if !bytes.Equal(l.digest(block), rootHash) {
			return errors.New("verity: data block 0 does not match the root hash")
		}
		return nil
	}
	top, _ := l.levelRange(l.levels - 1)
	if !bytes.Equal(l.digest(stored[top:top+hb]), rootHash) {
		return fmt.Errorf("verity: hash block %d (top level) does not match the root hash", l.levelBlock[l.levels-1])
	}
	for i := l.levels - 1; i >= 0; i-- {
		off, n := l.levelRange(i)
		var src io.ReaderAt = data
		var srcOff, count int64 = 0, l.dataBlocks
		bs := l.p.DataBlockSize
		if i > 0 {
			poff, psize := l.levelRange(i - 1)
			src, srcOff, count, bs = Bytes(stored), poff, psize/hb, l.p.HashBlockSize
		}
		computed := make([]byte, n)
		if err := l.hashLevel(ctx, src, srcOff, count, bs, computed, nil); err != nil {
			return err
		}
		have := stored[off : off+n]
		if bytes.Equal(computed, have) {
			continue
		}
		// Name the first bad slot.
		for k := int64(0); k*int64(l.slotSize) < n; k++ {
			a := computed[k*int64(l.slotSize) : (k+1)*int64(l.slotSize)]
			b := have[k*int64(l.slotSize) : (k+1)*int64(l.slotSize)]
			if bytes.Equal(a, b) {
				continue
			}
			hashBlock := l.levelBlock[i] + k/int64(l.perBlock)
			if k >= count {
				return fmt.Errorf("verity: level %d hash block %d: unused area is not zero", i, hashBlock)
			}
			if i == 0 {
				return fmt.Errorf("verity: data block %d (bytes %d..%d) does not match the hash tree (hash block %d)",
					k, k*int64(bs), (k+1)*int64(bs)-1, hashBlock)
			}
			poff, _ := l.levelRange(i - 1)
			return fmt.Errorf("verity: hash block %d (level %d) does not match hash block %d (level %d)",
				l.treeStart+(poff/hb)+k, i-1, hashBlock, i)
		}
		// Differences only in block tails past the last slot.
		return fmt.Errorf("verity: level %d: padding at the end of a hash block is not zero", i)
	}
	return nil
}
