package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
)

// streamOptions is OpenAI's stream_options.
type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// chatRequest is the subset of OpenAI's chat completion request the
// engines implement; any other field is refused.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *streamOptions  `json:"stream_options,omitempty"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	N                   *int            `json:"n,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	Stop                json.RawMessage `json:"stop,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty,omitempty"`
	PresencePenalty     *float64        `json:"presence_penalty,omitempty"`
	ResponseFormat      json.RawMessage `json:"response_format,omitempty"`
	Tools               json.RawMessage `json:"tools,omitempty"`
	User                string          `json:"user,omitempty"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       string          `json:"name,omitempty"`
	ToolCalls  json.RawMessage `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

// completionRequest is the subset of OpenAI's legacy completion request
// the engines implement (a single string prompt).
type completionRequest struct {
	Model            string          `json:"model"`
	Prompt           string          `json:"prompt"`
	Stream           bool            `json:"stream,omitempty"`
	StreamOptions    *streamOptions  `json:"stream_options,omitempty"`
	MaxTokens        *int            `json:"max_tokens,omitempty"`
	N                *int            `json:"n,omitempty"`
	Seed             *int64          `json:"seed,omitempty"`
	Stop             json.RawMessage `json:"stop,omitempty"`
	Temperature      *float64        `json:"temperature,omitempty"`
	TopP             *float64        `json:"top_p,omitempty"`
	FrequencyPenalty *float64        `json:"frequency_penalty,omitempty"`
	PresencePenalty  *float64        `json:"presence_penalty,omitempty"`
	Suffix           string          `json:"suffix,omitempty"`
	User             string          `json:"user,omitempty"`
}

// Limits of a request beyond its byte size.
const (
	maxMessages = 4096
	maxStops    = 4
	maxUserLen  = 256
)

// request is a validated request, ready to forward.
type request struct {
	stream    bool
	wantUsage bool   // the client asked for the usage chunk
	upstream  []byte // body sent to the engine
}

// decodeStrict reads one JSON object of at most max bytes into v:
// unknown fields, trailing data and a larger body are refused.
func decodeStrict(r *http.Request, max int64, v any) *Error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return invalid("", fmt.Sprintf("content type %q: want application/json", ct))
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, max))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Type: typeInvalid, Code: codeTooLarge,
				Message: fmt.Sprintf("request body exceeds the %d-byte limit", max)}
		}
		return invalid("", fmt.Sprintf("reading the request body: %v", err))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute):
			return invalid(ute.Field, fmt.Sprintf("field %s: JSON %s where %s is expected", ute.Field, ute.Value, ute.Type))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return invalid(f, fmt.Sprintf("unsupported field %q", f))
		case errors.Is(err, io.EOF):
			return invalid("", "empty request body: want a JSON object")
		}
		return invalid("", fmt.Sprintf("request body is not valid JSON: %v", err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("", "request body has data after the JSON object")
	}
	return nil
}

type common struct {
	model               string
	maxTokens, n        *int
	stop                json.RawMessage
	temperature, topP   *float64
	frequency, presence *float64
	user                string
	stream              bool
	streamOpts          *streamOptions
	maxLimit            int
}

func (c common) check(served string) *Error {
	if c.model == "" {
		return invalid("model", "you must provide a model parameter")
	}
	if c.model != served {
		return &Error{Status: http.StatusNotFound, Type: typeInvalid, Param: "model", Code: codeNoModel,
			Message: fmt.Sprintf("the model %q does not exist on this worker; it serves %q", c.model, served)}
	}
	if c.maxTokens != nil && (*c.maxTokens < 1 || (c.maxLimit > 0 && *c.maxTokens > c.maxLimit)) {
		if c.maxLimit > 0 {
			return invalid("max_tokens", fmt.Sprintf("max_tokens %d: want 1 to %d", *c.maxTokens, c.maxLimit))
		}
		return invalid("max_tokens", fmt.Sprintf("max_tokens %d: must be at least 1", *c.maxTokens))
	}
	if c.n != nil && *c.n != 1 {
		return invalid("n", fmt.Sprintf("n %d: only 1 choice is supported", *c.n))
	}
	for _, f := range []struct {
		name   string
		v      *float64
		lo, hi float64
	}{{"temperature", c.temperature, 0, 2}, {"top_p", c.topP, 0, 1}, {"frequency_penalty", c.frequency, -2, 2}, {"presence_penalty", c.presence, -2, 2}} {
		if f.v != nil && (math.IsNaN(*f.v) || *f.v < f.lo || *f.v > f.hi) {
			return invalid(f.name, fmt.Sprintf("%s %v: want %v to %v", f.name, *f.v, f.lo, f.hi))
		}
	}
	if err := checkStop(c.stop); err != nil {
		return err
	}
	if len(c.user) > maxUserLen {
		return invalid("user", fmt.Sprintf("user of %d bytes exceeds %d", len(c.user), maxUserLen))
	}
	if c.streamOpts != nil && !c.stream {
		return invalid("stream_options", "stream_options is only allowed with stream: true")
	}
	return nil
}

