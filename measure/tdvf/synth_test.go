package tdvf

import (
	"encoding/binary"
)

// rawSection is a section entry as written into a synthetic image.
type rawSection struct {
	DataOffset, RawDataSize     uint32
	MemoryAddress, MemoryDataSz uint64
	Type, Attributes            uint32
}

// synth describes a synthetic TDVF image: a CFV, a BFV holding the TDVF
// descriptor, a TD HOB and temporary memory, laid out like OVMF's.
type synth struct {
	size       int
	descOff    int // file offset of the TDVF descriptor
	sections   []rawSection
	signature  uint32
	version    uint32
	length     int // -1: computed
	count      int // -1: len(sections)
	metaGUID   GUID
	extraEntry bool // add an unrelated GUIDed table entry before the metadata entry
	metaData   []byte
	noMeta     bool
}

const synthSize = 128 << 10

func defaultSynth() *synth {
	const n = synthSize
	const fourG = 1 << 32
	return &synth{
		size:    n,
		descOff: 0x9000,
		sections: []rawSection{
			// CFV: image [0,0x4000) at 4 GiB - n, not extended.
			{0, 0x4000, fourG - n, 0x4000, uint32(SectionCFV), 0},
			// BFV: the rest of the image, extended.
			{0x4000, n - 0x4000, fourG - n + 0x4000, n - 0x4000, uint32(SectionBFV), uint32(AttrMRExtend)},
			{0, 0, 0x809000, 0x2000, uint32(SectionTDHOB), 0},
			{0, 0, 0x800000, 0x6000, uint32(SectionTempMem), 0},
			{0, 0, 0x80B000, 0x2000, uint32(SectionTempMem), 0},
		},
		signature: Signature,
		version:   Version,
		length:    -1,
		count:     -1,
		metaGUID:  MetadataGUID,
		metaData:  nil,
	}
}

// build returns the image bytes.
func (s *synth) build() []byte {
	img := make([]byte, s.size)
	// Deterministic, position-dependent content so MR.EXTEND sees data.
	x := uint32(0x12345678)
	for i := range img {
		x = x*1664525 + 1013904223
		img[i] = byte(x >> 24)
	}
	// Descriptor, preceded by the metadata GUID.
	copy(img[s.descOff-16:], s.metaGUID[:])
	count := s.count
	if count < 0 {
		count = len(s.sections)
	}
	length := s.length
	if length < 0 {
		length = DescriptorSize + SectionEntrySize*count
	}
	d := img[s.descOff:]
	binary.LittleEndian.PutUint32(d[0:], s.signature)
	binary.LittleEndian.PutUint32(d[4:], uint32(length))
	binary.LittleEndian.PutUint32(d[8:], s.version)
	binary.LittleEndian.PutUint32(d[12:], uint32(count))
	for i, sec := range s.sections {
		e := d[DescriptorSize+i*SectionEntrySize:]
		binary.LittleEndian.PutUint32(e[0:], sec.DataOffset)
		binary.LittleEndian.PutUint32(e[4:], sec.RawDataSize)
		binary.LittleEndian.PutUint64(e[8:], sec.MemoryAddress)
		binary.LittleEndian.PutUint64(e[16:], sec.MemoryDataSz)
		binary.LittleEndian.PutUint32(e[24:], sec.Type)
		binary.LittleEndian.PutUint32(e[28:], sec.Attributes)
	}
	// GUIDed table, built backwards from the footer.
	var entries [][]byte // in file order
	if s.extraEntry {
		entries = append(entries, tableEntry(MustParseGUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e"), []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	}
	if !s.noMeta {
		data := s.metaData
		if data == nil {
			data = binary.LittleEndian.AppendUint32(nil, uint32(s.size-s.descOff))
		}
		entries = append(entries, tableEntry(MetadataOffsetGUID, data))
	}
	var table []byte
	for _, e := range entries {
		table = append(table, e...)
	}
	footer := tableEntry(TableFooterGUID, nil)
	binary.LittleEndian.PutUint16(footer[0:], uint16(len(table)+len(footer)))
	table = append(table, footer...)
	copy(img[s.size-tableFooterGap-len(table):], table)
	// Whatever follows the table (the reset vector) is arbitrary.
	return img
}

// tableEntry encodes data | u16 len | GUID.
func tableEntry(g GUID, data []byte) []byte {
	e := append([]byte{}, data...)
	e = binary.LittleEndian.AppendUint16(e, uint16(len(data)+tableEntryTrailer))
	return append(e, g[:]...)
}
