//go:build !(linux && cgo)

package gpu

// NVML is unavailable in a binary built without cgo.
type NVML struct{}

// NewNVML fails with ErrNoNVML: this binary was built without cgo.
func NewNVML(string) (*NVML, error) { return nil, ErrNoNVML }
