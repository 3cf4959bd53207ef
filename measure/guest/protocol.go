package guest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"unicode/utf8"

	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

// Status channel protocol, one JSON object per line in each direction.
//
// Agent -> host: Status lines (they carry "state") whenever the agent's
// state changes, and Reply lines (they carry "reply") answering a
// command, in the order the commands arrived. Host -> agent: Command
// lines. Every line is bounded (MaxCommandSize, MaxMessageSize) and parsed
// strictly: unknown fields, trailing data and out-of-range values are
// errors, and the agent answers a command it cannot parse or does not
// know with an error Reply.

// Limits of the status channel.
const (
	// MaxCommandSize bounds one host -> agent line.
	MaxCommandSize = 4 << 10
	// MaxMessageSize bounds one agent -> host line.
	MaxMessageSize = 256 << 10
	// DefaultLogLines is what CmdLogs returns when Lines is 0.
	DefaultLogLines = 100
	// MaxLogLines bounds Command.Lines and Reply.Logs.
	MaxLogLines = 1000
	// MaxLogLineBytes bounds one log line in a Reply.
	MaxLogLineBytes = 1024
	// MaxReportEvents bounds StatusReport.Events.
	MaxReportEvents = 64
	// MaxErrorBytes bounds Reply.Error and Status.Detail.
	MaxErrorBytes = 4 << 10
	// MaxEarningsBytes bounds StatusReport.Engine and .Earnings.
	MaxEarningsBytes = 256
)

// Reply kinds.
const (
	ReplyStatus = "status"
	ReplyLogs   = "logs"
	ReplyError  = "error"
)

// GPU states in a StatusReport.
const (
	// GPUNone: the measured config asks for no GPUs.
	GPUNone = "none"
	// GPUAttested: every GPU the config asks for was attested before the
	// agent became ready.
	GPUAttested = "attested"
)

// Values the agent reports until the code that knows them fills them in.
const (
	// EngineUnknown is StatusReport.Engine when no inference engine runs
	// or its health is not probed.
	EngineUnknown = "unknown"
	// EngineNone is StatusReport.Engine of a worker without a model (it
	// serves attestation only); with a model it reads "up (restarts N)"
	// or "down (restarts N)".
	EngineNone = "none"
	// EarningsNA is StatusReport.Earnings when the agent keeps no payout
	// ledger.
	EarningsNA = "n/a"
)

// Reply is one agent -> host answer to a Command. Exactly the field of
// its kind is set.
type Reply struct {
	// Reply is ReplyStatus, ReplyLogs or ReplyError.
	Reply string `json:"reply"`
	// Status answers CmdStatus.
	Status *StatusReport `json:"status,omitempty"`
	// Logs answers CmdLogs: oldest first.
	Logs []string `json:"logs,omitempty"`
	// Error says why a command was refused.
	Error string `json:"error,omitempty"`
}

// StatusReport is what the agent can say about itself.
type StatusReport struct {
	// State is the agent state (StateReady while it answers commands).
	State string `json:"state"`
	// TEE is "tdx" or "insecure-dev".
	TEE string `json:"tee"`
	// RTMR3Source says where RTMR3 lives: the TD quote or software (dev).
	RTMR3Source string `json:"rtmr3_source"`
	// Instance, Model and OwnerAddress are the identity claims the
	// agent's evidence carries (from the measured config).
	Instance     string `json:"instance"`
	Model        string `json:"model,omitempty"`
	OwnerAddress string `json:"owner_address,omitempty"`
	// Port is the guest HTTPS port.
	Port int `json:"port"`
	// Events are the RTMR3 events recorded so far, in order.
	Events []ReportEvent `json:"events"`
	// RTMR3 is the register value those events replay to.
	RTMR3 string `json:"rtmr3"`
	// GPU is the GPU gate's outcome.
	GPU GPUReport `json:"gpu"`
	// Engine is the inference engine's health (EngineNone, or "up/down
	// (restarts N)").
	Engine string `json:"engine"`
	// Earnings is the payout ledger's summary in one line of at most
	// MaxEarningsBytes (EarningsNA without a payment channel).
	Earnings string `json:"earnings"`
	// Payout is the payout ledger's full summary (absent without a
	// payment channel): what `chrysalis payout status` prints.
	Payout *payment.Summary `json:"payout,omitempty"`
	// UptimeSeconds is the time since the agent started.
	UptimeSeconds int64 `json:"uptime_s"`
}

// ReportEvent is one RTMR3 event by name and digest.
type ReportEvent struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// GPUReport is the GPU part of a StatusReport.
type GPUReport struct {
	// State is GPUNone or GPUAttested.
	State string `json:"state"`
	// UUIDs are the attested GPUs.
	UUIDs []string `json:"uuids,omitempty"`
}

