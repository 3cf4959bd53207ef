package boot

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

// DefaultLogRingLines is how many log lines the agent keeps for the
// host's logs command.
const DefaultLogRingLines = guest.MaxLogLines

// LogRing keeps the last lines an slog handler wrote, for the host's
// logs command (guest.CmdLogs). Lines are formatted like the text handler
// the agent logs with (time level msg attrs), cut to
// guest.MaxLogLineBytes and made valid UTF-8.
type LogRing struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

// NewLogRing keeps the last n lines (1..guest.MaxLogLines; other values
// mean DefaultLogRingLines).
func NewLogRing(n int) *LogRing {
	if n < 1 || n > guest.MaxLogLines {
		n = DefaultLogRingLines
	}
	return &LogRing{lines: make([]string, n)}
}

func (r *LogRing) add(line string) {
	line = strings.ToValidUTF8(strings.TrimRight(line, "\n"), "?")
	if len(line) > guest.MaxLogLineBytes {
		cut := guest.MaxLogLineBytes
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = line[:cut]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.next] = line
	r.next++
	if r.next == len(r.lines) {
		r.next, r.full = 0, true
	}
}

// Last returns up to n most recent lines, oldest first.
func (r *LogRing) Last(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	have := r.next
	if r.full {
		have = len(r.lines)
	}
	if n > have {
		n = have
	}
	out := make([]string, 0, n)
	for i := have - n; i < have; i++ {
		j := i
		if r.full {
			j = (r.next + i) % len(r.lines)
		}
		out = append(out, r.lines[j])
	}
	return out
}

// Wrap returns a handler that passes every record to next and also
// records it in the ring, formatted by a text handler with next's level
// decisions (a record next drops is not recorded).
func (r *LogRing) Wrap(next slog.Handler) slog.Handler {
	rw := &ringWriter{ring: r}
	return &ringHandler{next: next, text: slog.NewTextHandler(rw, &slog.HandlerOptions{Level: slog.LevelDebug}), ring: r}
}

// ringWriter turns each Write of the text handler (one record per call)
// into one ring line.
type ringWriter struct{ ring *LogRing }

func (w *ringWriter) Write(b []byte) (int, error) {
	w.ring.add(string(b))
	return len(b), nil
}

type ringHandler struct {
	next slog.Handler
	text slog.Handler
	ring *LogRing
}

func (h *ringHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *ringHandler) Handle(ctx context.Context, rec slog.Record) error {
	_ = h.text.Handle(ctx, rec.Clone())
	return h.next.Handle(ctx, rec)
}

func (h *ringHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &ringHandler{next: h.next.WithAttrs(as), text: h.text.WithAttrs(as), ring: h.ring}
}

func (h *ringHandler) WithGroup(name string) slog.Handler {
	return &ringHandler{next: h.next.WithGroup(name), text: h.text.WithGroup(name), ring: h.ring}
}
