// Package models owns model disks: deterministic read-only squashfs images
// of model directories (models/pack), their dm-verity hash trees
// (models/verity, byte-identical to veritysetup), and the catalog of
// pinned models (models/catalog). The agent opens the
// disks through device-mapper with the measured root hash; the host
// attaches them read-only.
package models
