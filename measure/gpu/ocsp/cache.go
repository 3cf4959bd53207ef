package ocsp

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// DefaultCacheTTL bounds how long a cached response is reused when
// Cache.TTL is zero.
const DefaultCacheTTL = time.Hour

// Cache keeps verified responses in memory, keyed by the issuer key hash
// and serial number of the CertID (and the pinned root the response was
// verified against). An entry is reused while now < min(NextUpdate,
// ThisUpdate+TTL); a response without NextUpdate lives for TTL.
//
// Only responses that verified completely and echoed the nonce are
// cached. A reused response is not re-asked with a fresh nonce: like
// NVIDIA's cached OCSP client, the nonce proved freshness when the
// response was fetched, and the Result says Cached: true with
// NonceMatched as it was then (always true). Policy Require therefore
// accepts a cached "good" until the entry expires; callers that need a
// fresh round trip per attestation use no Cache.
//
// A Cache is safe for concurrent use; two concurrent misses for the same
// certificate both query the responder. The zero value is ready to use.
type Cache struct {
	TTL time.Duration // DefaultCacheTTL when zero

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
}

// NewCache returns an empty Cache with the given TTL.
func NewCache(ttl time.Duration) *Cache { return &Cache{TTL: ttl} }

type cacheKey struct {
	issuerKeyHash string
	serial        string
	root          [sha256.Size]byte
}

type cacheEntry struct {
	r     Result
	until time.Time
}

func newCacheKey(id CertID, root *x509.Certificate) cacheKey {
	return cacheKey{
		issuerKeyHash: string(id.IssuerKeyHash),
		serial:        id.SerialNumber.String(),
		root:          sha256.Sum256(root.Raw),
	}
}

// Len returns the number of entries, expired ones included until they are
// next looked up.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *Cache) get(k cacheKey, now time.Time) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return Result{}, false
	}
	if !now.Before(e.until) {
		delete(c.entries, k)
		return Result{}, false
	}
	return e.r, true
}

func (c *Cache) put(k cacheKey, r Result) {
	if r.Err != nil || !r.NonceMatched || r.ThisUpdate.IsZero() {
		return
	}
	switch r.Status {
	case StatusGood, StatusRevoked, StatusUnknown:
	default:
		return
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	until := r.ThisUpdate.Add(ttl)
	if !r.NextUpdate.IsZero() && r.NextUpdate.Before(until) {
		until = r.NextUpdate
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[cacheKey]cacheEntry)
	}
	c.entries[k] = cacheEntry{r: r, until: until}
}
