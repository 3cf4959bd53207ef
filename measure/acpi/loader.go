package acpi

import (
	"encoding/binary"
	"fmt"
)

// Linker/loader commands (QEMU hw/acpi/bios-linker-loader.c; edk2
// OvmfPkg/Include/IndustryStandard/QemuLoader.h).
const (
	CmdAllocate     uint32 = 1
	CmdAddPointer   uint32 = 2
	CmdAddChecksum  uint32 = 3
	CmdWritePointer uint32 = 4
)

// Allocation zones of CmdAllocate.
const (
	ZoneHigh uint8 = 1
	ZoneFSEG uint8 = 2
)

// LoaderEntrySize is the size of one linker/loader command.
const LoaderEntrySize = 128

// maxAlign is the largest allocation alignment edk2 accepts (EFI_PAGE_SIZE).
const maxAlign = 4096

// Command is one linker/loader command. Only the fields of its Type are
// set; a zero Type is padding (QEMU pads the script to 4 KiB) and unknown
// types are kept but, as in edk2, have no effect.
type Command struct {
	// Index is the command's position in the script.
	Index int
	Type  uint32
	// File is the allocated file (CmdAllocate), the patched file
	// (CmdAddPointer, CmdWritePointer: the destination) or the
	// checksummed file (CmdAddChecksum).
	File string
	// Src is the file pointed to (CmdAddPointer, CmdWritePointer).
	Src string
	// Align and Zone are CmdAllocate's alignment and zone.
	Align uint32
	Zone  uint8
	// Offset is the pointer offset (CmdAddPointer, CmdWritePointer: in the
	// destination) or the checksum byte offset (CmdAddChecksum).
	Offset uint32
	// SrcOffset is CmdWritePointer's offset into the source.
	SrcOffset uint32
	// Size is the pointer size (CmdAddPointer, CmdWritePointer).
	Size uint8
	// Start and Length are CmdAddChecksum's range.
	Start, Length uint32
}

// ParseLoader parses the "etc/table-loader" script. Like edk2
// (QemuFwCfgAcpi.c) it requires a whole number of 128-byte commands,
// NUL-terminated file names, allocation alignments up to 4 KiB, unique
// allocated files, and pointer sizes of 1, 2, 4 or 8 bytes (edk2 checks
// the pointer size when it applies the command; a script it rejects
// installs no tables). Errors name the command and the problem.
func ParseLoader(b []byte) ([]Command, error) {
	if len(b)%LoaderEntrySize != 0 {
		return nil, fmt.Errorf("acpi: table-loader of %d bytes is not a whole number of %d-byte commands", len(b), LoaderEntrySize)
	}
	var cmds []Command
	allocated := map[string]int{}
	for i := 0; i < len(b)/LoaderEntrySize; i++ {
		e := b[i*LoaderEntrySize : (i+1)*LoaderEntrySize]
		c := Command{Index: i, Type: binary.LittleEndian.Uint32(e)}
		p := e[4:]
		name := func(field []byte, what string) (string, error) {
			s, err := cName(field)
			if err != nil {
				return "", fmt.Errorf("acpi: table-loader command %d (type %d): %s: %w", i, c.Type, what, err)
			}
			return s, nil
		}
		var err error
		switch c.Type {
		case 0:
			continue
		case CmdAllocate:
			if c.File, err = name(p[:FileNameSize], "file"); err != nil {
				return nil, err
			}
			c.Align = binary.LittleEndian.Uint32(p[56:])
			c.Zone = p[60]
			if c.Align > maxAlign {
				return nil, fmt.Errorf("acpi: table-loader command %d allocates %q with alignment %d, more than edk2 accepts (%d)", i, c.File, c.Align, maxAlign)
			}
			if j, dup := allocated[c.File]; dup {
				return nil, fmt.Errorf("acpi: table-loader command %d allocates %q again (first at command %d)", i, c.File, j)
			}
			allocated[c.File] = i
		case CmdAddPointer, CmdWritePointer:
			if c.File, err = name(p[:FileNameSize], "destination file"); err != nil {
				return nil, err
			}
			if c.Src, err = name(p[FileNameSize:2*FileNameSize], "source file"); err != nil {
				return nil, err
			}
			q := p[2*FileNameSize:]
			c.Offset = binary.LittleEndian.Uint32(q)
			if c.Type == CmdAddPointer {
				c.Size = q[4]
			} else {
				c.SrcOffset = binary.LittleEndian.Uint32(q[4:])
				c.Size = q[8]
			}
			switch c.Size {
			case 1, 2, 4, 8:
			default:
				return nil, fmt.Errorf("acpi: table-loader command %d (type %d) patches %q with a %d-byte pointer; want 1, 2, 4 or 8", i, c.Type, c.File, c.Size)
			}
		case CmdAddChecksum:
			if c.File, err = name(p[:FileNameSize], "file"); err != nil {
				return nil, err
			}
			q := p[FileNameSize:]
			c.Offset = binary.LittleEndian.Uint32(q)
			c.Start = binary.LittleEndian.Uint32(q[4:])
			c.Length = binary.LittleEndian.Uint32(q[8:])
		}
		cmds = append(cmds, c)
	}
	return cmds, nil
}

// AllocatedFiles returns the files the script allocates, in command order:
// the order in which OVMF downloads and measures them after the script
// itself.
func AllocatedFiles(cmds []Command) []string {
	var out []string
	for _, c := range cmds {
		if c.Type == CmdAllocate {
			out = append(out, c.File)
		}
	}
	return out
}

// AppendCommand encodes c as a 128-byte linker/loader command (the inverse
// of ParseLoader, for tests and fixtures).
func AppendCommand(dst []byte, c Command) []byte {
	var e [LoaderEntrySize]byte
	binary.LittleEndian.PutUint32(e[:], c.Type)
	p := e[4:]
	switch c.Type {
	case CmdAllocate:
		copy(p[:FileNameSize-1], c.File)
		binary.LittleEndian.PutUint32(p[56:], c.Align)
		p[60] = c.Zone
	case CmdAddPointer, CmdWritePointer:
		copy(p[:FileNameSize-1], c.File)
		copy(p[FileNameSize:2*FileNameSize-1], c.Src)
		q := p[2*FileNameSize:]
		binary.LittleEndian.PutUint32(q, c.Offset)
		if c.Type == CmdAddPointer {
			q[4] = c.Size
		} else {
			binary.LittleEndian.PutUint32(q[4:], c.SrcOffset)
			q[8] = c.Size
		}
	case CmdAddChecksum:
		copy(p[:FileNameSize-1], c.File)
		q := p[FileNameSize:]
		binary.LittleEndian.PutUint32(q, c.Offset)
		binary.LittleEndian.PutUint32(q[4:], c.Start)
		binary.LittleEndian.PutUint32(q[8:], c.Length)
	}
	return append(dst, e[:]...)
}
