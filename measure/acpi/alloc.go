package acpi

import (
	"fmt"
	"math/bits"
	"slices"
)

// This file is a model of the memory resource allocation of edk2's PCI
// bus driver (MdeModulePkg/Bus/Pci/PciBusDxe/PciResourceSupport.c,
// edk2-stable202502) with OVMF's host bridge (one root bridge, memory and
// prefetchable memory combined, 64-bit decoding) and OVMF's hot-plug
// padding (OvmfPkg/PciHotPlugInitDxe). It has no I/O side: I/O BARs and
// bridge I/O windows are not placed (no ACPI table QEMU builds for q35
// depends on them).

// BARKind is the resource type of a memory BAR or bridge window, in
// edk2's terms.
type BARKind uint8

// Resource types.
const (
	Mem32 BARKind = iota
	PMem32
	Mem64
	PMem64
)

var barKindNames = [...]string{"32-bit", "32-bit prefetchable", "64-bit", "64-bit prefetchable"}

func (k BARKind) String() string {
	if int(k) < len(barKindNames) {
		return barKindNames[k]
	}
	return fmt.Sprintf("BARKind(%d)", k)
}

// PCIBar is a memory BAR Capture placed.
type PCIBar struct {
	Bus, Dev, Fn, BAR int
	// Kind is what the function reports; Placed the resource type edk2
	// allocated it as (a 64-bit BAR behind a PCI bridge is placed as
	// 32-bit memory when it is not prefetchable).
	Kind, Placed BARKind
	Size, Addr   uint64
}

// String is e.g. "01:00.0 BAR1 64-bit prefetchable 0x2000000000 bytes at 0x4000000000".
func (b PCIBar) String() string {
	return fmt.Sprintf("%02x:%02x.%d BAR%d %s %#x bytes at %#x", b.Bus, b.Dev, b.Fn, b.BAR, b.Kind, b.Size, b.Addr)
}

// Range is an address range; Size 0 is none.
type Range struct {
	Base, Size uint64
}

// PCIBridge is a PCI-to-PCI bridge on bus 0 (e.g. a pcie-root-port) as
// Capture programmed it.
type PCIBridge struct {
	Dev, Fn                int
	Secondary, Subordinate int
	// HotPlug says the bridge has a hot-plug capable slot, for which OVMF
	// pads the windows.
	HotPlug bool
	// Mem is the non-prefetchable window, PMem the prefetchable one
	// (above 4 GiB when PMem64).
	Mem, PMem Range
	PMem64    bool
}

// String is e.g. "00:02.0 bus 1-1 mem [0x...,+0x...) pmem64 [0x...,+0x...)".
func (b PCIBridge) String() string {
	pm := "pmem"
	if b.PMem64 {
		pm = "pmem64"
	}
	return fmt.Sprintf("00:%02x.%d bus %d-%d mem [%#x,+%#x) %s [%#x,+%#x)", b.Dev, b.Fn, b.Secondary, b.Subordinate, b.Mem.Base, b.Mem.Size, pm, b.PMem.Base, b.PMem.Size)
}

// pciFunc is one PCI function as the allocator sees it.
type pciFunc struct {
	bus, dev, fn int
	bars         []barReq
	rom          uint64 // expansion ROM size, 0 for none
	bridge       *bridgeInfo
}

func (f *pciFunc) name() string { return fmt.Sprintf("%02x:%02x.%d", f.bus, f.dev, f.fn) }

type barReq struct {
	index int
	kind  BARKind
	size  uint64
}

type bridgeInfo struct {
	secondary, subordinate int
	// pmem32 and pmem64 are the prefetchable decodes GatherPpbInfo finds.
	pmem32, pmem64 bool
	hotplug        bool
	hint           *reserveHint // QEMU's resource reservation capability
	children       []*pciFunc
}

// reserveHint is QEMU's PCI bridge resource reservation capability
// (QEMU_PCI_BRIDGE_CAPABILITY_RESOURCE_RESERVATION); all-ones fields
// mean "firmware default".
type reserveHint struct {
	bus           uint32
	io            uint64
	mem32, pref32 uint32
	pref64        uint64
}

