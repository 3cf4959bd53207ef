package authenticode

import (
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"os"
	"slices"
	"strings"

	// Register the hashes Digest is used with.
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// PE/COFF layout constants.
const (
	dosHeaderSize   = 64
	peSignature     = "PE\x00\x00"
	fileHeaderSize  = 20
	sectionHdrSize  = 40
	maxDataDirs     = 16
	securityDirIdx  = 4
	dataDirSize     = 8
	checkSumOffset  = 64  // of the optional header
	pe32DataDirs    = 96  // offset of the data directories in a PE32 optional header
	pe32PlusDataDir = 112 // ... in a PE32+ optional header

	// Magic values of the optional header.
	MagicPE32     = 0x10b
	MagicPE32Plus = 0x20b
)

// ErrNotPE classifies a FormatError for input that is not a PE/COFF image
// at all (no "PE\0\0" signature where the DOS header points).
var ErrNotPE = errors.New("not a PE/COFF image")

// FormatError reports why an image cannot be hashed.
type FormatError struct {
	// Offset is the file offset of the offending field, or -1.
	Offset int64
	// Problem says what is wrong.
	Problem string
	// Kind is ErrNotPE or nil.
	Kind error
}

func (e *FormatError) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("authenticode: offset %#x: %s", e.Offset, e.Problem)
	}
	return "authenticode: " + e.Problem
}

// Unwrap returns Kind.
func (e *FormatError) Unwrap() error { return e.Kind }

func errAt(off int64, kind error, format string, args ...any) error {
	return &FormatError{Offset: off, Problem: fmt.Sprintf(format, args...), Kind: kind}
}

// Section is a PE section header.
type Section struct {
	Name             string
	VirtualSize      uint32
	VirtualAddress   uint32
	SizeOfRawData    uint32
	PointerToRawData uint32
}

// Range is a byte range [Offset, Offset+Length) of the file.
type Range struct {
	Offset, Length int64
}

// Image is a parsed PE/COFF image and the byte ranges its Authenticode
// digest covers.
type Image struct {
	data []byte
	// PEOffset is the file offset of the "PE\0\0" signature (e_lfanew,
	// or 0 for an image without a DOS header).
	PEOffset int
	// Machine is the COFF machine type (0x8664 for x86-64).
	Machine uint16
	// Magic is MagicPE32 or MagicPE32Plus.
	Magic uint16
	// NumberOfRvaAndSizes is the number of data directories.
	NumberOfRvaAndSizes uint32
	// SizeOfHeaders is the optional header's SizeOfHeaders.
	SizeOfHeaders uint32
	// CheckSumOffset is the file offset of the 4-byte CheckSum field.
	CheckSumOffset int
	// CertDirOffset is the file offset of the Certificate Table
	// data-directory entry, or -1 when there is none.
	CertDirOffset int
	// CertTableOffset and CertTableSize are that entry's fields (a file
	// offset, not an RVA); zero when absent.
	CertTableOffset, CertTableSize uint32
	// Sections are the section headers in header order.
	Sections []Section
	// Hashed are the ranges the digest covers, in hashing order.
	Hashed []Range
}

// Load reads and parses the PE file at path; errors name the path.
func Load(path string) (*Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	im, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return im, nil
}

