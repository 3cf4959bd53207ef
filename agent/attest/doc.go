// Package attest obtains hardware evidence in the guest: it detects the
// TEE and produces TDX quotes over a given REPORTDATA through the kernel's
// configfs-tsm report interface. Where there is no TEE it says so with
// the insecure-dev issuer, which produces no quote at all.
package attest
