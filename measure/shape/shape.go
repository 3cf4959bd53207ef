package shape

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

// DiskKind is the role of one virtio-blk disk slot.
type DiskKind string

// The disk kinds a shape may declare.
const (
	// DiskConfig is the FAT config disk carrying guest.ConfigFileName.
	DiskConfig DiskKind = "config"
	// DiskModel is the read-only model archive (dm-verity data device).
	DiskModel DiskKind = "model"
	// DiskModelVerity is the dm-verity hash tree of the model disk.
	DiskModelVerity DiskKind = "model-verity"
	// DiskPersistent is the writable per-worker state disk.
	DiskPersistent DiskKind = "persistent"
)

// DiskKinds lists every known kind.
var DiskKinds = []DiskKind{DiskConfig, DiskModel, DiskModelVerity, DiskPersistent}

// MaxSerialLen is the length of the virtio-blk serial field
// (VIRTIO_BLK_ID_BYTES); longer serials are silently truncated by QEMU.
const MaxSerialLen = 20

// Serial is the virtio-blk serial the guest finds the disk by
// (/dev/disk/by-id/virtio-<serial>). It is at most MaxSerialLen bytes.
func (k DiskKind) Serial() string {
	switch k {
	case DiskConfig:
		return guest.ConfigDiskSerial
	case DiskModel:
		return "chrysalis-model"
	case DiskModelVerity:
		return "chrysalis-verity"
	case DiskPersistent:
		return guest.PersistentDiskSerial
	}
	return ""
}

// ReadOnly reports whether the disk is attached read-only.
func (k DiskKind) ReadOnly() bool { return k != DiskPersistent }

// Known reports whether k is one of DiskKinds.
func (k DiskKind) Known() bool { return slices.Contains(DiskKinds, k) }

// DiskSlot is one disk in the shape's ordered disk list. The image that
// fills the slot is chosen at launch time; the slot (its kind and place in
// the order) is part of the shape because it changes the PCI topology.
type DiskSlot struct {
	Kind DiskKind `json:"kind"`
}

// MRTD page-add orders (measure.md §1.3).
const (
	MRTDSinglePass = "single-pass"
	MRTDTwoPass    = "two-pass"
)

// Memory backends of a QEMU profile.
const (
	// MemoryBackendRAM adds -object memory-backend-ram and
	// -machine memory-backend=mem0 (upstream QEMU >= 10.1, as COCOON does).
	MemoryBackendRAM = "memory-backend-ram"
	// MemoryBackendNone uses plain -m (Canonical's QEMU 8.2 TDX stack).
	MemoryBackendNone = "none"
)

// QEMUProfile is what the host's QEMU build does that changes the TD's
// measurements or its command line.
type QEMUProfile struct {
	// Name identifies the profile, e.g. "qemu-10.1".
	Name string `json:"name"`
	// QEMUVersion is the QEMU release the profile describes, e.g. "10.1".
	QEMUVersion string `json:"qemu_version"`
	// MRTDPageOrder is MRTDSinglePass or MRTDTwoPass.
	MRTDPageOrder string `json:"mrtd_page_order"`
	// PatchesKernelHeader reports whether QEMU rewrites bzImage setup
	// header bytes for a TD (QEMU <= 10.1 does; 10.2 does not), which
	// changes the kernel's RTMR1 digest.
	PatchesKernelHeader bool `json:"patches_kernel_header"`
	// MemoryBackend is MemoryBackendRAM or MemoryBackendNone.
	MemoryBackend string `json:"memory_backend"`
	// IOMMUFD attaches vfio-pci GPUs through an iommufd object instead of
	// the legacy VFIO container.
	IOMMUFD bool `json:"iommufd"`
}

// OVMF event layouts (measure.md §2.1, §2.4).
const (
	// OVMFLayoutPre202505 is edk2 <= stable202502: no fw_cfg or SMBIOS
	// events in RTMR0.
	OVMFLayoutPre202505 = "pre-202505"
	// OVMFLayout202505 is edk2 >= stable202505: extra fw_cfg, SMBIOS and
	// Boot0001 events in RTMR0.
	OVMFLayout202505 = "202505+"
)

