package boot

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MountConfigfs mounts configfs at /sys/kernel/config (configfs-tsm lives
// there). Already mounted is fine.
func MountConfigfs() error {
	const dir = "/sys/kernel/config"
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("configfs: %s absent (configfs module not loaded?)", dir)
	}
	err := unix.Mount("configfs", dir, "configfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("configfs: mount %s: %w", dir, err)
	}
	return nil
}

// Network brings up lo and the first other link with the static address
// and default route of n. It waits for the link to appear.
func Network(n guest.Network, timeout time.Duration) (string, error) {
	pfx, err := netip.ParsePrefix(n.Address)
	if err != nil {
		return "", fmt.Errorf("network: address %q: %w", n.Address, err)
	}
	gw, err := netip.ParseAddr(n.Gateway)
	if err != nil {
		return "", fmt.Errorf("network: gateway %q: %w", n.Gateway, err)
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	var link netlink.Link
	deadline := time.Now().Add(timeout)
	for link == nil {
		links, err := netlink.LinkList()
		if err != nil {
			return "", fmt.Errorf("network: list links: %w", err)
		}
		for _, l := range links {
			if l.Type() == "device" && l.Attrs().Name != "lo" {
				link = l
				break
			}
		}
		if link == nil {
			if time.Now().After(deadline) {
				return "", fmt.Errorf("network: no NIC appeared within %s (virtio_net not loaded?)", timeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	name := link.Attrs().Name
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), 32)}}
	if err := netlink.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return "", fmt.Errorf("network: add %s to %s: %w", n.Address, name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return "", fmt.Errorf("network: set %s up: %w", name, err)
	}
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw.AsSlice()}
	if err := netlink.RouteAdd(route); err != nil && !errors.Is(err, unix.EEXIST) {
		return "", fmt.Errorf("network: default route via %s: %w", n.Gateway, err)
	}
	return name, nil
}

// PowerOff syncs filesystems and powers the machine off. It returns only
// on failure.
func PowerOff() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
