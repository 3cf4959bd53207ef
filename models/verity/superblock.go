package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

const (
	superblockSize = 512
	maxSalt        = 256
	algSize        = 32
)

var signature = [8]byte{'v', 'e', 'r', 'i', 't', 'y', 0, 0}

// Superblock is libcryptsetup's struct verity_sb (512 bytes, little
// endian):
//
//	0   signature "verity\0\0"   8
//	8   version (1)              4
//	12  hash_type (1 = normal)   4
//	16  uuid                     16
//	32  algorithm, NUL padded    32
//	64  data_block_size          4
//	68  hash_block_size          4
//	72  data_blocks              8
//	80  salt_size                2
//	82  pad                      6
//	88  salt, zero padded        256
//	344 pad                      168
type Superblock struct {
	Version       uint32
	HashType      uint32
	UUID          [16]byte
	Algorithm     string
	DataBlockSize uint32
	HashBlockSize uint32
	DataBlocks    uint64
	Salt          []byte
}

// MarshalBinary encodes the 512-byte superblock.
func (s *Superblock) MarshalBinary() ([]byte, error) {
	if len(s.Algorithm) == 0 || len(s.Algorithm) >= algSize || strings.IndexByte(s.Algorithm, 0) >= 0 {
		return nil, fmt.Errorf("verity: superblock algorithm %q: want 1..31 bytes without NUL", s.Algorithm)
	}
	if len(s.Salt) > maxSalt {
		return nil, fmt.Errorf("verity: superblock salt is %d bytes; at most %d", len(s.Salt), maxSalt)
	}
	b := make([]byte, superblockSize)
	copy(b, signature[:])
	le := binary.LittleEndian
	le.PutUint32(b[8:], s.Version)
	le.PutUint32(b[12:], s.HashType)
	copy(b[16:32], s.UUID[:])
	copy(b[32:64], s.Algorithm)
	le.PutUint32(b[64:], s.DataBlockSize)
	le.PutUint32(b[68:], s.HashBlockSize)
	le.PutUint64(b[72:], s.DataBlocks)
	le.PutUint16(b[80:], uint16(len(s.Salt)))
	copy(b[88:], s.Salt)
	return b, nil
}

// ParseSuperblock decodes the first 512 bytes of b strictly: signature,
// version 1, hash type 0 or 1, a NUL-terminated lowercase algorithm name
// with zero padding, valid block sizes, a non-zero block count, salt size
// ≤ 256, and every padding byte (after the algorithm, after the salt, the
// reserved fields) zero. It accepts exactly what MarshalBinary produces.
func ParseSuperblock(b []byte) (*Superblock, error) {
	if len(b) < superblockSize {
		return nil, fmt.Errorf("verity: superblock is %d bytes; need %d", len(b), superblockSize)
	}
	b = b[:superblockSize]
	if !bytes.Equal(b[:8], signature[:]) {
		return nil, fmt.Errorf("verity: no verity superblock (signature %q)", b[:8])
	}
	le := binary.LittleEndian
	s := &Superblock{
		Version:       le.Uint32(b[8:]),
		HashType:      le.Uint32(b[12:]),
		DataBlockSize: le.Uint32(b[64:]),
		HashBlockSize: le.Uint32(b[68:]),
		DataBlocks:    le.Uint64(b[72:]),
	}
	copy(s.UUID[:], b[16:32])
	if s.Version != 1 {
		return nil, fmt.Errorf("verity: superblock version %d; want 1", s.Version)
	}
	if s.HashType > 1 {
		return nil, fmt.Errorf("verity: hash type %d; want 0 or 1", s.HashType)
	}
	alg := b[32:64]
	n := bytes.IndexByte(alg, 0)
	if n <= 0 {
		return nil, errors.New("verity: superblock algorithm is empty or not NUL-terminated")
	}
	for _, c := range alg[:n] {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("verity: superblock algorithm %q has an invalid character", alg[:n])
		}
	}
	if !allZero(alg[n:]) {
		return nil, errors.New("verity: superblock algorithm padding is not zero")
	}
	s.Algorithm = string(alg[:n])
	if !validBlockSize(int(s.DataBlockSize)) || !validBlockSize(int(s.HashBlockSize)) {
		return nil, fmt.Errorf("verity: superblock block sizes %d/%d: want powers of two between 512 and 524288", s.DataBlockSize, s.HashBlockSize)
	}
	if s.DataBlocks == 0 || s.DataBlocks > 1<<63-1 {
		return nil, fmt.Errorf("verity: superblock data block count %d", s.DataBlocks)
	}
	saltSize := int(le.Uint16(b[80:]))
	if saltSize > maxSalt {
		return nil, fmt.Errorf("verity: superblock salt size %d; at most %d", saltSize, maxSalt)
	}
	if !allZero(b[82:88]) || !allZero(b[88+saltSize:88+maxSalt]) || !allZero(b[88+maxSalt:]) {
		return nil, errors.New("verity: superblock padding is not zero")
	}
	s.Salt = bytes.Clone(b[88 : 88+saltSize])
	return s, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Equal reports whether two superblocks are the same.
