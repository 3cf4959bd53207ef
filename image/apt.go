package image

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// MirrorEnv is the environment variable that overrides the Debian mirror
// found in the apt sources.
const MirrorEnv = "CHRYSALIS_DEBIAN_MIRROR"

// AptSource is one URI from an apt source entry.
type AptSource struct {
	// Types are the entry's types ("deb", "deb-src").
	Types []string
	// URI is the repository root as written.
	URI string
	// Enabled is false for deb822 stanzas with "Enabled: no" (and one-line
	// entries with the [enabled=no] option).
	Enabled bool
	// Origin is file:line of the entry, for messages.
	Origin string
}

// ParseSourcesList parses apt's one-line format (sources.list, *.list):
//
//	deb [arch=amd64 signed-by=/x.gpg] http://deb.debian.org/debian trixie main
//
// Comments and blank lines are skipped; malformed lines are errors naming
// the line.
func ParseSourcesList(name string, data []byte) ([]AptSource, error) {
	var out []AptSource
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		origin := fmt.Sprintf("%s:%d", name, n)
		typ, rest := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			typ, rest = line[:i], line[i+1:]
		}
		if typ != "deb" && typ != "deb-src" {
			return nil, fmt.Errorf("%s: unknown entry type %q (want deb or deb-src)", origin, typ)
		}
		rest = strings.TrimSpace(rest)
		enabled := true
		if strings.HasPrefix(rest, "[") {
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("%s: options start with [ but have no closing ]", origin)
			}
			for _, opt := range strings.Fields(rest[1:end]) {
				k, v, _ := strings.Cut(opt, "=")
				if strings.EqualFold(k, "enabled") && strings.EqualFold(v, "no") {
					enabled = false
				}
			}
			rest = strings.TrimSpace(rest[end+1:])
		}
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			return nil, fmt.Errorf("%s: want \"%s URI SUITE [COMPONENT...]\"", origin, typ)
		}
		out = append(out, AptSource{Types: []string{typ}, URI: fields[0], Enabled: enabled, Origin: origin})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// ParseDeb822Sources parses apt's deb822 format (*.sources): stanzas of
// "Field: value" lines separated by blank lines; continuation lines start
// with white space; "#" lines are comments. A stanza may list several
// URIs; "Enabled: no" marks it disabled.
func ParseDeb822Sources(name string, data []byte) ([]AptSource, error) {
	var out []AptSource
	fields := map[string]string{}
	var last string
	start := 0
	flush := func() error {
		defer func() { fields = map[string]string{}; last = "" }()
		if len(fields) == 0 {
			return nil
		}
		origin := fmt.Sprintf("%s:%d", name, start)
		types := strings.Fields(fields["types"])
		uris := strings.Fields(fields["uris"])
		if len(types) == 0 || len(uris) == 0 {
			return fmt.Errorf("%s: stanza needs both Types and URIs", origin)
		}
		for _, t := range types {
			if t != "deb" && t != "deb-src" {
				return fmt.Errorf("%s: unknown type %q (want deb or deb-src)", origin, t)
			}
		}
		enabled := true
		switch strings.ToLower(strings.TrimSpace(fields["enabled"])) {
		case "", "yes":
		case "no":
			enabled = false
		default:
			return fmt.Errorf("%s: Enabled must be yes or no, not %q", origin, fields["enabled"])
		}
		for _, u := range uris {
			out = append(out, AptSource{Types: types, URI: u, Enabled: enabled, Origin: origin})
		}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		switch {
		case strings.HasPrefix(line, "#"):
			continue
		case line == "":
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("%s:%d: continuation line without a field", name, n)
			}
			fields[last] += " " + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: want \"Field: value\", got %q", name, n, line)
		}
		if len(fields) == 0 {
			start = n
		}
		last = strings.ToLower(k)
		if _, dup := fields[last]; dup {
			return nil, fmt.Errorf("%s:%d: field %s repeated in one stanza", name, n, k)
		}
		fields[last] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// debianMirrorURI reports whether u is a usable Debian archive root: an
