package boot

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"sync"

	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

// StatusChannel speaks the guest.Status / guest.Command line protocol.
type StatusChannel struct {
	mu  sync.Mutex
	w   io.Writer
	cmd chan guest.Command
}

// NewStatusChannel wraps a bidirectional port. Commands read from rw are
// delivered on Commands until rw hits EOF or an error.
func NewStatusChannel(rw io.ReadWriter, log *slog.Logger) *StatusChannel {
	s := &StatusChannel{w: rw, cmd: make(chan guest.Command, 4)}
	go func() {
		defer close(s.cmd)
		sc := bufio.NewScanner(rw)
		sc.Buffer(make([]byte, 4096), 4096)
		for sc.Scan() {
			var c guest.Command
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				log.Warn("status channel: ignoring malformed command", "err", err)
				continue
			}
			s.cmd <- c
		}
	}()
	return s
}

// Send writes one status line. A nil channel drops it.
func (s *StatusChannel) Send(st guest.Status) error {
	if s == nil {
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err = s.w.Write(append(b, '\n'))
	return err
}

// Commands delivers host commands; nil channel (never ready) for a nil s.
func (s *StatusChannel) Commands() <-chan guest.Command {
	if s == nil {
		return nil
	}
	return s.cmd
}
