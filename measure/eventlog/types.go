package eventlog

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// Alg is a TCG algorithm identifier (TCG Algorithm Registry, TPM_ALG_ID).
type Alg uint16

// Digest algorithms a crypto-agile log may list.
const (
	AlgSHA1    Alg = 0x0004
	AlgSHA256  Alg = 0x000B
	AlgSHA384  Alg = 0x000C
	AlgSHA512  Alg = 0x000D
	AlgSM3_256 Alg = 0x0012
)

// String returns the algorithm's lower-case name, e.g. "sha384".
func (a Alg) String() string {
	switch a {
	case AlgSHA1:
		return "sha1"
	case AlgSHA256:
		return "sha256"
	case AlgSHA384:
		return "sha384"
	case AlgSHA512:
		return "sha512"
	case AlgSM3_256:
		return "sm3_256"
	}
	return fmt.Sprintf("alg-%#04x", uint16(a))
}

// Size is the digest size of a known algorithm, 0 for an unknown one.
func (a Alg) Size() int {
	switch a {
	case AlgSHA1:
		return sha1.Size
	case AlgSHA256, AlgSM3_256:
		return 32
	case AlgSHA384:
		return sha512.Size384
	case AlgSHA512:
		return sha512.Size
	}
	return 0
}

// New returns a hash of the algorithm, or nil where Go has none (SM3 and
// unknown algorithms): such a bank can be parsed but not replayed.
func (a Alg) New() hash.Hash {
	switch a {
	case AlgSHA1:
		return sha1.New()
	case AlgSHA256:
		return sha256.New()
	case AlgSHA384:
		return sha512.New384()
	case AlgSHA512:
		return sha512.New()
	}
	return nil
}

// EventType is a TCG PC Client event type (PFP specification §10.4.1).
type EventType uint32

// Event types of the TCG PC Client Platform Firmware Profile.
const (
	EvPrebootCert            EventType = 0x00000000
	EvPostCode               EventType = 0x00000001
	EvUnused                 EventType = 0x00000002
	EvNoAction               EventType = 0x00000003
	EvSeparator              EventType = 0x00000004
	EvAction                 EventType = 0x00000005
	EvEventTag               EventType = 0x00000006
	EvSCRTMContents          EventType = 0x00000007
	EvSCRTMVersion           EventType = 0x00000008
	EvCPUMicrocode           EventType = 0x00000009
	EvPlatformConfigFlags    EventType = 0x0000000A
	EvTableOfDevices         EventType = 0x0000000B
	EvCompactHash            EventType = 0x0000000C
	EvIPL                    EventType = 0x0000000D
	EvIPLPartitionData       EventType = 0x0000000E
	EvNonhostCode            EventType = 0x0000000F
	EvNonhostConfig          EventType = 0x00000010
	EvNonhostInfo            EventType = 0x00000011
	EvOmitBootDeviceEvents   EventType = 0x00000012
	EvPostCode2              EventType = 0x00000013
	EvEFIEventBase           EventType = 0x80000000
	EvEFIVariableDriverCfg   EventType = 0x80000001
	EvEFIVariableBoot        EventType = 0x80000002
	EvEFIBootServicesApp     EventType = 0x80000003
	EvEFIBootServicesDriver  EventType = 0x80000004
	EvEFIRuntimeServicesDrv  EventType = 0x80000005
	EvEFIGPTEvent            EventType = 0x80000006
	EvEFIAction              EventType = 0x80000007
	EvEFIPlatformFwBlob      EventType = 0x80000008
	EvEFIHandoffTables       EventType = 0x80000009
	EvEFIPlatformFwBlob2     EventType = 0x8000000A
	EvEFIHandoffTables2      EventType = 0x8000000B
	EvEFIVariableBoot2       EventType = 0x8000000C
	EvEFIGPTEvent2           EventType = 0x8000000D
	EvEFIHCRTMEvent          EventType = 0x80000010
	EvEFIVariableAuthority   EventType = 0x800000E0
	EvEFISPDMFirmwareBlob    EventType = 0x800000E1
	EvEFISPDMFirmwareConfig  EventType = 0x800000E2
	EvEFISPDMDevicePolicy    EventType = 0x800000E3
	EvEFISPDMDeviceAuthority EventType = 0x800000E4
)