// http(s) URL whose path ends in /debian (so debian-security and
// third-party repositories are not picked). It returns u normalised
// without a trailing slash.
func debianMirrorURI(u string) (string, bool) {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.RawQuery != "" || p.Fragment != "" || p.User != nil {
		return "", false
	}
	clean := strings.TrimRight(p.Path, "/")
	if !strings.HasSuffix(clean, "/debian") {
		return "", false
	}
	p.Path = clean
	p.RawPath = ""
	return p.String(), true
}

// CheckMirrorURL validates a mirror given on the command line or in
// MirrorEnv: it must be an http(s) URL (any path: mirrors may be proxies).
func CheckMirrorURL(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.RawQuery != "" || p.Fragment != "" {
		return "", fmt.Errorf("mirror %q is not an http(s) URL like http://deb.debian.org/debian", u)
	}
	return strings.TrimRight(p.String(), "/"), nil
}

// aptSourceFiles lists apt's source files under root in the order apt
// reads them: etc/apt/sources.list, then etc/apt/sources.list.d/*.list and
// *.sources sorted by name.
func aptSourceFiles(root string) ([]string, error) {
	var files []string
	main := filepath.Join(root, "etc/apt/sources.list")
	if _, err := os.Stat(main); err == nil {
		files = append(files, main)
	}
	dir := filepath.Join(root, "etc/apt/sources.list.d")
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("apt sources: %w", err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() || e.Type()&fs.ModeSymlink != 0 {
			if strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources") {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	for _, n := range names {
		files = append(files, filepath.Join(dir, n))
	}
	return files, nil
}

// DiscoverMirror finds the Debian mirror configured in the apt sources
// below aptRoot ("/" on a real system): the first enabled "deb" entry with
// an http(s) URI whose path ends in /debian. If none qualifies the error
// names the files read and the fix.
func DiscoverMirror(aptRoot string) (mirror, origin string, err error) {
	if aptRoot == "" {
		aptRoot = "/"
	}
	files, err := aptSourceFiles(aptRoot)
	if err != nil {
		return "", "", err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", "", fmt.Errorf("apt sources: %w", err)
		}
		var srcs []AptSource
		if strings.HasSuffix(f, ".sources") {
			srcs, err = ParseDeb822Sources(f, data)
		} else {
			srcs, err = ParseSourcesList(f, data)
		}
		if err != nil {
			return "", "", fmt.Errorf("apt sources: %w", err)
		}
		for _, s := range srcs {
			if !s.Enabled || !hasType(s.Types, "deb") {
				continue
			}
			if u, ok := debianMirrorURI(s.URI); ok {
				return u, s.Origin, nil
			}
		}
	}
	read := "none found"
	if len(files) > 0 {
		read = strings.Join(files, ", ")
	}
	return "", "", fmt.Errorf("no Debian mirror (an enabled deb entry with an http(s) URI ending in /debian) in the apt sources under %s (files read: %s); pass --mirror http://deb.debian.org/debian or set %s",
		aptRoot, read, MirrorEnv)
}

func hasType(types []string, t string) bool {
	for _, x := range types {
		if x == t {
			return true
		}
	}
	return false
}

// ResolveMirror returns the mirror to download from: explicit (the
// --mirror flag) if set, else $CHRYSALIS_DEBIAN_MIRROR, else the apt
// sources under aptRoot.
func ResolveMirror(explicit, aptRoot string) (string, error) {
	if explicit != "" {
		return CheckMirrorURL(explicit)
	}
	if env := os.Getenv(MirrorEnv); env != "" {
		u, err := CheckMirrorURL(env)
		if err != nil {
			return "", fmt.Errorf("%s: %w", MirrorEnv, err)
		}
		return u, nil
	}
	u, _, err := DiscoverMirror(aptRoot)
	return u, err
}