// Where OVMF puts " initrd=initrd" in the kernel LoadOptions (RTMR2).
const (
	InitrdSuffix = "suffix" // cmdline + " initrd=initrd"
	InitrdPrefix = "prefix" // "initrd=initrd " + cmdline
)

// OVMFProfile is what the firmware build does that changes RTMR0-2.
type OVMFProfile struct {
	// Name identifies the profile, e.g. "edk2-2025.02".
	Name string `json:"name"`
	// EventLayout is OVMFLayoutPre202505 or OVMFLayout202505.
	EventLayout string `json:"event_layout"`
	// InitrdOption is InitrdSuffix or InitrdPrefix.
	InitrdOption string `json:"initrd_option"`
}

// VMShape is the declared shape of a guest VM: everything about the launch
// that changes MRTD or RTMR0-2 apart from the release files. The same value
// drives the measurement precompute and the QEMU command line, so the two
// cannot disagree. Host-specific values (GPU PCI addresses, disk image
// paths, ports) are launch parameters, not part of the shape.
type VMShape struct {
	// Name is the shape's name, e.g. "h100-1g-32c-100g".
	Name string `json:"name"`
	// VCPUs is the vCPU count (-smp).
	VCPUs int `json:"vcpus"`
	// MemoryMiB is the guest RAM in MiB (-m).
	MemoryMiB int `json:"memory_mib"`
	// GPUs is the number of passed-through GPUs.
	GPUs int `json:"gpus"`
	// NICs is the number of virtio-net NICs; the first carries the API.
	NICs int `json:"nics"`
	// Disks are the virtio-blk disks in attach order.
	Disks []DiskSlot `json:"disks"`
	// QEMU is the host QEMU profile.
	QEMU QEMUProfile `json:"qemu"`
	// OVMF is the firmware profile.
	OVMF OVMFProfile `json:"ovmf"`
}

