package rtmr

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/evidence"
)

// Register is an extendable measurement register.
type Register interface {
	// Extend folds d into the register.
	Extend(d event.Digest) error
	// Read returns the current register value.
	Read() (event.Digest, error)
	// Source is evidence.RTMR3FromQuote for a hardware register (its value
	// reaches a verifier through the quote) or evidence.RTMR3Software.
	Source() string
}

// SysfsPath is the Linux >= 6.16 tsm-mr attribute of TDX RTMR3.
const SysfsPath = "/sys/class/misc/tdx_guest/measurements/rtmr3:sha384"

// TDX is RTMR3 of a TD, extended through sysfs (TDG.MR.RTMR.EXTEND).
type TDX struct {
	// Path is the sysfs attribute; SysfsPath when empty.
	Path string
}

func (t TDX) path() string {
	if t.Path == "" {
		return SysfsPath
	}
	return t.Path
}

// Extend writes exactly 48 bytes to the attribute: the kernel extends.
func (t TDX) Extend(d event.Digest) error {
	f, err := os.OpenFile(t.path(), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("rtmr3: %w", err)
	}
	n, err := f.Write(d[:])
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("rtmr3: extend via %s: %w", t.path(), err)
	}
	if n != len(d) {
		return fmt.Errorf("rtmr3: short write to %s (%d of %d bytes)", t.path(), n, len(d))
	}
	return nil
}

// Read reads the 48-byte register value.
func (t TDX) Read() (event.Digest, error) {
	var d event.Digest
	b, err := os.ReadFile(t.path())
	if err != nil {
		return d, fmt.Errorf("rtmr3: %w", err)
	}
	if len(b) != len(d) {
		return d, fmt.Errorf("rtmr3: %s gave %d bytes (want %d)", t.path(), len(b), len(d))
	}
	copy(d[:], b)
	return d, nil
}

// Source implements Register.
func (TDX) Source() string { return evidence.RTMR3FromQuote }

// Software is a register kept in memory where there is no TEE. Its value
// proves nothing to anyone but is computed by the same extend rule.
type Software struct {
	mu sync.Mutex
	v  event.Digest
}

// Extend implements Register.
func (s *Software) Extend(d event.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v = event.Extend(s.v, d)
	return nil
}

// Read implements Register.
func (s *Software) Read() (event.Digest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v, nil
}

// Source implements Register.
func (*Software) Source() string { return evidence.RTMR3Software }

// Recorder keeps the RTMR3 event log in step with a register.
type Recorder struct {
	mu  sync.Mutex
	reg Register
	log event.Log
	// base is the register value before the first recorded event; it must
	// be zero for the log to replay (RTMR3 starts at zero in a TD).
	checked bool
}

// NewRecorder records into reg.
func NewRecorder(reg Register) *Recorder {
	return &Recorder{reg: reg, log: event.Log{Version: event.LogVersion}}
}

// ErrNotFresh means RTMR3 was already extended by someone else, so our log
// cannot explain it.
var ErrNotFresh = errors.New("rtmr3: register is not zero before the first event: something else extended it")

// Record extends the register with e's digest, then appends e to the log.
// If the extension fails the log is unchanged and the error is returned:
// the caller must treat it as fatal, since the register state is unknown.
func (r *Recorder) Record(e event.Event) (event.Digest, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.checked {
		v, err := r.reg.Read()
		if err != nil {
			return event.Digest{}, err
		}
		if v != (event.Digest{}) {
			return event.Digest{}, ErrNotFresh
		}
		r.checked = true
	}
	d, err := e.Digest()
	if err != nil {
		return d, err
	}
	if err := r.reg.Extend(d); err != nil {
		return d, err
	}
	if _, err := r.log.Append(e); err != nil {
		return d, err
	}
	return d, nil
}

// Snapshot returns a copy of the log and the register value, read under
// one lock so they belong together.
func (r *Recorder) Snapshot() (event.Log, event.Digest, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := r.reg.Read()
	if err != nil {
		return event.Log{}, v, "", err
	}
	l := event.Log{Version: r.log.Version, Events: append([]event.Entry(nil), r.log.Events...)}
	return l, v, r.reg.Source(), nil
}
