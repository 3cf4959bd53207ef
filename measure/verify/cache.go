package verify

import (
	"container/list"
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// Cache remembers successful certificate verifications, keyed by the
// SHA-256 of the certificate's DER, so that a proxy reconnecting to the
// same worker does not verify the same quote again. An entry expires at
// the earlier of the certificate's NotAfter and the verification time
// plus the TTL. Only successes are cached; a verification bound to a
// nonce is never looked up nor stored. The cache holds at most its size
// in entries, evicting the least recently used. It is safe for concurrent
// use.
//
// Use one Cache per Policy: an entry remembers the name of the policy it
// was verified under and is not served under another name, but two
// different policies sharing a name would share entries.
type Cache struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[[32]byte]*list.Element
	lru     *list.List // front: most recently used
}

type cacheEntry struct {
	key     [32]byte
	policy  string
	res     *Result
	from    time.Time // certificate NotBefore
	expires time.Time
}

// NewCache returns a cache of at most size entries (at least 1) that
// keeps each for at most ttl (positive).
func NewCache(size int, ttl time.Duration) *Cache {
	if size < 1 {
		size = 1
	}
	return &Cache{ttl: ttl, max: size, entries: map[[32]byte]*list.Element{}, lru: list.New()}
}

// Len is the number of entries (expired ones included until looked up or
// evicted).
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Certificate is Certificate with the cache: a live entry for the same
// certificate and policy name is returned as is (callers must not modify
// it); otherwise the certificate is verified and, on success, stored.
// With opts.Nonce set the cache is bypassed entirely.
func (c *Cache) Certificate(cert *x509.Certificate, pol Policy, opts Options) (*Result, error) {
	if c == nil || opts.Nonce != "" {
		return Certificate(cert, pol, opts)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	key := sha256.Sum256(cert.Raw)
	if res := c.get(key, pol.Name, now); res != nil {
		return res, nil
	}
	res, err := Certificate(cert, pol, opts)
	if err != nil {
		return nil, err
	}
	exp := now.Add(c.ttl)
	if cert.NotAfter.Before(exp) {
		exp = cert.NotAfter
	}
	c.put(&cacheEntry{key: key, policy: pol.Name, res: res, from: cert.NotBefore, expires: exp})
	return res, nil
}

func (c *Cache) get(key [32]byte, policy string, now time.Time) *Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if e.policy != policy || now.Before(e.from) || now.After(e.expires) {
		c.lru.Remove(el)
		delete(c.entries, key)
		return nil
	}
	c.lru.MoveToFront(el)
	return e.res
}

func (c *Cache) put(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.key]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.entries[e.key] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.entries, old.Value.(*cacheEntry).key)
	}
}
