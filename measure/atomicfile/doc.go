// Package atomicfile creates files so that readers see either the old
// content or the complete new content, never a half-written file: the
// data goes to a temporary file in the same directory, which is synced,
// given its mode and then renamed over the destination (or, for files that
// must never be overwritten, hard-linked to it). On any error the
// temporary file is removed and the destination is untouched. Every
// artefact Chrysalis writes for a user (config disks, manifests, keys)
// goes through it.
package atomicfile
