// Package e2e is the end-to-end test: it builds the chrysalis CLI and the
// release from pinned inputs, boots the release under QEMU (TCG, dev
// mode), verifies the guest over RA-TLS with the insecure-dev policy,
// checks the measured config event, and shuts the VM down with Ctrl-C.
package e2e
