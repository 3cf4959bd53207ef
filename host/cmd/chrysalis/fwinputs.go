package main

import (
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"strings"

	"github.com/chrysalis-cc/chrysalis/measure/smbios"
	"github.com/chrysalis-cc/chrysalis/measure/tdxmr"
)

// firmwareFlags are the measurement inputs neither the release nor the
// shape determine, needed by OVMF event layouts with an SMBIOS event
// (edk2 >= stable202505): the type 0 strings of the firmware build and
// the TD host's CPUID leaf 1.
type firmwareFlags struct {
	vendor, version, date, cpuid string
}

func addFirmwareFlags(fs *flag.FlagSet) *firmwareFlags {
	f := &firmwareFlags{}
	fs.StringVar(&f.version, "bios-version", "", "the OVMF build's FIRMWARE_VER `string` (Debian: the package version, e.g. 2026.08+ds-2), for shapes whose OVMF logs an SMBIOS event")
	fs.StringVar(&f.vendor, "bios-vendor", smbios.DefaultVendor, "the OVMF build's firmware vendor `string` (with --bios-version)")
	fs.StringVar(&f.date, "bios-date", "", "the OVMF build's firmware release date `string` (with --bios-version; empty in edk2 and Debian)")
	fs.StringVar(&f.cpuid, "cpuid-1", "", "`EAX:EDX` of CPUID leaf 1 on the TD host, 8 hex digits each (`cpuid -1 -l 1 -r`), for the SMBIOS processor ID a TD's QEMU copies from the host")
	return f
}

// inputs returns the flags as tdxmr inputs (nil f: none).
func (f *firmwareFlags) inputs() (tdxmr.Inputs, error) {
	var in tdxmr.Inputs
	if f == nil {
		return in, nil
	}
	if f.version != "" {
		in.BIOS = &smbios.BIOSInfo{Vendor: f.vendor, Version: f.version, ReleaseDate: f.date}
	} else if f.vendor != smbios.DefaultVendor || f.date != "" {
		return in, fmt.Errorf("--bios-vendor and --bios-date need --bios-version")
	}
	if f.cpuid != "" {
		eax, edx, ok := strings.Cut(f.cpuid, ":")
		a, errA := hex.DecodeString(eax)
		d, errD := hex.DecodeString(edx)
		if !ok || errA != nil || errD != nil || len(a) != 4 || len(d) != 4 {
			return in, fmt.Errorf("--cpuid-1 %q: want EAX:EDX, 8 hex digits each (e.g. 000806f8:bfebfbff)", f.cpuid)
		}
		var id [8]byte
		binary.LittleEndian.PutUint32(id[0:], binary.BigEndian.Uint32(a))
		binary.LittleEndian.PutUint32(id[4:], binary.BigEndian.Uint32(d))
		in.ProcessorID = &id
	}
	return in, nil
}
