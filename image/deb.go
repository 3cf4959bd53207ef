package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// ArMember is one member of an ar archive.
type ArMember struct {
	// Name is the member name without GNU's trailing "/".
	Name string
	// Offset and Size locate the member's data in the archive.
	Offset, Size int64
}

const (
	arMagic      = "!<arch>\n"
	arHeaderSize = 60
	// arMaxMembers bounds the member list; a .deb has three.
	arMaxMembers = 64
)

// ParseAr lists the members of the ar archive in r (size bytes long), as
// used by .deb files: common format with 16-byte names (GNU "name/" or
// BSD/deb "name"), no long-name tables. Every header and size is bounds
// checked against size.
func ParseAr(r io.ReaderAt, size int64) ([]ArMember, error) {
	if size < int64(len(arMagic)) {
		return nil, errors.New("ar: file too short for an ar archive")
	}
	var magic [len(arMagic)]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil {
		return nil, fmt.Errorf("ar: %w", err)
	}
	if string(magic[:]) != arMagic {
		return nil, errors.New("ar: bad magic (not an ar archive)")
	}
	var out []ArMember
	off := int64(len(arMagic))
	for off < size {
		if len(out) == arMaxMembers {
			return nil, fmt.Errorf("ar: more than %d members", arMaxMembers)
		}
		if size-off < arHeaderSize {
			return nil, fmt.Errorf("ar: truncated header at offset %d", off)
		}
		var h [arHeaderSize]byte
		if _, err := r.ReadAt(h[:], off); err != nil {
			return nil, fmt.Errorf("ar: header at offset %d: %w", off, err)
		}
		if h[58] != '`' || h[59] != '\n' {
			return nil, fmt.Errorf("ar: bad header terminator at offset %d", off)
		}
		name := strings.TrimRight(string(h[0:16]), " ")
		if strings.HasPrefix(name, "#1/") || name == "/" || name == "//" {
			return nil, fmt.Errorf("ar: member at offset %d uses an extended name or symbol table (%q), not allowed in a .deb", off, name)
		}
		name = strings.TrimSuffix(name, "/")
		if name == "" || strings.ContainsAny(name, "/\x00") {
			return nil, fmt.Errorf("ar: bad member name %q at offset %d", name, off)
		}
		sizeField := strings.TrimRight(string(h[48:58]), " ")
		msize, err := strconv.ParseInt(sizeField, 10, 64)
		if err != nil || msize < 0 {
			return nil, fmt.Errorf("ar: member %q: bad size field %q", name, sizeField)
		}
		data := off + arHeaderSize
		if msize > size-data {
			return nil, fmt.Errorf("ar: member %q: size %d runs past the end of the archive (%d bytes left)", name, msize, size-data)
		}
		for _, m := range out {
			if m.Name == name {
				return nil, fmt.Errorf("ar: member %q appears twice", name)
			}
		}
		out = append(out, ArMember{Name: name, Offset: data, Size: msize})
		off = data + msize
		if msize%2 == 1 && off < size {
			off++ // members are 2-byte aligned
		}
	}
	return out, nil
}

// debDataTar returns a tar reader over the data.tar.{xz,zst,gz} (or plain
// data.tar) member of the .deb in data. name names the package in errors.
func debDataTar(name string, deb []byte) (*tar.Reader, error) {
	r := bytes.NewReader(deb)
	members, err := ParseAr(r, int64(len(deb)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(members) < 3 || members[0].Name != "debian-binary" {
		return nil, fmt.Errorf("%s: not a .deb (first member is not debian-binary)", name)
	}
	ver := deb[members[0].Offset : members[0].Offset+members[0].Size]
	if !bytes.HasPrefix(ver, []byte("2.")) {
		return nil, fmt.Errorf("%s: unsupported .deb format version %q", name, strings.TrimSpace(string(ver)))
	}
	for _, m := range members {
		if !strings.HasPrefix(m.Name, "data.tar") {
			continue
		}
		sec := io.NewSectionReader(r, m.Offset, m.Size)
		var dr io.Reader
		switch m.Name {
		case "data.tar":
			dr = sec
		case "data.tar.xz":
			xr, err := xz.NewReader(bufio.NewReader(sec))
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", name, m.Name, err)
			}
			dr = xr
		case "data.tar.zst":
			zr, err := zstd.NewReader(sec, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", name, m.Name, err)
			}
			dr = zr.IOReadCloser()
		case "data.tar.gz":
			gr, err := gzip.NewReader(sec)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", name, m.Name, err)
			}
			dr = gr
		default:
			return nil, fmt.Errorf("%s: unsupported data member %q (want data.tar.xz, .zst or .gz)", name, m.Name)
		}
		return tar.NewReader(dr), nil
	}
	return nil, fmt.Errorf("%s: no data.tar member", name)
}

