// Package rtmr records RTMR3 runtime events: it keeps the event log and
// extends a register for each event — the real TDX RTMR3 through the
// kernel's sysfs interface, or, where there is no TEE, a software
// register whose value is labelled as software-computed.
package rtmr
