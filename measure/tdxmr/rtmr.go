package tdxmr

import (
	"encoding/binary"
	"fmt"

	"github.com/chrysalis-cc/chrysalis/measure/authenticode"
)

// Fixed RTMR1 event strings of edk2's TCG/CC driver (EV_EFI_ACTION data,
// no NUL; research/measure.md §2.5).
const (
	ActionCallingEFIApplication   = "Calling EFI Application from Boot Option"
	ActionExitBootServices        = "Exit Boot Services Invocation"
	ActionExitBootServicesSuccess = "Exit Boot Services Returned with Success"
)

// SeparatorData is the event data (and hashed data) of EV_SEPARATOR.
var SeparatorData = []byte{0, 0, 0, 0}

// Linux EFI stub tagged events (TCG_PCClientTaggedEvent ids,
// drivers/firmware/efi/libstub).
const (
	TagLoadOptions uint32 = 0x8F3B22ED
	TagInitrd      uint32 = 0x8F3B22EC

	tagLoadOptionsText = "LOADED_IMAGE::LoadOptions\x00"
	tagInitrdText      = "Linux initrd\x00"
)

// InitrdOption says where OVMF puts the initrd= option it adds to the
// kernel's LoadOptions when an initrd is loaded.
type InitrdOption int

const (
	// InitrdSuffix: cmdline + " initrd=initrd" (edk2 up to stable202505,
	// e.g. Debian trixie's 2025.02).
	InitrdSuffix InitrdOption = iota + 1
	// InitrdPrefix: "initrd=initrd " + cmdline (edk2 after PR #11115,
	// merged 2025-05).
	InitrdPrefix
)

// String returns the OVMF profile name, "suffix" or "prefix".
func (o InitrdOption) String() string {
	switch o {
	case InitrdSuffix:
		return "suffix"
	case InitrdPrefix:
		return "prefix"
	}
	return fmt.Sprintf("InitrdOption(%d)", int(o))
}

// ParseInitrdOption accepts the OVMF profile names "suffix" and "prefix".
func ParseInitrdOption(s string) (InitrdOption, error) {
	for _, o := range []InitrdOption{InitrdSuffix, InitrdPrefix} {
		if o.String() == s {
			return o, nil
		}
	}
	return 0, fmt.Errorf("tdxmr: unknown initrd option placement %q (want %q or %q)", s, InitrdSuffix, InitrdPrefix)
}

// LoadOptions returns the LoadOptions buffer OVMF's QEMU kernel loader
// gives the kernel image (X86QemuLoadImageLib): the command line with the
// initrd= option when an initrd is loaded, each byte widened to one
// UTF-16LE code unit (no UTF-8 decoding), NUL-terminated. It returns nil
// when the command line is empty and there is no initrd (OVMF then sets
// no LoadOptions and the EFI stub measures nothing).
func LoadOptions(cmdline string, initrd bool, opt InitrdOption) ([]byte, error) {
	s := cmdline
	if initrd {
		switch opt {
		case InitrdSuffix:
			s = cmdline + " initrd=initrd"
		case InitrdPrefix:
			s = "initrd=initrd " + cmdline
		default:
			return nil, fmt.Errorf("tdxmr: unknown initrd option placement %d", int(opt))
		}
	}
	if s == "" {
		return nil, nil
	}
	for i := 0; i < len(cmdline); i++ {
		if cmdline[i] == 0 {
			return nil, fmt.Errorf("tdxmr: cmdline has a NUL byte at %d; QEMU passes it as a C string", i)
		}
	}
	out := make([]byte, 0, 2*len(s)+2)
	for i := 0; i < len(s); i++ {
		out = append(out, s[i], 0)
	}
	return append(out, 0, 0), nil
}

// taggedEventData encodes TCG_PCClientTaggedEvent {u32 id, u32 size, data}.
func taggedEventData(id uint32, text string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, id)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(text)))
	return append(b, text...)
}

// Boot is a direct kernel boot: the release files and what of the VM
// shape and the host's QEMU/OVMF profiles affects RTMR1 and RTMR2.
type Boot struct {
	// Kernel is the bzImage given to -kernel.
	Kernel []byte
	// Initrd is the file given to -initrd; nil for none.
	Initrd []byte
	// Cmdline is the -append string.
	Cmdline string
	// MemorySize is the guest RAM in bytes (-m); it matters for the
	// patched kernel only.
	MemorySize uint64
	// KernelSource follows the QEMU profile (KernelSourceFor).
	KernelSource KernelSource
	// InitrdOption follows the OVMF profile.
	InitrdOption InitrdOption
	// NoReadyToBootSeparator models Canonical's ovmf 2024.02-3+tdx1.0,
	// which logs the ReadyToBoot separator in RTMR0 and none in RTMR1
	// (fixed by edk2 efaf893). False for upstream and Debian OVMF.
	NoReadyToBootSeparator bool
	// ACPIDataSize is the machine's acpi_data_size; 0 means q35's.
	ACPIDataSize uint64
}

func (b Boot) load() KernelLoad {
	return KernelLoad{
		MemorySize:   b.MemorySize,
		Cmdline:      b.Cmdline,
		Initrd:       b.Initrd != nil,
		InitrdSize:   uint64(len(b.Initrd)),
		ACPIDataSize: b.ACPIDataSize,
	}
}

