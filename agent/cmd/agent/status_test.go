package main

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/agent/boot"
	"github.com/chrysalis-cc/chrysalis/agent/rtmr"
	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

// TestAnswerHost records real events with a software RTMR3 and asks for
// status and logs over a socket pair, as the host does.
func TestAnswerHost(t *testing.T) {
	rec := rtmr.NewRecorder(&rtmr.Software{})
	cfg := &guest.Config{Version: 1, Measured: guest.MeasuredConfig{Instance: "w-3", Model: "m"}, Network: guest.DevNetwork}
	mb, _ := cfg.MeasuredBytes()
	var want []string
	for _, ev := range []func() (event.Event, error){
		func() (event.Event, error) { return event.New(event.NameConfig, 1, jsonRaw(mb)) },
		func() (event.Event, error) {
			return event.New(event.NameGPU, 1, event.GPUPayload{Policy: strings.Repeat("0", 64), GPUs: []event.GPUPayloadEntry{{UUID: "GPU-1234-abcd", DriverVersion: "570", VBIOSVersion: "96", Evidence: strings.Repeat("1", 96)}}})
		},
		func() (event.Event, error) { return event.New(event.NameReady, 1, struct{}{}) },
	} {
		e, err := ev()
		if err != nil {
			t.Fatal(err)
		}
		d, err := rec.Record(e)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, e.Name+"="+d.String())
	}
	log := slog.New(agentLogs.Wrap(slog.NewTextHandler(io.Discard, nil)))
	log.Info("ready", "port", guest.HTTPSPort)

	host, agent := net.Pipe()
	defer host.Close()
	st := boot.NewStatusChannel(agent, log)
	v := hostView{start: time.Now().Add(-90 * time.Second), tee: "insecure-dev", cfg: cfg, rec: rec}
	r := bufio.NewReader(host)
	ask := func(c guest.Command) *guest.Reply {
		t.Helper()
		go answerHost(log, st, c, v)
		host.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		_, rep, err := guest.ParseAgentLine(line[:len(line)-1])
		if err != nil || rep == nil {
			t.Fatalf("reply %q: %v", line, err)
		}
		return rep
	}
	rep := ask(guest.Command{Cmd: guest.CmdStatus})
	s := rep.Status
	if rep.Reply != guest.ReplyStatus || s.State != guest.StateReady || s.TEE != "insecure-dev" || s.RTMR3Source != "software" ||
		s.Instance != "w-3" || s.Model != "m" || s.Engine != guest.EngineUnknown || s.Earnings != guest.EarningsNA || s.UptimeSeconds < 90 {
		t.Fatalf("status %+v", s)
	}
	var got []string
	for _, e := range s.Events {
		got = append(got, e.Name+"="+e.Digest)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v", got, want)
	}
	if s.GPU.State != guest.GPUAttested || len(s.GPU.UUIDs) != 1 || s.GPU.UUIDs[0] != "GPU-1234-abcd" {
		t.Fatalf("gpu %+v", s.GPU)
	}
	l, mr, _, _ := rec.Snapshot()
	if replay, err := l.Replay(); err != nil || replay != mr || s.RTMR3 != mr.String() {
		t.Fatalf("rtmr3 %s, replay %s (%v)", s.RTMR3, replay, err)
	}

	rep = ask(guest.Command{Cmd: guest.CmdLogs, Lines: 1})
	if rep.Reply != guest.ReplyLogs || len(rep.Logs) != 1 || !strings.Contains(rep.Logs[0], "msg=ready port=8443") {
		t.Fatalf("logs %+v", rep)
	}
	if rep = ask(guest.Command{Cmd: "dance"}); rep.Reply != guest.ReplyError || !strings.Contains(rep.Error, `"dance"`) {
		t.Fatalf("unknown command reply %+v", rep)
	}
}

func jsonRaw(b []byte) any { return rawJSON(b) }

type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }
