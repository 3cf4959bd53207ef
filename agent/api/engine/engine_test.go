package engine

import (
	"context"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestOllamaCommand(t *testing.T) {
	good := Ollama{Binary: "/bin/ollama", Models: "/models", Home: "/run/ollama", NumParallel: 4, Env: []string{"OLLAMA_DEBUG=1"}}
	cmd, err := good.Command("127.0.0.1", 11500)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/bin/ollama", "serve"}; !reflect.DeepEqual(cmd.Args, want) {
		t.Errorf("argv %q, want %q", cmd.Args, want)
	}
	wantEnv := []string{"HOME=/run/ollama", "OLLAMA_HOST=127.0.0.1:11500", "OLLAMA_MODELS=/models", "OLLAMA_NOPRUNE=1", "OLLAMA_KEEP_ALIVE=-1", "OLLAMA_NUM_PARALLEL=4", "OLLAMA_DEBUG=1"}
	if got := cmd.Env[1:]; !reflect.DeepEqual(got, wantEnv) {
		t.Errorf("env %q, want %q", got, wantEnv)
	}
	if !strings.HasPrefix(cmd.Env[0], "PATH=") {
		t.Errorf("env[0] %q, want PATH=", cmd.Env[0])
	}
	for _, tc := range []struct {
		name string
		o    Ollama
		port int
		want string
	}{
		{"no binary", Ollama{Models: "/m", Home: "/h"}, 1, "no binary"},
		{"no store", Ollama{Binary: "/b", Home: "/h"}, 1, "no model store"},
		{"no home", Ollama{Binary: "/b", Models: "/m"}, 1, "no writable HOME"},
		{"port", Ollama{Binary: "/b", Models: "/m", Home: "/h"}, 70000, "port 70000"},
	} {
		if _, err := tc.o.Command("127.0.0.1", tc.port); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestVLLMArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    VLLM
		want []string
		err  string
	}{
		{"minimal", VLLM{ModelDir: "/models/llama", ServedName: "llama-3.1-8b", MaxModelLen: 8192},
			[]string{"serve", "/models/llama", "--served-model-name", "llama-3.1-8b", "--host", "127.0.0.1", "--port", "8000", "--max-model-len", "8192", "--load-format", "safetensors"}, ""},
		{"full", VLLM{ModelDir: "/m", ServedName: "m:1", MaxModelLen: 4096, GPUMemoryUtilization: 0.9, TensorParallel: 2, Extra: []string{"--enforce-eager"}},
			[]string{"serve", "/m", "--served-model-name", "m:1", "--host", "127.0.0.1", "--port", "8000", "--max-model-len", "4096", "--load-format", "safetensors", "--gpu-memory-utilization", "0.9", "--tensor-parallel-size", "2", "--enforce-eager"}, ""},
		{"no dir", VLLM{ServedName: "m", MaxModelLen: 1}, nil, "no model directory"},
		{"bad name", VLLM{ModelDir: "/m", ServedName: "a b", MaxModelLen: 1}, nil, `served model name "a b"`},
		{"no len", VLLM{ModelDir: "/m", ServedName: "m"}, nil, "max model len 0"},
		{"mem", VLLM{ModelDir: "/m", ServedName: "m", MaxModelLen: 1, GPUMemoryUtilization: 1.5}, nil, "gpu memory utilization 1.5"},
	} {
		got, err := tc.v.Args("127.0.0.1", 8000)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q, %v\nwant %q", tc.name, got, err, tc.want)
		}
	}
	cmd, err := VLLM{ModelDir: "/m", ServedName: "m", MaxModelLen: 1}.Command("127.0.0.1", 8000)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Args[0] != "vllm" || !slicesContain(cmd.Env, "HF_HUB_OFFLINE=1") {
		t.Errorf("command %q env %q: want vllm, offline", cmd.Args, cmd.Env)
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestVLLMStats(t *testing.T) {
	f, err := os.Open("testdata/vllm_metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	samples, err := ParseMetrics(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 17 {
		t.Errorf("%d samples, want 17", len(samples))
	}
	st, err := VLLMStats(samples, "llama-3.1-8b")
	if err != nil {
		t.Fatal(err)
	}
	want := EngineStats{RequestsRunning: 3, RequestsWaiting: 2, KVCacheUsage: 0.4375, PromptTokens: 12345, GenerationTokens: 67890, Preemptions: 1,
		RequestsFinished: map[string]float64{"stop": 40, "length": 7, "abort": 1}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("stats %+v\nwant %+v", st, want)
	}
	if _, err := VLLMStats(samples, "absent"); err == nil || !strings.Contains(err.Error(), `model "absent"`) {
		t.Errorf("absent model: %v", err)
	}
	bad := []Sample{{Name: "vllm:num_requests_running", Labels: map[string]string{"model_name": "m"}, Value: -1}}
	if _, err := VLLMStats(bad, "m"); err == nil {
		t.Error("negative gauge accepted")
	}
}

func TestParseMetricsErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"x{a=\"1\"} notanumber\n", `value "notanumber"`},
		{"9x 1\n", "bad metric name"},
		{"x{a=1} 1\n", "bad label"},
		{"x{a=\"1\",a=\"2\"} 1\n", "label a twice"},
		{"x{a=\"1} 1\n", "unterminated"},
		{"x{a=\"\\q\"} 1\n", `bad escape`},
		{"x 1 2 3\n", "optional timestamp"},
		{"x 1 1.5\n", "timestamp"},
		{"x\n", "no value"},
	} {
		_, err := ParseMetrics(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.want)
		}
	}
	s, err := ParseMetrics(strings.NewReader(`a{l="x\"y\\z\n"} +Inf` + "\n"))
	if err != nil || s[0].Labels["l"] != "x\"y\\z\n" {
		t.Errorf("escapes: %+v %v", s, err)
	}
}