// resNode is edk2's PCI_RESOURCE_NODE.
type resNode struct {
	fn       *pciFunc
	bar      int // BAR index; -1 for a bridge window node
	kind     BARKind
	length   uint64
	align    uint64 // a mask: size-1
	offset   uint64
	padding  bool
	children []*resNode
}

// insertNode is InsertResourceNode: the list is sorted by descending
// alignment; among equal alignments a node whose length is a multiple of
// its alignment goes before the nodes already there.
func insertNode(parent, n *resNode) {
	i := 0
	for ; i < len(parent.children); i++ {
		t := parent.children[i]
		if n.align > t.align {
			break
		}
		if n.align == t.align {
			nr, tr := n.length&n.align, t.length&t.align
			if nr == 0 || nr >= tr {
				break
			}
		}
	}
	parent.children = slices.Insert(parent.children, i, n)
}

// mergeTree is MergeResourceTree: it moves src's children, head first,
// into dst.
func mergeTree(dst, src *resNode, typeMerge bool) {
	for len(src.children) > 0 {
		n := src.children[0]
		src.children = src.children[1:]
		if typeMerge {
			n.kind = dst.kind
		}
		insertNode(dst, n)
	}
}

// calcAperture is CalculateResourceAperture for memory nodes.
func calcAperture(b *resNode) {
	var typical, padding uint64
	for _, n := range b.children {
		ap := &typical
		if n.padding {
			ap = &padding
		}
		n.offset = alignUp(*ap, n.align+1)
		*ap = n.offset + n.length
	}
	b.length = max(alignUp(typical, b.align+1), alignUp(padding, b.align+1))
	if len(b.children) > 0 && b.children[0].align > b.align {
		b.align = b.children[0].align
	}
}

const bridgeMemAlign = 0xFFFFF // PPB memory windows: 1 MiB granularity

type nodeSet [4]*resNode // indexed by BARKind

func newNodeSet(fn *pciFunc) nodeSet {
	var s nodeSet
	for k := range s {
		s[k] = &resNode{fn: fn, bar: -1, kind: BARKind(k), align: bridgeMemAlign}
	}
	return s
}

// createResourceMap is CreateResourceMap: self is the bridge whose
// children are listed (nil for the root bridge); mmio64Size is OVMF's
// PcdPciMmio64Size, which sizes the default prefetchable padding.
func createResourceMap(self *pciFunc, children []*pciFunc, nodes nodeSet, mmio64Size uint64) error {
	for _, c := range children {
		for _, b := range c.bars {
			insertNode(nodes[b.kind], &resNode{fn: c, bar: b.index, kind: b.kind, length: b.size, align: b.size - 1})
		}
		if c.bridge == nil {
			continue
		}
		if self != nil {
			return fmt.Errorf("PCI bridge %s is behind the bridge %s: nested bridges are not modelled", c.name(), self.name())
		}
		if c.rom != 0 {
			return fmt.Errorf("PCI bridge %s has an expansion ROM: not modelled", c.name())
		}
		sub := newNodeSet(c)
		if err := createResourceMap(c, c.bridge.children, sub, mmio64Size); err != nil {
			return err
		}
		for k := range sub {
			if len(sub[k].children) > 0 {
				insertNode(nodes[k], sub[k])
			}
		}
	}
	if self != nil && self.bridge.hotplug {
		applyPadding(self, nodes, mmio64Size)
	}
	if err := degrade(self, children, nodes); err != nil {
		return err
	}
	for _, k := range []BARKind{Mem32, PMem32, Mem64, PMem64} {
		calcAperture(nodes[k])
	}
	return nil
}

