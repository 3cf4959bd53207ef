// Package api is the worker's OpenAI-compatible inference API, served
// over RA-TLS next to agent/server: POST /v1/chat/completions and
// /v1/completions (streaming SSE and not), GET /v1/models and GET
// /metrics (Prometheus text, written by hand). It sits in front of one
// engine (agent/api/engine.Supervisor) on loopback.
//
// Requests are decoded strictly (size limit, unknown fields refused),
// must name the served model, and get errors in OpenAI's shape
// {"error":{"message","type","param","code"}} with 400, 404, 405, 413,
// 429 (queue full, with Retry-After), 502 (the engine failed) or 503
// (engine starting or restarting, or the queue wait timed out). At most
// MaxConcurrent requests reach the engine; QueueDepth more wait.
// A client that goes away cancels the engine's request (its context).
//
// Every request the engine served with a usage count (the engine's own
// accounting; streams always ask it for stream_options.include_usage)
// gets a signed receipt (measure/payment.SignedReceipt): non-streaming,
// in the response header X-Chrysalis-Receipt as standard base64 of the
// receipt's canonical JSON; streaming, as a last SSE event after
// "data: [DONE]":
//
//	event: chrysalis.receipt
//	data: <canonical JSON of the SignedReceipt>
//
// OpenAI clients stop reading at [DONE] and never see it; a proxy must
// read the stream to its end, verify the receipt
// (payment.VerifyReceipt) and strip it before forwarding. Its
// request_id_sha256 is the SHA-256 of the X-Request-Id the client sent
// (or the one the API made, returned in the same response header).
// Requests the engine did not complete with usage get no receipt.
package api
