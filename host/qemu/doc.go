// Package qemu turns a VM shape (measure/shape), a release and host paths
// into the exact qemu-system-x86_64 argument vector, for TDX launches on a
// TDX host and for dev launches under TCG emulation anywhere.
//
// The shape is the single source of the VM's measured configuration: the
// device order here is fixed and derived from it, because PCI placement
// changes the ACPI tables that RTMR0 measures. Host-specific values (GPU
// PCI addresses, disk image paths, ports, sockets, vsock CID) come from
// Options.
//
// Dev mode: -accel tcg -machine q35 -cpu max, no firmware variables, no
// default devices, the serial console (ttyS0) to a file, user-mode
// networking with the API port forwarded to the host, virtio-blk disks
// with fixed serials, the status channel on a virtio-serial port served as
// a unix socket, QMP on another unix socket.
//
// TDX mode follows COCOON's invocation (research/ton-host.md §A3): KVM,
// kernel-irqchip=split, a tdx-guest object with the quote generation
// socket (QGS: the unix socket /var/run/tdx-qgs/qgs.socket for QEMU
// profiles >= 10.1, as upstream QEMU documents it; vsock 2:4050 for older
// ones, as COCOON and Canonical's 8.2 stack use it; Options.QGS overrides
// either), memory-backend-ram where the QEMU profile wants it,
// vhost-vsock, and one pcie-root-port plus vfio-pci per GPU (through
// iommufd where the profile says so).
package qemu
