// Package launch runs a Chrysalis guest on this host, in dev mode (TCG,
// no TEE) or as an Intel TDX trust domain with GPUs passed through: it
// checks the prerequisites (Preflight), writes the config disk into a state
// directory, starts QEMU (host/qemu's argv for the mode, exactly as
// `chrysalis launch --print-only` prints it) in its own process group,
// follows the agent's status channel until it reports ready, and stops the
// VM cleanly: a poweroff request to the agent, then QMP quit, then
// SIGKILL.
//
// TDX: both modes share the lifecycle, because the status channel is a
// virtio-serial port in both argvs. A TDX launch runs Options.HostCheck
// before it creates or starts anything (chrysalis launch passes
// host/doctor's checks through doctor.Gate; this package cannot import
// doctor, which imports it), and a guest that reports ready must report
// TEE "tdx".
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
package launch
