// Package event owns the RTMR3 runtime event format: typed, versioned
// events with canonical JSON payloads, their SHA-384 digests, the log the
// agent serves, and its replay. RTMR3 is never pinned by value; relying
// parties replay this log and judge each event by policy.
package event
