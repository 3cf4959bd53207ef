package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// MaxEvent bounds one SSE line from the engine.
const MaxEvent = 4 << 20

// chunk is what the API reads from each streamed chunk.
type chunk struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

var (
	dataPrefix = []byte("data: ")
	doneData   = []byte("[DONE]")
)

// stream passes the engine's SSE events to the client, one flush per
// event, and ends the client's stream properly whatever the engine did:
//
//   - the usage chunk (choices empty, usage set), requested from the
//     engine in every case, reaches the client only if it asked for it
//     (stream_options.include_usage);
//   - if the engine ends its stream without any finish_reason (ollama
//     does so on its token repeat limit), the API adds a chunk with
//     finish_reason "stop", then "data: [DONE]";
//   - if the engine breaks off (crash, connection lost), the client gets
//     a `data: {"error":…}` event and the stream ends without [DONE];
//   - after [DONE], when the engine reported usage and a Signer is set,
//     a final event "event: chrysalis.receipt" carries the signed
//     receipt's canonical JSON.
func (a *API) stream(endpoint string, w http.ResponseWriter, r *http.Request, resp *http.Response, req *request, id string, start time.Time, w8 *watch) int {
	fl, _ := w.(http.Flusher)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flush := func() {
		if fl != nil {
			fl.Flush()
		}
	}
	flush()

	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var (
		last                 chunk
		u                    *usage
		finished, done, seen bool
		werr                 error
		rerr                 error
		buf                  []byte
	)
	for !done {
		line, err := readLine(br, &buf)
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
		if !bytes.HasPrefix(line, dataPrefix) {
			continue // blank separators, comments; ollama sends nothing else
		}
		data := line[len(dataPrefix):]
		if bytes.Equal(data, doneData) {
			done = true
			break
		}
		var c chunk
		if err := json.Unmarshal(data, &c); err != nil {
			rerr = fmt.Errorf("engine sent a chunk that is not JSON: %v", err)
			break
		}
		if c.Usage != nil && len(c.Choices) == 0 {
			u = c.Usage
			if !req.wantUsage {
				continue
			}
		} else {
			last = c
		}
		for _, ch := range c.Choices {
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				finished = true
			}
		}
		if !seen && len(c.Choices) > 0 {
			seen = true
			a.m.firstToken(endpoint, time.Since(start).Seconds())
		}
		if werr = writeEvent(w, "", data); werr != nil {
			break
		}
		flush()
	}
	if werr != nil || r.Context().Err() != nil {
		return statusClientGone
	}
	if rerr != nil {
		if w8.stalled() {
			rerr = fmt.Errorf("the engine stalled (no output for %s) and is being restarted: %v", a.cfg.StallTimeout, rerr)
		}
		a.cfg.Log.Warn("engine stream broke off", "endpoint", endpoint, "request_id", id, "err", rerr)
		e := &Error{Type: typeServer, Code: codeEngineErr, Message: fmt.Sprintf("the engine's stream broke off: %v", rerr)}
		b, _ := e.MarshalJSON()
		writeEvent(w, "", b)
		flush()
		return http.StatusBadGateway
	}
	if !finished {
		a.cfg.Log.Warn("engine ended the stream without finish_reason", "endpoint", endpoint, "request_id", id, "done", done)
		writeEvent(w, "", finalChunk(endpoint, last, a.cfg.Model))
	}
	writeEvent(w, "", doneData)
	if u != nil {
		a.m.tokens(u.PromptTokens, u.CompletionTokens)
		if s := a.receipt(id, *u); s != nil {
			writeEvent(w, ReceiptEvent, s)
		}
	} else {
		a.cfg.Log.Warn("engine gave no usage: no receipt", "endpoint", endpoint, "request_id", id)
	}
	flush()
	return http.StatusOK
}

// readLine returns the next line without its "\n" (and "\r"), copying
// only lines longer than the reader's buffer.
func readLine(br *bufio.Reader, buf *[]byte) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		*buf = append((*buf)[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = br.ReadSlice('\n')
			*buf = append(*buf, line...)
			if len(*buf) > MaxEvent {
				return nil, fmt.Errorf("engine sent an SSE line over %d bytes", MaxEvent)
			}
		}
		line = *buf
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = nil // a last line without newline
		} else {
			return nil, err
		}
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

func writeEvent(w io.Writer, event string, data []byte) error {
	b := make([]byte, 0, len(data)+32)
	if event != "" {
		b = append(append(append(b, "event: "...), event...), '\n')
	}
	b = append(append(append(b, dataPrefix...), data...), "\n\n"...)
	_, err := w.Write(b)
	return err
}

// finalChunk is the chunk the API adds when the engine ended without a
// finish_reason: same id, created and model as its last chunk.
func finalChunk(endpoint string, last chunk, model string) []byte {
	if last.Model == "" {
		last.Model = model
	}
	var v any
	if endpoint == PathCompletions {
		v = map[string]any{"id": last.ID, "object": "text_completion", "created": last.Created, "model": last.Model,
			"choices": []any{map[string]any{"index": 0, "text": "", "finish_reason": "stop"}}}
	} else {
		v = map[string]any{"id": last.ID, "object": "chat.completion.chunk", "created": last.Created, "model": last.Model,
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}}}
	}
	b, _ := json.Marshal(v)
	return b
}
