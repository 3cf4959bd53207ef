package event

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/chrysalis-cc/chrysalis/measure/canon"
)

// DigestSize is the size of an RTMR and of every event digest (SHA-384).
const DigestSize = sha512.Size384

// Digest is one SHA-384 value.
type Digest [DigestSize]byte

func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText encodes the digest as lowercase hex.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText decodes 96 hex characters.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 2*DigestSize {
		return fmt.Errorf("digest: want %d hex characters, got %d", 2*DigestSize, len(b))
	}
	if _, err := hex.Decode(d[:], b); err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	return nil
}

// Known event names. The config event is always first.
const (
	NameConfig = "config" // payload: the canonical measured config
	NameReady  = "ready"  // payload: {} — nothing is extended after it
	NameModel  = "model"  // payload: ModelPayload — the verified model disk
	NamePayout = "payout" // payload: payment.PayoutEvent — where earnings go
	NameGPU    = "gpu"    // payload: GPUPayload — the verified GPUs
)

// ModelPayload is the payload of a model event (version 1): the model's
// name and the dm-verity root hash the agent opened its disk with.
type ModelPayload struct {
	Name     string `json:"name"`
	RootHash string `json:"root_hash"`
}

// GPUPayload is the payload of a gpu event (version 1): the GPUs the
// agent attested at boot and the GPU policy it attested them under. It
// precedes ready; the RA-TLS bundle carries fresh evidence of the same
// GPUs (same UUIDs) for each key and verifier nonce.
type GPUPayload struct {
	// Policy is the hex SHA-256 of the agent's canonical GPU policy
	// (measure/gpu.PolicyDoc).
	Policy string            `json:"policy"`
	GPUs   []GPUPayloadEntry `json:"gpus"`
}

// GPUPayloadEntry is one attested GPU.
type GPUPayloadEntry struct {
	UUID          string `json:"uuid"`
	DriverVersion string `json:"driver_version"`
	VBIOSVersion  string `json:"vbios_version"`
	// Evidence is the hex SHA-384 of the boot evidence (measure/gpu
	// Evidence.Digest).
	Evidence string `json:"evidence"`
}

// domain separates event digests from every other SHA-384 in the system.
const domain = "chrysalis/rtmr3-event/v1\x00"

// Event is one RTMR3 runtime event.
type Event struct {
	Name    string          `json:"name"`
	Version int             `json:"version"`
	Payload json.RawMessage `json:"payload"`
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// New builds an event whose payload is the canonical JSON of v.
func New(name string, version int, v any) (Event, error) {
	p, err := canon.Marshal(v)
	if err != nil {
		return Event{}, fmt.Errorf("event %s: payload: %w", name, err)
	}
	e := Event{Name: name, Version: version, Payload: p}
	return e, e.check()
}

func (e Event) check() error {
	if !nameRE.MatchString(e.Name) {
		return fmt.Errorf("event name %q must match %s", e.Name, nameRE)
	}
	if e.Version < 1 {
		return fmt.Errorf("event %s: version %d must be >= 1", e.Name, e.Version)
	}
	c, err := canon.Canonicalize(e.Payload)
	if err != nil {
		return fmt.Errorf("event %s: payload: %w", e.Name, err)
	}
	if !bytes.Equal(c, e.Payload) {
		return fmt.Errorf("event %s: payload is not in canonical form", e.Name)
	}
	return nil
}

// Digest is SHA-384(domain ‖ canonical JSON of {name, payload, version}).
// The payload is embedded as canonical JSON, so the digest commits to the
// exact bytes served in the log.
func (e Event) Digest() (Digest, error) {
	if err := e.check(); err != nil {
		return Digest{}, err
	}
	b, err := canon.Marshal(e)
	if err != nil {
		return Digest{}, err
	}
	h := sha512.New384()
	h.Write([]byte(domain))
	h.Write(b)
	var d Digest
	copy(d[:], h.Sum(nil))
	return d, nil
}

// Extend returns SHA-384(mr ‖ d), the TDX RTMR extend operation.
func Extend(mr, d Digest) Digest {
	h := sha512.New384()
	h.Write(mr[:])
	h.Write(d[:])
	var out Digest
	copy(out[:], h.Sum(nil))
	return out
}

// Entry is an event with its digest as served in the log.
type Entry struct {
	Event
	Digest Digest `json:"digest"`
}

// Log is the RTMR3 event log as served by the agent.
type Log struct {
	Version int     `json:"version"`
	Events  []Entry `json:"events"`
}

// LogVersion is the only log format version.
const LogVersion = 1

// MaxEvents bounds a log; a guest extends a handful of events.
const MaxEvents = 1024

// Append adds e with its digest.
func (l *Log) Append(e Event) (Digest, error) {
	d, err := e.Digest()
	if err != nil {
		return Digest{}, err
	}
	if l.Version == 0 {
		l.Version = LogVersion
	}
	l.Events = append(l.Events, Entry{Event: e, Digest: d})
	return d, nil
}

// Replay recomputes every digest, checks it against the logged one, and
// returns the RTMR value the log produces from an all-zero register.
func (l *Log) Replay() (Digest, error) {
	var mr Digest
	if l.Version != LogVersion {
		return mr, fmt.Errorf("event log: version %d is not supported (want %d)", l.Version, LogVersion)
	}
	if len(l.Events) > MaxEvents {
		return mr, fmt.Errorf("event log: %d events exceeds the limit of %d", len(l.Events), MaxEvents)
	}
	for i, en := range l.Events {
		d, err := en.Event.Digest()
		if err != nil {
			return mr, fmt.Errorf("event log: event %d: %w", i, err)
		}
		if d != en.Digest {
			return mr, fmt.Errorf("event log: event %d (%s): logged digest %s does not match its content (%s)", i, en.Name, en.Digest, d)
		}
		mr = Extend(mr, d)
	}
	return mr, nil
}

// Parse decodes a log strictly (unknown fields rejected) and replays it.
func Parse(b []byte) (*Log, Digest, error) {
	var l Log
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, Digest{}, fmt.Errorf("event log: %w", err)
	}
	if dec.More() {
		return nil, Digest{}, errors.New("event log: trailing data")
	}
	mr, err := l.Replay()
	if err != nil {
		return nil, Digest{}, err
	}
	return &l, mr, nil
}
