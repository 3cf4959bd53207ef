package shape

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
)

// FormatVersion is the only shape file version this package reads.
const FormatVersion = 1

// MaxFileSize bounds a shape file.
const MaxFileSize = 1 << 20

//go:embed shapes.json
var builtinJSON []byte

// Catalog is a parsed shape file: named QEMU and OVMF profiles and named
// shapes that refer to them. Shapes come back from Lookup fully resolved.
type Catalog struct {
	qemu   map[string]QEMUProfile
	ovmf   map[string]OVMFProfile
	shapes map[string]*VMShape
	order  []string
}

// fileDoc is the on-disk form of a shape file.
type fileDoc struct {
	Version      int           `json:"version"`
	QEMUProfiles []QEMUProfile `json:"qemu_profiles"`
	OVMFProfiles []OVMFProfile `json:"ovmf_profiles"`
	Shapes       []shapeDoc    `json:"shapes"`
}

// shapeDoc is a shape as written in a file: profiles by name.
type shapeDoc struct {
	Name        string     `json:"name"`
	VCPUs       int        `json:"vcpus"`
	MemoryMiB   int        `json:"memory_mib"`
	GPUs        int        `json:"gpus"`
	NICs        int        `json:"nics"`
	Disks       []DiskSlot `json:"disks"`
	QEMUProfile string     `json:"qemu_profile"`
	OVMFProfile string     `json:"ovmf_profile"`
}

// rawDoc mirrors fileDoc with raw members, used to insist that every field
// is present (a missing "gpus" must not silently mean 0).
type rawDoc struct {
	Version      json.RawMessage              `json:"version"`
	QEMUProfiles []map[string]json.RawMessage `json:"qemu_profiles"`
	OVMFProfiles []map[string]json.RawMessage `json:"ovmf_profiles"`
	Shapes       []map[string]json.RawMessage `json:"shapes"`
}

var (
	qemuKeys  = []string{"name", "qemu_version", "mrtd_page_order", "patches_kernel_header", "memory_backend", "iommufd"}
	ovmfKeys  = []string{"name", "event_layout", "initrd_option"}
	shapeKeys = []string{"name", "vcpus", "memory_mib", "gpus", "nics", "disks", "qemu_profile", "ovmf_profile"}
)

var builtin = func() *Catalog {
	c, err := parse(builtinJSON, nil)
	if err != nil {
		panic("shape: embedded shapes.json: " + err.Error())
	}
	return c
}()

// Builtin returns the catalog embedded from shapes.json.
func Builtin() *Catalog { return builtin }

// Lookup returns a copy of the built-in shape called name.
func Lookup(name string) (*VMShape, error) { return builtin.Lookup(name) }

// Names lists the built-in shapes in file order.
func Names() []string { return builtin.Names() }

// Parse decodes a shape file strictly: unknown or missing fields, duplicate
// keys, trailing data, an unknown version, duplicate names, dangling
// profile references and invalid shapes are errors. Profiles may be named
// from the built-in catalog without being redefined.
func Parse(b []byte) (*Catalog, error) { return parse(b, builtin) }

// Load reads and parses the shape file at path (see Parse).
func Load(path string) (*Catalog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("shape file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("shape file %s: %w", path, err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("shape file %s: %w", path, err)
	}
	return c, nil
}

