// Package configdisk writes and reads the guest's config disk: a raw disk
// image holding a FAT32 filesystem (no partition table) with one file,
// guest.ConfigFileName, the JSON config document of package guest.
//
// The host writes it with Write before launch and attaches it read-only as
// the virtio-blk disk with serial guest.ConfigDiskSerial; the agent reads it
// with Read from the block device (e.g. /dev/vdb) without mounting it, so
// the guest kernel needs no vfat support. The host is untrusted, so Read
// bounds-checks the filesystem before trusting any on-disk value.
package configdisk