// Limits enforced by Validate.
const (
	MaxVCPUs     = 512
	MinMemoryMiB = 256
	MaxMemoryMiB = 4 << 20 // 4 TiB
	MaxGPUs      = 8
	MaxNICs      = 4
	MaxDisks     = 8
)

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9.+_-]{0,63}$`)
	versionRE = regexp.MustCompile(`^[0-9]{1,3}\.[0-9]{1,3}(\.[0-9]{1,3})?$`)
)

// Validate checks the profile and names the first bad field.
func (p *QEMUProfile) Validate() error {
	if !nameRE.MatchString(p.Name) {
		return fmt.Errorf("qemu profile: name %q must be 1-64 of [a-z0-9.+_-], starting with a letter or digit", p.Name)
	}
	if !versionRE.MatchString(p.QEMUVersion) {
		return fmt.Errorf("qemu profile %q: qemu_version %q must look like 10.1 or 8.2.2", p.Name, p.QEMUVersion)
	}
	switch p.MRTDPageOrder {
	case MRTDSinglePass, MRTDTwoPass:
	default:
		return fmt.Errorf("qemu profile %q: mrtd_page_order %q must be %q or %q", p.Name, p.MRTDPageOrder, MRTDSinglePass, MRTDTwoPass)
	}
	switch p.MemoryBackend {
	case MemoryBackendRAM, MemoryBackendNone:
	default:
		return fmt.Errorf("qemu profile %q: memory_backend %q must be %q or %q", p.Name, p.MemoryBackend, MemoryBackendRAM, MemoryBackendNone)
	}
	return nil
}

// Validate checks the profile and names the first bad field.
func (p *OVMFProfile) Validate() error {
	if !nameRE.MatchString(p.Name) {
		return fmt.Errorf("ovmf profile: name %q must be 1-64 of [a-z0-9.+_-], starting with a letter or digit", p.Name)
	}
	switch p.EventLayout {
	case OVMFLayoutPre202505, OVMFLayout202505:
	default:
		return fmt.Errorf("ovmf profile %q: event_layout %q must be %q or %q", p.Name, p.EventLayout, OVMFLayoutPre202505, OVMFLayout202505)
	}
	switch p.InitrdOption {
	case InitrdSuffix, InitrdPrefix:
	default:
		return fmt.Errorf("ovmf profile %q: initrd_option %q must be %q or %q", p.Name, p.InitrdOption, InitrdSuffix, InitrdPrefix)
	}
	return nil
}

// Validate checks every field of the shape and names the first bad one.
func (s *VMShape) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("shape: name %q must be 1-64 of [a-z0-9.+_-], starting with a letter or digit", s.Name)
	}
	if s.VCPUs < 1 || s.VCPUs > MaxVCPUs {
		return fmt.Errorf("shape %q: vcpus %d is out of range 1..%d", s.Name, s.VCPUs, MaxVCPUs)
	}
	if s.MemoryMiB < MinMemoryMiB || s.MemoryMiB > MaxMemoryMiB {
		return fmt.Errorf("shape %q: memory_mib %d is out of range %d..%d", s.Name, s.MemoryMiB, MinMemoryMiB, MaxMemoryMiB)
	}
	if s.MemoryMiB%2 != 0 {
		return fmt.Errorf("shape %q: memory_mib %d must be a multiple of 2 (2 MiB pages)", s.Name, s.MemoryMiB)
	}
	if s.GPUs < 0 || s.GPUs > MaxGPUs {
		return fmt.Errorf("shape %q: gpus %d is out of range 0..%d", s.Name, s.GPUs, MaxGPUs)
	}
	if s.NICs < 1 || s.NICs > MaxNICs {
		return fmt.Errorf("shape %q: nics %d is out of range 1..%d (the first NIC carries the API)", s.Name, s.NICs, MaxNICs)
	}
	if err := validateDisks(s.Name, s.Disks); err != nil {
		return err
	}
	if err := s.QEMU.Validate(); err != nil {
		return fmt.Errorf("shape %q: %w", s.Name, err)
	}
	if err := s.OVMF.Validate(); err != nil {
		return fmt.Errorf("shape %q: %w", s.Name, err)
	}
	return nil
}

func validateDisks(name string, disks []DiskSlot) error {
	if len(disks) == 0 || len(disks) > MaxDisks {
		return fmt.Errorf("shape %q: disks has %d slots, want 1..%d starting with %q", name, len(disks), MaxDisks, DiskConfig)
	}
	seen := map[DiskKind]int{}
	for i, d := range disks {
		if !d.Kind.Known() {
			return fmt.Errorf("shape %q: disks[%d].kind %q is not one of %v", name, i, d.Kind, DiskKinds)
		}
		if j, dup := seen[d.Kind]; dup {
			return fmt.Errorf("shape %q: disks[%d].kind %q repeats disks[%d]", name, i, d.Kind, j)
		}
		seen[d.Kind] = i
		if d.Kind == DiskModelVerity && (i == 0 || disks[i-1].Kind != DiskModel) {
			return fmt.Errorf("shape %q: disks[%d].kind %q must directly follow a %q slot", name, i, d.Kind, DiskModel)
		}
	}
	if disks[0].Kind != DiskConfig {
		return fmt.Errorf("shape %q: disks[0].kind is %q, want %q (the config disk comes first)", name, disks[0].Kind, DiskConfig)
	}
	if _, ok := seen[DiskModel]; ok {
		if _, ok := seen[DiskModelVerity]; !ok {
			return fmt.Errorf("shape %q: disks has a %q slot without a %q slot after it", name, DiskModel, DiskModelVerity)
		}
	}
	return nil
}

// HasDisk reports whether the shape declares a slot of kind k.
func (s *VMShape) HasDisk(k DiskKind) bool {
	for _, d := range s.Disks {
		if d.Kind == k {
			return true
		}
	}
	return false
}

// Clone returns a deep copy.
func (s *VMShape) Clone() *VMShape {
	c := *s
	c.Disks = slices.Clone(s.Disks)
	return &c
}

// Canonical returns the canonical JSON encoding (measure/canon) of the
// shape with its profiles resolved inline: the bytes Digest hashes.
func (s *VMShape) Canonical() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	b, err := canon.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("shape %q: canonical encoding: %w", s.Name, err)
	}
	return b, nil
}

// DigestPrefix is the algorithm prefix of Digest's result.
const DigestPrefix = "sha256:"

// Digest is "sha256:" + hex SHA-256 of Canonical(): the unambiguous name of
// a shape in manifests. Any change to a field, including the name or a
// profile detail, changes it.
func (s *VMShape) Digest() (string, error) {
	b, err := s.Canonical()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return DigestPrefix + hex.EncodeToString(sum[:]), nil
}
