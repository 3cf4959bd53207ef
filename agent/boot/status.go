package boot

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"

	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

// StatusChannel speaks the guest status channel protocol (see
// measure/guest): it sends Status and Reply lines and delivers the host's
// commands. A line the host sends that does not parse, or names an
// unknown command, is answered here with an error Reply and never
// delivered.
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
		sc.Buffer(make([]byte, 4096), guest.MaxCommandSize)
		for {
			if !sc.Scan() {
				if errors.Is(sc.Err(), bufio.ErrTooLong) {
					// The rest of the line cannot be resynchronised
					// reliably; refuse it and stop listening.
					log.Warn("status channel: command line too long; no longer reading commands")
					s.Reply(guest.ErrorReply(errors.New("status command: line exceeds the size limit")))
				}
				return
			}
			if len(sc.Bytes()) == 0 {
				continue
			}
			c, err := guest.ParseCommand(sc.Bytes())
			if err != nil {
				log.Warn("status channel: refusing command", "err", err)
				s.Reply(guest.ErrorReply(err))
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
	return s.write(append(b, '\n'))
}

// Reply writes one reply line (guest.EncodeReply: validated, bounded). A
// reply too large to send is replaced by an error reply saying so. A nil
// channel drops it.
func (s *StatusChannel) Reply(r *guest.Reply) error {
	if s == nil {
		return nil
	}
	b, err := guest.EncodeReply(r)
	if err != nil {
		if b, err = guest.EncodeReply(guest.ErrorReply(err)); err != nil {
			return err
		}
	}
	return s.write(b)
}

func (s *StatusChannel) write(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.w.Write(b)
	return err
}

// Commands delivers host commands; nil channel (never ready) for a nil s.
func (s *StatusChannel) Commands() <-chan guest.Command {
	if s == nil {
		return nil
	}
	return s.cmd
}
