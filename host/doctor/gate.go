package doctor

import (
	"fmt"
	"strings"
)

// RefusalError is Gate's error: the checks that failed fatally.
type RefusalError struct {
	// Failed are the fatal ✗ checks, in report order.
	Failed []Check
}

// Error lists each fatal check as WriteText prints it: its ✗ line and
// the fix below it.
func (e *RefusalError) Error() string {
	width := 0
	for _, c := range e.Failed {
		width = max(width, len(c.ID))
	}
	var b strings.Builder
	ids := make([]string, len(e.Failed))
	for i, c := range e.Failed {
		ids[i] = c.ID
	}
	fmt.Fprintf(&b, "host preflight: %d check(s) failed that would make the guest fail (%s):\n", len(e.Failed), strings.Join(ids, ", "))
	for _, c := range e.Failed {
		writeCheck(&b, c, width)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Gate is the launcher's use of a report: nil when no check failed
// fatally, else a *RefusalError naming every fatal check with its
// remedy. Warnings never refuse a launch.
func Gate(checks []Check) error {
	var failed []Check
	for _, c := range checks {
		if c.Status == StatusFail && c.Fatal {
			failed = append(failed, c)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &RefusalError{Failed: failed}
}
