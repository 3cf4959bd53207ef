// Package verity computes dm-verity hash trees and superblocks in Go,
// byte-identical to `veritysetup format` from cryptsetup (superblock
// version 1, hash type 1 "normal"), and verifies data against them.
//
// # On-disk layout
//
// The hash device starts with the 512-byte superblock (unless
// Params.NoSuperblock), zero-padded to one hash block. The tree levels
// follow, the level nearest the root first and the level that hashes the
// data blocks last, exactly as libcryptsetup lays them out. Level 0 has
// one digest per data block, level i+1 one digest per hash block of level
// i. A digest is H(salt ‖ block); each is stored in a slot of the next
// power of two of the digest size (32 for sha256 and sha1, 64 for
// sha512), 2^k slots per hash block (the largest power of two that fits:
// 128 for sha256 in 4096-byte blocks), and the rest of a block is zero.
// The root hash is the digest of the single top-level block, or of the
// only data block when there is just one (no levels at all). The hash
// device is (superblock block + tree blocks) × hash block size long.
//
// # Data size
//
// veritysetup silently ignores a trailing partial data block (it covers
// floor(size/block) blocks), which would leave those bytes unprotected.
// Format therefore refuses a size that is not a multiple of the data block
// size; PadFile extends an image file with zeros to the next multiple
// first.
//
// # Salt and UUID
//
// Both are explicit parameters: the salt is required (an empty salt must
// be asked for with a non-nil empty slice), so that root hashes are
// reproducible. Chrysalis derives them deterministically with DeriveSalt
// and DeriveUUID from a seed — by convention the lowercase hex SHA-256 of
// the model archive the image was built from, which the catalog pins
// anyway (`chrysalis model verity` defaults to the hex SHA-256 of the
// image itself, at the cost of one extra sequential pass):
// salt = SHA-256("chrysalis verity salt\x00" ‖ seed) (32 bytes) and
// UUID = the first 16 bytes of SHA-256("chrysalis verity uuid\x00" ‖ seed)
// with the RFC 9562 version-8 ("custom") and variant bits set. A
// content-derived salt differs per model (defeating precomputation across
// images, the reason veritysetup salts at all) while anyone holding the
// archive can rebuild the image and get the same root hash; a random salt
// would make the root hash unreproducible, a fixed one would be shared by
// every image.
//
// # Performance
//
// Every level is hashed by Params.Workers goroutines (default GOMAXPROCS)
// over ranges of whole hash blocks, so the output does not depend on the
// scheduling. The tree (about 1/128 of the data for sha256/4096) is built
// in memory and written once.
package verity
