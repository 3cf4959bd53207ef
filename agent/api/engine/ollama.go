package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
)

// Ollama runs `ollama serve` on a read-only model store. The model's
// parameters (num_thread, num_ctx, template) live in the store's params
// blob, not here.
type Ollama struct {
	// Binary is the ollama executable.
	Binary string
	// Models is the store (OLLAMA_MODELS): manifests/ and blobs/. It is
	// never written: OLLAMA_NOPRUNE=1 stops the startup prune.
	Models string
	// Home is a writable directory for $HOME (ollama creates
	// ~/.ollama/id_ed25519 there at start, and exits if it cannot).
	Home string
	// Model is the store's model ("name:tag") that Warm loads before the
	// engine counts as ready ("": no warm-up, loaded by the first request).
	Model string
	// NumParallel is OLLAMA_NUM_PARALLEL (0: ollama's default, 1).
	NumParallel int
	// Env holds extra KEY=VALUE variables, appended last.
	Env []string
}

// Name implements Adapter.
func (o Ollama) Name() string { return "ollama" }

// HealthPath implements Adapter.
func (o Ollama) HealthPath() string { return "/api/version" }

// Command implements Adapter: `ollama serve` with OLLAMA_HOST on
// host:port, the store, no pruning, models kept loaded for ever.
func (o Ollama) Command(host string, port int) (*exec.Cmd, error) {
	switch {
	case o.Binary == "":
		return nil, errors.New("ollama: no binary")
	case o.Models == "":
		return nil, errors.New("ollama: no model store (OLLAMA_MODELS)")
	case o.Home == "":
		return nil, errors.New("ollama: no writable HOME")
	case port <= 0 || port > 65535:
		return nil, fmt.Errorf("ollama: port %d out of range", port)
	}
	cmd := exec.Command(o.Binary, "serve")
	env := []string{
		"HOME=" + o.Home,
		"OLLAMA_HOST=" + net.JoinHostPort(host, strconv.Itoa(port)),
		"OLLAMA_MODELS=" + o.Models,
		"OLLAMA_NOPRUNE=1",
		"OLLAMA_KEEP_ALIVE=-1",
	}
	if o.NumParallel > 0 {
		env = append(env, "OLLAMA_NUM_PARALLEL="+strconv.Itoa(o.NumParallel))
	}
	cmd.Env = environ(append(env, o.Env...)...)
	return cmd, nil
}

// Warm implements Warmer: a generate request with an empty prompt, which
// makes ollama load the model (and keep it: OLLAMA_KEEP_ALIVE=-1) and
// answer {"done":true,"done_reason":"load"} without generating.
func (o Ollama) Warm(ctx context.Context, base string) error {
	if o.Model == "" {
		return nil
	}
	body, err := json.Marshal(map[string]any{"model": o.Model, "stream": false})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/generate", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("load model %s: %w", o.Model, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var r struct {
		Done  bool   `json:"done"`
		Error string `json:"error"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &r) != nil || !r.Done {
		if r.Error != "" {
			return fmt.Errorf("load model %s: %s: %s", o.Model, resp.Status, r.Error)
		}
		return fmt.Errorf("load model %s: %s: %.200q", o.Model, resp.Status, b)
	}
	return nil
}
