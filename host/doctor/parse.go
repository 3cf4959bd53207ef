package doctor

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Version is a QEMU version: major, minor, micro.
type Version [3]int

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

// Compare returns -1, 0 or 1 as v is older than, equal to or newer than w.
func (v Version) Compare(w Version) int {
	for i := range v {
		if v[i] != w[i] {
			if v[i] < w[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

var (
	qemuVersionRE = regexp.MustCompile(`QEMU emulator version ([0-9]{1,4})\.([0-9]{1,4})(?:\.([0-9]{1,4}))?`)
	versionRE     = regexp.MustCompile(`^([0-9]{1,4})\.([0-9]{1,4})(?:\.([0-9]{1,4}))?$`)
)

// ParseQEMUVersion reads the version from the output of `qemu-system-x86_64
// --version`, e.g. "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)".
func ParseQEMUVersion(out []byte) (Version, error) {
	m := qemuVersionRE.FindSubmatch(out)
	if m == nil {
		first, _, _ := bytes.Cut(out, []byte("\n"))
		if len(first) > 80 {
			first = first[:80]
		}
		return Version{}, fmt.Errorf("no \"QEMU emulator version X.Y.Z\" in its output (first line %q)", first)
	}
	return versionOf(m[1], m[2], m[3]), nil
}

// ParseVersion reads a version such as "10.1" or "8.2.2" (a QEMU profile's
// qemu_version).
func ParseVersion(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("version %q is not X.Y or X.Y.Z", s)
	}
	return versionOf([]byte(m[1]), []byte(m[2]), []byte(m[3])), nil
}

func versionOf(parts ...[]byte) Version {
	var v Version
	for i, p := range parts {
		if len(p) > 0 {
			v[i], _ = strconv.Atoi(string(p)) // at most 4 digits: cannot fail
		}
	}
	return v
}

// HasObject reports whether the output of `qemu -object help` lists the
// object type name (one type per line, indented).
func HasObject(out []byte, name string) bool {
	for line := range bytes.SplitSeq(out, []byte("\n")) {
		if string(bytes.TrimSpace(line)) == name {
			return true
		}
	}
	return false
}

// Meminfo holds the /proc/meminfo fields the checks use, in KiB (huge
// page counts are pages).
type Meminfo struct {
	MemTotalKiB     int64
	MemAvailableKiB int64
	HugePagesTotal  int64
	HugePagesFree   int64
	HugepageSizeKiB int64
}

// ParseMeminfo reads /proc/meminfo. MemTotal and MemAvailable are
// required (MemAvailable exists since Linux 3.14); huge page fields are
// optional.
func ParseMeminfo(b []byte) (Meminfo, error) {
	var m Meminfo
	fields := map[string]*int64{
		"MemTotal":        &m.MemTotalKiB,
		"MemAvailable":    &m.MemAvailableKiB,
		"HugePages_Total": &m.HugePagesTotal,
		"HugePages_Free":  &m.HugePagesFree,
		"Hugepagesize":    &m.HugepageSizeKiB,
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		p := fields[key]
		if !ok || p == nil {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 || len(f) > 2 || (len(f) == 2 && f[1] != "kB") {
			return Meminfo{}, fmt.Errorf("line %d: %s: want a number and an optional kB, got %q", n, key, strings.TrimSpace(rest))
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || v < 0 || v > 1<<50 {
			return Meminfo{}, fmt.Errorf("line %d: %s: %q is not a size", n, key, f[0])
		}
		if seen[key] {
			return Meminfo{}, fmt.Errorf("line %d: %s given twice", n, key)
		}
		seen[key] = true
		*p = v
	}
	if err := sc.Err(); err != nil {
		return Meminfo{}, err
	}
	for _, k := range []string{"MemTotal", "MemAvailable"} {
		if !seen[k] {
			return Meminfo{}, fmt.Errorf("no %s line", k)
		}
	}
	return m, nil
}

// QGSConf is what /etc/qgs.conf (Intel's tdx-qgs) says.
type QGSConf struct {
	// Port is the vsock port QGS listens on; 0 when no active port line
	// is present, in which case QGS serves only its unix socket.
	Port int
	// Line is the 1-based line of the active port setting.
	Line int
}

// ParseQGSConf reads /etc/qgs.conf: "key = value" lines, '#' comments.
// Only the port key matters here; a bad port value is an error.
func ParseQGSConf(b []byte) (QGSConf, error) {
	var c QGSConf
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(key) != "port" {
			continue
		}
		val = strings.TrimSpace(val)
		p, err := strconv.Atoi(val)
		if err != nil || p < 1 || p > 0xFFFFFFFE {
			return QGSConf{}, fmt.Errorf("line %d: port %q is not a vsock port number", n, val)
		}
		c = QGSConf{Port: p, Line: n}
	}
	if err := sc.Err(); err != nil {
		return QGSConf{}, err
	}
	return c, nil
}

var (
	qcnlJSONURL = regexp.MustCompile(`"pccs_url"\s*:\s*"([^"]*)"`)
	qcnlOldURL  = regexp.MustCompile(`^\s*PCCS_URL\s*=\s*"?([^\s"]*)`)
)

// ParsePCCSURL returns the PCCS URL that /etc/sgx_default_qcnl.conf
// configures: the "pccs_url" key of the JSON format (DCAP >= 1.15, which
// allows // comments) or the PCCS_URL= line of the older format; "" when
// neither is set. Commented-out lines do not count.
func ParsePCCSURL(b []byte) string {
	url := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "//") || strings.HasPrefix(line, "#") {
			continue
		}
		if m := qcnlJSONURL.FindStringSubmatch(line); m != nil {
			url = m[1]
		} else if m := qcnlOldURL.FindStringSubmatch(line); m != nil {
			url = m[1]
		}
	}
	return url
}
