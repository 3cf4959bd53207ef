package tdvf

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"io"
)

// PageOrder is the order in which the host stack issues TDH.MEM.PAGE.ADD
// and TDH.MR.EXTEND for the firmware's pages (research/measure.md §1.3).
type PageOrder int

const (
	// SinglePass: for each page, PAGE.ADD then its 16 MR.EXTENDs.
	// Upstream KVM (KVM_TDX_INIT_MEM_REGION with
	// KVM_TDX_MEASURE_MEMORY_REGION, Linux >= 6.16) with QEMU >= 10.1,
	// QEMU 9.x TDX builds, Ubuntu 25.04; what gce-tcb-verifier computes.
	SinglePass PageOrder = iota + 1
	// TwoPass: for each section, PAGE.ADD every page, then MR.EXTEND
	// every chunk of that section. Intel qemu-tdx "upstream-v5" (8.2.50)
	// and Canonical's Ubuntu 24.04 TDX stack (QEMU 8.2.2+ds-0ubuntu1.x+tdx).
	TwoPass
)

// PageOrders lists the supported orders.
var PageOrders = []PageOrder{SinglePass, TwoPass}

// String returns the name used by VM shape QEMU profiles.
func (o PageOrder) String() string {
	switch o {
	case SinglePass:
		return "single-pass"
	case TwoPass:
		return "two-pass"
	}
	return fmt.Sprintf("PageOrder(%d)", int(o))
}

// ParsePageOrder accepts the QEMU profile names "single-pass" and
// "two-pass".
func ParsePageOrder(s string) (PageOrder, error) {
	for _, o := range PageOrders {
		if o.String() == s {
			return o, nil
		}
	}
	return 0, fmt.Errorf("tdvf: unknown MRTD page order %q (want %q or %q)", s, SinglePass, TwoPass)
}

// MRTD record layout (TDX module spec, quoted in research/measure.md §1.2).
const (
	// recordSize is the size of one extension buffer.
	recordSize = 128
	// ChunkSize is the granule of TDH.MR.EXTEND.
	ChunkSize = 256
	// chunksPerPage is the number of MR.EXTEND chunks in a page.
	chunksPerPage = PageSize / ChunkSize
)

var (
	pageAddTag  = []byte("MEM.PAGE.ADD")
	mrExtendTag = []byte("MR.EXTEND")
)

// mrtdWriter emits MRTD records into a hash.
type mrtdWriter struct {
	w    io.Writer
	rec  [recordSize]byte
	zero [ChunkSize]byte
}

// pageAdd writes the TDH.MEM.PAGE.ADD record: bytes 0..11 "MEM.PAGE.ADD",
// bytes 16..23 the GPA little-endian, the rest zero.
func (m *mrtdWriter) pageAdd(gpa uint64) {
	m.rec = [recordSize]byte{}
	copy(m.rec[:], pageAddTag)
	binary.LittleEndian.PutUint64(m.rec[16:], gpa)
	m.w.Write(m.rec[:])
}

// mrExtend writes the TDH.MR.EXTEND record: bytes 0..8 "MR.EXTEND",
// bytes 16..23 the chunk's GPA, the rest zero; then the 256 chunk bytes
// (the second and third 128-byte buffers).
func (m *mrtdWriter) mrExtend(gpa uint64, chunk []byte) {
	m.rec = [recordSize]byte{}
	copy(m.rec[:], mrExtendTag)
	binary.LittleEndian.PutUint64(m.rec[16:], gpa)
	m.w.Write(m.rec[:])
	m.w.Write(chunk)
}

// chunk returns the 256 bytes the VMM copies to gpa offset off of s: the
// image bytes for BFV/CFV, zeros for TEMP_MEM. (Parse guarantees that a
// section's RawDataSize is either 0 or its page-aligned MemoryDataSize,
// so no chunk is partly image bytes.)
func (f *Firmware) chunk(s Section, off uint64, zero []byte) []byte {
	if off+ChunkSize <= uint64(s.RawDataSize) {
		start := uint64(s.DataOffset) + off
		return f.image[start : start+ChunkSize]
	}
	return zero
}

func (f *Firmware) extendPage(m *mrtdWriter, s Section, page uint64) {
	for c := uint64(0); c < chunksPerPage; c++ {
		off := page*PageSize + c*ChunkSize
		m.mrExtend(s.MemoryAddress+off, f.chunk(s, off, m.zero[:]))
	}
}

// WriteMeasurement writes the exact byte stream that the TDX module hashes
// into MRTD for this firmware under order: the records of every section
// in descriptor order. MRTD is the SHA-384 of this stream.
func (f *Firmware) WriteMeasurement(w io.Writer, order PageOrder) error {
	if order != SinglePass && order != TwoPass {
		return fmt.Errorf("tdvf: unknown MRTD page order %d", int(order))
	}
	m := &mrtdWriter{w: w}
	for _, s := range f.Sections {
		pages := s.Pages()
		extend := s.ExtendsMR()
		switch order {
		case SinglePass:
			for p := uint64(0); p < pages; p++ {
				m.pageAdd(s.MemoryAddress + p*PageSize)
				if extend {
					f.extendPage(m, s, p)
				}
			}
		case TwoPass:
			for p := uint64(0); p < pages; p++ {
				m.pageAdd(s.MemoryAddress + p*PageSize)
			}
			if extend {
				for p := uint64(0); p < pages; p++ {
					f.extendPage(m, s, p)
				}
			}
		}
	}
	return nil
}

// MRTD returns the build-time measurement of a TD launched with this
// firmware by a host stack that adds pages in order.
func (f *Firmware) MRTD(order PageOrder) ([48]byte, error) {
	var out [48]byte
	h := sha512.New384()
	if err := f.WriteMeasurement(h, order); err != nil {
		return out, err
	}
	h.Sum(out[:0])
	return out, nil
}

// MRTDs returns MRTD under every supported page order.
func (f *Firmware) MRTDs() map[PageOrder][48]byte {
	out := make(map[PageOrder][48]byte, len(PageOrders))
	for _, o := range PageOrders {
		out[o], _ = f.MRTD(o)
	}
	return out
}