func FuzzParseMetrics(f *testing.F) {
	b, err := os.ReadFile("testdata/vllm_metrics.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("a{b=\"c\"} 1\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ParseMetrics(strings.NewReader(string(in)))
		if err != nil {
			return
		}
		for _, x := range s {
			if !metricNameRE.MatchString(x.Name) {
				t.Fatalf("accepted bad name %q", x.Name)
			}
		}
		VLLMStats(s, "llama-3.1-8b")
	})
}

// cmdAdapter runs a real program as the "engine", for the supervisor's
// failure paths: a program that exits at once, or never answers.
type cmdAdapter struct{ argv []string }

func (c cmdAdapter) Name() string       { return c.argv[0] }
func (c cmdAdapter) HealthPath() string { return "/" }
func (c cmdAdapter) Command(string, int) (*exec.Cmd, error) {
	return exec.Command(c.argv[0], c.argv[1:]...), nil
}

func TestSupervisorCrashLoopBacksOff(t *testing.T) {
	f, err := exec.LookPath("false")
	if err != nil {
		t.Skip("no false(1)")
	}
	s, err := NewSupervisor(Config{Adapter: cmdAdapter{[]string{f}}, MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	time.Sleep(400 * time.Millisecond)
	s.Stop()
	// Backoff 20+40+80+80... ms: about 5 restarts in 400 ms, not hundreds.
	if n := s.Restarts(); n < 2 || n > 8 {
		t.Errorf("%d restarts in 400 ms with backoff 20..80 ms", n)
	}
	if s.Ready() || s.URL() != "" {
		t.Error("a crashing engine reported ready")
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "exited during start") {
		t.Errorf("err %v, want exited during start", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.WaitReady(ctx); err == nil || !strings.Contains(err.Error(), "last error") {
		t.Errorf("WaitReady: %v", err)
	}
}

func TestSupervisorStartTimeoutKills(t *testing.T) {
	sl, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	s, err := NewSupervisor(Config{Adapter: cmdAdapter{[]string{sl, "60"}}, StartTimeout: 150 * time.Millisecond, MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	deadline := time.Now().Add(5 * time.Second)
	for s.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "not healthy") {
		t.Errorf("err %v, want not healthy", err)
	}
	done := make(chan struct{})
	go func() { s.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop hung")
	}
}