// Parse parses data as a PE/COFF image and computes the ranges edk2 hashes.
// The Image keeps a reference to data; do not modify it afterwards.
func Parse(data []byte) (*Image, error) {
	n := int64(len(data))
	if n < dosHeaderSize {
		return nil, errAt(-1, ErrNotPE, "image of %d bytes is shorter than a DOS header", n)
	}
	im := &Image{data: data, CertDirOffset: -1}
	// edk2: a DOS header ("MZ") points to the PE header; otherwise the
	// PE header is at offset 0.
	pe := int64(0)
	if data[0] == 'M' && data[1] == 'Z' {
		pe = int64(binary.LittleEndian.Uint32(data[0x3c:]))
	}
	if pe+4+fileHeaderSize+2 > n {
		return nil, errAt(0x3c, ErrNotPE, "PE header offset %#x is past the end of the %#x-byte image", pe, n)
	}
	if string(data[pe:pe+4]) != peSignature {
		return nil, errAt(pe, ErrNotPE, "no PE signature (found %q)", data[pe:pe+4])
	}
	im.PEOffset = int(pe)
	fh := data[pe+4 : pe+4+fileHeaderSize]
	im.Machine = binary.LittleEndian.Uint16(fh[0:])
	numSections := int64(binary.LittleEndian.Uint16(fh[2:]))
	sizeOfOpt := int64(binary.LittleEndian.Uint16(fh[16:]))
	opt := pe + 4 + fileHeaderSize
	im.Magic = binary.LittleEndian.Uint16(data[opt:])
	var dirs int64
	switch im.Magic {
	case MagicPE32:
		dirs = pe32DataDirs
	case MagicPE32Plus:
		dirs = pe32PlusDataDir
	default:
		return nil, errAt(opt, nil, "optional header magic %#x is neither PE32 (%#x) nor PE32+ (%#x)", im.Magic, MagicPE32, MagicPE32Plus)
	}
	if sizeOfOpt < dirs {
		return nil, errAt(pe+4+16, nil, "SizeOfOptionalHeader %#x is smaller than the %#x bytes before the data directories", sizeOfOpt, dirs)
	}
	if opt+sizeOfOpt > n {
		return nil, errAt(opt, nil, "optional header (%#x bytes) runs past the end of the %#x-byte image", sizeOfOpt, n)
	}
	im.SizeOfHeaders = binary.LittleEndian.Uint32(data[opt+60:])
	im.NumberOfRvaAndSizes = binary.LittleEndian.Uint32(data[opt+dirs-4:])
	if im.NumberOfRvaAndSizes > maxDataDirs {
		return nil, errAt(opt+dirs-4, nil, "NumberOfRvaAndSizes %d exceeds %d", im.NumberOfRvaAndSizes, maxDataDirs)
	}
	if dirs+dataDirSize*int64(im.NumberOfRvaAndSizes) > sizeOfOpt {
		return nil, errAt(pe+4+16, nil, "SizeOfOptionalHeader %#x cannot hold %d data directories", sizeOfOpt, im.NumberOfRvaAndSizes)
	}
	soh := int64(im.SizeOfHeaders)
	if soh > n {
		return nil, errAt(opt+60, nil, "SizeOfHeaders %#x is past the end of the %#x-byte image", soh, n)
	}
	im.CheckSumOffset = int(opt + checkSumOffset)
	hashed := []Range{{0, opt + checkSumOffset}}
	afterCheckSum := opt + checkSumOffset + 4
	if im.NumberOfRvaAndSizes <= securityDirIdx {
		if soh < afterCheckSum {
			return nil, errAt(opt+60, nil, "SizeOfHeaders %#x ends inside the optional header (before %#x)", soh, afterCheckSum)
		}
		hashed = append(hashed, Range{afterCheckSum, soh - afterCheckSum})
	} else {
		cd := opt + dirs + securityDirIdx*dataDirSize
		im.CertDirOffset = int(cd)
		im.CertTableOffset = binary.LittleEndian.Uint32(data[cd:])
		im.CertTableSize = binary.LittleEndian.Uint32(data[cd+4:])
		if soh < cd+dataDirSize {
			return nil, errAt(opt+60, nil, "SizeOfHeaders %#x ends before the end of the Certificate Table entry (%#x)", soh, cd+dataDirSize)
		}
		hashed = append(hashed, Range{afterCheckSum, cd - afterCheckSum}, Range{cd + dataDirSize, soh - cd - dataDirSize})
		if im.CertTableSize != 0 {
			end := int64(im.CertTableOffset) + int64(im.CertTableSize)
			if end > n {
				return nil, errAt(cd, nil, "certificate table [%#x,+%#x) runs past the end of the %#x-byte image", im.CertTableOffset, im.CertTableSize, n)
			}
		}
	}
	// Section headers follow the optional header.
	st := opt + sizeOfOpt
	if st+numSections*sectionHdrSize > n {
		return nil, errAt(st, nil, "%d section headers run past the end of the %#x-byte image", numSections, n)
	}
	for i := int64(0); i < numSections; i++ {
		h := data[st+i*sectionHdrSize:]
		s := Section{
			Name:             strings.TrimRight(string(h[0:8]), "\x00"),
			VirtualSize:      binary.LittleEndian.Uint32(h[8:]),
			VirtualAddress:   binary.LittleEndian.Uint32(h[12:]),
			SizeOfRawData:    binary.LittleEndian.Uint32(h[16:]),
			PointerToRawData: binary.LittleEndian.Uint32(h[20:]),
		}
		if s.SizeOfRawData > 0 && int64(s.PointerToRawData)+int64(s.SizeOfRawData) > n {
			return nil, errAt(st+i*sectionHdrSize, nil, "section %d %q raw data [%#x,+%#x) runs past the end of the %#x-byte image",
				i, s.Name, s.PointerToRawData, s.SizeOfRawData, n)
		}
		im.Sections = append(im.Sections, s)
	}
	// Sections with raw data, sorted by PointerToRawData (stable, as
	// edk2's insertion sort).
	sorted := slices.Clone(im.Sections)
	slices.SortStableFunc(sorted, func(a, b Section) int {
		switch {
		case a.PointerToRawData < b.PointerToRawData:
			return -1
		case a.PointerToRawData > b.PointerToRawData:
			return 1
		}
		return 0
	})
	sum := soh
	for _, s := range sorted {
		if s.SizeOfRawData == 0 {
			continue
		}
		hashed = append(hashed, Range{int64(s.PointerToRawData), int64(s.SizeOfRawData)})
		sum += int64(s.SizeOfRawData)
	}
	// SUM_OF_BYTES_HASHED beyond the file size means section raw data
	// overlap each other or the headers. edk2 would hash such bytes
	// repeatedly (up to 65535 times the file); no linker produces it, so
	// refuse instead of hashing without bound.
	if sum > n {
		return nil, errAt(st, nil, "SizeOfHeaders plus the sections' SizeOfRawData is %#x, more than the %#x-byte image: section raw data overlap", sum, n)
	}
	// Extra data after SUM_OF_BYTES_HASHED, excluding the certificate
	// table's size (edk2 subtracts the size wherever the table is).
	if n > sum {
		cert := int64(0)
		if im.NumberOfRvaAndSizes > securityDirIdx {
			cert = int64(im.CertTableSize)
		}
		switch {
		case n > sum+cert:
			hashed = append(hashed, Range{sum, n - cert - sum})
		case n < sum+cert:
			return nil, errAt(int64(im.CertDirOffset), nil,
				"certificate table size %#x exceeds the %#x bytes after the %#x hashed bytes (edk2 refuses to measure such an image)", cert, n-sum, sum)
		}
	}
	for _, r := range hashed {
		if r.Length == 0 {
			continue
		}
		im.Hashed = append(im.Hashed, r)
	}
	return im, nil
}