func (s *Superblock) Equal(o *Superblock) bool {
	return s.Version == o.Version && s.HashType == o.HashType && s.UUID == o.UUID &&
		s.Algorithm == o.Algorithm && s.DataBlockSize == o.DataBlockSize &&
		s.HashBlockSize == o.HashBlockSize && s.DataBlocks == o.DataBlocks &&
		bytes.Equal(s.Salt, o.Salt)
}

func (s *Superblock) String() string {
	return fmt.Sprintf("{type %d, %s, data %d×%d, hash block %d, salt %x, uuid %s}",
		s.HashType, s.Algorithm, s.DataBlocks, s.DataBlockSize, s.HashBlockSize, s.Salt, FormatUUID(s.UUID))
}

// Params returns the format parameters the superblock records.
func (s *Superblock) Params() Params {
	return Params{
		DataBlockSize: int(s.DataBlockSize),
		HashBlockSize: int(s.HashBlockSize),
		Hash:          s.Algorithm,
		Salt:          bytes.Clone(s.Salt),
		UUID:          s.UUID,
	}
}

// FormatUUID writes u as 8-4-4-4-12 lowercase hex.
func FormatUUID(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ParseUUID reads the 8-4-4-4-12 hex form.
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("verity: UUID %q: want 8-4-4-4-12 hex digits", s)
	}
	h := s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("verity: UUID %q: %v", s, err)
	}
	return u, nil
}

// DeriveSalt returns SHA-256("chrysalis verity salt\x00" ‖ seed), the
// 32-byte salt Chrysalis uses for an image whose seed (by convention the
// model archive's SHA-256) is seed.
func DeriveSalt(seed []byte) []byte {
	h := sha256.New()
	h.Write([]byte("chrysalis verity salt\x00"))
	h.Write(seed)
	return h.Sum(nil)
}

// DeriveUUID returns the first 16 bytes of
// SHA-256("chrysalis verity uuid\x00" ‖ seed) with the RFC 9562 version 8
// and variant bits set.
func DeriveUUID(seed []byte) [16]byte {
	h := sha256.New()
	h.Write([]byte("chrysalis verity uuid\x00"))
	h.Write(seed)
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	return u
}

// PadFile extends the file at path with zeros to a multiple of blockSize
// (in place, sparsely) and returns the number of bytes added.
func PadFile(path string, blockSize int) (int64, error) {
	if !validBlockSize(blockSize) {
		return 0, fmt.Errorf("verity: block size %d is not a power of two between 512 and 524288", blockSize)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("verity: %s is not a regular file; cannot pad it", path)
	}
	want := PaddedSize(fi.Size(), blockSize)
	if want == fi.Size() {
		return 0, nil
	}
	if err := os.Truncate(path, want); err != nil {
		return 0, err
	}
	return want - fi.Size(), nil
}
