// Package pack builds model disks: a deterministic, read-only squashfs
// image of a model directory plus its dm-verity hash device, computed
// with models/verity (byte-identical to `veritysetup format`).
//
// # Filesystem: squashfs, written here
//
// The guest kernel (Debian cloud) builds both SQUASHFS and EROFS_FS as
// modules. EROFS has no Go writer; squashfs has one in go-diskfs
// (filesystem/squashfs), but its v1.9.4 Finalize is not deterministic: it
// stamps time.Now() into the superblock, copies every file into a
// temporary host workspace first (doubling the I/O for multi-GiB weights)
// and then takes mtimes, uid/gid, link counts and xattrs from that copy.
// So Pack writes squashfs 4.0 itself (about 300 lines, squashfs.go) in
// the simplest layout the kernel and unsquashfs accept, which the format
// admits without any option of the reader:
//
//   - superblock, then the file data, then the inode table, the directory
//     table and the id table (one id: 0); no fragment, export or xattr
//     tables;
//   - nothing is compressed: every data block and metadata block carries
//     its "stored uncompressed" bit (the superblock names zlib, which the
//     kernel only needs to have built in). Model weights are high-entropy
//     and barely compress, and uncompressed blocks are read straight into
//     the page cache with no decompressor in the guest's read path;
//   - no fragments: each file is a run of BlockSize blocks (128 KiB by
//     default), the last one short (mksquashfs -no-fragments does the
//     same), so the data region is the files' contents back to back and
//     every table offset is known before a byte is written: the image is
//     written in a single sequential pass and hashed (SHA-256) on the fly.
//
// # Determinism
//
// The image depends only on the names, the directory structure and the
// contents of the regular files, and on Options.BlockSize: entries are
// sorted by name in byte (strcmp) order, which is also the order squashfs
// lookups expect; inode numbers are assigned in post-order (the root
// last, as mksquashfs does) and file data is laid out in the same order;
// directories are 0755 and files 0644, or 0755 when the source file has
// the owner-execute bit (a model disk may carry its engine binary, which
// the guest runs from the verified mount) (the inode mode field holds the
// permission bits only: a 6.18 kernel refuses to read an inode whose mode
// also carries the S_IFMT type bits), uid and gid 0, every mtime and
// the superblock's mkfs time 0; no host inode numbers, link counts,
// xattrs, times or owners are read. Hard links are stored as separate
// files. Symbolic links are refused rather than followed or stored (a
// model directory is plain files, e.g. `hf download --local-dir`; a link
// could point outside it), and so are devices, FIFOs and sockets. Names
// longer than 255 bytes are refused. Files that change size while being
// packed make Pack fail.
//
// # Verity
//
// The image is zero-padded to a multiple of 4096 (squashfs ignores what
// follows bytes_used) and formatted with sha256, 4096-byte data and hash
// blocks and a superblock; salt and UUID are verity.DeriveSalt and
// verity.DeriveUUID of the lowercase hex SHA-256 of the padded image, so
// anyone holding the model directory rebuilds the same image, hash device
// and root hash. `<out>` and `<out>.verity` are each written atomically
// (temporary file, fsync, rename); the hash device is renamed into place
// before the image, so a crash in between leaves a new hash device next
// to an old image, which the root hash check then rejects.
//
// # Guest
//
// The guest needs squashfs.ko (CONFIG_SQUASHFS=m on the pinned kernel) in
// its initramfs, and zlib support built into it (CONFIG_SQUASHFS_ZLIB).
package pack
