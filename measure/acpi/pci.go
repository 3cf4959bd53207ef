package acpi

import (
	"fmt"
)

const (
	pciVendorID      = 0x00
	pciCommand       = 0x04
	pciCommandMem    = 0x02
	pciStatusCapList = 0x10 // in the status word (bits 16-31 of dword 0x04)
	pciHeaderType    = 0x0e
	pciBAR0          = 0x10
	pciROM           = 0x30
	pciBridgeROM     = 0x38
	pciCapPtr        = 0x34
	pciHeaderNormal  = 0
	pciHeaderBridge  = 1

	ppbBusNumbers = 0x18
	ppbMemBase    = 0x20
	ppbPMemBase   = 0x24
	ppbPMemBaseHi = 0x28
	ppbPMemLimHi  = 0x2c

	capPCIe   = 0x10
	capVendor = 0x09
	capSHPC   = 0x0c

	vendorRedHat         = 0x1b36
	qemuReserveCapLen    = 32
	qemuReserveCapType   = 1
	pcieTypeRootPort     = 4
	pcieTypeDownstream   = 6
	pcieFlagSlot         = 1 << 8
	pcieSlotCapHotPlug   = 1 << 6
	pcieSlotCapRegOffset = 0x14
)

// programPCI enumerates bus 0 and the buses behind its bridges as edk2's
// PciBusDxe does (secondary bus numbers assigned depth-first), sizes the
// memory BARs, places them and the bridge windows with allocate, and
// programs the result into QEMU with memory decoding enabled: what OVMF
// has done when its ACPI driver makes QEMU build the tables (OVMF's
// AcpiPlatformDxe enables decoding on every PCI function first).
func programPCI(q *qtest, w32 Range, w64 Window) (*allocation, error) {
	nextBus := 0
	funcs, err := scanBus(q, 0, &nextBus)
	if err != nil {
		return nil, err
	}
	a, err := allocate(funcs, w32, w64)
	if err != nil {
		return nil, err
	}
	enable := map[[3]int]bool{}
	for _, b := range a.bars {
		off := uint32(pciBAR0 + 4*b.BAR)
		if err := q.pciWrite32b(b.Bus, b.Dev, b.Fn, off, uint32(b.Addr)); err != nil {
			return nil, err
		}
		if b.Kind == Mem64 || b.Kind == PMem64 {
			if err := q.pciWrite32b(b.Bus, b.Dev, b.Fn, off+4, uint32(b.Addr>>32)); err != nil {
				return nil, err
			}
		}
		enable[[3]int{b.Bus, b.Dev, b.Fn}] = true
	}
	for _, br := range a.bridges {
		// A window that is absent is left closed (base above limit).
		mem := uint32(0x0000fff0)
		if br.Mem.Size != 0 {
			mem = uint32(br.Mem.Base>>16) | uint32((br.Mem.Base+br.Mem.Size-1)>>16)<<16
		}
		pmem, hi, hiLim := uint32(0x0000fff0), uint32(0), uint32(0)
		if br.PMem.Size != 0 {
			end := br.PMem.Base + br.PMem.Size - 1
			pmem = uint32(br.PMem.Base>>16)&0xffff | uint32(end>>16)<<16
			hi, hiLim = uint32(br.PMem.Base>>32), uint32(end>>32)
		}
		for _, r := range []struct{ off, v uint32 }{
			{ppbMemBase, mem}, {ppbPMemBase, pmem}, {ppbPMemBaseHi, hi}, {ppbPMemLimHi, hiLim},
		} {
			if err := q.pciWrite32(uint32(br.Dev), uint32(br.Fn), r.off, r.v); err != nil {
				return nil, err
			}
		}
		if br.Mem.Size != 0 || br.PMem.Size != 0 {
			enable[[3]int{0, br.Dev, br.Fn}] = true
		}
	}
	for f := range enable {
		cmd, err := q.pciRead32b(f[0], f[1], f[2], pciCommand)
		if err != nil {
			return nil, err
		}
		if err := q.pciWrite32b(f[0], f[1], f[2], pciCommand, cmd&0xffff|pciCommandMem); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// scanBus lists the functions of a bus; for a bridge on it, it assigns
// the next bus number, programs it and scans behind it.
func scanBus(q *qtest, bus int, nextBus *int) ([]*pciFunc, error) {
	var out []*pciFunc
	for dev := 0; dev < 32; dev++ {
		id, err := q.pciRead32b(bus, dev, 0, pciVendorID)
		if err != nil {
			return nil, err
		}
		if id&0xffff == 0xffff {
			continue
		}
		ht, err := q.pciRead32b(bus, dev, 0, pciHeaderType&^3)
		if err != nil {
			return nil, err
		}
		nfn := 1
		if ht>>16&0x80 != 0 {
			nfn = 8
		}
		for fn := 0; fn < nfn; fn++ {
			id, err := q.pciRead32b(bus, dev, fn, pciVendorID)
			if err != nil {
				return nil, err
			}
			if id&0xffff == 0xffff {
				continue
			}
			f, err := probeFunc(q, bus, dev, fn, id)
			if err != nil {
				return nil, err
			}
			if f.bridge != nil {
				if bus != 0 {
					return nil, fmt.Errorf("PCI bridge %s is behind another bridge: nested bridges are not modelled", f.name())
				}
				*nextBus++
				f.bridge.secondary = *nextBus
				f.bridge.subordinate = *nextBus
				if h := f.bridge.hint; f.bridge.hotplug && h != nil && h.bus != 0 && h.bus != ^uint32(0) {
					return nil, fmt.Errorf("PCI bridge %s reserves %d bus numbers (bus-reserve): not modelled", f.name(), h.bus)
				}
				reg, err := q.pciRead32b(bus, dev, fn, ppbBusNumbers)
				if err != nil {
					return nil, err
				}
				v := reg&0xff000000 | uint32(f.bridge.subordinate)<<16 | uint32(f.bridge.secondary)<<8 | uint32(bus)
				if err := q.pciWrite32b(bus, dev, fn, ppbBusNumbers, v); err != nil {
					return nil, err
				}
				if f.bridge.children, err = scanBus(q, f.bridge.secondary, nextBus); err != nil {
					return nil, err
				}
			}
			out = append(out, f)
		}
	}
	return out, nil
}

// probeFunc sizes a function's memory BARs and expansion ROM and, for a
// bridge, its prefetchable decoding, hot-plug slot and QEMU's resource
// reservation hint.
func probeFunc(q *qtest, bus, dev, fn int, id uint32) (*pciFunc, error) {
	f := &pciFunc{bus: bus, dev: dev, fn: fn}
	h, err := q.pciRead32b(bus, dev, fn, pciHeaderType&^3)
	if err != nil {
		return nil, err
	}
	nbars, rom := 6, uint32(pciROM)
	switch typ := h >> 16 & 0x7f; typ {
	case pciHeaderNormal:
	case pciHeaderBridge:
		nbars, rom = 2, pciBridgeROM
		f.bridge = &bridgeInfo{}
	default:
		return nil, fmt.Errorf("PCI function %s has header type %d (a CardBus bridge?): not modelled", f.name(), typ)
	}
	for i := 0; i < nbars; i++ {
		off := uint32(pciBAR0 + 4*i)
		lo, err := probe(q, bus, dev, fn, off, 0xffffffff)
		if err != nil {
			return nil, err
		}
		if lo == 0 || lo&1 != 0 {
			continue // unimplemented or I/O
		}
		switch lo >> 1 & 3 {
		case 0:
			size := uint64(^(lo &^ 0xf) + 1)
			if lo&^0xf == 0 || size&(size-1) != 0 {
				return nil, fmt.Errorf("PCI function %s BAR%d sizes to mask %#x", f.name(), i, lo)
			}
			kind := Mem32
			if lo&8 != 0 {
				kind = PMem32
			}
			f.bars = append(f.bars, barReq{i, kind, size})
		case 2:
			if i == nbars-1 {
				return nil, fmt.Errorf("PCI function %s BAR%d claims to be 64-bit", f.name(), i)
			}
			hi, err := probe(q, bus, dev, fn, off+4, 0xffffffff)
			if err != nil {
				return nil, err
			}
			mask := uint64(hi)<<32 | uint64(lo&^0xf)
			size := ^mask + 1
			if mask == 0 || size&(size-1) != 0 {
				return nil, fmt.Errorf("PCI function %s BAR%d sizes to mask %#x", f.name(), i, mask)
			}
			kind := Mem64
			if lo&8 != 0 {
				kind = PMem64
			}
			f.bars = append(f.bars, barReq{i, kind, size})
			i++
		default:
			return nil, fmt.Errorf("PCI function %s BAR%d has the reserved memory type %d", f.name(), i, lo>>1&3)
		}
	}
	r, err := probe(q, bus, dev, fn, rom, 0xfffff800)
	if err != nil {
		return nil, err
	}
	if m := r & 0xfffff800; m != 0 {
		f.rom = uint64(^m + 1)
	}
	if f.bridge != nil {
		if err := probeBridge(q, f, id); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func probeBridge(q *qtest, f *pciFunc, id uint32) error {
	bus, dev, fn := f.bus, f.dev, f.fn
	pm, err := probe(q, bus, dev, fn, ppbPMemBase, 0xffffffff)
	if err != nil {
		return err
	}
	if pm != 0 && pm&0xf == 1 && pm>>16&0xf == 1 {
		hi, err := probe(q, bus, dev, fn, ppbPMemBaseHi, 0xffffffff)
		if err != nil {
			return err
		}
		f.bridge.pmem32, f.bridge.pmem64 = true, hi != 0
	}
	// Capabilities: the PCIe slot (hot-plug capable), SHPC, QEMU's
	// resource reservation (Red Hat vendor ID only, as OVMF checks).
	st, err := q.pciRead32b(bus, dev, fn, pciCommand)
	if err != nil {
		return err
	}
	if st>>16&pciStatusCapList == 0 {
		return nil
	}
	p, err := q.pciRead32b(bus, dev, fn, pciCapPtr)
	if err != nil {
		return err
	}
	ptr := p & 0xfc
	for n := 0; ptr != 0 && n < 48; n++ {
		hdr, err := q.pciRead32b(bus, dev, fn, ptr)
		if err != nil {
			return err
		}
		switch hdr & 0xff {
		case capSHPC:
			f.bridge.hotplug = true
		case capPCIe:
			flags := hdr >> 16
			if t := flags >> 4 & 0xf; (t == pcieTypeRootPort || t == pcieTypeDownstream) && flags&pcieFlagSlot != 0 {
				sc, err := q.pciRead32b(bus, dev, fn, ptr+pcieSlotCapRegOffset)
				if err != nil {
					return err
				}
				if sc&pcieSlotCapHotPlug != 0 {
					f.bridge.hotplug = true
				}
			}
		case capVendor:
			if id&0xffff != vendorRedHat || hdr>>16&0xff != qemuReserveCapLen || hdr>>24 != qemuReserveCapType || f.bridge.hint != nil {
				break
			}
			var w [8]uint32
			for i := range w {
				if w[i], err = q.pciRead32b(bus, dev, fn, ptr+uint32(4*i)); err != nil {
					return err
				}
			}
			f.bridge.hint = &reserveHint{
				bus: w[1], io: uint64(w[2]) | uint64(w[3])<<32,
				mem32: w[4], pref32: w[5], pref64: uint64(w[6]) | uint64(w[7])<<32,
			}
		}
		ptr = hdr >> 8 & 0xfc
	}
	return nil
}

// probe writes v to a configuration register, reads it back and restores
// the original value (BAR sizing).
func probe(q *qtest, bus, dev, fn int, off, v uint32) (uint32, error) {
	orig, err := q.pciRead32b(bus, dev, fn, off)
	if err != nil {
		return 0, err
	}
	if err := q.pciWrite32b(bus, dev, fn, off, v); err != nil {
		return 0, err
	}
	got, err := q.pciRead32b(bus, dev, fn, off)
	if err != nil {
		return 0, err
	}
	return got, q.pciWrite32b(bus, dev, fn, off, orig)
}
