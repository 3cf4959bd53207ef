package image

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Fuzz targets for the parsers that read untrusted or hand-edited input.
// Run one with e.g. `go test -run '^$' -fuzz FuzzParseAr ./image`; the
// seeds below run as ordinary tests. The lock seeds are whole lock files,
// so give FuzzParseLock -fuzzminimizetime=2s or it spends its first
// minute minimising them.

func FuzzParseAr(f *testing.F) {
	f.Add(makeAr(arFile{"debian-binary", []byte("2.0\n")}, arFile{"control.tar.gz", []byte("c")}, arFile{"data.tar.xz", []byte("dd")}))
	f.Add([]byte(arMagic))
	f.Add([]byte(arMagic + "debian-binary   0           0     0     100644  4         `\n2.0\n"))
	f.Add([]byte(arMagic + "x/              0           0     0     100644  99999999999`\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := ParseAr(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.Offset < 0 || m.Size < 0 || m.Offset+m.Size > int64(len(data)) {
				t.Fatalf("member %+v outside the %d-byte archive", m, len(data))
			}
		}
		// The .deb layer on top must not panic either.
		ExtractDeb("fuzz", data, "usr/*")
	})
}

func FuzzParseLock(f *testing.F) {
	for _, name := range []string{"good.lock", "duplicate-key.lock", "unknown-input-field.lock"} {
		b, err := os.ReadFile(filepath.Join("testdata", "lock", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"format":1,"go":"go1.26.8","inputs":[]}`))
	f.Add([]byte(`[[[[[[[[[[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLock(data)
		if err != nil {
			return
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("ParseLock accepted a lock Validate rejects: %v", err)
		}
		for _, r := range Roles {
			if _, ok := l.Input(r); !ok {
				t.Fatalf("accepted lock lacks role %s", r)
			}
		}
	})
}

func FuzzParseSources(f *testing.F) {
	for _, p := range []string{
		"apt/deb822/etc/apt/sources.list.d/debian.sources",
		"apt/disabled/etc/apt/sources.list.d/debian.sources",
		"apt/oneline/etc/apt/sources.list",
		"apt/security-only/etc/apt/sources.list",
	} {
		b, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("deb [ arch=amd64 ] http://a/debian x\n Types: deb\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, parse := range []func(string, []byte) ([]AptSource, error){ParseSourcesList, ParseDeb822Sources} {
			srcs, err := parse("fuzz", data)
			if err != nil {
				continue
			}
			for _, s := range srcs {
				if s.URI == "" || len(s.Types) == 0 {
					t.Fatalf("empty source %+v", s)
				}
				if u, ok := debianMirrorURI(s.URI); ok {
					if _, err := CheckMirrorURL(u); err != nil {
						t.Fatalf("discovered mirror %q fails CheckMirrorURL: %v", u, err)
					}
				}
			}
		}
	})
}
