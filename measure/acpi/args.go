package acpi

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// flagOptions are the QEMU options QtestArgs knows to take no value; every
// other option takes exactly one.
var flagOptions = map[string]bool{
	"-nographic": true, "-nodefaults": true, "-no-user-config": true, "-no-reboot": true,
	"-no-shutdown": true, "-S": true, "-enable-kvm": true, "-snapshot": true,
	"-daemonize": true, "-no-hpet": true, "-no-acpi": true, "-only-migratable": true,
}

// droppedOptions are options with a host-side effect only (sockets, files,
// displays) that QtestArgs removes with their value.
var droppedOptions = map[string]string{
	"-qmp":        "QMP socket",
	"-qmp-pretty": "QMP socket",
	"-pidfile":    "pid file",
	"-vnc":        "VNC display",
	"-display":    "display",
	"-D":          "log file",
	"-d":          "log items",
	"-qtest":      "qtest socket (the capture uses its own)",
	"-qtest-log":  "qtest log",
}

// Rewritten is one change QtestArgs made to the launch arguments.
type Rewritten struct {
	// Option is the QEMU option, e.g. "-chardev".
	Option string
	// From is the original value ("" for a flag), To the new one ("" when
	// the option was removed).
	From, To string
	// Why explains why the change cannot alter the fw_cfg files.
	Why string
	// StandIn marks a device replaced by another one (vhost-vsock, a
	// GPU): the change relies on the two having the same ACPI objects.
	StandIn bool `json:",omitempty"`
}

// String is a one-line description.
func (r Rewritten) String() string {
	switch {
	case r.To == "" && r.From == "":
		return fmt.Sprintf("removed %s: %s", r.Option, r.Why)
	case r.To == "":
		return fmt.Sprintf("removed %s %s: %s", r.Option, r.From, r.Why)
	}
	return fmt.Sprintf("%s %s -> %s: %s", r.Option, r.From, r.To, r.Why)
}