// applyPadding adds the resource padding OVMF's GetResourcePadding asks
// for a hot-plug bridge (ApplyResourcePadding): QEMU's reservation hint
// where it gives one, else 2 MiB of non-prefetchable memory and, when the
// 64-bit aperture is larger than 32 GiB, 1/256 of it (rounded up to a
// power of two) of 64-bit prefetchable memory. I/O padding is not
// modelled (no memory table depends on it).
func applyPadding(b *pciFunc, nodes nodeSet, mmio64Size uint64) {
	defMem, defPref := true, true
	var pads []*resNode // in descriptor order: built backwards, so reversed
	add := func(kind BARKind, size uint64) {
		pads = append([]*resNode{{fn: b, bar: -1, kind: kind, length: size, align: size - 1, padding: true}}, pads...)
	}
	if h := b.bridge.hint; h != nil {
		switch h.mem32 {
		case 0:
			defMem = false
		case ^uint32(0):
		default:
			add(Mem32, roundUpPow2(uint64(h.mem32)))
			defMem = false
		}
		if h.pref32 > 0 && h.pref32 < ^uint32(0) {
			add(PMem32, roundUpPow2(uint64(h.pref32)))
			defPref = false
		} else if h.pref64 > 0 && h.pref64 < ^uint64(0) {
			if p := roundUpPow2(h.pref64); p != 0 {
				add(PMem64, p)
				defPref = false
			}
		}
	}
	if defMem {
		add(Mem32, 2<<20)
	}
	if defPref && mmio64Size > 32*gib {
		add(PMem64, roundUpPow2(mmio64Size>>8))
	}
	for _, p := range pads {
		insertNode(nodes[p.kind], p)
	}
}

// roundUpPow2 is 1<<HighBitSetRoundUp64(v), 0 when that overflows.
func roundUpPow2(v uint64) uint64 {
	if v <= 1 {
		return 1
	}
	n := 64 - bits.LeadingZeros64(v-1)
	if n >= 64 {
		return 0
	}
	return 1 << n
}

// degrade is DegradeResource for a P2P bridge (self) or OVMF's root
// bridge (self nil: 64-bit and prefetchable 32-bit decoding, memory and
// prefetchable memory combined).
func degrade(self *pciFunc, children []*pciFunc, n nodeSet) error {
	// PcdPciDegradeResourceForOptionRom is TRUE on X64: a function with
	// an option ROM gets its 64-bit BARs moved below 4 GiB.
	for _, c := range children {
		if c.rom == 0 {
			continue
		}
		for _, b := range c.bars {
			if b.kind == Mem64 || b.kind == PMem64 {
				return fmt.Errorf("PCI function %s has an option ROM and a 64-bit BAR: edk2 moves such BARs below 4 GiB (PcdPciDegradeResourceForOptionRom), which is not modelled; give the device romfile= (or rombar=0)", c.name())
			}
		}
	}
	if self == nil {
		mergeTree(n[Mem32], n[PMem32], false)
		mergeTree(n[Mem64], n[PMem64], false)
		return nil
	}
	br := self.bridge
	mergeTree(n[Mem32], n[Mem64], true) // P2P bridges have no 64-bit non-prefetchable window
	if !br.pmem64 {
		mergeTree(n[PMem32], n[PMem64], true)
	}
	if len(n[PMem64].children) > 0 {
		mergeTree(n[Mem32], n[PMem32], true)
	}
	if !br.pmem32 {
		mergeTree(n[Mem32], n[PMem32], true)
	}
	return nil
}

// allocation is where the allocator put everything.
type allocation struct {
	bars    []PCIBar
	bridges []PCIBridge
	// mem32 and mem64 are the root bridge's two memory ranges.
	mem32, mem64 Range
}

