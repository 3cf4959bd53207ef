// Package guest owns the contract between the host launcher and the guest
// agent: the config disk (its JSON document, which part of it is measured
// into RTMR3), the host<->guest status channel protocol, and the fixed
// names and ports both sides use. host writes these, agent reads them;
// both import this package so they can never disagree.
package guest