func checkStop(raw json.RawMessage) *Error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return invalid("stop", "stop: want a string or an array of strings")
	}
	if len(many) > maxStops {
		return invalid("stop", fmt.Sprintf("stop: %d sequences, at most %d", len(many), maxStops))
	}
	return nil
}

func checkContent(i int, raw json.RawMessage, nullOK bool) *Error {
	param := fmt.Sprintf("messages[%d].content", i)
	t := bytes.TrimSpace(raw)
	switch {
	case len(t) == 0 || string(t) == "null":
		if nullOK {
			return nil
		}
		return invalid(param, param+": missing")
	case t[0] == '"':
		return nil
	case t[0] == '[':
		var parts []struct {
			Type     string          `json:"type"`
			Text     *string         `json:"text"`
			ImageURL json.RawMessage `json:"image_url"`
		}
		if err := json.Unmarshal(t, &parts); err != nil {
			return invalid(param, param+": want a string or an array of content parts")
		}
		for j, p := range parts {
			switch {
			case p.Type == "text" && p.Text != nil:
			case p.Type == "image_url" && len(p.ImageURL) > 0:
			default:
				return invalid(fmt.Sprintf("%s[%d]", param, j), fmt.Sprintf("%s[%d]: want a text or image_url part", param, j))
			}
		}
		return nil
	}
	return invalid(param, param+": want a string or an array of content parts")
}

// parseChat validates a chat completion request and builds the engine's
// body.
func (a *API) parseChat(r *http.Request) (*request, *Error) {
	var c chatRequest
	if err := decodeStrict(r, a.cfg.MaxBody, &c); err != nil {
		return nil, err
	}
	if c.MaxCompletionTokens != nil {
		if c.MaxTokens != nil {
			return nil, invalid("max_completion_tokens", "give max_tokens or max_completion_tokens, not both")
		}
		c.MaxTokens, c.MaxCompletionTokens = c.MaxCompletionTokens, nil
	}
	if err := (common{c.Model, c.MaxTokens, c.N, c.Stop, c.Temperature, c.TopP, c.FrequencyPenalty, c.PresencePenalty, c.User, c.Stream, c.StreamOptions, a.cfg.MaxTokens}).check(a.cfg.Model); err != nil {
		return nil, err
	}
	if len(c.Messages) == 0 {
		return nil, invalid("messages", "messages: at least one message is required")
	}
	if len(c.Messages) > maxMessages {
		return nil, invalid("messages", fmt.Sprintf("messages: %d, at most %d", len(c.Messages), maxMessages))
	}
	for i, m := range c.Messages {
		switch m.Role {
		case "system", "developer", "user", "tool":
			if err := checkContent(i, m.Content, false); err != nil {
				return nil, err
			}
		case "assistant":
			if err := checkContent(i, m.Content, len(m.ToolCalls) > 0); err != nil {
				return nil, err
			}
		default:
			return nil, invalid(fmt.Sprintf("messages[%d].role", i), fmt.Sprintf("messages[%d].role %q: want system, developer, user, assistant or tool", i, m.Role))
		}
	}
	return a.upstream(&c, c.Stream, &c.MaxTokens, &c.StreamOptions, &c.User)
}

// parseCompletion validates a legacy completion request.
func (a *API) parseCompletion(r *http.Request) (*request, *Error) {
	var c completionRequest
	if err := decodeStrict(r, a.cfg.MaxBody, &c); err != nil {
		return nil, err
	}
	if err := (common{c.Model, c.MaxTokens, c.N, c.Stop, c.Temperature, c.TopP, c.FrequencyPenalty, c.PresencePenalty, c.User, c.Stream, c.StreamOptions, a.cfg.MaxTokens}).check(a.cfg.Model); err != nil {
		return nil, err
	}
	if c.Prompt == "" {
		return nil, invalid("prompt", "prompt: a non-empty string is required")
	}
	return a.upstream(&c, c.Stream, &c.MaxTokens, &c.StreamOptions, &c.User)
}

// upstream finishes a validated request c for the engine: the configured
// max_tokens when the client gave none, usage always requested on a stream
// (the client sees it only if it asked), the user field dropped, and the
// body re-encoded. The pointers are c's own fields.
func (a *API) upstream(c any, stream bool, maxTokens **int, opts **streamOptions, user *string) (*request, *Error) {
	if *maxTokens == nil && a.cfg.MaxTokens > 0 {
		*maxTokens = &a.cfg.MaxTokens
	}
	req := &request{stream: stream}
	if stream {
		req.wantUsage = *opts != nil && (*opts).IncludeUsage
		*opts = &streamOptions{IncludeUsage: true}
	}
	*user = ""
	b, err := json.Marshal(c)
	if err != nil {
		return nil, invalid("", err.Error())
	}
	req.upstream = b
	return req, nil
}
