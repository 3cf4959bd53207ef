// Package agent is the guest side of Chrysalis: the PID 1 payload that
// boots the guest (boot), measures its config and state into RTMR3
// (rtmr), obtains hardware evidence (attest), issues RA-TLS certificates
// (ratls) and serves the attested API (server). cmd/agent wires them.
package agent
