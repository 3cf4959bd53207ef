package image

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// mirror serves files by path and counts requests.
type mirror struct {
	files    map[string][]byte
	requests atomic.Int32
	block    chan struct{} // if set, handlers wait on it
}

func (m *mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.requests.Add(1)
	if m.block != nil {
		select {
		case <-m.block:
		case <-r.Context().Done():
			return
		}
	}
	data, ok := m.files[strings.TrimPrefix(r.URL.Path, "/debian/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write(data)
}

func testInput(data []byte) Input {
	return Input{
		Role: RoleFirmware, Package: "ovmf", Version: "1.0-1", Arch: "all",
		Filename: "pool/main/e/edk2/ovmf_1.0-1_all.deb",
		Size:     int64(len(data)), SHA256: sha256Hex(data),
	}
}

func newFetcher(t *testing.T, m *mirror) (*Fetcher, *httptest.Server) {
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return &Fetcher{Mirror: srv.URL + "/debian", CacheDir: filepath.Join(t.TempDir(), "cache"), Client: srv.Client()}, srv
}

func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover temporary file %s", e.Name())
		}
	}
}

func TestFetchMissThenHit(t *testing.T) {
	old := setUmask(0o077)
	defer setUmask(old)
	deb := []byte("the deb contents")
	in := testInput(deb)
	m := &mirror{files: map[string][]byte{in.Filename: deb}}
	f, _ := newFetcher(t, m)

	got, err := f.Fetch(context.Background(), in)
	if err != nil || !bytes.Equal(got, deb) {
		t.Fatalf("miss: %q, %v", got, err)
	}
	if f.Misses != 1 || f.Hits != 0 || f.Downloaded != int64(len(deb)) {
		t.Errorf("stats after miss: %+v", f)
	}
	st, err := os.Stat(f.CachePath(in))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("cache entry mode %v, want 0644 (shared cache)", st.Mode().Perm())
	}
	got, err = f.Fetch(context.Background(), in)
	if err != nil || !bytes.Equal(got, deb) {
		t.Fatalf("hit: %q, %v", got, err)
	}
	if f.Hits != 1 || m.requests.Load() != 1 {
		t.Errorf("hit went to the mirror: hits %d, requests %d", f.Hits, m.requests.Load())
	}
	noTempFiles(t, f.CacheDir)
}

func TestFetchCorruptCacheIsReplaced(t *testing.T) {
	deb := []byte("good bytes")
	in := testInput(deb)
	for name, corrupt := range map[string][]byte{
		"same size":  []byte("evil bytes"),
		"truncated":  []byte("good"),
		"empty":      {},
		"longer one": []byte("good bytes, and more"),
	} {
		t.Run(name, func(t *testing.T) {
			m := &mirror{files: map[string][]byte{in.Filename: deb}}
			f, _ := newFetcher(t, m)
			must(t, os.MkdirAll(f.CacheDir, 0o755))
			must(t, os.WriteFile(f.CachePath(in), corrupt, 0o644))
			got, err := f.Fetch(context.Background(), in)
			if err != nil || !bytes.Equal(got, deb) {
				t.Fatalf("got %q, %v", got, err)
			}
			if m.requests.Load() != 1 || f.Misses != 1 {
				t.Errorf("requests %d, misses %d", m.requests.Load(), f.Misses)
			}
			onDisk, _ := os.ReadFile(f.CachePath(in))
			if !bytes.Equal(onDisk, deb) {
				t.Errorf("cache still holds %q", onDisk)
			}
		})
	}
}

func TestFetchErrors(t *testing.T) {
	deb := []byte("the real package")
	in := testInput(deb)
	for _, tc := range []struct {
		name  string
		serve []byte // nil: 404
		want  string
	}{
		{"sha mismatch", []byte("the fake package"), "ovmf: sha256 mismatch for http://"},
		{"short", []byte("the real"), "the lock says 16"},
		{"long", []byte("the real package!"), "the lock says 16"},
		{"not found", nil, "404 Not Found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &mirror{files: map[string][]byte{}}
			if tc.serve != nil {
				m.files[in.Filename] = tc.serve
			}
			f, _ := newFetcher(t, m)
			_, err := f.Fetch(context.Background(), in)
			checkErr(t, err, tc.want)
			if tc.name == "sha mismatch" {
				for _, s := range []string{"expected " + in.SHA256, "got " + sha256Hex(tc.serve)} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %q", err, s)
					}
				}
			}
			if _, err := os.Stat(f.CachePath(in)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a bad download was cached: %v", err)
			}
			noTempFiles(t, f.CacheDir)
		})
	}
}

func TestFetchNoMirror(t *testing.T) {
	in := testInput([]byte("x"))
	f := &Fetcher{CacheDir: t.TempDir(), FindMirror: func() (string, error) {
		return "", errors.New("no Debian mirror in the apt sources")
	}}
	_, err := f.Fetch(context.Background(), in)
	checkErr(t, err, "ovmf is not in the download cache")
	checkErr(t, err, "no Debian mirror in the apt sources")
}

func TestFetchCancel(t *testing.T) {
	deb := []byte("slow")
	in := testInput(deb)
	m := &mirror{files: map[string][]byte{in.Filename: deb}, block: make(chan struct{})}
	defer close(m.block)
	f, _ := newFetcher(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.Fetch(ctx, in)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("cancellation took %v", time.Since(start))
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/x/cache")
	if d, _ := DefaultCacheDir(); d != "/x/cache/chrysalis/debs" {
		t.Errorf("XDG: %s", d)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d, _ := DefaultCacheDir(); d != "/home/u/.cache/chrysalis/debs" {
		t.Errorf("HOME: %s", d)
	}
}