var eventTypeNames = map[EventType]string{
	EvPrebootCert:            "EV_PREBOOT_CERT",
	EvPostCode:               "EV_POST_CODE",
	EvUnused:                 "EV_UNUSED",
	EvNoAction:               "EV_NO_ACTION",
	EvSeparator:              "EV_SEPARATOR",
	EvAction:                 "EV_ACTION",
	EvEventTag:               "EV_EVENT_TAG",
	EvSCRTMContents:          "EV_S_CRTM_CONTENTS",
	EvSCRTMVersion:           "EV_S_CRTM_VERSION",
	EvCPUMicrocode:           "EV_CPU_MICROCODE",
	EvPlatformConfigFlags:    "EV_PLATFORM_CONFIG_FLAGS",
	EvTableOfDevices:         "EV_TABLE_OF_DEVICES",
	EvCompactHash:            "EV_COMPACT_HASH",
	EvIPL:                    "EV_IPL",
	EvIPLPartitionData:       "EV_IPL_PARTITION_DATA",
	EvNonhostCode:            "EV_NONHOST_CODE",
	EvNonhostConfig:          "EV_NONHOST_CONFIG",
	EvNonhostInfo:            "EV_NONHOST_INFO",
	EvOmitBootDeviceEvents:   "EV_OMIT_BOOT_DEVICE_EVENTS",
	EvPostCode2:              "EV_POST_CODE2",
	EvEFIEventBase:           "EV_EFI_EVENT_BASE",
	EvEFIVariableDriverCfg:   "EV_EFI_VARIABLE_DRIVER_CONFIG",
	EvEFIVariableBoot:        "EV_EFI_VARIABLE_BOOT",
	EvEFIBootServicesApp:     "EV_EFI_BOOT_SERVICES_APPLICATION",
	EvEFIBootServicesDriver:  "EV_EFI_BOOT_SERVICES_DRIVER",
	EvEFIRuntimeServicesDrv:  "EV_EFI_RUNTIME_SERVICES_DRIVER",
	EvEFIGPTEvent:            "EV_EFI_GPT_EVENT",
	EvEFIAction:              "EV_EFI_ACTION",
	EvEFIPlatformFwBlob:      "EV_EFI_PLATFORM_FIRMWARE_BLOB",
	EvEFIHandoffTables:       "EV_EFI_HANDOFF_TABLES",
	EvEFIPlatformFwBlob2:     "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
	EvEFIHandoffTables2:      "EV_EFI_HANDOFF_TABLES2",
	EvEFIVariableBoot2:       "EV_EFI_VARIABLE_BOOT2",
	EvEFIGPTEvent2:           "EV_EFI_GPT_EVENT2",
	EvEFIHCRTMEvent:          "EV_EFI_HCRTM_EVENT",
	EvEFIVariableAuthority:   "EV_EFI_VARIABLE_AUTHORITY",
	EvEFISPDMFirmwareBlob:    "EV_EFI_SPDM_FIRMWARE_BLOB",
	EvEFISPDMFirmwareConfig:  "EV_EFI_SPDM_FIRMWARE_CONFIG",
	EvEFISPDMDevicePolicy:    "EV_EFI_SPDM_DEVICE_POLICY",
	EvEFISPDMDeviceAuthority: "EV_EFI_SPDM_DEVICE_AUTHORITY",
}

// String returns the TCG name, e.g. "EV_EFI_ACTION", or "EV_UNKNOWN_0x…".
func (t EventType) String() string {
	if n, ok := eventTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("EV_UNKNOWN_%#08x", uint32(t))
}

// Known reports whether t is a type the PFP specification defines.
func (t EventType) Known() bool {
	_, ok := eventTypeNames[t]
	return ok
}

// Tagged-event identifiers (TCG_PCClientTaggedEvent.taggedEventID) with
// a known meaning.
const (
	// TagLinuxInitrd: the Linux EFI stub's initrd measurement.
	TagLinuxInitrd uint32 = 0x8F3B22EC
	// TagLinuxLoadOptions: the Linux EFI stub's LoadOptions (command
	// line) measurement.
	TagLinuxLoadOptions uint32 = 0x8F3B22ED
)

var tagNames = map[uint32]string{
	TagLinuxInitrd:      "Linux initrd",
	TagLinuxLoadOptions: "LOADED_IMAGE::LoadOptions",
}

// TagName names a tagged-event id, "" for an unknown one.
func TagName(id uint32) string { return tagNames[id] }

// UEFI variable-vendor GUIDs (in their canonical text form) that
// Describe names.
const (
	GUIDGlobalVariable  = "8be4df61-93ca-11d2-aa0d-00e098032b8c" // EFI_GLOBAL_VARIABLE
	GUIDImageSecurityDB = "d719b2cb-3d3a-4596-a3bc-dad00e67656f" // EFI_IMAGE_SECURITY_DATABASE_GUID
	GUIDShimLock        = "605dab50-e046-4300-abb6-3dd810dd8b23" // shim's MokList, SbatLevel
	GUIDTdxHandoffTdHob = "93bb96af-b9f2-4eb8-9462-e0ba74564236" // TD HOB in TdxTable handoff event
)
