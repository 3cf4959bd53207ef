package tdxmr

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/chrysalis-cc/chrysalis/measure/tdvf"
)

// RAMEntry is one entry of the RAM list QEMU's TDX code builds from the
// e820 RAM entries and the TDVF sections it page-adds (target/i386/kvm/
// tdx.c, tdx_init_ram_entries and tdx_accept_ram_range): one resource
// descriptor HOB each.
type RAMEntry struct {
	Address, Length uint64
	// Accepted marks a TD_HOB or TEMP_MEM section QEMU added as private
	// memory (EFI_RESOURCE_SYSTEM_MEMORY); the rest is unaccepted
	// (EFI_RESOURCE_MEMORY_UNACCEPTED).
	Accepted bool
}

// TDHOB is the hand-off block QEMU writes into the TD_HOB section
// (hw/i386/tdvf-hob.c): a PHIT HOB, one resource descriptor HOB per RAM
// entry, an end-of-list HOB.
type TDHOB struct {
	// Address is the TD_HOB section's guest-physical address.
	Address uint64
	// RAM lists the resource descriptors in HOB order (by address).
	RAM []RAMEntry
	// Bytes is the whole HOB list as QEMU writes it.
	Bytes []byte
}

// HOB layout (edk2 MdePkg/Include/Pi/PiHob.h).
const (
	hobTypeHandoff       = 0x0001
	hobTypeResource      = 0x0003
	hobTypeEnd           = 0xFFFF
	hobHandoffVersion    = 0x0009
	phitSize             = 56
	resourceHOBSize      = 48
	endHOBSize           = 8
	resourceSystemMemory = 0x0
	resourceUnaccepted   = 0x7
	// resourceAttributes is PRESENT|INITIALIZED|TESTED, QEMU's
	// EFI_RESOURCE_ATTRIBUTE_TDVF_PRIVATE and _UNACCEPTED alike.
	resourceAttributes = 0x7
	fourGiB            = 1 << 32
)

// Measured returns the bytes OVMF's SEC hashes into RTMR0
// (TdxHelperMeasureTdHob): the HOB list up to, excluding, the
// end-of-list HOB.
func (h *TDHOB) Measured() []byte { return h.Bytes[:len(h.Bytes)-endHOBSize] }

// Q35RAM returns the e820 RAM entries QEMU's q35 machine has for memory
// bytes of RAM: all of it below 4 GiB when it is less than 2.75 GiB, else
// 2 GiB below 4 GiB and the rest from 4 GiB on (pc_q35.c).
func Q35RAM(memory uint64) []RAMEntry {
	below := BelowFourG(memory)
	ram := []RAMEntry{{Address: 0, Length: below}}
	if memory > below {
		ram = append(ram, RAMEntry{Address: fourGiB, Length: memory - below})
	}
	return ram
}

// BuildTDHOB builds the TD HOB QEMU writes for a q35 TD with memory bytes
// of RAM and the firmware's TDVF sections (in descriptor order): the RAM
// entries, split at every TD_HOB and TEMP_MEM section that lies inside
// one (QEMU ignores sections outside RAM), sorted by address.
func BuildTDHOB(sections []tdvf.Section, memory uint64) (*TDHOB, error) {
	var hob *tdvf.Section
	for i := range sections {
		if sections[i].Type == tdvf.SectionTDHOB {
			if hob != nil {
				return nil, fmt.Errorf("tdxmr: TD HOB: firmware has two TD_HOB sections (%d and %d)", hob.Index, sections[i].Index)
			}
			hob = &sections[i]
		}
	}
	if hob == nil {
		return nil, fmt.Errorf("tdxmr: TD HOB: firmware has no TD_HOB section")
	}
	if memory == 0 {
		return nil, fmt.Errorf("tdxmr: TD HOB: guest memory size is 0")
	}
	ram := Q35RAM(memory)
	for _, s := range sections {
		if s.Type == tdvf.SectionTDHOB || s.Type == tdvf.SectionTempMem {
			ram = acceptRAM(ram, s.MemoryAddress, s.MemoryDataSize)
		}
	}
	slices.SortFunc(ram, func(a, b RAMEntry) int {
		switch {
		case a.Address < b.Address:
			return -1
		case a.Address > b.Address:
			return 1
		}
		return 0
	})
	n := len(ram)
	size := uint64(phitSize + resourceHOBSize*n + endHOBSize)
	if size > hob.MemoryDataSize {
		return nil, fmt.Errorf("tdxmr: TD HOB: %d resource descriptors need %d bytes, more than the %d-byte TD_HOB section (QEMU exits with \"TD_HOB overrun\")", n, size, hob.MemoryDataSize)
	}
	b := make([]byte, 0, size)
	// PHIT: header, version, boot mode, 4 memory bounds left zero, the
	// address just past the end-of-list HOB.
	b = hobHeader(b, hobTypeHandoff, phitSize)
	b = binary.LittleEndian.AppendUint32(b, hobHandoffVersion)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = append(b, make([]byte, 32)...)
	b = binary.LittleEndian.AppendUint64(b, hob.MemoryAddress+size)
	for _, e := range ram {
		b = hobHeader(b, hobTypeResource, resourceHOBSize)
		b = append(b, make([]byte, 16)...) // owner GUID
		typ := uint32(resourceUnaccepted)
		if e.Accepted {
			typ = resourceSystemMemory
		}
		b = binary.LittleEndian.AppendUint32(b, typ)
		b = binary.LittleEndian.AppendUint32(b, resourceAttributes)
		b = binary.LittleEndian.AppendUint64(b, e.Address)
		b = binary.LittleEndian.AppendUint64(b, e.Length)
	}
	b = hobHeader(b, hobTypeEnd, endHOBSize)
	return &TDHOB{Address: hob.MemoryAddress, RAM: ram, Bytes: b}, nil
}

func hobHeader(b []byte, typ, length uint16) []byte {
	b = binary.LittleEndian.AppendUint16(b, typ)
	b = binary.LittleEndian.AppendUint16(b, length)
	return binary.LittleEndian.AppendUint32(b, 0)
}

// acceptRAM is tdx_accept_ram_range: the first entry overlapping
// [addr,+length) becomes the accepted range if it contains it and is not
// accepted yet, with the rest of it appended as unaccepted head and tail
// entries; otherwise nothing changes (QEMU ignores the error).
func acceptRAM(ram []RAMEntry, addr, length uint64) []RAMEntry {
	for i, e := range ram {
		if addr+length <= e.Address || e.Address+e.Length <= addr {
			continue
		}
		if e.Address > addr || e.Address+e.Length < addr+length || e.Accepted {
			return ram
		}
		ram[i] = RAMEntry{Address: addr, Length: length, Accepted: true}
		if addr > e.Address {
			ram = append(ram, RAMEntry{Address: e.Address, Length: addr - e.Address})
		}
		if end := addr + length; end < e.Address+e.Length {
			ram = append(ram, RAMEntry{Address: end, Length: e.Address + e.Length - end})
		}
		return ram
	}
	return ram
}