// KernelDigest returns the Authenticode SHA-384 of the kernel as QEMU
// serves it under b.KernelSource, and the header patch applied (nil when
// unpatched).
func KernelDigest(b Boot) (Digest, *HeaderPatch, error) {
	served, patch, err := KernelAsServed(b.Kernel, b.load(), b.KernelSource)
	if err != nil {
		return Digest{}, nil, err
	}
	d, err := authenticode.SHA384(served)
	if err != nil {
		return Digest{}, nil, fmt.Errorf("tdxmr: kernel: %w", err)
	}
	return d, patch, nil
}

func actionEvent(name, text string) Event {
	return Event{
		Register: 1, Type: EvEFIAction, Name: name, Digest: Sum384([]byte(text)), Data: []byte(text),
		Input: InputFirmware, Detail: fmt.Sprintf("SHA-384 of the EV_EFI_ACTION string %q", text),
	}
}

// RTMR1 returns the expected RTMR1 events and value: the kernel image
// load (Authenticode SHA-384 of the kernel as served), the boot-option
// action, the ReadyToBoot separator, and the two ExitBootServices actions.
func RTMR1(b Boot) (*Register, error) {
	d, patch, err := KernelDigest(b)
	if err != nil {
		return nil, err
	}
	detail := "Authenticode SHA-384 of the kernel file as given (QEMU >= 10.2 does not patch a confidential guest's setup header)"
	if patch != nil {
		detail = fmt.Sprintf("Authenticode SHA-384 of the kernel with QEMU's setup-header patch (memory %d bytes, initrd %d bytes, ramdisk_image %#x, %d fields)",
			b.MemorySize, len(b.Initrd), patch.InitrdAddr, len(patch.Fields))
		if b.Initrd == nil {
			detail = fmt.Sprintf("Authenticode SHA-384 of the kernel with QEMU's setup-header patch (memory %d bytes, no initrd, %d fields)", b.MemorySize, len(patch.Fields))
		}
	}
	events := []Event{{
		Register: 1, Type: EvEFIBootServicesApplication, Name: "kernel", Digest: d,
		Input: InputKernel, Detail: detail,
	}, actionEvent("calling-efi-application", ActionCallingEFIApplication)}
	if !b.NoReadyToBootSeparator {
		events = append(events, Event{
			Register: 1, Type: EvSeparator, Name: "separator", Digest: Sum384(SeparatorData), Data: SeparatorData,
			Input: InputFirmware, Detail: "SHA-384 of the 4 zero bytes of the ReadyToBoot separator",
		})
	}
	events = append(events,
		actionEvent("exit-boot-services-invocation", ActionExitBootServices),
		actionEvent("exit-boot-services-returned", ActionExitBootServicesSuccess))
	return newRegister(1, events), nil
}

// RTMR1Candidates returns RTMR1 under both kernel sources (b.KernelSource
// is ignored): QEMU <= 10.1 serves the patched kernel, QEMU >= 10.2 the
// file as given, so a verifier that does not know the host's QEMU can
// accept either by policy.
func RTMR1Candidates(b Boot) (map[KernelSource]*Register, error) {
	out := make(map[KernelSource]*Register, len(KernelSources))
	for _, src := range KernelSources {
		b.KernelSource = src
		r, err := RTMR1(b)
		if err != nil {
			return nil, fmt.Errorf("tdxmr: %s kernel: %w", src, err)
		}
		out[src] = r
	}
	return out, nil
}

// RTMR2 returns the expected RTMR2 events and value, as measured by the
// Linux EFI stub (guest kernel >= 6.9; older kernels leave RTMR2 zero in
// direct boot): the LoadOptions and, when an initrd is given, the initrd.
// A zero-length initrd counts as none (OVMF sees an initrd size of 0).
func RTMR2(b Boot) (*Register, error) {
	hasInitrd := len(b.Initrd) > 0
	opts, err := LoadOptions(b.Cmdline, hasInitrd, b.InitrdOption)
	if err != nil {
		return nil, err
	}
	var events []Event
	if opts != nil {
		placement := "no initrd= option (no initrd)"
		if hasInitrd {
			placement = fmt.Sprintf("initrd= option as %s", b.InitrdOption)
		}
		events = append(events, Event{
			Register: 2, Type: EvEventTag, Name: "load-options", Digest: Sum384(opts),
			Data:  taggedEventData(TagLoadOptions, tagLoadOptionsText),
			Input: InputCmdline,
			Detail: fmt.Sprintf("SHA-384 of the %d-byte LoadOptions: cmdline (%d bytes) widened to UTF-16LE, %s, NUL-terminated",
				len(opts), len(b.Cmdline), placement),
		})
	}
	if hasInitrd {
		events = append(events, Event{
			Register: 2, Type: EvEventTag, Name: "initrd", Digest: Sum384(b.Initrd),
			Data:   taggedEventData(TagInitrd, tagInitrdText),
			Input:  InputInitrd,
			Detail: fmt.Sprintf("SHA-384 of the %d-byte initrd file", len(b.Initrd)),
		})
	}
	return newRegister(2, events), nil
}
