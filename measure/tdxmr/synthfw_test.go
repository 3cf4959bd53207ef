package tdxmr

import (
	"encoding/binary"
	"testing"
	"unicode/utf16"

	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
)

// Synthetic TDVF firmware for RTMR0 tests: a 128 KiB image whose first
// 64 KiB are a CFV holding an authenticated variable store and whose last
// 64 KiB are a BFV carrying the TDVF descriptor and OVMF's GUIDed table.
const (
	synthSize  = 0x20000
	synthCFV   = 0x10000
	synthDesc  = 0x1f000
	synthStore = 0x48
)

// synthVar is one variable of the synthetic store.
type synthVar struct {
	name   string
	vendor tdvf.GUID
	state  byte
	data   []byte
}

func appendVar(b []byte, v synthVar) []byte {
	name := utf16.Encode([]rune(v.name + "\x00"))
	h := make([]byte, authVarHeaderSize)
	binary.LittleEndian.PutUint16(h, varStartID)
	h[2] = v.state
	binary.LittleEndian.PutUint32(h[4:], 0x27) // NV|BS|RT|time-based auth
	binary.LittleEndian.PutUint32(h[36:], uint32(2*len(name)))
	binary.LittleEndian.PutUint32(h[40:], uint32(len(v.data)))
	copy(h[44:], v.vendor[:])
	b = append(b, h...)
	for _, c := range name {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	for len(b)%4 != 0 {
		b = append(b, 0xff)
	}
	b = append(b, v.data...)
	for len(b)%4 != 0 {
		b = append(b, 0xff)
	}
	return b
}

// synthCFVBytes is a CFV: a firmware volume header (no extended header
// unless fvName is set) and an authenticated variable store.
func synthCFVBytes(vars []synthVar, fvName *tdvf.GUID) []byte {
	b := make([]byte, synthCFV)
	for i := range b {
		b[i] = 0xff
	}
	copy(b, make([]byte, 16))
	binary.LittleEndian.PutUint64(b[32:], synthCFV)
	copy(b[40:], "_FVH")
	binary.LittleEndian.PutUint16(b[48:], synthStore)
	binary.LittleEndian.PutUint16(b[52:], 0)
	b[55] = 2
	if fvName != nil {
		// An extended header right after the store header's slot would
		// overlap the store; put it at the end of the volume instead.
		binary.LittleEndian.PutUint16(b[52:], synthCFV-0x20)
		copy(b[synthCFV-0x20:], fvName[:])
		binary.LittleEndian.PutUint32(b[synthCFV-0x10:], fvExtHeaderSize)
	}
	st := b[synthStore:]
	copy(st, AuthVariableStoreGUID[:])
	binary.LittleEndian.PutUint32(st[16:], 0x8000)
	st[20], st[21] = varStoreFormatted, varStoreHealthy
	copy(st[22:28], make([]byte, 6))
	var vb []byte
	for _, v := range vars {
		vb = appendVar(vb, v)
	}
	copy(st[varStoreHeaderSize:], vb)
	return b
}

// synthSections are the TDVF sections of the synthetic image, laid out in
// guest memory like the pinned OVMF's RAM sections.
var synthSections = []struct {
	off, raw   uint32
	addr, size uint64
	typ, attr  uint32
}{
	{synthCFV, synthCFV, 0xffff0000, synthCFV, uint32(tdvf.SectionBFV), uint32(tdvf.AttrMRExtend)},
	{0, synthCFV, 0xfffe0000, synthCFV, uint32(tdvf.SectionCFV), 0},
	{0, 0, 0x811000, 0xf000, uint32(tdvf.SectionTempMem), 0},
	{0, 0, 0x80b000, 0x2000, uint32(tdvf.SectionTempMem), 0},
	{0, 0, 0x809000, 0x2000, uint32(tdvf.SectionTDHOB), 0},
	{0, 0, 0x800000, 0x6000, uint32(tdvf.SectionTempMem), 0},
}

// synthFirmware builds and parses the image.
func synthFirmware(t testing.TB, cfv []byte) *tdvf.Firmware {
	t.Helper()
	img := make([]byte, synthSize)
	copy(img, cfv)
	for i := synthCFV; i < synthSize; i++ {
		img[i] = byte(i * 7)
	}
	copy(img[synthDesc-16:], tdvf.MetadataGUID[:])
	d := img[synthDesc:]
	binary.LittleEndian.PutUint32(d, tdvf.Signature)
	binary.LittleEndian.PutUint32(d[4:], uint32(16+32*len(synthSections)))
	binary.LittleEndian.PutUint32(d[8:], 1)
	binary.LittleEndian.PutUint32(d[12:], uint32(len(synthSections)))
	for i, s := range synthSections {
		e := d[16+32*i:]
		binary.LittleEndian.PutUint32(e, s.off)
		binary.LittleEndian.PutUint32(e[4:], s.raw)
		binary.LittleEndian.PutUint64(e[8:], s.addr)
		binary.LittleEndian.PutUint64(e[16:], s.size)
		binary.LittleEndian.PutUint32(e[24:], s.typ)
		binary.LittleEndian.PutUint32(e[28:], s.attr)
	}
	// OVMF GUIDed table: one metadata-offset entry and the footer.
	footerEnd := synthSize - 0x20
	copy(img[footerEnd-16:], tdvf.TableFooterGUID[:])
	binary.LittleEndian.PutUint16(img[footerEnd-18:], 22+18)
	p := footerEnd - 18
	copy(img[p-16:], tdvf.MetadataOffsetGUID[:])
	binary.LittleEndian.PutUint16(img[p-18:], 22)
	binary.LittleEndian.PutUint32(img[p-22:], synthSize-synthDesc)
	f, err := tdvf.Parse(img)
	if err != nil {
		t.Fatalf("synthetic firmware: %v", err)
	}
	return f
}
