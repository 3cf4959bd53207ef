package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// DefaultCacheDir is where downloaded .debs are kept:
// $XDG_CACHE_HOME/chrysalis/debs, else $HOME/.cache/chrysalis/debs.
func DefaultCacheDir() (string, error) {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "chrysalis", "debs"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("no download cache: neither XDG_CACHE_HOME nor HOME is set; pass --cache DIR")
	}
	return filepath.Join(home, ".cache", "chrysalis", "debs"), nil
}

// Fetcher downloads pinned packages from a Debian mirror into a
// content-addressed cache. Every use of a cache entry checks its size and
// SHA-256, so the cache needs no trust and can be shared between users.
type Fetcher struct {
	// Mirror is the archive root, e.g. http://deb.debian.org/debian.
	Mirror string
	// FindMirror, if set, is called on the first cache miss when Mirror
	// is empty (so a fully cached build needs no mirror).
	FindMirror func() (string, error)
	// CacheDir holds <sha256>.deb files.
	CacheDir string
	// Client is the HTTP client; nil means one with connect, TLS and
	// response-header timeouts (the body may take as long as it takes,
	// bounded by the context).
	Client *http.Client
	// Attempts is how often a download is tried on network errors and
	// 5xx answers (not on a checksum mismatch); 0 means 3.
	Attempts int

	// Hits, Misses and Downloaded count cache use since the Fetcher was
	// made.
	Hits, Misses int
	Downloaded   int64
}

var defaultClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          4,
	},
}

// CachePath is where the cache keeps in.
func (f *Fetcher) CachePath(in Input) string {
	return filepath.Join(f.CacheDir, in.SHA256+".deb")
}

// Fetch returns the verified contents of in, downloading it on a cache
// miss. The bytes returned are the bytes that were hashed, so nothing can
// change them between the check and the use. A cache entry with the wrong
// size or hash is deleted and downloaded again.
func (f *Fetcher) Fetch(ctx context.Context, in Input) ([]byte, error) {
	if !sha256RE.MatchString(in.SHA256) {
		return nil, fmt.Errorf("%s: sha256 %q is not 64 lowercase hex digits", in.Package, in.SHA256)
	}
	p := f.CachePath(in)
	data, err := readVerified(p, in)
	switch {
	case err == nil:
		f.Hits++
		return data, nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		// Corrupt or truncated: drop it and fetch a good copy.
		if rmErr := os.Remove(p); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: cache entry %s is bad (%v) and cannot be removed: %w", in.Package, p, err, rmErr)
		}
	}
	f.Misses++
	if f.Mirror == "" && f.FindMirror != nil {
		m, err := f.FindMirror()
		if err != nil {
			return nil, fmt.Errorf("%s is not in the download cache %s and %w", in.Package, f.CacheDir, err)
		}
		f.Mirror = m
	}
	if f.Mirror == "" {
		return nil, fmt.Errorf("%s: not in the download cache %s and no mirror is set", in.Package, f.CacheDir)
	}
	if err := os.MkdirAll(f.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("download cache: %w", err)
	}
	attempts := f.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(i) * time.Second):
			}
		}
		var retry bool
		retry, err = f.download(ctx, in, p)
		if err == nil || !retry || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return readVerified(p, in)
}

// download fetches in into dst through a temporary file in the cache dir.
// retry says whether the failure may be transient.
func (f *Fetcher) download(ctx context.Context, in Input, dst string) (retry bool, err error) {
	u, err := url.JoinPath(f.Mirror, in.Filename)
	if err != nil {
		return false, fmt.Errorf("%s: mirror %q: %w", in.Package, f.Mirror, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Errorf("%s: %w", in.Package, err)
	}
	client := f.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return true, fmt.Errorf("%s: download: %w", in.Package, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode >= 500, fmt.Errorf("%s: download %s: %s", in.Package, u, resp.Status)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != in.Size {
		return false, fmt.Errorf("%s: %s has %d bytes, the lock says %d", in.Package, u, resp.ContentLength, in.Size)
	}
	tmp, err := os.CreateTemp(f.CacheDir, ".download-*.part")
	if err != nil {
		return false, fmt.Errorf("download cache: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, in.Size+1))
	if err != nil {
		return true, fmt.Errorf("%s: download %s: %w", in.Package, u, err)
	}
	f.Downloaded += n
	if n != in.Size {
		return n < in.Size, fmt.Errorf("%s: downloaded %d bytes from %s, the lock says %d", in.Package, n, u, in.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != in.SHA256 {
		return false, fmt.Errorf("%s: sha256 mismatch for %s: expected %s, got %s", in.Package, u, in.SHA256, got)
	}
	// The cache is content-addressed and may be shared with other users.
	if err = tmp.Chmod(0o644); err != nil {
		return false, fmt.Errorf("download cache: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return false, fmt.Errorf("download cache: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return false, fmt.Errorf("download cache: %w", err)
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return false, fmt.Errorf("download cache: %w", err)
	}
	return false, nil
}

// readVerified reads the file at p and checks in's size and SHA-256 on
// the bytes it returns.
func readVerified(p string, in Input) ([]byte, error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() != in.Size {
		return nil, fmt.Errorf("%s: %s has %d bytes, the lock says %d", in.Package, p, st.Size(), in.Size)
	}
	data := make([]byte, in.Size)
	if _, err := io.ReadFull(fh, data); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", in.Package, p, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != in.SHA256 {
		return nil, fmt.Errorf("%s: sha256 mismatch for %s: expected %s, got %s", in.Package, p, in.SHA256, got)
	}
	return data, nil
}
