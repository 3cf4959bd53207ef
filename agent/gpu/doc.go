// Package gpu collects NVIDIA GPU confidential-computing evidence inside the
// guest and drives the driver's "ready" state.
//
// Collection sits behind the narrow Collector interface. The NVML adapter
// (NewNVML, github.com/NVIDIA/go-nvml) is the only cgo code in the agent; it
// is compiled only with cgo on Linux, and a binary built without cgo gets a
// Collector constructor that fails with ErrNoNVML. Fake is a pure-Go
// stand-in for a GPU that cannot exist on a development machine or in CI:
// it serves recorded evidence and keeps a ready flag, and it is never used
// by the agent binary.
//
// Attest is the boot flow: check the CC mode, collect evidence for a nonce
// bound to the RA-TLS key, verify it with measure/gpu, and only after every
// GPU verified set the system ready state and read it back. On any failure
// the GPUs stay not ready and the caller must not serve.
package gpu