// QtestArgs rewrites the arguments of a launch (argv without argv[0], as
// host/qemu builds it for dev or TDX mode) into the arguments of a capture
// that has the same machine, memory, vCPUs, firmware, kernel and device
// list in the same order, and so the same fw_cfg files and ACPI tables:
//
//   - the accelerator (-accel, -enable-kvm) is removed (Capture adds its
//     own), as are the KVM-only machine properties kernel-irqchip and
//     confidential-guest-support and the KVM-only "-cpu host" (the CPU
//     model is not in the tables);
//   - a tdx-guest (or SEV) object is removed; because QEMU's TDX code turns
//     SMM and the legacy PIC off for a TD (target/i386/kvm/tdx.c), the
//     machine gets smm=off and pic=off unless the arguments set them;
//   - host backends are replaced by inert ones: every -chardev by "null"
//     (same id) except one a -tpmdev uses (a TPM adds tables and needs its
//     emulator to start), every -netdev by a hub port (same id), every -drive's
//     image by the "null-co" driver (same id and interface);
//   - vhost-vsock-pci, which needs /dev/vhost-vsock and a guest CID the
//     running VM may own, becomes virtio-rng-pci,disable-legacy=on at the
//     same place in the device order (a hot-pluggable, non-bridge,
//     non-VGA virtio 1.0 function like it: same slot, same ACPI objects);
//   - a memory-backend-ram object gets reserve=off (MAP_NORESERVE), so
//     that a shape with more RAM than the capturing machine starts;
//   - sockets, pid files and displays (-qmp, -pidfile, -vnc, -display,
//     -nographic) are removed.
//
// Everything else is kept verbatim, vfio-pci devices included (they need
// the host device). Rewritten lists each change.
func QtestArgs(args []string) ([]string, []Rewritten, error) {
	var out []string
	var notes []Rewritten
	tdx := false
	machineAt := -1
	tpmChardevs := map[string]bool{}
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-tpmdev" {
			parts, _ := splitProps(args[i+1])
			for _, p := range parts {
				if k, v, ok := strings.Cut(p, "="); ok && k == "chardev" {
					tpmChardevs[v] = true
				}
			}
		}
	}
	for i := 0; i < len(args); i++ {
		opt := args[i]
		if !strings.HasPrefix(opt, "-") || opt == "-" {
			return nil, nil, fmt.Errorf("acpi: argument %d (%q) is not an option", i, opt)
		}
		if flagOptions[opt] {
			switch opt {
			case "-enable-kvm":
				notes = append(notes, Rewritten{Option: opt, Why: "KVM; the capture picks its own accelerator"})
			case "-nographic":
				notes = append(notes, Rewritten{Option: opt, Why: "display only"})
			case "-daemonize", "-S":
				notes = append(notes, Rewritten{Option: opt, Why: "process control only"})
			default:
				out = append(out, opt)
			}
			continue
		}
		if i+1 >= len(args) {
			return nil, nil, fmt.Errorf("acpi: option %s at argument %d has no value", opt, i)
		}
		val := args[i+1]
		i++
		if why, ok := droppedOptions[opt]; ok {
			notes = append(notes, Rewritten{Option: opt, From: val, Why: why})
			continue
		}
		switch opt {
		case "-accel":
			notes = append(notes, Rewritten{Option: opt, From: val, Why: "the capture picks its own accelerator"})
		case "-machine", "-M":
			m, isTDX, n := rewriteMachine(val)
			tdx = tdx || isTDX
			notes = append(notes, n...)
			machineAt = len(out) + 1
			out = append(out, opt, m)
		case "-cpu":
			if first, _ := splitProps(val); len(first) > 0 && first[0] == "host" {
				notes = append(notes, Rewritten{Option: opt, From: val, Why: "the host CPU model needs KVM; the CPU model is not in the ACPI tables"})
				continue
			}
			out = append(out, opt, val)
		case "-object":
			typ, err := objectType(val)
			if err != nil {
				return nil, nil, fmt.Errorf("acpi: argument %d: -object %q: %w", i, val, err)
			}
			switch typ {
			case "tdx-guest", "sev-guest", "sev-snp-guest":
				tdx = tdx || typ == "tdx-guest"
				notes = append(notes, Rewritten{Option: opt, From: val, Why: "confidential-guest object, needs KVM; its effects on the machine are applied explicitly"})
				continue
			case "memory-backend-ram":
				if !strings.HasPrefix(val, "{") && !hasProp(val, "reserve") {
					to := val + ",reserve=off"
					notes = append(notes, Rewritten{Option: opt, From: val, To: to, Why: "no swap space is reserved for guest RAM the capture never touches (a shape's RAM may exceed this machine's)"})
					val = to
				}
			}
			out = append(out, opt, val)
		case "-chardev":
			id, err := requireID(val)
			if err != nil {
				return nil, nil, fmt.Errorf("acpi: argument %d: -chardev %q: %w", i, val, err)
			}
			if tpmChardevs[id] {
				out = append(out, opt, val) // the TPM emulator socket: the TPM is part of the tables
				continue
			}
			to := "null,id=" + id
			notes = append(notes, Rewritten{Option: opt, From: val, To: to, Why: "host-side backend of a character device"})
			out = append(out, opt, to)
		case "-netdev":
			id, err := requireID(val)
			if err != nil {
				return nil, nil, fmt.Errorf("acpi: argument %d: -netdev %q: %w", i, val, err)
			}
			to := "hubport,hubid=0,id=" + id
			notes = append(notes, Rewritten{Option: opt, From: val, To: to, Why: "host-side network backend"})
			out = append(out, opt, to)
		case "-drive":
			to, err := rewriteDrive(val)
			if err != nil {
				return nil, nil, fmt.Errorf("acpi: argument %d: -drive %q: %w", i, val, err)
			}
			if to != val {
				notes = append(notes, Rewritten{Option: opt, From: val, To: to, Why: "disk image contents are not in the ACPI tables"})
			}
			out = append(out, opt, to)
		case "-device":
			to := rewriteDevice(val)
			if to != val {
				notes = append(notes, Rewritten{Option: opt, From: val, To: to, Why: "vhost-vsock needs /dev/vhost-vsock and a free guest CID; a virtio 1.0 function in the same slot has the same ACPI objects", StandIn: true})
			}
			out = append(out, opt, to)
		default:
			out = append(out, opt, val)
		}
	}
	if tdx {
		if machineAt < 0 {
			return nil, nil, fmt.Errorf("acpi: a tdx-guest launch without -machine")
		}
		props := out[machineAt]
		for _, p := range []string{"smm", "pic"} {
			if !hasProp(props, p) {
				props += "," + p + "=off"
				notes = append(notes, Rewritten{Option: "-machine", From: out[machineAt], To: props, Why: "QEMU's TDX support sets " + p + "=off for a TD"})
			}
		}
		out[machineAt] = props
	}
	return out, notes, nil
}