func parse(b []byte, base *Catalog) (*Catalog, error) {
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%d bytes exceeds the %d-byte limit", len(b), MaxFileSize)
	}
	// canon rejects invalid UTF-8, duplicate keys, fractions and trailing
	// data, all of which encoding/json would let through.
	if _, err := canon.Canonicalize(b); err != nil {
		return nil, err
	}
	var doc fileDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	var raw rawDoc
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	if raw.Version == nil {
		return nil, errors.New(`missing field "version"`)
	}
	if doc.Version != FormatVersion {
		return nil, fmt.Errorf("version %d is not supported (want %d)", doc.Version, FormatVersion)
	}
	for i, m := range raw.QEMUProfiles {
		if err := requireKeys(m, qemuKeys, fmt.Sprintf("qemu_profiles[%d]", i)); err != nil {
			return nil, err
		}
	}
	for i, m := range raw.OVMFProfiles {
		if err := requireKeys(m, ovmfKeys, fmt.Sprintf("ovmf_profiles[%d]", i)); err != nil {
			return nil, err
		}
	}
	for i, m := range raw.Shapes {
		if err := requireKeys(m, shapeKeys, fmt.Sprintf("shapes[%d]", i)); err != nil {
			return nil, err
		}
	}

	c := &Catalog{
		qemu:   map[string]QEMUProfile{},
		ovmf:   map[string]OVMFProfile{},
		shapes: map[string]*VMShape{},
	}
	for i, p := range doc.QEMUProfiles {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("qemu_profiles[%d]: %w", i, err)
		}
		if _, dup := c.qemu[p.Name]; dup {
			return nil, fmt.Errorf("qemu_profiles[%d]: name %q is defined twice", i, p.Name)
		}
		if base != nil {
			if _, ok := base.qemu[p.Name]; ok {
				return nil, fmt.Errorf("qemu_profiles[%d]: name %q is a built-in profile; refer to it without redefining it", i, p.Name)
			}
		}
		c.qemu[p.Name] = p
	}
	for i, p := range doc.OVMFProfiles {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("ovmf_profiles[%d]: %w", i, err)
		}
		if _, dup := c.ovmf[p.Name]; dup {
			return nil, fmt.Errorf("ovmf_profiles[%d]: name %q is defined twice", i, p.Name)
		}
		if base != nil {
			if _, ok := base.ovmf[p.Name]; ok {
				return nil, fmt.Errorf("ovmf_profiles[%d]: name %q is a built-in profile; refer to it without redefining it", i, p.Name)
			}
		}
		c.ovmf[p.Name] = p
	}
	if len(doc.Shapes) == 0 {
		return nil, errors.New(`"shapes" is empty: a shape file declares at least one shape`)
	}
	for i, d := range doc.Shapes {
		where := fmt.Sprintf("shapes[%d]", i)
		if _, dup := c.shapes[d.Name]; dup {
			return nil, fmt.Errorf("%s: name %q is defined twice", where, d.Name)
		}
		if base != nil {
			if _, ok := base.shapes[d.Name]; ok {
				return nil, fmt.Errorf("%s: name %q is a built-in shape; choose another name", where, d.Name)
			}
		}
		q, ok := c.qemu[d.QEMUProfile]
		if !ok && base != nil {
			q, ok = base.qemu[d.QEMUProfile]
		}
		if !ok {
			return nil, fmt.Errorf("%s (%q): qemu_profile %q is not defined", where, d.Name, d.QEMUProfile)
		}
		o, ok := c.ovmf[d.OVMFProfile]
		if !ok && base != nil {
			o, ok = base.ovmf[d.OVMFProfile]
		}
		if !ok {
			return nil, fmt.Errorf("%s (%q): ovmf_profile %q is not defined", where, d.Name, d.OVMFProfile)
		}
		s := &VMShape{
			Name:      d.Name,
			VCPUs:     d.VCPUs,
			MemoryMiB: d.MemoryMiB,
			GPUs:      d.GPUs,
			NICs:      d.NICs,
			Disks:     d.Disks,
			QEMU:      q,
			OVMF:      o,
		}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		c.shapes[s.Name] = s
		c.order = append(c.order, s.Name)
	}
	return c, nil
}

func requireKeys(m map[string]json.RawMessage, keys []string, where string) error {
	for _, k := range keys {
		v, ok := m[k]
		if !ok || string(v) == "null" {
			if n, ok := m["name"]; ok && k != "name" {
				return fmt.Errorf("%s (%s): missing field %q", where, n, k)
			}
			return fmt.Errorf("%s: missing field %q", where, k)
		}
	}
	return nil
}

// Lookup returns a copy of the shape called name.
func (c *Catalog) Lookup(name string) (*VMShape, error) {
	s, ok := c.shapes[name]
	if !ok {
		known := c.Names()
		sort.Strings(known)
		return nil, fmt.Errorf("unknown shape %q (known: %v)", name, known)
	}
	return s.Clone(), nil
}

// Names lists the catalog's shapes in file order.
func (c *Catalog) Names() []string { return append([]string(nil), c.order...) }

// QEMUProfile returns the QEMU profile called name defined in this catalog.
func (c *Catalog) QEMUProfile(name string) (QEMUProfile, bool) {
	p, ok := c.qemu[name]
	return p, ok
}

// OVMFProfile returns the OVMF profile called name defined in this catalog.
func (c *Catalog) OVMFProfile(name string) (OVMFProfile, bool) {
	p, ok := c.ovmf[name]
	return p, ok
}