var (
	eventNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	gpuUUIDRE   = regexp.MustCompile(`^GPU-[0-9A-Za-z-]{1,60}$`)
	teeRE       = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
)

// ParseCommand decodes one host -> agent line strictly and checks it: a
// known command, Lines only for CmdLogs and within 0..MaxLogLines.
func ParseCommand(b []byte) (Command, error) {
	var c Command
	if err := decodeStrict(b, MaxCommandSize, &c); err != nil {
		return Command{}, fmt.Errorf("status command: %w", err)
	}
	switch c.Cmd {
	case CmdPowerOff, CmdStatus:
		if c.Lines != 0 {
			return Command{}, fmt.Errorf("status command %q: lines is only valid for %q", c.Cmd, CmdLogs)
		}
	case CmdLogs:
		if c.Lines < 0 || c.Lines > MaxLogLines {
			return Command{}, fmt.Errorf("status command %q: lines %d must be 0..%d", c.Cmd, c.Lines, MaxLogLines)
		}
	default:
		return Command{}, fmt.Errorf("status command %.64q is unknown (want %s, %s or %s)", c.Cmd, CmdPowerOff, CmdStatus, CmdLogs)
	}
	return c, nil
}

// ParseAgentLine decodes one agent -> host line strictly: exactly one of
// the results is non-nil when err is nil.
func ParseAgentLine(b []byte) (*Status, *Reply, error) {
	var probe map[string]json.RawMessage
	if len(b) > MaxMessageSize {
		return nil, nil, fmt.Errorf("status channel: %d-byte line exceeds the %d-byte limit", len(b), MaxMessageSize)
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, nil, fmt.Errorf("status channel: %w", err)
	}
	if _, ok := probe["reply"]; ok {
		r, err := ParseReply(b)
		return nil, r, err
	}
	st, err := ParseStatus(b)
	if err != nil {
		return nil, nil, err
	}
	return &st, nil, nil
}

// ParseStatus decodes one Status line strictly.
func ParseStatus(b []byte) (Status, error) {
	var st Status
	if err := decodeStrict(b, MaxMessageSize, &st); err != nil {
		return Status{}, fmt.Errorf("status message: %w", err)
	}
	if err := st.Validate(); err != nil {
		return Status{}, err
	}
	return st, nil
}

// Validate checks a Status.
func (st *Status) Validate() error {
	if !knownState(st.State) {
		return fmt.Errorf("status message: state %.64q is not one of %s, %s, %s, %s", st.State, StateBooting, StateReady, StateFailed, StateStopping)
	}
	if st.TEE != "" && !teeRE.MatchString(st.TEE) {
		return fmt.Errorf("status message: tee %.64q is not a TEE name", st.TEE)
	}
	if st.Port < 0 || st.Port > 65535 {
		return fmt.Errorf("status message: port %d is out of range", st.Port)
	}
	if len(st.Detail) > MaxErrorBytes {
		return fmt.Errorf("status message: detail is %d bytes; at most %d", len(st.Detail), MaxErrorBytes)
	}
	return nil
}

func knownState(s string) bool {
	switch s {
	case StateBooting, StateReady, StateFailed, StateStopping:
		return true
	}
	return false
}

