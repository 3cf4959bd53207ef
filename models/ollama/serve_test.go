package ollama

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/models/engine"
	"github.com/chrysalis-cc/chrysalis/models/gguf"
)

// engineEnv names the engine binary for the tests that run it.
const engineEnv = "CHRYSALIS_TEST_ENGINE"

// engineBinary returns the engine from $CHRYSALIS_TEST_ENGINE or the pinned
// one from the cache; without either the test is skipped.
func engineBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(engineEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", engineEnv, err)
		}
		return p
	}
	lock, err := engine.DefaultLock()
	if err != nil {
		t.Fatal(err)
	}
	cache, err := engine.CacheDir()
	if err != nil {
		t.Skipf("no engine: %v; set %s=PATH (chrysalis engine build prints it)", err, engineEnv)
	}
	r, ok, err := engine.Cached(lock, cache)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skipf("no engine binary in %s and %s unset: run `chrysalis engine build` (or go run ./host/cmd/chrysalis engine build) and set %s to the path it prints", cache, engineEnv, engineEnv)
	}
	return r.Path
}

// server is a running `ollama serve`.
type server struct {
	base string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serve starts the engine on store with the environment the agent uses
// and waits until it answers.
func serve(t *testing.T, bin, store string) *server {
	t.Helper()
	port := freePort(t)
	s := &server{base: fmt.Sprintf("http://127.0.0.1:%d", port), log: &bytes.Buffer{}}
	s.cmd = exec.Command(bin, "serve")
	s.cmd.Env = []string{
		"PATH=/usr/bin:/bin",
		"HOME=" + t.TempDir(),
		"OLLAMA_MODELS=" + store,
		"OLLAMA_HOST=" + strings.TrimPrefix(s.base, "http://"),
		"OLLAMA_NOPRUNE=1",
		"OLLAMA_KEEP_ALIVE=-1",
	}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The server re-execs itself as the runner: stop the whole group.
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Wait()
		if t.Failed() {
			t.Logf("ollama serve output:\n%s", s.log)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.base + "/api/version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ollama serve did not answer within 30 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type chunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

// chat streams one completion and returns the text, the finish reason,
// whether [DONE] came, the number of content chunks and the time from the
// first to the last one.
func chat(t *testing.T, base, prompt string, maxTokens int) (text, finish string, done bool, chunks int, span time.Duration) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"model":       TestModelName,
		"messages":    []map[string]string{{"role": "user", "content": prompt}},
		"stream":      true,
		"temperature": 0,
		"max_tokens":  maxTokens,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("chat completions: %s: %s", resp.Status, b)
	}
	var sb strings.Builder
	var first, last time.Time
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			done = true
			break
		}
		var c chunk
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("bad SSE chunk %q: %v", line, err)
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != "" {
				if first.IsZero() {
					first = time.Now()
				}
				last = time.Now()
				chunks++
				sb.WriteString(ch.Delta.Content)
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sb.String(), finish, done, chunks, last.Sub(first)
}

// TestServeReadOnly runs the real engine on a store written by
// WriteTestModelDir, made read-only, and checks the OpenAI endpoints:
// /v1/models lists the model and a greedy streaming chat completion
// returns exactly the generator's cycle text.
func TestServeReadOnly(t *testing.T) {
	bin := engineBinary(t)
	dir := filepath.Join(t.TempDir(), "model")
	if _, err := WriteTestModelDir(dir, bin); err != nil {
		t.Fatal(err)
	}
	before := tree(t, dir)
	// Read-only as far as permissions go (root ignores them, so the
	// trees are also compared afterwards: serving must not write).
	readOnly(t, dir)
	s := serve(t, filepath.Join(dir, EngineFile), filepath.Join(dir, StoreDir))

	resp, err := http.Get(s.base + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&models)
	resp.Body.Close()
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != TestModelName+":latest" {
		t.Fatalf("/v1/models: %+v, %v", models, err)
	}

	const n = 200
	want, err := gguf.CycleText(gguf.Tiny(), '>', n)
	if err != nil {
		t.Fatal(err)
	}
	for i, prompt := range []string{"Hello", "a different prompt"} {
		text, finish, done, chunks, span := chat(t, s.base, prompt, n)
		if text != want {
			t.Errorf("completion %d:\n got %q\nwant %q", i, text, want)
		}
		if finish != "length" || !done {
			t.Errorf("completion %d: finish_reason %q, [DONE] %v; want length, true", i, finish, done)
		}
		if chunks > 1 && span > 0 {
			t.Logf("completion %d: %d chunks in %v: %.0f tokens/s", i, chunks, span, float64(chunks-1)/span.Seconds())
		}
	}
	after := tree(t, dir)
	if len(after) != len(before) {
		t.Errorf("serving changed the model directory: %d files before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("serving changed %s", k)
		}
	}
}

func readOnly(t *testing.T, dir string) {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		mode := os.FileMode(0o444)
		if filepath.Base(p) == filepath.Base(EngineFile) {
			mode = 0o555
		}
		return os.Chmod(p, mode)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if err := os.Chmod(d, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range dirs {
			_ = os.Chmod(d, 0o755)
		}
	})
}
