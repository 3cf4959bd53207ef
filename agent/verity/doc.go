// Package verity activates a dm-verity block device from inside the guest
// without veritysetup, dmsetup or libdevmapper: it speaks the
// device-mapper ioctl interface on /dev/mapper/control directly.
//
// # Activation
//
// Open reads the veritysetup-format superblock from block 0 of the hash
// device (models/verity.ParseSuperblock, strict), checks that the data
// device holds every data block the superblock covers and that the hash
// device is as large as the tree it describes, checks the root hash length
// against the digest size of the superblock's algorithm, and then issues
// DM_VERSION, DM_DEV_CREATE, DM_TABLE_LOAD (read-only) and DM_DEV_SUSPEND
// (resume). It returns a Device whose Path is /dev/dm-N, the node devtmpfs
// creates for the new disk (made with mknod if it is missing). Nobody
// creates /dev/mapper/<name> in the guest.
//
// The table has one target:
//
//	0 <data_sectors> verity <hash_type> <data_dev> <hash_dev>
//	  <data_block_size> <hash_block_size> <num_data_blocks>
//	  <hash_start_block> <algorithm> <root_hash_hex> <salt_hex|->
//	  [<#opt_args> <opt_args>...]
//
// with the devices named "major:minor" (from stat of the block device
// nodes, so no path lookup happens in the kernel), hash_start_block 1 (the
// superblock occupies hash block 0) and salt "-" when the salt is empty.
//
// # Corruption handling
//
// Options.OnCorruption selects what dm-verity does when a block does not
// match the tree:
//
//   - ErrorOnCorruption (default, no optional argument): the read fails
//     with EIO and the status turns to "C". The guest keeps running and
//     the failure is visible to the reader (and to Status), which can
//     report it; a careless reader may however treat EIO as a transient
//     error and retry or fall back.
//   - RestartOnCorruption ("1 restart_on_corruption"): the kernel reboots
//     the guest. No corrupted byte is ever returned and nothing keeps
//     running on a tampered image, but the event is only visible as a
//     reboot, and a persistently corrupted image makes the guest loop.
//   - PanicOnCorruption ("1 panic_on_corruption", Linux ≥ 5.9): the kernel
//     panics; like restart, but the VM stops (or follows panic=), which a
//     confidential guest's host sees as a crash rather than a reboot loop.
//
// # Testing
//
// All ioctls go through a small interface, so the unit tests check the
// exact bytes of every request (struct dm_ioctl, struct dm_target_spec and
// the parameter string) without a kernel. A test that activates a real
// device over loop devices runs only as root with device-mapper and
// dm-verity available, and is skipped otherwise.
package verity
