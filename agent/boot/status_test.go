package boot

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

// TestStatusChannel runs the agent side over a real socket pair: status
// lines out, commands in, refused commands answered with error replies.
func TestStatusChannel(t *testing.T) {
	host, agent := net.Pipe()
	defer host.Close()
	s := NewStatusChannel(agent, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r := bufio.NewReader(host)
	readLine := func() string {
		t.Helper()
		host.SetReadDeadline(time.Now().Add(5 * time.Second))
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	go s.Send(guest.Status{State: guest.StateReady, TEE: "insecure-dev", Port: 8443})
	if got := readLine(); got != `{"state":"ready","tee":"insecure-dev","port":8443}`+"\n" {
		t.Fatalf("sent %q", got)
	}
	for _, tc := range []struct{ in, err string }{
		{"not json", "invalid character"},
		{`{"cmd":"reboot"}`, `"reboot" is unknown`},
		{`{"cmd":"logs","lines":5000}`, "lines 5000"},
	} {
		go host.Write([]byte(tc.in + "\n"))
		_, rep, err := guest.ParseAgentLine([]byte(strings.TrimSpace(readLine())))
		if err != nil || rep == nil || rep.Reply != guest.ReplyError || !strings.Contains(rep.Error, tc.err) {
			t.Errorf("%q: reply %+v, %v; want an error mentioning %q", tc.in, rep, err, tc.err)
		}
	}
	go host.Write([]byte("\n{\"cmd\":\"logs\",\"lines\":7}\n{\"cmd\":\"poweroff\"}\n"))
	for _, want := range []guest.Command{{Cmd: guest.CmdLogs, Lines: 7}, {Cmd: guest.CmdPowerOff}} {
		select {
		case c := <-s.Commands():
			if c != want {
				t.Fatalf("command %+v, want %+v", c, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no command delivered")
		}
	}
	// Replies: valid ones as given, an invalid one becomes an error reply.
	go s.Reply(&guest.Reply{Reply: guest.ReplyLogs, Logs: []string{"one"}})
	if got := readLine(); got != `{"reply":"logs","logs":["one"]}`+"\n" {
		t.Fatalf("logs reply %q", got)
	}
	go s.Reply(&guest.Reply{Reply: guest.ReplyStatus})
	if got := readLine(); !strings.Contains(got, `"reply":"error"`) {
		t.Fatalf("invalid reply sent as %q", got)
	}
	// An oversize command line: refused, and the channel stops reading.
	go host.Write([]byte(`{"cmd":"` + strings.Repeat("x", guest.MaxCommandSize) + "\"}\n"))
	if got := readLine(); !strings.Contains(got, "exceeds the size limit") {
		t.Fatalf("oversize command answered %q", got)
	}
	select {
	case _, ok := <-s.Commands():
		if ok {
			t.Fatal("command delivered after an oversize line")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("command channel not closed after an oversize line")
	}
	var nilCh *StatusChannel
	if err := nilCh.Send(guest.Status{State: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := nilCh.Reply(&guest.Reply{Reply: guest.ReplyLogs}); err != nil {
		t.Fatal(err)
	}
}

func TestLogRing(t *testing.T) {
	r := NewLogRing(3)
	var console strings.Builder
	log := slog.New(r.Wrap(slog.NewTextHandler(&console, &slog.HandlerOptions{Level: slog.LevelInfo}))).With("component", "agent")
	if got := r.Last(10); len(got) != 0 {
		t.Fatalf("empty ring: %q", got)
	}
	log.Info("one")
	log.Debug("hidden") // below the wrapped handler's level: not kept
	log.Info("two", "k", "v")
	if got := r.Last(10); len(got) != 2 || !strings.Contains(got[0], "msg=one component=agent") || !strings.Contains(got[1], "msg=two component=agent k=v") {
		t.Fatalf("ring %q", got)
	}
	if strings.Count(console.String(), "\n") != 2 {
		t.Fatalf("console %q", console.String())
	}
	log.WithGroup("g").Info("three", "a", 1)
	log.Info("four")
	got := r.Last(10)
	if len(got) != 3 || !strings.Contains(got[0], "msg=two") || !strings.Contains(got[1], "g.a=1") || !strings.Contains(got[2], "msg=four") {
		t.Fatalf("wrapped ring %q", got)
	}
	if got := r.Last(1); len(got) != 1 || !strings.Contains(got[0], "msg=four") {
		t.Fatalf("Last(1) = %q", got)
	}
	log.Info(strings.Repeat("é", guest.MaxLogLineBytes))
	l := r.Last(1)[0]
	if len(l) > guest.MaxLogLineBytes || !strings.HasPrefix(l, "time=") {
		t.Fatalf("long line kept as %d bytes", len(l))
	}
	if _, err := guest.EncodeReply(&guest.Reply{Reply: guest.ReplyLogs, Logs: r.Last(guest.MaxLogLines)}); err != nil {
		t.Fatal(err)
	}
}