// ParseReply decodes one Reply line strictly and validates it.
func ParseReply(b []byte) (*Reply, error) {
	var r Reply
	if err := decodeStrict(b, MaxMessageSize, &r); err != nil {
		return nil, fmt.Errorf("status reply: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks that exactly the field of the reply's kind is set and
// that every value is within its bounds.
func (r *Reply) Validate() error {
	set := 0
	if r.Status != nil {
		set++
	}
	if r.Logs != nil {
		set++
	}
	if r.Error != "" {
		set++
	}
	switch r.Reply {
	case ReplyStatus:
		if r.Status == nil || set != 1 {
			return errors.New("status reply: a status reply carries exactly a status report")
		}
		return r.Status.Validate()
	case ReplyLogs:
		if set > 1 || r.Status != nil || r.Error != "" {
			return errors.New("status reply: a logs reply carries only log lines")
		}
		if len(r.Logs) > MaxLogLines {
			return fmt.Errorf("status reply: %d log lines; at most %d", len(r.Logs), MaxLogLines)
		}
		for i, l := range r.Logs {
			if len(l) > MaxLogLineBytes || !utf8.ValidString(l) {
				return fmt.Errorf("status reply: log line %d is not valid UTF-8 of at most %d bytes", i, MaxLogLineBytes)
			}
		}
		return nil
	case ReplyError:
		if r.Error == "" || set != 1 {
			return errors.New("status reply: an error reply carries exactly a non-empty error")
		}
		if len(r.Error) > MaxErrorBytes {
			return fmt.Errorf("status reply: error is %d bytes; at most %d", len(r.Error), MaxErrorBytes)
		}
		return nil
	default:
		return fmt.Errorf("status reply: kind %.64q is not one of %s, %s, %s", r.Reply, ReplyStatus, ReplyLogs, ReplyError)
	}
}

// Validate checks a StatusReport's fields.
func (s *StatusReport) Validate() error {
	if !knownState(s.State) {
		return fmt.Errorf("status report: state %.64q is unknown", s.State)
	}
	if !teeRE.MatchString(s.TEE) {
		return fmt.Errorf("status report: tee %.64q is not a TEE name", s.TEE)
	}
	if !teeRE.MatchString(s.RTMR3Source) {
		return fmt.Errorf("status report: rtmr3_source %.64q is not a source name", s.RTMR3Source)
	}
	if s.Instance != "" && !instanceRE.MatchString(s.Instance) {
		return fmt.Errorf("status report: instance %.64q is not an instance name", s.Instance)
	}
	if len(s.Model) > 128 || len(s.OwnerAddress) > 128 || !utf8.ValidString(s.Model) || !utf8.ValidString(s.OwnerAddress) {
		return errors.New("status report: model and owner_address must be UTF-8 of at most 128 bytes")
	}
	if s.Port < 0 || s.Port > 65535 {
		return fmt.Errorf("status report: port %d is out of range", s.Port)
	}
	if len(s.Events) > MaxReportEvents {
		return fmt.Errorf("status report: %d events; at most %d", len(s.Events), MaxReportEvents)
	}
	for i, e := range s.Events {
		if !eventNameRE.MatchString(e.Name) {
			return fmt.Errorf("status report: event %d name %.64q is not an event name", i, e.Name)
		}
		if !isSHA384Hex(e.Digest) {
			return fmt.Errorf("status report: event %d (%s) digest %.100q is not 96 lower-case hex digits", i, e.Name, e.Digest)
		}
	}
	if !isSHA384Hex(s.RTMR3) {
		return fmt.Errorf("status report: rtmr3 %.100q is not 96 lower-case hex digits", s.RTMR3)
	}
	switch s.GPU.State {
	case GPUNone:
		if len(s.GPU.UUIDs) != 0 {
			return errors.New("status report: gpu state none lists GPUs")
		}
	case GPUAttested:
		if len(s.GPU.UUIDs) == 0 || len(s.GPU.UUIDs) > MaxGPUs {
			return fmt.Errorf("status report: %d attested GPUs; want 1..%d", len(s.GPU.UUIDs), MaxGPUs)
		}
		for _, u := range s.GPU.UUIDs {
			if !gpuUUIDRE.MatchString(u) {
				return fmt.Errorf("status report: GPU UUID %.80q is not GPU-<id>", u)
			}
		}
	default:
		return fmt.Errorf("status report: gpu state %.64q is not %s or %s", s.GPU.State, GPUNone, GPUAttested)
	}
	for _, f := range []struct{ name, v string }{{"engine", s.Engine}, {"earnings", s.Earnings}} {
		if f.v == "" || len(f.v) > MaxEarningsBytes || !utf8.ValidString(f.v) {
			return fmt.Errorf("status report: %s must be non-empty UTF-8 of at most %d bytes", f.name, MaxEarningsBytes)
		}
	}
	if s.Payout != nil {
		if err := s.Payout.Validate(); err != nil {
			return fmt.Errorf("status report: payout: %w", err)
		}
	}
	if s.UptimeSeconds < 0 {
		return fmt.Errorf("status report: uptime %d is negative", s.UptimeSeconds)
	}
	return nil
}

func isSHA384Hex(s string) bool {
	if len(s) != 96 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// EncodeReply validates r and returns it as one line (with its newline),
// refusing a line over MaxMessageSize.
func EncodeReply(r *Reply) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	if buf.Len() > MaxMessageSize {
		return nil, fmt.Errorf("status reply: %d bytes exceeds the %d-byte limit", buf.Len(), MaxMessageSize)
	}
	return buf.Bytes(), nil
}

// ErrorReply is the Reply refusing a command.
func ErrorReply(err error) *Reply {
	msg := err.Error()
	if len(msg) > MaxErrorBytes {
		msg = msg[:MaxErrorBytes]
	}
	msg = string(bytes.ToValidUTF8([]byte(msg), []byte("?")))
	if msg == "" {
		msg = "error"
	}
	return &Reply{Reply: ReplyError, Error: msg}
}

// decodeStrict decodes exactly one JSON object of at most max bytes into
// v: no unknown fields, no trailing data.
func decodeStrict(b []byte, max int, v any) error {
	if len(b) > max {
		return fmt.Errorf("%d bytes exceeds the %d-byte limit", len(b), max)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) != 0 {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}