// splitProps splits a QEMU option value at commas, honouring ",," as an
// escaped comma. It also returns whether any escape was seen.
func splitProps(v string) ([]string, bool) {
	var parts []string
	var cur strings.Builder
	escaped := false
	for i := 0; i < len(v); i++ {
		if v[i] == ',' {
			if i+1 < len(v) && v[i+1] == ',' {
				cur.WriteByte(',')
				i++
				escaped = true
				continue
			}
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(v[i])
	}
	return append(parts, cur.String()), escaped
}

func joinProps(parts []string) string {
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = strings.ReplaceAll(p, ",", ",,")
	}
	return strings.Join(esc, ",")
}

func propKey(p string) string {
	k, _, _ := strings.Cut(p, "=")
	return k
}

func hasProp(v, key string) bool {
	parts, _ := splitProps(v)
	for _, p := range parts {
		if propKey(p) == key {
			return true
		}
	}
	return false
}

func rewriteMachine(v string) (string, bool, []Rewritten) {
	parts, _ := splitProps(v)
	var keep []string
	var notes []Rewritten
	tdx := false
	for _, p := range parts {
		switch propKey(p) {
		case "kernel-irqchip":
			notes = append(notes, Rewritten{Option: "-machine", From: p, Why: "KVM-only property"})
		case "confidential-guest-support":
			tdx = true
			notes = append(notes, Rewritten{Option: "-machine", From: p, Why: "needs KVM; the TD's machine settings are applied explicitly"})
		case "accel":
			notes = append(notes, Rewritten{Option: "-machine", From: p, Why: "the capture picks its own accelerator"})
		default:
			keep = append(keep, p)
		}
	}
	return joinProps(keep), tdx, notes
}

// objectType returns the QOM type of an -object value, in JSON or
// key=value form.
func objectType(v string) (string, error) {
	if strings.HasPrefix(v, "{") {
		var o struct {
			Type string `json:"qom-type"`
		}
		if err := json.Unmarshal([]byte(v), &o); err != nil {
			return "", fmt.Errorf("JSON object: %w", err)
		}
		if o.Type == "" {
			return "", fmt.Errorf(`JSON object has no "qom-type"`)
		}
		return o.Type, nil
	}
	parts, _ := splitProps(v)
	if k, t, ok := strings.Cut(parts[0], "="); ok {
		if k != "qom-type" {
			return "", fmt.Errorf("first property %q is not the object type", parts[0])
		}
		return t, nil
	}
	return parts[0], nil
}

func requireID(v string) (string, error) {
	parts, _ := splitProps(v)
	for _, p := range parts {
		if k, id, ok := strings.Cut(p, "="); ok && k == "id" && id != "" {
			return id, nil
		}
	}
	return "", fmt.Errorf("no id= property")
}

func rewriteDrive(v string) (string, error) {
	parts, _ := splitProps(v)
	iface := "ide"
	for _, p := range parts {
		if k, val, _ := strings.Cut(p, "="); k == "if" {
			iface = val
		}
	}
	if iface == "pflash" {
		return v, nil // firmware flash: its contents are the firmware
	}
	var keep []string
	hadFile := false
	for _, p := range parts {
		switch propKey(p) {
		case "file":
			hadFile = true
		case "format", "driver", "cache", "aio", "discard", "detect-zeroes", "snapshot", "locking", "media":
		default:
			keep = append(keep, p)
		}
	}
	if !hadFile {
		return "", fmt.Errorf("no file= property")
	}
	return joinProps(append([]string{"driver=null-co"}, keep...)), nil
}

func rewriteDevice(v string) string {
	parts, _ := splitProps(v)
	driver := parts[0]
	if k, d, ok := strings.Cut(driver, "="); ok && k == "driver" {
		driver = d
	}
	if driver != "vhost-vsock-pci" {
		return v
	}
	out := []string{"virtio-rng-pci", "disable-legacy=on"}
	for _, p := range parts[1:] {
		if slices.Contains([]string{"bus", "addr", "multifunction", "id", "acpi-index", "romfile", "rombar"}, propKey(p)) {
			out = append(out, p)
		}
	}
	return joinProps(out)
}
