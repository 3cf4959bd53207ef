package rim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
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

const id550 = "NV_GPU_DRIVER_GH100_550.144.03"

func dirWith(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for id, path := range files {
		if err := os.WriteFile(filepath.Join(dir, id+".xml"), read(t, path), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestValidID(t *testing.T) {
	for _, id := range []string{id550, "NV_GPU_VBIOS_1010_0200_882_96005E0001", "NV_GPU_CC_DRIVER_GB100_570.00"} {
		if err := ValidID(id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	for _, id := range []string{"", "NV_GPU_", "../NV_GPU_X", "NV_GPU_../../etc/passwd", "NV_GPU_A/B", "nv_gpu_driver_x", "NV_GPU_X\x00", "NV_GPU_X\n", "X_NV_GPU_A", "NV_GPU_" + strings.Repeat("A", 200)} {
		if err := ValidID(id); err == nil || !strings.Contains(err.Error(), "invalid RIM id") {
			t.Errorf("%q: err = %v", id, err)
		}
	}
}

func TestDirStore(t *testing.T) {
	ctx := context.Background()
	s := DirStore{Dir: dirWith(t, map[string]string{id550: driver550})}
	got, err := s.Get(ctx, id550)
	if err != nil || !bytes.Equal(got, read(t, driver550)) {
		t.Fatalf("Get = %d bytes, %v", len(got), err)
	}
	_, err = s.Get(ctx, "NV_GPU_DRIVER_GH100_545.00")
	if err == nil || err.Error() != "RIM not found: NV_GPU_DRIVER_GH100_545.00" || !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: err = %v", err)
	}
	if _, err := s.Get(ctx, "../"+id550); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("path trick: err = %v", err)
	}
	// Put is atomic and leaves only <id>.xml behind.
	w := DirStore{Dir: t.TempDir()}
	if err := w.Put(id550, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.Put(id550, read(t, driver550)); err != nil {
		t.Fatal(err)
	}
	if es, _ := os.ReadDir(w.Dir); len(es) != 1 || es[0].Name() != id550+".xml" {
		t.Fatalf("cache dir holds %v", es)
	}
	if err := w.Put("NV_GPU_A/../../B", nil); err == nil {
		t.Fatal("Put accepted a path")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(cancelled, id550); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v", err)
	}
}

// rimServer serves RIMs like rim.attestation.nvidia.com from a map of id
// to response mutator over the real fixtures.
type rimServer struct {
	*httptest.Server
	hits  atomic.Int32
	token string
}

func newRIMServer(t *testing.T, rims map[string]string, mutate func(id string, r map[string]any)) *rimServer {
	s := &rimServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.token = r.Header.Get("Authorization")
		id, ok := strings.CutPrefix(r.URL.Path, "/v1/rim/")
		path, known := rims[id]
		if !ok || !known || r.Method != http.MethodGet {
			http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
			return
		}
		data := read(t, path)
		sum := sha256.Sum256(data)
		resp := map[string]any{
			"id": id, "rim": base64.StdEncoding.EncodeToString(data), "sha256": hex.EncodeToString(sum[:]),
			"rim_format": "xml", "request_id": "r1", "last_updated": "2025-01-01T00:00:00Z",
		}
		if mutate != nil {
			mutate(id, resp)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestHTTPStoreFetchesVerifiesCaches(t *testing.T) {
	ctx := context.Background()
	srv := newRIMServer(t, map[string]string{id550: driver550}, nil)
	cache := &DirStore{Dir: t.TempDir()}
	s := &HTTPStore{BaseURL: srv.URL, Client: srv.Client(), Token: "ngc-key", Cache: cache, Root: corimRoot(t), At: at}
	got, err := s.Get(ctx, id550)
	if err != nil || !bytes.Equal(got, read(t, driver550)) {
		t.Fatalf("Get = %d bytes, %v", len(got), err)
	}
	if srv.token != "Bearer ngc-key" {
		t.Errorf("Authorization %q", srv.token)
	}
	if c, err := cache.Get(ctx, id550); err != nil || !bytes.Equal(c, got) {
		t.Fatalf("cache holds %d bytes, %v", len(c), err)
	}
	// A cache hit needs no network.
	srv.Close()
	if again, err := s.Get(ctx, id550); err != nil || !bytes.Equal(again, got) || srv.hits.Load() != 1 {
		t.Fatalf("cached Get: %v, %d requests", err, srv.hits.Load())
	}
}

func TestHTTPStoreRefuses(t *testing.T) {
	ctx := context.Background()
	root := corimRoot(t)
	for _, tc := range []struct {
		name   string
		rims   map[string]string
		mutate func(id string, r map[string]any)
		id     string
		want   string
		root   bool
	}{
		{"not found", nil, nil, id550, "RIM not found: " + id550, true},
		{"bad signature", map[string]string{id550: badSig}, nil, id550, "rim " + id550 + ": signature value does not verify", true},
		{"bad chain", map[string]string{id550: badChain}, nil, id550, "rim " + id550 + ": certificate chain", true},
		{"bad digest", map[string]string{id550: badDigest}, nil, id550, "rim " + id550 + ": digest does not match", true},
		{"other id", map[string]string{id550: driver550}, func(_ string, r map[string]any) { r["id"] = "NV_GPU_DRIVER_GH100_545.00" }, id550, `response is for id "NV_GPU_DRIVER_GH100_545.00"`, true},
		{"sha256 mismatch", map[string]string{id550: driver550}, func(_ string, r map[string]any) { r["sha256"] = strings.Repeat("00", 32) }, id550, "does not match the rim", true},
		{"sha256 not hex", map[string]string{id550: driver550}, func(_ string, r map[string]any) { r["sha256"] = "xyz" }, id550, "not a hex SHA-256", true},
		{"rim not base64", map[string]string{id550: driver550}, func(_ string, r map[string]any) { r["rim"] = "!!" }, id550, "not base64", true},
		{"no rim", map[string]string{id550: driver550}, func(_ string, r map[string]any) { delete(r, "rim") }, id550, "has no rim", true},
		{"no root", map[string]string{id550: driver550}, nil, id550, "no CoRIM root", false},
		{"invalid id", nil, nil, "NV_GPU_../x", "invalid RIM id", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRIMServer(t, tc.rims, tc.mutate)
			cache := &DirStore{Dir: t.TempDir()}
			s := &HTTPStore{BaseURL: srv.URL, Client: srv.Client(), Cache: cache, At: at}
			if tc.root {
				s.Root = root
			}
			_, err := s.Get(ctx, tc.id)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if es, _ := os.ReadDir(cache.Dir); len(es) != 0 {
				t.Fatalf("refused RIM left %v in the cache", es)
			}
		})
	}
	// The verification time matters: the same RIM at a time outside the
	// signer's validity is refused and not cached.
	srv := newRIMServer(t, map[string]string{"NV_GPU_DRIVER_GH100_545.00": driver545}, nil)
	cache := &DirStore{Dir: t.TempDir()}
	s := &HTTPStore{BaseURL: srv.URL, Client: srv.Client(), Cache: cache, Root: root, At: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := s.Get(ctx, "NV_GPU_DRIVER_GH100_545.00"); err == nil || !strings.Contains(err.Error(), "certificate chain") {
		t.Fatalf("expired: err = %v", err)
	}
	if es, _ := os.ReadDir(cache.Dir); len(es) != 0 {
		t.Fatalf("expired RIM cached: %v", es)
	}
}

func TestHTTPStoreServerError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	s := &HTTPStore{BaseURL: srv.URL, Client: srv.Client(), Root: corimRoot(t), At: at}
	_, err := s.Get(context.Background(), id550)
	if err == nil || !strings.Contains(err.Error(), "503") || errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func TestChain(t *testing.T) {
	ctx := context.Background()
	srv := newRIMServer(t, map[string]string{id550: driver550, "NV_GPU_DRIVER_GH100_545.00": driver545}, nil)
	bundled := DirStore{Dir: dirWith(t, map[string]string{"NV_GPU_VBIOS_1010_0200_882_96005E0001": vbiosProd})}
	online := &HTTPStore{BaseURL: srv.URL, Client: srv.Client(), Root: corimRoot(t), At: at}
	c := Chain(bundled, online)
	if b, err := c.Get(ctx, "NV_GPU_VBIOS_1010_0200_882_96005E0001"); err != nil || !bytes.Equal(b, read(t, vbiosProd)) || srv.hits.Load() != 0 {
		t.Fatalf("bundled: %v, %d requests", err, srv.hits.Load())
	}
	if b, err := c.Get(ctx, id550); err != nil || !bytes.Equal(b, read(t, driver550)) || srv.hits.Load() != 1 {
		t.Fatalf("online: %v, %d requests", err, srv.hits.Load())
	}
	_, err := c.Get(ctx, "NV_GPU_VBIOS_G520_0280_895_9600A50003")
	if err == nil || err.Error() != "RIM not found: NV_GPU_VBIOS_G520_0280_895_9600A50003" || !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: err = %v", err)
	}
	// A store failing for another reason is reported, not hidden as "not found".
	broken := &HTTPStore{BaseURL: srv.URL, Client: srv.Client(), At: at} // no root
	_, err = Chain(bundled, broken).Get(ctx, id550)
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "1 of 2 stores do not have it") || !strings.Contains(err.Error(), "no CoRIM root") {
		t.Fatalf("broken: err = %v", err)
	}
	if _, err := Chain().Get(ctx, id550); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty chain: err = %v", err)
	}
}
