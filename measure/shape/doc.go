// Package shape declares VM shapes: the typed description of a guest
// launch (vCPUs, memory, GPU/NIC counts, the ordered disk slots, and the
// host QEMU and OVMF profiles) that determines MRTD and RTMR0-2 together
// with the release files.
//
// One VMShape value feeds both the measurement precompute (measure) and the
// QEMU command line (host/qemu), so the measured and the launched VM cannot
// disagree (research/measure.md §2.7, research/peers.md §8.1). Host-chosen
// details that do not enter the measurement, or that the shape cannot know
// (GPU PCI addresses, disk image paths, ports, vsock CID), are launch
// parameters.
//
// Named shapes and profiles live in the versioned data file shapes.json,
// embedded in the binary. Users may declare their own shapes in a file of
// the same format (Load); it may name the built-in profiles. Files are
// decoded strictly: unknown or missing fields, duplicate keys and an
// unknown version are errors.
//
// VMShape.Canonical is the canonical JSON (measure/canon) of a shape with
// its profiles inline, and VMShape.Digest its SHA-256, so manifests can name
// a shape unambiguously.
package shape
