package rim

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
)

// ErrNotFound is wrapped by every "RIM not found: <id>" error.
var ErrNotFound = errors.New("RIM not found")

func notFound(id string) error { return fmt.Errorf("%w: %s", ErrNotFound, id) }

// Store finds a RIM's XML by its id (NV_GPU_DRIVER_GH100_<driver version>,
// NV_GPU_VBIOS_<project>_<sku>_<chip>_<version>). What a Store returns is
// not trusted: pass it to VerifyID.
type Store interface {
	Get(ctx context.Context, id string) ([]byte, error)
}

var idPattern = regexp.MustCompile(`^NV_GPU_[A-Z0-9_.]+$`)

// maxIDLen bounds ids; NVIDIA's are about 40 characters.
const maxIDLen = 128

// ValidID checks that id has the shape of an NVIDIA RIM id, which also
// makes it a safe file name (no separators, not "." or "..").
func ValidID(id string) error {
	if len(id) > maxIDLen || !idPattern.MatchString(id) {
		return fmt.Errorf("rim: invalid RIM id %q (want NV_GPU_ followed by A-Z, 0-9, '_' or '.', at most %d characters)", id, maxIDLen)
	}
	return nil
}

// DirStore is a directory of RIMs named <id>.xml: the RIMs bundled in an
// image, or HTTPStore's cache.
type DirStore struct {
	Dir string
}

// Get reads <Dir>/<id>.xml. A missing file is "RIM not found: <id>".
func (s DirStore) Get(ctx context.Context, id string) ([]byte, error) {
	if err := ValidID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := filepath.Join(s.Dir, id+".xml")
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("rim %s: %w", id, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("rim %s: reading %s: %w", id, p, err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("rim %s: %s is larger than %d bytes", id, p, MaxSize)
	}
	return b, nil
}

// Put writes <Dir>/<id>.xml atomically (temporary file and rename in Dir).
func (s DirStore) Put(id string, data []byte) error {
	if err := ValidID(id); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(s.Dir, id+".xml"), data, 0o644)
}

// HTTPStore fetches RIMs from NVIDIA's RIM service
// (https://rim.attestation.nvidia.com) or a mirror with the same API:
// GET <BaseURL>/v1/rim/<id> answers JSON {"id", "rim" (base64 XML),
// "sha256", ...}. A fetched RIM is verified (VerifyID with Root at At)
// before it is cached in Cache and returned; cache hits are served
// without the network.
type HTTPStore struct {
	BaseURL string
	Client  *http.Client // nil: a client with a 10 s timeout
	Token   string       // optional NGC service key, sent as a Bearer token
	Cache   *DirStore    // optional
	Root    *x509.Certificate
	At      time.Time // zero: time.Now()
}

// maxResponse bounds the JSON answer (base64 of a MaxSize RIM and a few
// fields).
const maxResponse = 2 * MaxSize

type rimResponse struct {
	ID     string `json:"id"`
	RIM    string `json:"rim"`
	SHA256 string `json:"sha256"`
}

var defaultClient = &http.Client{Timeout: 10 * time.Second}

// Get returns the cached RIM, or fetches, verifies and caches it.
func (s *HTTPStore) Get(ctx context.Context, id string) ([]byte, error) {
	if err := ValidID(id); err != nil {
		return nil, err
	}
	if s.Cache != nil {
		b, err := s.Cache.Get(ctx, id)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	if s.Root == nil {
		return nil, fmt.Errorf("rim %s: HTTPStore has no CoRIM root to verify fetched RIMs with", id)
	}
	u, err := url.JoinPath(s.BaseURL, "v1", "rim", id)
	if err != nil {
		return nil, fmt.Errorf("rim %s: base URL %q: %w", id, s.BaseURL, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("rim %s: %w", id, err)
	}
	req.Header.Set("Accept", "application/json")
	if s.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	c := s.Client
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rim %s: fetching: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, notFound(id)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("rim %s: GET %s: %s", id, u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("rim %s: reading response: %w", id, err)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("rim %s: response larger than %d bytes", id, maxResponse)
	}
	data, err := decodeResponse(id, body)
	if err != nil {
		return nil, err
	}
	at := s.At
	if at.IsZero() {
		at = time.Now()
	}
	if _, _, err := VerifyID(id, data, s.Root, at); err != nil {
		return nil, err
	}
	if s.Cache != nil {
		if err := s.Cache.Put(id, data); err != nil {
			return nil, fmt.Errorf("rim %s: caching: %w", id, err)
		}
	}
	return data, nil
}

// decodeResponse checks the RIM service's JSON answer for id and returns
// the RIM XML.
func decodeResponse(id string, body []byte) ([]byte, error) {
	var r rimResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("rim %s: response is not JSON: %w", id, err)
	}
	if r.ID != id {
		return nil, fmt.Errorf("rim %s: response is for id %q", id, r.ID)
	}
	if r.RIM == "" {
		return nil, fmt.Errorf("rim %s: response has no rim", id)
	}
	data, err := base64.StdEncoding.DecodeString(r.RIM)
	if err != nil {
		return nil, fmt.Errorf("rim %s: response rim is not base64: %w", id, err)
	}
	if r.SHA256 != "" {
		want, err := hex.DecodeString(r.SHA256)
		if err != nil || len(want) != sha256.Size {
			return nil, fmt.Errorf("rim %s: response sha256 %q is not a hex SHA-256", id, r.SHA256)
		}
		if got := sha256.Sum256(data); !strings.EqualFold(hex.EncodeToString(got[:]), r.SHA256) {
			return nil, fmt.Errorf("rim %s: response sha256 %s does not match the rim (%x)", id, r.SHA256, got)
		}
	}
	return data, nil
}

type chain []Store

// Chain returns a Store that tries stores in order and returns the first
// RIM found. If none has it, the error is "RIM not found: <id>" when
// every store said so, else the other stores' errors (not ErrNotFound).
func Chain(stores ...Store) Store { return chain(stores) }

func (c chain) Get(ctx context.Context, id string) ([]byte, error) {
	if err := ValidID(id); err != nil {
		return nil, err
	}
	var errs []error
	absent := 0
	for _, s := range c {
		b, err := s.Get(ctx, id)
		if err == nil {
			return b, nil
		}
		if errors.Is(err, ErrNotFound) {
			absent++
		} else {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, notFound(id)
	}
	// Not ErrNotFound: a store that failed might have had it.
	return nil, fmt.Errorf("rim %s: %d of %d stores do not have it, the others failed: %w", id, absent, len(c), errors.Join(errs...))
}
