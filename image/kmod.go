package image

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/ulikunitz/xz"
)

// KernelModule is a loadable module taken from the kernel-modules package.
type KernelModule struct {
	// Name is the module name as the kernel and depends= spell it
	// (underscores), e.g. "dm_mod".
	Name string
	// File is the file name in the initramfs, e.g. "dm-mod.ko.xz".
	File string
	// Path is the path inside the package.
	Path string
	// Depends are the names of the modules this one needs (from its
	// .modinfo), sorted.
	Depends []string
	// Vermagic is the module's vermagic string.
	Vermagic string
	// Data is the xz-compressed module, as shipped.
	Data []byte
}

// ModuleName turns a module file name or a module name into the kernel's
// spelling: base name without .ko[.xz|.zst|.gz], dashes as underscores.
func ModuleName(s string) string {
	s = path.Base(s)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		s = strings.TrimSuffix(s, ext)
	}
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// maxModuleSize bounds a decompressed module.
const maxModuleSize = 256 << 20

// ParseModinfo reads the .modinfo section of the ELF kernel module in ko
// (uncompressed) and returns its key=value entries; keys may repeat
// (alias, depends is single).
func ParseModinfo(ko []byte) (map[string][]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, fmt.Errorf("not an ELF object: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	if sec.Type == elf.SHT_NOBITS || sec.Size > maxModuleSize {
		return nil, errors.New(".modinfo section has no usable contents")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".modinfo: %w", err)
	}
	out := map[string][]string{}
	for _, entry := range bytes.Split(data, []byte{0}) {
		if len(entry) == 0 {
			continue
		}
		k, v, ok := strings.Cut(string(entry), "=")
		if !ok {
			continue
		}
		out[k] = append(out[k], v)
	}
	return out, nil
}

// decompressModule undoes the kernel's xz module compression.
func decompressModule(name string, data []byte) ([]byte, error) {
	if !strings.HasSuffix(name, ".ko.xz") {
		return nil, fmt.Errorf("module %s: only .ko.xz modules are supported", name)
	}
	r, err := xz.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", name, err)
	}
	out, err := io.ReadAll(io.LimitReader(r, maxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", name, err)
	}
	if len(out) > maxModuleSize {
		return nil, fmt.Errorf("module %s: larger than %d bytes uncompressed", name, maxModuleSize)
	}
	return out, nil
}

// ModuleSet indexes the modules of one kernel by name.
type ModuleSet struct {
	// KernelVersion is the release string, e.g. 7.3.4+deb13-cloud-amd64.
	KernelVersion string
	// Builtin are the names of modules compiled into the kernel
	// (modules.builtin); depends= never lists them.
	Builtin map[string]bool

	files  map[string]DebFile // by module name
	parsed map[string]*KernelModule
}

// NewModuleSet indexes files (paths as in the package, each
// usr/lib/modules/<kver>/kernel/....ko.xz). Two files with one module name
// are an error.
func NewModuleSet(kver string, files []DebFile, builtin map[string]bool) (*ModuleSet, error) {
	s := &ModuleSet{KernelVersion: kver, Builtin: builtin, files: map[string]DebFile{}, parsed: map[string]*KernelModule{}}
	if s.Builtin == nil {
		s.Builtin = map[string]bool{}
	}
	for _, f := range files {
		n := ModuleName(f.Path)
		if prev, dup := s.files[n]; dup {
			return nil, fmt.Errorf("kernel modules: %s and %s are both module %s", prev.Path, f.Path, n)
		}
		s.files[n] = f
	}
	return s, nil
}

// Len is the number of loadable modules.
func (s *ModuleSet) Len() int { return len(s.files) }

// module decompresses and parses one module (once).
func (s *ModuleSet) module(name string) (*KernelModule, error) {
	if m, ok := s.parsed[name]; ok {
		return m, nil
	}
	f, ok := s.files[name]
	if !ok {
		return nil, fmt.Errorf("module %s is not in the kernel-modules package", name)
	}
	ko, err := decompressModule(f.Path, f.Data)
	if err != nil {
		return nil, err
	}
	info, err := ParseModinfo(ko)
	if err != nil {
		return nil, fmt.Errorf("module %s (%s): %w", name, f.Path, err)
	}
	if got := info["name"]; len(got) == 1 && got[0] != name {
		return nil, fmt.Errorf("module file %s says its name is %q, want %q", f.Path, got[0], name)
	}
	vm := strings.Join(info["vermagic"], " ")
	if s.KernelVersion != "" && strings.Fields(vm + " x")[0] != s.KernelVersion {
		return nil, fmt.Errorf("module %s (%s): vermagic %q is not for kernel %s", name, f.Path, vm, s.KernelVersion)
	}
	m := &KernelModule{Name: name, File: path.Base(f.Path), Path: f.Path, Vermagic: vm, Data: f.Data}
	for _, d := range info["depends"] {
		for _, dep := range strings.Split(d, ",") {
			if dep = strings.TrimSpace(dep); dep != "" {
				m.Depends = append(m.Depends, ModuleName(dep))
			}
		}
	}
	sort.Strings(m.Depends)
	s.parsed[name] = m
	return m, nil
}

// Resolve returns the modules needed to load want, dependencies first.
// The order is deterministic: wanted modules in the order given, each
// preceded by its not-yet-listed dependencies in sorted-name depth-first
// order. Wanted modules that are built into the kernel are skipped and
// returned in builtin. Dependency cycles and missing modules are errors.
func (s *ModuleSet) Resolve(want []string) (mods []*KernelModule, builtin []string, err error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("kernel modules: dependency cycle %s -> %s", strings.Join(chain, " -> "), name)
		}
		state[name] = visiting
		m, err := s.module(name)
		if err != nil {
			if len(chain) > 0 {
				return fmt.Errorf("kernel modules: %s (needed by %s): %w", name, strings.Join(chain, " -> "), err)
			}
			return fmt.Errorf("kernel modules: %w", err)
		}
		for _, d := range m.Depends {
			if s.Builtin[d] {
				continue
			}
			if err := visit(d, append(chain[:len(chain):len(chain)], name)); err != nil {
				return err
			}
		}
		state[name] = done
		mods = append(mods, m)
		return nil
	}
	for _, w := range want {
		n := ModuleName(w)
		if s.Builtin[n] {
			if _, loadable := s.files[n]; !loadable {
				builtin = append(builtin, n)
				continue
			}
		}
		if err := visit(n, nil); err != nil {
			return nil, nil, err
		}
	}
	seen := map[string]string{}
	for _, m := range mods {
		if other, dup := seen[m.File]; dup {
			return nil, nil, fmt.Errorf("kernel modules: %s and %s both have file name %s", other, m.Name, m.File)
		}
		seen[m.File] = m.Name
	}
	return mods, builtin, nil
}

// ParseModulesBuiltin reads modules.builtin ("kernel/fs/ext4/ext4.ko"
// per line) into a set of module names.
func ParseModulesBuiltin(data []byte) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out[ModuleName(l)] = true
		}
	}
	return out
}

// LoadOrder is the content of lib/modules/load.order: one module file
// name per line, dependencies first.
func LoadOrder(mods []*KernelModule) []byte {
	var b strings.Builder
	for _, m := range mods {
		b.WriteString(m.File)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
