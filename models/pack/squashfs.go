package pack

import (
	"encoding/binary"
	"fmt"
)

// Squashfs 4.0 on-disk constants (linux/fs/squashfs/squashfs_fs.h).
const (
	sqMagic         = 0x73717368
	sqZlib          = 1 // compression id; nothing is compressed, see doc.go
	sqMetaSize      = 8192
	sqMetaUncomp    = 0x8000  // metadata block header: stored uncompressed
	sqDataUncomp    = 1 << 24 // data block size entry: stored uncompressed
	sqInvalidBlk    = ^uint64(0)
	sqInvalidFrag   = ^uint32(0)
	sqInvalidXattr  = ^uint32(0)
	sqSuperSize     = 96
	sqDirType       = 1 // basic directory inode
	sqFileType      = 2 // basic file inode
	sqLDirType      = 8 // extended directory inode
	sqLFileType     = 9 // extended file inode
	sqDirEntriesMax = 256

	// Superblock flags: inodes, data, fragments and ids stored
	// uncompressed, no fragments, no xattrs, not exportable.
	sqFlags = 0x0001 | 0x0002 | 0x0008 | 0x0010 | 0x0200 | 0x0800
)

// metaWriter accumulates a metadata table (inode or directory table) as
// its uncompressed byte stream; encode splits it into 8 KiB metadata
// blocks, each with a 2-byte "uncompressed" header. Because every block
// but the last is exactly 8 KiB, the on-disk start of the block holding
// stream position pos is (pos/8192)*8194, known before the table is
// written.
type metaWriter struct{ b []byte }

// ref returns the (block start, offset) pair of the current position.
func (m *metaWriter) ref() (block uint32, off uint16) {
	p := len(m.b)
	return uint32(p/sqMetaSize) * (sqMetaSize + 2), uint16(p % sqMetaSize)
}

func (m *metaWriter) encode() []byte {
	out := make([]byte, 0, len(m.b)+2*(len(m.b)/sqMetaSize+1))
	for p := 0; p < len(m.b); p += sqMetaSize {
		n := min(sqMetaSize, len(m.b)-p)
		out = binary.LittleEndian.AppendUint16(out, uint16(n)|sqMetaUncomp)
		out = append(out, m.b[p:p+n]...)
	}
	return out
}

func (m *metaWriter) u16(v uint16) { m.b = binary.LittleEndian.AppendUint16(m.b, v) }
func (m *metaWriter) u32(v uint32) { m.b = binary.LittleEndian.AppendUint32(m.b, v) }
func (m *metaWriter) u64(v uint64) { m.b = binary.LittleEndian.AppendUint64(m.b, v) }

// inodeHeader writes the common inode header: uid and gid are index 0 of
// the id table (id 0), mtime is 0.
func (m *metaWriter) inodeHeader(typ uint16, mode uint16, ino uint32) {
	m.u16(typ)
	m.u16(mode)
	m.u16(0) // uid index
	m.u16(0) // gid index
	m.u32(0) // mtime
	m.u32(ino)
}

// node is one file or directory of the packed tree.
type node struct {
	name     string // base name; "" for the root
	path     string // source path on the host
	rel      string // path inside the image, for messages
	dir      bool
	size     int64   // regular files
	exec     bool    // regular files: the source has the owner-execute bit (mode 0755, else 0644)
	children []*node // directories, sorted by name (strcmp order)
	parent   *node

	ino        uint32 // inode number, post-order from 1; the root is last
	dataStart  uint64 // regular files: image offset of the first data block
	inodeBlock uint32 // metadata block start of the inode, relative to the inode table
	inodeOff   uint16 // offset of the inode in that block
}

// tables is the metadata of a packed tree.
type tables struct {
	inodes, dirs []byte // encoded inode and directory tables
	rootRef      uint64 // root inode reference
	count        uint32 // inodes
	files        []*node
	dataEnd      uint64 // image offset just past the last data block
}

