package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// tarEntry is one entry of a generated data.tar.
type tarEntry struct {
	Name     string
	Body     string
	Mode     int64
	Type     byte // tar.TypeReg if 0
	Linkname string
}

func makeTar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.Name, Mode: mode, Typeflag: typ, Linkname: e.Linkname, Uname: "root", Gname: "root", Format: tar.FormatGNU}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t testing.TB, kind string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case "xz":
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case "zst":
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case "gz":
		w := gzip.NewWriter(&buf)
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case "":
		return data
	default:
		t.Fatalf("unknown compression %q", kind)
	}
	return buf.Bytes()
}

type arFile struct {
	Name string
	Data []byte
}

// makeAr writes an ar archive the way dpkg-deb does.
func makeAr(members ...arFile) []byte {
	var buf bytes.Buffer
	buf.WriteString(arMagic)
	for _, m := range members {
		fmt.Fprintf(&buf, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m.Name, 0, 0, 0, "100644", len(m.Data))
		buf.Write(m.Data)
		if len(m.Data)%2 == 1 {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
}

// makeDeb builds a .deb with a data.tar compressed with comp ("xz",
// "zst", "gz" or "" for plain data.tar).
func makeDeb(t testing.TB, comp string, entries []tarEntry) []byte {
	t.Helper()
	control := compress(t, "gz", makeTar(t, []tarEntry{{Name: "./control", Body: "Package: test\n"}}))
	name := "data.tar"
	if comp != "" {
		name += "." + comp
	}
	return makeAr(
		arFile{"debian-binary", []byte("2.0\n")},
		arFile{"control.tar.gz", control},
		arFile{name, compress(t, comp, makeTar(t, entries))},
	)
}

// makeModuleELF writes a minimal ELF64 relocatable object whose only
// contents are a .modinfo section, like a kernel module's.
func makeModuleELF(t testing.TB, name, vermagic string, depends ...string) []byte {
	t.Helper()
	var mi bytes.Buffer
	for _, kv := range []string{"license=GPL", "depends=" + strings.Join(depends, ","), "name=" + name, "vermagic=" + vermagic} {
		mi.WriteString(kv)
		mi.WriteByte(0)
	}
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	miOff := uint64(ehsize)
	strOff := miOff + uint64(mi.Len())
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7

	var buf bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: ehsize, Shentsize: shentsize, Shnum: 3, Shstrndx: 2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&buf, binary.LittleEndian, hdr)
	buf.Write(mi.Bytes())
	buf.Write(shstr)
	for uint64(buf.Len()) < shOff {
		buf.WriteByte(0)
	}
	for _, sh := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: miOff, Size: uint64(mi.Len()), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstr)), Addralign: 1},
	} {
		binary.Write(&buf, binary.LittleEndian, sh)
	}
	return buf.Bytes()
}

// setUmask sets the process umask and returns the old one.
func setUmask(m int) int { return syscall.Umask(m) }
