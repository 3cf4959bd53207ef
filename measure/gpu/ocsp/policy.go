package ocsp

import "fmt"

// Policy says what a failed or missing OCSP answer means for attestation.
type Policy string

const (
	// Require fails on anything but a fresh, verified "good" answer whose
	// nonce matches ours (a certificate_hold revocation is tolerated with
	// Checker.AllowHold). The zero Policy means Require.
	Require Policy = "require"
	// SoftFail fails only on a fresh, verified revocation (certificate_hold
	// tolerated with Checker.AllowHold); an unreachable responder, an HTTP
	// or OCSP error status, an "unknown" answer and an answer that fails
	// verification are recorded in the Result and do not fail.
	SoftFail Policy = "soft-fail"
	// Off makes no network request: every Result is "skipped".
	Off Policy = "off"
)

// ParsePolicy parses "require", "soft-fail" or "off".
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case Require, SoftFail, Off:
		return p, nil
	}
	return "", fmt.Errorf("ocsp: unknown policy %q (want require, soft-fail or off)", s)
}

// effective maps the zero Policy to Require and checks the value.
func (p Policy) effective() (Policy, error) {
	if p == "" {
		return Require, nil
	}
	return ParsePolicy(string(p))
}
