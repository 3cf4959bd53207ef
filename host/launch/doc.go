// Package launch runs a Chrysalis guest in dev mode on this host: it
// checks the prerequisites (Preflight), writes the config disk into a state
// directory, starts QEMU (host/qemu's dev argv) in its own process group,
// follows the agent's status channel until it reports ready, and stops the
// VM cleanly: a poweroff request to the agent, then QMP quit, then
// SIGKILL.
//
// State directory layout: config.img (the config disk), console.log (the
// guest serial console, kept across launches: each boot appends a
// ConsoleSeparator line and QEMU appends after it), qemu.log (the command
// line and QEMU's own output), status.sock and qmp.sock (QEMU's unix
// sockets), control.sock (the launcher's own socket, see Query) and lock
// (held while the VM runs, so two launches cannot share a directory).
// The sockets are removed when QEMU exits.
//
// Instances: several guests on one host are numbered 0..63 (NewInstance):
// instance i gets the state directory BASE/instance-i, API port base +
// 10·i and vsock CID base + i (COCOON's cocoon-launch layout), so no two
// share a port, CID or file.
//
// Status: the launcher holds QEMU's single status-channel connection, so
// clients (`chrysalis status`, `chrysalis logs`) connect to control.sock
// and send one guest.Command (status or logs); the launcher forwards it,
// one at a time, and writes back the agent's guest.Reply line. Status
// lines the agent sends meanwhile are told apart from replies by the
// strict parser (guest.ParseAgentLine).
//
// TDX launches on a TDX host are not implemented here yet; host/qemu
// builds their command line.
package launch