// Data returns the image bytes.
func (im *Image) Data() []byte { return im.data }

// Hash writes the hashed ranges into h.
func (im *Image) Hash(h hash.Hash) {
	for _, r := range im.Hashed {
		h.Write(im.data[r.Offset : r.Offset+r.Length])
	}
}

// Digest returns the Authenticode digest under alg (crypto.SHA384,
// crypto.SHA256, ...).
func (im *Image) Digest(alg crypto.Hash) ([]byte, error) {
	if !alg.Available() {
		return nil, fmt.Errorf("authenticode: hash %v is not available", alg)
	}
	h := alg.New()
	im.Hash(h)
	return h.Sum(nil), nil
}

// Digest parses data and returns its Authenticode digest under alg.
func Digest(data []byte, alg crypto.Hash) ([]byte, error) {
	im, err := Parse(data)
	if err != nil {
		return nil, err
	}
	return im.Digest(alg)
}

// SHA384 returns the Authenticode SHA-384 of data, the digest OVMF
// extends into RTMR1 for an EFI application.
func SHA384(data []byte) ([48]byte, error) {
	var out [48]byte
	d, err := Digest(data, crypto.SHA384)
	copy(out[:], d)
	return out, err
}

// SHA256 returns the Authenticode SHA-256 of data, the digest Authenticode
// signatures (and osslsigncode) use.
func SHA256(data []byte) ([32]byte, error) {
	var out [32]byte
	d, err := Digest(data, crypto.SHA256)
	copy(out[:], d)
	return out, err
}