// allocate places the memory BARs and bridge windows of the functions on
// bus 0 (and behind bridges on bus 0) in OVMF's 32-bit aperture w32 and
// 64-bit aperture w64, as PciBusDxe and PciHostBridgeDxe do: each root
// resource is allocated bottom-up at the first suitably aligned address
// of its aperture.
func allocate(funcs []*pciFunc, w32 Range, w64 Window) (*allocation, error) {
	root := newNodeSet(nil)
	if err := createResourceMap(nil, funcs, root, w64.Size); err != nil {
		return nil, err
	}
	a := &allocation{}
	place := func(n *resNode, w Range, maxBits int, what string) (uint64, error) {
		if n.length == 0 {
			return 0, nil
		}
		al := uint64(1) << min(bits.TrailingZeros64(n.align+1), maxBits)
		base := alignUp(w.Base, al)
		if base+n.length > w.Base+w.Size || base+n.length < base {
			return 0, fmt.Errorf("the %s PCI resources need %#x bytes aligned to %#x; OVMF's aperture [%#x,+%#x) is too small", what, n.length, al, w.Base, w.Size)
		}
		return base, nil
	}
	b32, err := place(root[Mem32], w32, 31, "32-bit")
	if err != nil {
		return nil, err
	}
	b64, err := place(root[Mem64], Range{w64.Base, w64.Size}, 63, "64-bit")
	if err != nil {
		return nil, err
	}
	a.mem32 = Range{b32, root[Mem32].length}
	a.mem64 = Range{b64, root[Mem64].length}
	windows := map[*pciFunc]*PCIBridge{}
	var walk func(n *resNode, base uint64)
	walk = func(n *resNode, base uint64) {
		for _, c := range n.children {
			addr := base + c.offset
			switch {
			case c.padding:
			case c.bar >= 0:
				var kind BARKind
				for _, b := range c.fn.bars {
					if b.index == c.bar {
						kind = b.kind
					}
				}
				a.bars = append(a.bars, PCIBar{Bus: c.fn.bus, Dev: c.fn.dev, Fn: c.fn.fn, BAR: c.bar, Kind: kind, Placed: c.kind, Size: c.length, Addr: addr})
			default:
				walk(c, addr)
				w := windows[c.fn]
				if w == nil {
					br := c.fn.bridge
					w = &PCIBridge{Dev: c.fn.dev, Fn: c.fn.fn, Secondary: br.secondary, Subordinate: br.subordinate, HotPlug: br.hotplug}
					windows[c.fn] = w
				}
				if c.length == 0 {
					break
				}
				switch c.kind {
				case Mem32, Mem64:
					w.Mem = Range{addr, c.length}
				default:
					w.PMem = Range{addr, c.length}
					w.PMem64 = c.kind == PMem64
				}
			}
		}
	}
	walk(root[Mem32], b32)
	walk(root[Mem64], b64)
	for _, f := range funcs {
		if f.bridge == nil {
			continue
		}
		w := windows[f]
		if w == nil {
			w = &PCIBridge{Dev: f.dev, Fn: f.fn, Secondary: f.bridge.secondary, Subordinate: f.bridge.subordinate, HotPlug: f.bridge.hotplug}
		}
		a.bridges = append(a.bridges, *w)
	}
	slices.SortFunc(a.bars, func(x, y PCIBar) int {
		return (x.Bus<<16 | x.Dev<<8 | x.Fn<<4 | x.BAR) - (y.Bus<<16 | y.Dev<<8 | y.Fn<<4 | y.BAR)
	})
	return a, nil
}

// OVMFMmio32Window is OVMF's 32-bit PCI aperture on q35
// (PlatformInitLib): from Uc32Base = 4 GiB minus the largest power of
// two not above (4 GiB - low RAM), up to the PCIEXBAR at 0xE0000000.
func OVMFMmio32Window(e820 []E820Entry) (Range, error) {
	low := uint64(0)
	for _, e := range e820 {
		if e.Type == E820RAM && e.Base < 4*gib {
			low = max(low, min(e.Base+e.Length, 4*gib))
		}
	}
	if low == 0 || low > pciExpressBase {
		return Range{}, fmt.Errorf("acpi: low RAM ends at %#x; OVMF's q35 32-bit PCI aperture needs it in (0, %#x]", low, pciExpressBase)
	}
	uc := uint64(1) << (63 - bits.LeadingZeros64(4*gib-low))
	base := 4*gib - uc
	return Range{Base: base, Size: pciExpressBase - base}, nil
}
