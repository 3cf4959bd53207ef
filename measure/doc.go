// Package measure is the root of everything Chrysalis computes and checks
// about a guest's identity: canonical encodings (canon), the host/guest
// contract (guest), RTMR3 runtime events (event), the evidence bundle and
// RA-TLS certificates (evidence), and verification policy (verify).
//
// measure imports nothing else of this module: agent and host depend on it,
// never the reverse.
package measure
