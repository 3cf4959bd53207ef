// Command dumpinit is the /init of the swtpm cross-check's test
// initramfs overlay: it prints the TPM's TCG firmware event log
// (binary_bios_measurements) and the SHA-384 PCRs on the console as hex
// between marker lines, then powers the VM off. It is built by the test
// (CGO_ENABLED=0) and never part of a release.
package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

const (
	logPath = "/sys/kernel/security/tpm0/binary_bios_measurements"
	pcrDir  = "/sys/class/tpm/tpm0/pcr-sha384"
)

func main() {
	defer powerOff()
	for _, m := range []struct{ src, dir, fs string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"securityfs", "/sys/kernel/security", "securityfs"},
	} {
		os.MkdirAll(m.dir, 0o755)
		if err := syscall.Mount(m.src, m.dir, m.fs, 0, ""); err != nil && err != syscall.EBUSY {
			fmt.Printf("DUMPINIT-ERROR mount %s: %v\n", m.dir, err)
		}
	}
	var log []byte
	var err error
	for i := 0; i < 50; i++ {
		if log, err = os.ReadFile(logPath); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		fmt.Printf("DUMPINIT-ERROR %v\n", err)
		return
	}
	if cmdline, err := os.ReadFile("/proc/cmdline"); err == nil {
		fmt.Printf("DUMPINIT-CMDLINE %s\n", strings.TrimSpace(string(cmdline)))
	}
	for pcr := 0; pcr < 24; pcr++ {
		v, err := os.ReadFile(fmt.Sprintf("%s/%d", pcrDir, pcr))
		if err == nil {
			fmt.Printf("DUMPINIT-PCR-SHA384 %d %s\n", pcr, strings.TrimSpace(string(v)))
		}
	}
	if b, err := os.ReadFile("/proc/iomem"); err == nil {
		fmt.Printf("DUMPINIT-IOMEM-BEGIN\n%sDUMPINIT-IOMEM-END\n", b)
	}
	if b, err := os.ReadFile("/sys/firmware/acpi/tables/DSDT"); err == nil {
		fmt.Printf("DUMPINIT-DSDT %s\n", hex.EncodeToString(b))
	}
	fmt.Printf("DUMPINIT-EVENTLOG-BEGIN %d\n", len(log))
	for len(log) > 0 {
		n := min(len(log), 64)
		fmt.Println(hex.EncodeToString(log[:n]))
		log = log[n:]
	}
	fmt.Println("DUMPINIT-EVENTLOG-END")
}

func powerOff() {
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	for {
		time.Sleep(time.Hour)
	}
}