// cleanTarName turns a tar entry name ("./usr/lib/x") into a clean
// relative path ("usr/lib/x"). Absolute names and names with ".."
// components are rejected: a package must not write outside its root.
func cleanTarName(n string) (string, error) {
	if strings.ContainsRune(n, 0) {
		return "", fmt.Errorf("tar entry name %q contains NUL", n)
	}
	s := strings.TrimPrefix(n, "./")
	if s == "" || s == "." || s == "./" {
		return ".", nil
	}
	if strings.HasPrefix(s, "/") {
		return "", fmt.Errorf("tar entry %q has an absolute path", n)
	}
	for _, part := range strings.Split(s, "/") {
		if part == ".." {
			return "", fmt.Errorf("tar entry %q escapes the package root", n)
		}
	}
	return path.Clean(s), nil
}

// DebFile is a regular file taken from a .deb.
type DebFile struct {
	// Path is the clean relative path inside the package.
	Path string
	// Mode is the permission bits from the tar header.
	Mode os.FileMode
	// Data is the file's contents.
	Data []byte
}

// maxDebFileSize bounds one file extracted into memory.
const maxDebFileSize = 512 << 20

// ExtractDeb walks the data.tar of the .deb in deb and returns the regular
// files whose clean path matches one of patterns (path.Match syntax on
// the whole path, e.g. "usr/lib/modules/*/vmlinuz"). pkg names the package
// in errors. A pattern without wildcards that matches nothing is an
// error, and so is a match that is a symlink, device or hard link (the
// build only takes regular files, so nothing can point outside).
func ExtractDeb(pkg string, deb []byte, patterns ...string) ([]DebFile, error) {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%s: bad pattern %q: %w", pkg, p, err)
		}
	}
	matched := make([]bool, len(patterns))
	files, err := ExtractDebFunc(pkg, deb, func(name string) bool {
		hit := false
		for i, p := range patterns {
			if ok, _ := path.Match(p, name); ok {
				matched[i] = true
				hit = true
			}
		}
		return hit
	})
	if err != nil {
		return nil, err
	}
	for i, p := range patterns {
		if !matched[i] && !strings.ContainsAny(p, "*?[\\") {
			return nil, fmt.Errorf("%s: package has no file %s", pkg, p)
		}
	}
	return files, nil
}

// ExtractDebFunc is ExtractDeb with a predicate on the clean path instead
// of patterns. Directories are never returned; any other non-regular
// entry the predicate accepts is an error.
func ExtractDebFunc(pkg string, deb []byte, match func(name string) bool) ([]DebFile, error) {
	tr, err := debDataTar(pkg, deb)
	if err != nil {
		return nil, err
	}
	var out []DebFile
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: data.tar: %w", pkg, err)
		}
		name, err := cleanTarName(h.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pkg, err)
		}
		if h.Typeflag == tar.TypeDir || !match(name) {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%s: %s is not a regular file (tar type %q)", pkg, name, h.Typeflag)
		}
		if h.Size < 0 || h.Size > maxDebFileSize {
			return nil, fmt.Errorf("%s: %s: size %d is over the %d-byte limit", pkg, name, h.Size, maxDebFileSize)
		}
		data := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", pkg, name, err)
		}
		out = append(out, DebFile{Path: name, Mode: os.FileMode(h.Mode) & os.ModePerm, Data: data})
	}
	return out, nil
}

// ExtractDebToDir writes the files ExtractDeb returns below dir, with
// their relative paths, through an os.Root so no name can escape dir.
// Files get mode 0644 or 0755 (executable) whatever the umask.
func ExtractDebToDir(pkg string, deb []byte, dir string, patterns ...string) ([]string, error) {
	files, err := ExtractDeb(pkg, deb, patterns...)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var paths []string
	for _, f := range files {
		if d := path.Dir(f.Path); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", pkg, f.Path, err)
			}
		}
		mode := os.FileMode(0o644)
		if f.Mode&0o100 != 0 {
			mode = 0o755
		}
		if err := writeRootFile(root, f.Path, f.Data, mode); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", pkg, f.Path, err)
		}
		paths = append(paths, filepath.Join(dir, filepath.FromSlash(f.Path)))
	}
	return paths, nil
}

func writeRootFile(root *os.Root, name string, data []byte, mode os.FileMode) error {
	fh, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := fh.Write(data); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Chmod(mode); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}
