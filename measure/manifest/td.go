package manifest

import (
	"fmt"

	"github.com/chrysalis-cc/chrysalis/measure/shape"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// TDATTRIBUTES bits (TDX module ABI; QEMU target/i386/kvm/tdx.c).
const (
	// TDAttrDebug makes the TD debuggable by the host: its memory and
	// registers are readable. Never allowed in a manifest.
	TDAttrDebug uint64 = 1 << 0
	// TDAttrSEPTVEDisable: EPT violations on pending pages are not
	// reflected to the guest as #VE. QEMU's tdx-guest default
	// (sept-ve-disable=on) and the only attribute upstream KVM supports
	// (KVM_SUPPORTED_TD_ATTRS).
	TDAttrSEPTVEDisable uint64 = 1 << 28
	// TDAttrPKS: supervisor protection keys.
	TDAttrPKS uint64 = 1 << 30
	// TDAttrPerfmon: the TD may use the PMU.
	TDAttrPerfmon uint64 = 1 << 63
)

// XFAM bits: XSAVE feature components (Intel SDM vol. 1 §13.1).
const (
	XFAMX87         uint64 = 1 << 0
	XFAMSSE         uint64 = 1 << 1
	XFAMAVX         uint64 = 1 << 2
	XFAMAVX512K     uint64 = 1 << 5 // opmask
	XFAMAVX512ZMMHi uint64 = 1 << 6 // ZMM_Hi256
	XFAMAVX512Hi16  uint64 = 1 << 7 // Hi16_ZMM
	XFAMPKRU        uint64 = 1 << 9
	XFAMAMXTileCfg  uint64 = 1 << 17
	XFAMAMXTileData uint64 = 1 << 18
)

// Fixed bits go-tdx-guest's validate package (v0.3.1) enforces, which
// follow the TDX module: XFAM bits outside xfamAllowed and TD attributes
// outside tdAttrAllowed cannot be set; x87 and SSE are always set.
const (
	xfamRequired  = XFAMX87 | XFAMSSE
	xfamAllowed   = 0x0006DBE7
	tdAttrAllowed = TDAttrDebug | TDAttrSEPTVEDisable | TDAttrPKS | TDAttrPerfmon
)

// XFAMHostAVX512AMX is the XFAM of a TD launched with `-cpu host` on the
// Xeon generations that run confidential H100/H200 guests (Sapphire,
// Emerald and Granite Rapids): x87, SSE, AVX, AVX-512 (opmask,
// ZMM_Hi256, Hi16_ZMM), PKRU, AMX (TILECFG, TILEDATA) = 0x602e7. QEMU
// sets XFAM from the XSAVE components of the vCPU model, limited to what
// the TDX module allows; nothing else of the launch enters it.
// Components that need opt-in are absent: Intel PT (bit 8), CET (11,
// 12; a host whose KVM and QEMU virtualise CET for TDs adds 0x1800),
// Arch LBR (15). VERIFY against the first quote from each host
// generation: GCE's c3 TDs, which run another VMM, report 0x600e7 (no
// PKRU).
const XFAMHostAVX512AMX = XFAMX87 | XFAMSSE | XFAMAVX | XFAMAVX512K | XFAMAVX512ZMMHi | XFAMAVX512Hi16 | XFAMPKRU | XFAMAMXTileCfg | XFAMAMXTileData

// TDFields are the expected TD quote fields besides the registers: the
// attributes and XFAM the host's TDX stack sets, and the three
// host-chosen 48-byte values.
type TDFields struct {
	// Profile names where the values come from (TDProfileQEMUHost).
	Profile string `json:"profile"`
	// TDAttributes is TDATTRIBUTES in quote byte order.
	TDAttributes Bytes8 `json:"td_attributes"`
	// XFAM is XFAM in quote byte order.
	XFAM Bytes8 `json:"xfam"`
	// MRConfigID, MROwner and MROwnerConfig are set by the host at TD
	// creation (QEMU tdx-guest mrconfigid/mrowner/mrownerconfig); the
	// Chrysalis launcher sets none, so they are zero.
	MRConfigID    tdxmr.Digest `json:"mr_config_id"`
	MROwner       tdxmr.Digest `json:"mr_owner"`
	MROwnerConfig tdxmr.Digest `json:"mr_owner_config"`
}

// TDProfileQEMUHost is the profile of every current shape: QEMU's
// tdx-guest object with its defaults (sept-ve-disable=on, debug off,
// no mrconfigid/mrowner/mrownerconfig; host/qemu passes only the
// quote-generation socket) and `-cpu host` on an AVX-512 + AMX Xeon.
const TDProfileQEMUHost = "qemu-tdx-cpu-host-avx512-amx"

// DefaultTDFields are the TD fields of TDProfileQEMUHost: TDATTRIBUTES =
// SEPT_VE_DISABLE (0x10000000; upstream KVM supports no other attribute,
// so PKS and PERFMON stay clear even with -cpu host's pmu=on), XFAM =
// XFAMHostAVX512AMX, zero config ids.
func DefaultTDFields() TDFields {
	return TDFields{
		Profile:      TDProfileQEMUHost,
		TDAttributes: Bytes8Of(TDAttrSEPTVEDisable),
		XFAM:         Bytes8Of(XFAMHostAVX512AMX),
	}
}

// TDFieldsFor returns the expected TD fields of a shape. Every QEMU
// profile of shapes.json launches with the same tdx-guest options and
// -cpu host, so all shapes get DefaultTDFields; a profile that sets
// other attributes or a config id must be added here.
func TDFieldsFor(s *shape.VMShape) (TDFields, error) {
	if err := s.Validate(); err != nil {
		return TDFields{}, err
	}
	return DefaultTDFields(), nil
}

// Validate rejects a debug TD and bits the TDX module does not allow.
func (t *TDFields) Validate() error {
	if t.Profile == "" {
		return fmt.Errorf("td profile is empty")
	}
	a := t.TDAttributes.Uint64()
	if a&TDAttrDebug != 0 {
		return fmt.Errorf("td_attributes %s has DEBUG (bit 0) set: a debug TD is readable by the host and is never allowed", t.TDAttributes)
	}
	if a&^tdAttrAllowed != 0 {
		return fmt.Errorf("td_attributes %s sets bits %#x the TDX module does not define", t.TDAttributes, a&^tdAttrAllowed)
	}
	x := t.XFAM.Uint64()
	if x&xfamRequired != xfamRequired {
		return fmt.Errorf("xfam %s lacks x87/SSE (bits 0-1), which the TDX module requires", t.XFAM)
	}
	if x&^xfamAllowed != 0 {
		return fmt.Errorf("xfam %s sets bits %#x the TDX module does not allow", t.XFAM, x&^xfamAllowed)
	}
	return nil
}
