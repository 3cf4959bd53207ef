package api

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Error is an API error in OpenAI's shape:
// {"error":{"message","type","param","code"}}, with param and code null
// when empty.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   string `json:"param"`
	Code    string `json:"code"`
	// RetryAfter, in seconds, becomes the Retry-After header when > 0.
	RetryAfter int `json:"-"`
}

func (e *Error) Error() string { return e.Message }

// MarshalJSON writes the error envelope.
func (e *Error) MarshalJSON() ([]byte, error) {
	type body struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	b := body{Message: e.Message, Type: e.Type}
	if e.Param != "" {
		b.Param = &e.Param
	}
	if e.Code != "" {
		b.Code = &e.Code
	}
	return json.Marshal(struct {
		Error body `json:"error"`
	}{b})
}

// Error types and codes.
const (
	typeInvalid   = "invalid_request_error"
	typeRate      = "requests"
	typeServer    = "server_error"
	codeNoModel   = "model_not_found"
	codeTooLarge  = "request_too_large"
	codeRate      = "rate_limit_exceeded"
	codeQueueWait = "queue_timeout"
	codeEngine    = "engine_unavailable"
	codeEngineErr = "engine_error"
)

func invalid(param, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: typeInvalid, Param: param, Message: msg}
}

func writeError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	b, _ := e.MarshalJSON()
	w.WriteHeader(e.Status)
	w.Write(append(b, '\n'))
}
