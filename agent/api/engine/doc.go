// Package engine runs the inference engine the agent serves: the
// Supervisor starts it as a child process on a loopback port, health
// checks it, restarts it with exponential backoff after a crash or a
// failed health check (counting restarts), and stops it with its whole
// process group. An Adapter says how to run one engine: Ollama (the
// engine the CPU image ships, `ollama serve` on a read-only store) and
// VLLM (GPU workers: `vllm serve` argv, /health, and the mapping of its
// Prometheus metrics to EngineStats).
package engine
