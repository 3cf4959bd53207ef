package authenticode

import (
	"encoding/binary"
)

// synthPE describes a small PE/COFF image built by the tests, with every
// offset known so the expected hashed ranges can be written down directly.
type synthPE struct {
	plus      bool   // PE32+ (else PE32)
	noDOS     bool   // PE header at offset 0, no "MZ"
	lfanew    uint32 // PE header offset (with DOS header)
	numDirs   uint32 // NumberOfRvaAndSizes
	sizeOfOpt int    // -1: exact for numDirs
	soh       uint32 // SizeOfHeaders
	sections  []synthSection
	trailing  int    // bytes of extra data after the last section
	certSize  uint32 // certificate table appended at the end (0: none)
	certOff   int64  // -1: right after trailing data
}

type synthSection struct {
	name      string
	ptr, size uint32
}

func defaultPE() *synthPE {
	return &synthPE{
		plus:      true,
		lfanew:    0x80,
		numDirs:   16,
		sizeOfOpt: -1,
		soh:       0x400,
		// Deliberately not in file order; one empty section.
		sections: []synthSection{
			{".text", 0x600, 0x400},
			{".bss", 0, 0},
			{".setup", 0x400, 0x200},
			{".data", 0xa00, 0x200},
		},
		trailing: 0x37,
		certSize: 0x48,
		certOff:  -1,
	}
}

// layout returns the offsets of the fields the digest skips.
func (p *synthPE) layout() (pe, opt, checksum, certDir, sectTable int) {
	pe = int(p.lfanew)
	if p.noDOS {
		pe = 0
	}
	opt = pe + 24
	checksum = opt + 64
	dirs := 96
	if p.plus {
		dirs = 112
	}
	certDir = opt + dirs + 4*8
	sizeOfOpt := p.sizeOfOpt
	if sizeOfOpt < 0 {
		sizeOfOpt = dirs + 8*int(p.numDirs)
	}
	sectTable = opt + sizeOfOpt
	return
}

// end is the end of the last section's raw data.
func (p *synthPE) sectionsEnd() int {
	end := int(p.soh)
	for _, s := range p.sections {
		if e := int(s.ptr + s.size); s.size > 0 && e > end {
			end = e
		}
	}
	return end
}

func (p *synthPE) build() []byte {
	pe, opt, checksum, certDir, st := p.layout()
	size := p.sectionsEnd() + p.trailing
	certOff := int64(size)
	if p.certOff >= 0 {
		certOff = p.certOff
	}
	if p.certSize > 0 && int(certOff)+int(p.certSize) > size {
		size = int(certOff) + int(p.certSize)
	}
	if size < st+40*len(p.sections) {
		size = st + 40*len(p.sections)
	}
	b := make([]byte, size)
	x := uint32(7)
	for i := range b {
		x = x*1103515245 + 12345
		b[i] = byte(x >> 16)
	}
	if !p.noDOS {
		copy(b, "MZ")
		binary.LittleEndian.PutUint32(b[0x3c:], p.lfanew)
	}
	copy(b[pe:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[pe+4:], 0x8664)
	binary.LittleEndian.PutUint16(b[pe+6:], uint16(len(p.sections)))
	binary.LittleEndian.PutUint16(b[pe+20:], uint16(st-opt))
	if p.plus {
		binary.LittleEndian.PutUint16(b[opt:], MagicPE32Plus)
		binary.LittleEndian.PutUint32(b[opt+108:], p.numDirs)
	} else {
		binary.LittleEndian.PutUint16(b[opt:], MagicPE32)
		binary.LittleEndian.PutUint32(b[opt+92:], p.numDirs)
	}
	binary.LittleEndian.PutUint32(b[opt+60:], p.soh)
	binary.LittleEndian.PutUint32(b[checksum:], 0xdeadbeef)
	if p.numDirs > 4 {
		if p.certSize > 0 {
			binary.LittleEndian.PutUint32(b[certDir:], uint32(certOff))
			binary.LittleEndian.PutUint32(b[certDir+4:], p.certSize)
		} else {
			binary.LittleEndian.PutUint64(b[certDir:], 0)
		}
	}
	for i, s := range p.sections {
		h := b[st+40*i:]
		copy(h[:8], append([]byte(s.name), make([]byte, 8)...)[:8])
		binary.LittleEndian.PutUint32(h[8:], s.size)
		binary.LittleEndian.PutUint32(h[12:], s.ptr+0x1000)
		binary.LittleEndian.PutUint32(h[16:], s.size)
		binary.LittleEndian.PutUint32(h[20:], s.ptr)
	}
	return b
}
