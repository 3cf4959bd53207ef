// Package boot does the Linux side of being PID 1's payload in the guest:
// kernel modules from the initramfs, filesystems, finding the config disk
// and the status port by their virtio identities, static networking, and
// power-off. Everything here talks to the real kernel; tests cover the
// parts that do not need one (sysfs discovery on a fake tree, load order).
package boot
