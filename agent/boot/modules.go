package boot

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ModulesDir holds the initramfs's kernel modules and load.order.
const ModulesDir = "/lib/modules"

// ModuleResult is the outcome of loading one module.
type ModuleResult struct {
	File string
	Err  error // nil, or why it did not load
}

// ReadLoadOrder reads the module file names, in dependency order.
func ReadLoadOrder(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, "load.order"))
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.Contains(l, "/") {
			return nil, fmt.Errorf("modules: load.order entry %q must be a bare file name", l)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// LoadModules loads every module of dir/load.order in order with
// finit_module (xz-compressed files are decompressed by the kernel).
// A module that is already loaded counts as loaded; ENODEV (the device it
// drives is absent, e.g. tdx-guest outside a TD) is reported, not fatal.
func LoadModules(dir string) ([]ModuleResult, error) {
	names, err := ReadLoadOrder(dir)
	if err != nil {
		return nil, err
	}
	res := make([]ModuleResult, 0, len(names))
	for _, n := range names {
		res = append(res, ModuleResult{File: n, Err: loadModule(filepath.Join(dir, n))})
	}
	return res, nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(path, ".xz") || strings.HasSuffix(path, ".zst") || strings.HasSuffix(path, ".gz") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	err = unix.FinitModule(int(f.Fd()), "", flags)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}
