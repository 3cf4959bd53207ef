//go:build !(linux && cgo)

package gpu

// NewNVML fails with ErrNoNVML: this binary was built without cgo.
func NewNVML(string) (Collector, error) { return nil, ErrNoNVML }
