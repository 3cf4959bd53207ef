// Package launch runs a Chrysalis guest in dev mode on this host: it
// checks the prerequisites (Preflight), writes the config disk into a state
// directory, starts QEMU (host/qemu's dev argv) in its own process group,
// follows the agent's status channel until it reports ready, and stops the
// VM cleanly: a poweroff request to the agent, then QMP quit, then
// SIGKILL.
//
// State directory layout: config.img (the config disk), console.log (the
// guest serial console), qemu.log (the command line and QEMU's own
// output), status.sock and qmp.sock (QEMU's unix sockets, removed when
// QEMU exits) and lock (held while the VM runs, so two launches cannot
// share a directory).
//
// TDX launches on a TDX host are not implemented here yet; host/qemu
// builds their command line.
package launch
