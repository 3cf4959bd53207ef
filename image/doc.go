// Package image is the reproducible release builder. It owns:
//
//   - image/inputs.lock: the pinned Debian packages (kernel, its modules
//     and config, TDVF-capable OVMF) by pool path, size and SHA-256, and
//     the Go toolchain version (Lock, ParseLock);
//   - finding the Debian mirror in the build machine's apt sources
//     (DiscoverMirror, ResolveMirror), downloading into a content-addressed
//     cache that is re-verified on every use (Fetcher);
//   - reading .deb files in Go: ar members, data.tar.{xz,zst,gz}, regular
//     files only, no path escapes (ParseAr, ExtractDeb);
//   - kernel modules: .modinfo depends= resolution into a deterministic
//     load order (ModuleSet);
//   - the u-root initramfs: u-root's init (busybox) plus the agent as uinit,
//     no shell, modules in lib/modules with lib/modules/load.order;
//   - the release directory (Build, Release, LoadRelease): OVMF.fd,
//     vmlinuz, initrd, cmdline, release.json and SHA256SUMS, written
//     atomically and byte-identical for the same source, lock and
//     toolchain, whoever builds it where and when.
//
// The kernel command line (Cmdline) is fixed here because it is measured
// into RTMR2. ci/repro.sh checks reproducibility across users, paths,
// time zones, umasks and caches.
package image
