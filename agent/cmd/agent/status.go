package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/chrysalis-cc/chrysalis/agent/boot"
	"github.com/chrysalis-cc/chrysalis/agent/rtmr"
	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
)

// agentLogs keeps the agent's last log lines for the host's logs command;
// every logger the agent makes goes through agentLogs.Wrap.
var agentLogs = boot.NewLogRing(boot.DefaultLogRingLines)

// hostView is what the status command reports from: the running agent's
// identity and its RTMR3 recorder.
type hostView struct {
	start time.Time
	tee   string
	cfg   *guest.Config
	rec   *rtmr.Recorder
	// engine reports the engine's health ("" → unknown).
	engine func() string
	// earnings summarises the payout ledger: a line and the Summary (nil
	// → not available).
	earnings func() (string, *payment.Summary)
}

// answerHost answers the host's status and logs commands on the status
// channel; anything else gets an error reply (power-off is the caller's).
func answerHost(log *slog.Logger, st *boot.StatusChannel, c guest.Command, v hostView) {
	var r *guest.Reply
	switch c.Cmd {
	case guest.CmdStatus:
		rep, err := statusReport(v)
		if err != nil {
			r = guest.ErrorReply(err)
		} else {
			r = &guest.Reply{Reply: guest.ReplyStatus, Status: rep}
		}
	case guest.CmdLogs:
		n := c.Lines
		if n == 0 {
			n = guest.DefaultLogLines
		}
		r = &guest.Reply{Reply: guest.ReplyLogs, Logs: agentLogs.Last(n)}
	default:
		r = guest.ErrorReply(fmt.Errorf("status command %q is not handled here", c.Cmd))
	}
	if err := st.Reply(r); err != nil {
		log.Warn("status channel: reply", "cmd", c.Cmd, "err", err)
	}
}

// statusReport builds the status document from the recorder's log (the
// events, RTMR3 and its source, the attested GPUs from the gpu event) and
// the measured config (the identity claims the evidence carries).
func statusReport(v hostView) (*guest.StatusReport, error) {
	l, mr, src, err := v.rec.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("status: reading RTMR3: %w", err)
	}
	rep := &guest.StatusReport{
		State:         guest.StateReady,
		TEE:           v.tee,
		RTMR3Source:   src,
		Instance:      v.cfg.Measured.Instance,
		Model:         v.cfg.Measured.Model,
		OwnerAddress:  v.cfg.Measured.OwnerAddress,
		Port:          guest.HTTPSPort,
		Events:        []guest.ReportEvent{},
		RTMR3:         mr.String(),
		GPU:           guest.GPUReport{State: guest.GPUNone},
		Engine:        engineHealth(v),
		Earnings:      guest.EarningsNA,
		UptimeSeconds: int64(time.Since(v.start) / time.Second),
	}
	if v.earnings != nil {
		rep.Earnings, rep.Payout = v.earnings()
	}
	for _, e := range l.Events {
		if len(rep.Events) < guest.MaxReportEvents {
			rep.Events = append(rep.Events, guest.ReportEvent{Name: e.Name, Digest: e.Digest.String()})
		}
		if e.Name != event.NameGPU {
			continue
		}
		var p event.GPUPayload
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			return nil, fmt.Errorf("status: gpu event payload: %w", err)
		}
		rep.GPU.State = guest.GPUAttested
		for _, g := range p.GPUs {
			rep.GPU.UUIDs = append(rep.GPU.UUIDs, g.UUID)
		}
	}
	if err := rep.Validate(); err != nil {
		return nil, err
	}
	return rep, nil
}

func engineHealth(v hostView) string {
	if v.engine == nil {
		return guest.EngineUnknown
	}
	return v.engine()
}
