package image

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDiscoverMirror(t *testing.T) {
	for _, tc := range []struct {
		root    string
		want    string
		origin  string // suffix of the origin
		wantErr string
	}{
		{root: "deb822", want: "http://deb.debian.org/debian", origin: "debian.sources:2"},
		{root: "oneline", want: "https://mirror.example.org/debian", origin: "sources.list:3"},
		{root: "disabled", want: "http://second.example.org/debian", origin: "debian.sources:12"},
		{root: "mixed", want: "http://b.example.org/debian", origin: "b.sources:1"},
		{root: "none", wantErr: "vendor.sources); pass --mirror http://deb.debian.org/debian or set CHRYSALIS_DEBIAN_MIRROR"},
		{root: "security-only", wantErr: "files read: testdata/apt/security-only/etc/apt/sources.list)"},
		{root: "empty", wantErr: "(files read: none found)"},
		{root: "malformed", wantErr: `sources.list:1: want "deb URI SUITE [COMPONENT...]"`},
	} {
		t.Run(tc.root, func(t *testing.T) {
			got, origin, err := DiscoverMirror(filepath.Join("testdata", "apt", tc.root))
			checkErr(t, err, tc.wantErr)
			if got != tc.want {
				t.Errorf("mirror = %q, want %q", got, tc.want)
			}
			if !strings.HasSuffix(origin, tc.origin) {
				t.Errorf("origin = %q, want suffix %q", origin, tc.origin)
			}
		})
	}
}

func TestResolveMirrorOverride(t *testing.T) {
	none := filepath.Join("testdata", "apt", "none")
	t.Setenv(MirrorEnv, "")
	if got, err := ResolveMirror("http://flag.example/debian/", none); err != nil || got != "http://flag.example/debian" {
		t.Fatalf("flag: %q, %v", got, err)
	}
	t.Setenv(MirrorEnv, "https://env.example/debian")
	if got, err := ResolveMirror("", none); err != nil || got != "https://env.example/debian" {
		t.Fatalf("env: %q, %v", got, err)
	}
	if got, err := ResolveMirror("http://flag.example/debian", none); err != nil || got != "http://flag.example/debian" {
		t.Fatalf("flag beats env: %q, %v", got, err)
	}
	t.Setenv(MirrorEnv, "ftp://env.example/debian")
	if _, err := ResolveMirror("", none); err == nil || !strings.Contains(err.Error(), MirrorEnv) {
		t.Fatalf("bad env mirror: %v", err)
	}
	if _, err := ResolveMirror("deb.debian.org", none); err == nil {
		t.Fatal("a mirror without scheme was accepted")
	}
}

func TestParseSourcesList(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []AptSource
		wantErr  string
	}{
		{name: "plain", in: "deb http://a/debian trixie main\n",
			want: []AptSource{{Types: []string{"deb"}, URI: "http://a/debian", Enabled: true, Origin: "x:1"}}},
		{name: "options and tabs", in: "# c\n\ndeb\t[ arch=amd64 trusted=yes ]\thttp://a/debian trixie main # tail\n",
			want: []AptSource{{Types: []string{"deb"}, URI: "http://a/debian", Enabled: true, Origin: "x:3"}}},
		{name: "disabled option", in: "deb-src [enabled=no] http://a/debian trixie main\n",
			want: []AptSource{{Types: []string{"deb-src"}, URI: "http://a/debian", Enabled: false, Origin: "x:1"}}},
		{name: "unknown type", in: "rpm http://a/x y\n", wantErr: `x:1: unknown entry type "rpm"`},
		{name: "unclosed options", in: "deb [arch=amd64 http://a/debian trixie\n", wantErr: "x:1: options start with ["},
		{name: "no suite", in: "deb http://a/debian\n", wantErr: "x:1: want"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSourcesList("x", []byte(tc.in))
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseDeb822Sources(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []AptSource
		wantErr  string
	}{
		{name: "two uris and continuation",
			in: "Types: deb\nURIs: http://a/debian\n  http://b/debian\nSuites: x\n",
			want: []AptSource{
				{Types: []string{"deb"}, URI: "http://a/debian", Enabled: true, Origin: "x:1"},
				{Types: []string{"deb"}, URI: "http://b/debian", Enabled: true, Origin: "x:1"},
			}},
		{name: "case-insensitive fields, comments, two stanzas",
			in: "# head\ntypes: deb\nuris: http://a/debian\nenabled: No\n\n\n# mid\nTypes: deb deb-src\nURIs: http://c/debian\n",
			want: []AptSource{
				{Types: []string{"deb"}, URI: "http://a/debian", Enabled: false, Origin: "x:2"},
				{Types: []string{"deb", "deb-src"}, URI: "http://c/debian", Enabled: true, Origin: "x:8"},
			}},
		{name: "no uris", in: "Types: deb\nSuites: x\n", wantErr: "x:1: stanza needs both Types and URIs"},
		{name: "bad enabled", in: "Types: deb\nURIs: http://a/debian\nEnabled: maybe\n", wantErr: "Enabled must be yes or no"},
		{name: "continuation first", in: " http://a/debian\n", wantErr: "x:1: continuation line without a field"},
		{name: "not a field", in: "Types deb\n", wantErr: `x:1: want "Field: value"`},
		{name: "repeated field", in: "Types: deb\nTypes: deb-src\nURIs: http://a/debian\n", wantErr: "field Types repeated"},
		{name: "bad type", in: "Types: rpm\nURIs: http://a/debian\n", wantErr: `unknown type "rpm"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDeb822Sources("x", []byte(tc.in))
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDebianMirrorURI(t *testing.T) {
	for in, want := range map[string]string{
		"http://deb.debian.org/debian":               "http://deb.debian.org/debian",
		"http://deb.debian.org/debian/":              "http://deb.debian.org/debian",
		"https://m.example/mirrors/debian//":         "https://m.example/mirrors/debian",
		"http://security.debian.org/debian-security": "",
		"http://deb.debian.org/debian-ports":         "",
		"ftp://deb.debian.org/debian":                "",
		"file:///srv/debian":                         "",
		"cdrom:/media/cdrom/":                        "",
		"http://user:pw@deb.debian.org/debian":       "",
		"mirror+file:/etc/apt/mirrors.txt":           "",
	} {
		got, ok := debianMirrorURI(in)
		if got != want || ok != (want != "") {
			t.Errorf("debianMirrorURI(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
