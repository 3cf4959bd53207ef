// Package doctor is the host preflight behind `chrysalis doctor`: it
// inspects a host that is to run a Chrysalis TDX guest with passed-through
// NVIDIA GPUs and reports, check by check, what is ready and the exact
// remedy for what is not.
//
// It owns the checks and their wording: TDX enabled in KVM
// (/sys/module/kvm_intel/parameters/tdx), /dev/kvm, the QEMU version
// against the shape's QEMU profile and its tdx-guest object, the release
// (SHA256SUMS through image.LoadRelease, OVMF's TDVF metadata through
// measure/tdvf), each GPU's PCI identity, its vfio-pci binding, its IOMMU
// group and VFIO device nodes, its confidential-computing mode (which
// cannot be read without NVIDIA's gpu-admin-tools, so it is a warning
// naming the commands), available memory for the shape, /dev/vhost-vsock,
// and Intel's quote generation service with its PCCS configuration. QGS is
// looked for on the transport the launch will use (qemu.DefaultQGS of the
// shape's QEMU profile, or Options.QGS): for a unix socket, /etc/qgs.conf
// without a port line and a socket file at the path; for vsock, the port
// line naming the port.
//
// Every check reads files below Env.Root (so tests run them on fake
// sysfs/procfs trees) or runs the QEMU binary through Env.Run; paths in
// the report are host paths, never Root-prefixed. A Check that fails with
// Fatal set means the guest would fail to start or to attest; warnings
// never are. In dev mode (TCG) only what a dev launch needs is checked and
// the TDX and GPU checks are skipped with the reason.
//
// The report prints as a table of ✓ ✗ ! - marks (WriteText) or as JSON
// with stable field names (WriteJSON). Gate turns a report into the
// refusal `chrysalis launch --tdx` gives before it starts a TD: a
// *RefusalError listing the fatal ✗ checks with their fixes.
package doctor
