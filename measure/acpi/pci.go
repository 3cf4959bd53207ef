package acpi

import (
	"fmt"
	"slices"
)

// PCIBar is a 64-bit memory BAR Capture placed.
type PCIBar struct {
	Dev, Fn, BAR int
	Size, Addr   uint64
}

// String is "00:02.0 BAR4 16 KiB at 0xc000004000".
func (b PCIBar) String() string {
	return fmt.Sprintf("00:%02x.%d BAR%d %#x bytes at %#x", b.Dev, b.Fn, b.BAR, b.Size, b.Addr)
}

const (
	pciCommand      = 0x04
	pciCommandMem   = 0x02
	pciHeaderType   = 0x0e
	pciBAR0         = 0x10
	pciROM          = 0x30
	pciHeaderNormal = 0
)

// assign64BitBARs places the 64-bit memory BARs of the functions on bus 0
// in the window as edk2's PCI bus driver does with OVMF's host bridge
// (memory and prefetchable memory combined, 64-bit BARs above 4 GiB): one
// block allocated bottom-up at the window's base, BARs sorted by
// alignment (size), largest first, ties in enumeration order. It enables
// memory decoding of the functions it programs, which is what makes QEMU
// report the range as the 64-bit PCI hole in the DSDT. PCI bridges and
// 64-bit BARs of functions with an option ROM (which edk2 may degrade to
// 32-bit) are refused rather than guessed.
func assign64BitBARs(q *qtest, w Window) ([]PCIBar, error) {
	type fn struct{ dev, fn uint32 }
	var bars []PCIBar
	var funcs []fn
	for dev := uint32(0); dev < 32; dev++ {
		id, err := q.pciRead32(dev, 0, 0)
		if err != nil {
			return nil, err
		}
		if id&0xffff == 0xffff {
			continue
		}
		ht, err := q.pciRead32(dev, 0, pciHeaderType&^3)
		if err != nil {
			return nil, err
		}
		nfn := uint32(1)
		if ht>>16&0x80 != 0 {
			nfn = 8
		}
		for f := uint32(0); f < nfn; f++ {
			if f > 0 {
				id, err := q.pciRead32(dev, f, 0)
				if err != nil {
					return nil, err
				}
				if id&0xffff == 0xffff {
					continue
				}
			}
			h, err := q.pciRead32(dev, f, pciHeaderType&^3)
			if err != nil {
				return nil, err
			}
			if typ := h >> 16 & 0x7f; typ != pciHeaderNormal {
				return nil, fmt.Errorf("PCI function 00:%02x.%d has header type %d (a bridge): placing the BARs behind bridges as OVMF does is not modelled", dev, f, typ)
			}
			found, err := size64BitBARs(q, dev, f)
			if err != nil {
				return nil, err
			}
			if len(found) > 0 {
				rom, err := probe(q, dev, f, pciROM, 0xfffff800)
				if err != nil {
					return nil, err
				}
				if rom&0xfffff800 != 0 {
					return nil, fmt.Errorf("PCI function 00:%02x.%d has an option ROM and a 64-bit BAR; edk2's resource degradation for option ROMs is not modelled (pass romfile= to the device)", dev, f)
				}
				funcs = append(funcs, fn{dev, f})
			}
			bars = append(bars, found...)
		}
	}
	if len(bars) == 0 {
		return nil, nil
	}
	slices.SortStableFunc(bars, func(a, b PCIBar) int {
		switch {
		case a.Size > b.Size:
			return -1
		case a.Size < b.Size:
			return 1
		}
		return 0
	})
	addr := alignUp(w.Base, bars[0].Size)
	for i := range bars {
		addr = alignUp(addr, bars[i].Size)
		bars[i].Addr = addr
		addr += bars[i].Size
	}
	if addr > w.Base+w.Size {
		return nil, fmt.Errorf("64-bit BARs need %#x bytes; OVMF's window [%#x,+%#x) is too small", addr-w.Base, w.Base, w.Size)
	}
	for _, b := range bars {
		off := uint32(pciBAR0 + 4*b.BAR)
		if err := q.pciWrite32(uint32(b.Dev), uint32(b.Fn), off, uint32(b.Addr)); err != nil {
			return nil, err
		}
		if err := q.pciWrite32(uint32(b.Dev), uint32(b.Fn), off+4, uint32(b.Addr>>32)); err != nil {
			return nil, err
		}
	}
	for _, f := range funcs {
		cmd, err := q.pciRead32(f.dev, f.fn, pciCommand)
		if err != nil {
			return nil, err
		}
		if err := q.pciWrite32(f.dev, f.fn, pciCommand, cmd&0xffff|pciCommandMem); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(bars, func(a, b PCIBar) int { return int(a.Dev*8+a.Fn)*8 + a.BAR - (int(b.Dev*8+b.Fn)*8 + b.BAR) })
	return bars, nil
}

// probe writes v to a configuration register, reads it back and restores
// the original value (BAR sizing).
func probe(q *qtest, dev, fn, off, v uint32) (uint32, error) {
	orig, err := q.pciRead32(dev, fn, off)
	if err != nil {
		return 0, err
	}
	if err := q.pciWrite32(dev, fn, off, v); err != nil {
		return 0, err
	}
	got, err := q.pciRead32(dev, fn, off)
	if err != nil {
		return 0, err
	}
	return got, q.pciWrite32(dev, fn, off, orig)
}

// size64BitBARs sizes a type-0 function's BARs and returns its 64-bit
// memory BARs.
func size64BitBARs(q *qtest, dev, fn uint32) ([]PCIBar, error) {
	var out []PCIBar
	for i := 0; i < 6; i++ {
		off := uint32(pciBAR0 + 4*i)
		lo, err := probe(q, dev, fn, off, 0xffffffff)
		if err != nil {
			return nil, err
		}
		if lo == 0 || lo&1 != 0 || lo>>1&3 != 2 {
			continue // unimplemented, I/O, or 32-bit memory
		}
		if i == 5 {
			return nil, fmt.Errorf("PCI function 00:%02x.%d BAR5 claims to be 64-bit", dev, fn)
		}
		hi, err := probe(q, dev, fn, off+4, 0xffffffff)
		if err != nil {
			return nil, err
		}
		mask := uint64(hi)<<32 | uint64(lo&^0xf)
		size := ^mask + 1
		if mask == 0 || size&(size-1) != 0 {
			return nil, fmt.Errorf("PCI function 00:%02x.%d BAR%d sizes to mask %#x", dev, fn, i, mask)
		}
		out = append(out, PCIBar{Dev: int(dev), Fn: int(fn), BAR: i, Size: size})
		i++
	}
	return out, nil
}
