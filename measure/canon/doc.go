// Package canon owns the canonical JSON encoding that every hashed or
// signed Chrysalis object uses: object keys sorted by their UTF-8 bytes, no
// insignificant white space, no HTML escaping, integers only (no
// fractions or exponents), and no duplicate keys. Two parties that agree
// on a value agree on its canonical bytes, and so on its digest.
package canon