// layoutTables places the file data of the tree rooted at root from
// offset sqSuperSize on, in post-order, and builds the inode and
// directory tables.
func layoutTables(root *node, blockSize int) (*tables, error) {
	// Number inodes and place file data in the same post-order walk that
	// writes them, so that parent numbers are known.
	var order []*node
	var walk func(d *node)
	walk = func(d *node) {
		for _, c := range d.children {
			if c.dir {
				walk(c)
			} else {
				order = append(order, c)
			}
		}
		order = append(order, d)
	}
	walk(root)
	if uint64(len(order)) >= 1<<32-1 {
		return nil, fmt.Errorf("too many files (%d)", len(order))
	}
	t := &tables{count: uint32(len(order)), dataEnd: sqSuperSize}
	for i, e := range order {
		e.ino = uint32(i + 1)
		if !e.dir {
			e.dataStart = t.dataEnd
			t.dataEnd += uint64(e.size)
			t.files = append(t.files, e)
		}
	}
	var it, dt metaWriter
	for _, e := range order {
		if !e.dir {
			writeFileInode(&it, e, blockSize)
			continue
		}
		// The listing first (the children's inodes are placed), then
		// the inode that points at it.
		dBlock, dOff := dt.ref()
		start := len(dt.b)
		writeListing(&dt, e.children)
		listing := len(dt.b) - start
		nlink, parentIno := uint32(2), uint32(len(order)+1) // the root's parent, as mksquashfs does
		for _, c := range e.children {
			if c.dir {
				nlink++
			}
		}
		if e.parent != nil {
			parentIno = e.parent.ino
		}
		e.inodeBlock, e.inodeOff = it.ref()
		mode := uint16(0o755)
		if listing+3 <= 0xffff {
			it.inodeHeader(sqDirType, mode, e.ino)
			it.u32(dBlock)
			it.u32(nlink)
			it.u16(uint16(listing + 3))
			it.u16(dOff)
			it.u32(parentIno)
		} else {
			it.inodeHeader(sqLDirType, mode, e.ino)
			it.u32(nlink)
			it.u32(uint32(listing + 3))
			it.u32(dBlock)
			it.u32(parentIno)
			it.u16(0) // no directory index
			it.u16(dOff)
			it.u32(sqInvalidXattr)
		}
	}
	t.rootRef = uint64(root.inodeBlock)<<16 | uint64(root.inodeOff)
	t.inodes, t.dirs = it.encode(), dt.encode()
	return t, nil
}

func writeFileInode(it *metaWriter, e *node, blockSize int) {
	e.inodeBlock, e.inodeOff = it.ref()
	mode := uint16(0o644)
	if e.exec {
		mode = 0o755
	}
	blocks := (e.size + int64(blockSize) - 1) / int64(blockSize)
	if e.dataStart <= 0xffffffff && e.size <= 0xffffffff {
		it.inodeHeader(sqFileType, mode, e.ino)
		it.u32(uint32(e.dataStart))
		it.u32(sqInvalidFrag)
		it.u32(0) // fragment offset
		it.u32(uint32(e.size))
	} else {
		it.inodeHeader(sqLFileType, mode, e.ino)
		it.u64(e.dataStart)
		it.u64(uint64(e.size))
		it.u64(0) // sparse bytes
		it.u32(1) // nlink
		it.u32(sqInvalidFrag)
		it.u32(0)
		it.u32(sqInvalidXattr)
	}
	for i := int64(0); i < blocks; i++ {
		n := min(int64(blockSize), e.size-i*int64(blockSize))
		it.u32(uint32(n) | sqDataUncomp)
	}
}

// writeListing writes a directory's entries: runs of at most 256 entries
// whose inodes share a metadata block and whose inode numbers are within
// a signed 16-bit delta of the run's base.
func writeListing(dt *metaWriter, children []*node) {
	for i := 0; i < len(children); {
		first := children[i]
		j := i + 1
		for j < len(children) && j-i < sqDirEntriesMax {
			c := children[j]
			d := int64(c.ino) - int64(first.ino)
			if c.inodeBlock != first.inodeBlock || d < -32768 || d > 32767 {
				break
			}
			j++
		}
		dt.u32(uint32(j - i - 1))
		dt.u32(first.inodeBlock)
		dt.u32(first.ino)
		for _, c := range children[i:j] {
			dt.u16(c.inodeOff)
			dt.u16(uint16(int16(int64(c.ino) - int64(first.ino))))
			if c.dir {
				dt.u16(sqDirType)
			} else {
				dt.u16(sqFileType)
			}
			dt.u16(uint16(len(c.name) - 1))
			dt.b = append(dt.b, c.name...)
		}
		i = j
	}
}

type superblock struct {
	inodes                              uint32
	blockSize                           uint32
	rootRef, bytesUsed                  uint64
	idTable, inodeTable, directoryTable uint64
}

func (s *superblock) encode() []byte {
	b := make([]byte, 0, sqSuperSize)
	le := binary.LittleEndian
	b = le.AppendUint32(b, sqMagic)
	b = le.AppendUint32(b, s.inodes)
	b = le.AppendUint32(b, 0) // mkfs time
	b = le.AppendUint32(b, s.blockSize)
	b = le.AppendUint32(b, 0) // fragments
	b = le.AppendUint16(b, sqZlib)
	log := uint16(0)
	for 1<<log < s.blockSize {
		log++
	}
	b = le.AppendUint16(b, log)
	b = le.AppendUint16(b, sqFlags)
	b = le.AppendUint16(b, 1) // ids
	b = le.AppendUint16(b, 4) // major
	b = le.AppendUint16(b, 0) // minor
	b = le.AppendUint64(b, s.rootRef)
	b = le.AppendUint64(b, s.bytesUsed)
	b = le.AppendUint64(b, s.idTable)
	b = le.AppendUint64(b, sqInvalidBlk) // xattr id table
	b = le.AppendUint64(b, s.inodeTable)
	b = le.AppendUint64(b, s.directoryTable)
	b = le.AppendUint64(b, sqInvalidBlk) // fragment table
	b = le.AppendUint64(b, sqInvalidBlk) // export (lookup) table
	return b
}
