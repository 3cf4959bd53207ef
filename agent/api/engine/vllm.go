package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// VLLM runs `vllm serve` for GPU workers.
type VLLM struct {
	// Binary is the vllm executable ("vllm" on PATH when empty).
	Binary string
	// ModelDir is the model's directory on the verified model disk.
	ModelDir string
	// ServedName is the model name clients use (--served-model-name).
	ServedName string
	// MaxModelLen is --max-model-len (required: the context is sized by
	// the worker's shape, not guessed by vLLM).
	MaxModelLen int
	// GPUMemoryUtilization is --gpu-memory-utilization when > 0.
	GPUMemoryUtilization float64
	// TensorParallel is --tensor-parallel-size when > 1.
	TensorParallel int
	// Extra arguments, appended last.
	Extra []string
	// Env holds extra KEY=VALUE variables.
	Env []string
}

var servedNameRE = regexp.MustCompile(`^[A-Za-z0-9._:/@+-]{1,128}$`)

// Name implements Adapter.
func (v VLLM) Name() string { return "vllm" }

// HealthPath implements Adapter.
func (v VLLM) HealthPath() string { return "/health" }

// Args is the argv after the binary.
func (v VLLM) Args(host string, port int) ([]string, error) {
	switch {
	case v.ModelDir == "":
		return nil, errors.New("vllm: no model directory")
	case !servedNameRE.MatchString(v.ServedName):
		return nil, fmt.Errorf("vllm: served model name %q: want 1-128 of [A-Za-z0-9._:/@+-]", v.ServedName)
	case v.MaxModelLen <= 0:
		return nil, fmt.Errorf("vllm: max model len %d: must be positive", v.MaxModelLen)
	case port <= 0 || port > 65535:
		return nil, fmt.Errorf("vllm: port %d out of range", port)
	case v.GPUMemoryUtilization < 0 || v.GPUMemoryUtilization > 1:
		return nil, fmt.Errorf("vllm: gpu memory utilization %g: want (0, 1]", v.GPUMemoryUtilization)
	}
	a := []string{"serve", v.ModelDir,
		"--served-model-name", v.ServedName,
		"--host", host,
		"--port", strconv.Itoa(port),
		"--max-model-len", strconv.Itoa(v.MaxModelLen),
		// The model disk is the only source of weights: never download.
		"--load-format", "safetensors",
	}
	if v.GPUMemoryUtilization > 0 {
		a = append(a, "--gpu-memory-utilization", strconv.FormatFloat(v.GPUMemoryUtilization, 'f', -1, 64))
	}
	if v.TensorParallel > 1 {
		a = append(a, "--tensor-parallel-size", strconv.Itoa(v.TensorParallel))
	}
	return append(a, v.Extra...), nil
}

// Command implements Adapter. vLLM runs offline: HF_HUB_OFFLINE=1 and
// TRANSFORMERS_OFFLINE=1, usage statistics off.
func (v VLLM) Command(host string, port int) (*exec.Cmd, error) {
	args, err := v.Args(host, port)
	if err != nil {
		return nil, err
	}
	bin := v.Binary
	if bin == "" {
		bin = "vllm"
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = environ(append([]string{"HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "VLLM_NO_USAGE_STATS=1", "DO_NOT_TRACK=1"}, v.Env...)...)
	return cmd, nil
}

// EngineStats is what the agent reads from an engine's own metrics.
type EngineStats struct {
	RequestsRunning float64
	RequestsWaiting float64
	// KVCacheUsage is the fraction of KV cache blocks in use (0..1).
	KVCacheUsage     float64
	PromptTokens     float64
	GenerationTokens float64
	Preemptions      float64
	// RequestsFinished counts finished requests by finished_reason.
	RequestsFinished map[string]float64
}

// Sample is one line of the Prometheus text exposition format.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// MaxMetrics bounds a metrics page the parser accepts.
const MaxMetrics = 4 << 20

var metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// ParseMetrics parses the Prometheus text exposition format (version
// 0.0.4): comment lines are skipped, every sample line must be
// name{labels} value [timestamp].
func ParseMetrics(r io.Reader) ([]Sample, error) {
	sc := bufio.NewScanner(io.LimitReader(r, MaxMetrics+1))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []Sample
	n, total := 0, 0
	for sc.Scan() {
		n++
		line := sc.Text()
		total += len(line) + 1
		if total > MaxMetrics {
			return nil, fmt.Errorf("metrics: more than %d bytes", MaxMetrics)
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", n, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return out, nil
}

func parseSample(line string) (Sample, error) {
	var s Sample
	i := strings.IndexAny(line, "{ \t")
	if i < 0 {
		return s, fmt.Errorf("%q: no value", line)
	}
	s.Name = line[:i]
	if !metricNameRE.MatchString(s.Name) {
		return s, fmt.Errorf("%q: bad metric name %q", line, s.Name)
	}
	rest := line[i:]
	if rest[0] == '{' {
		s.Labels = map[string]string{}
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " \t")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.IndexByte(rest, '=')
			if eq <= 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
				return s, fmt.Errorf("%q: bad label in %s", line, s.Name)
			}
			key := strings.TrimSpace(rest[:eq])
			val, n, err := unquoteLabel(rest[eq+2:])
			if err != nil {
				return s, fmt.Errorf("%q: label %s: %w", line, key, err)
			}
			if _, dup := s.Labels[key]; dup {
				return s, fmt.Errorf("%q: label %s twice", line, key)
			}
			s.Labels[key] = val
			rest = strings.TrimLeft(rest[eq+2+n:], " \t")
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
			} else if !strings.HasPrefix(rest, "}") {
				return s, fmt.Errorf("%q: want , or } after label %s", line, key)
			}
		}
	}
	f := strings.Fields(rest)
	if len(f) < 1 || len(f) > 2 {
		return s, fmt.Errorf("%q: want a value and an optional timestamp", line)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, fmt.Errorf("%q: value %q is not a float", line, f[0])
	}
	if len(f) == 2 {
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			return s, fmt.Errorf("%q: timestamp %q is not an integer", line, f[1])
		}
	}
	s.Value = v
	return s, nil
}

// unquoteLabel reads a label value up to its closing quote, undoing the
// \\, \" and \n escapes; n counts the bytes consumed with the quote.
func unquoteLabel(s string) (string, int, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			i++
			if i == len(s) {
				return "", 0, errors.New("unterminated escape")
			}
			switch s[i] {
			case '\\', '"':
				b.WriteByte(s[i])
			case 'n':
				b.WriteByte('\n')
			default:
				return "", 0, fmt.Errorf("bad escape \\%c", s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, errors.New("unterminated value")
}

// VLLMStats maps vLLM's metrics (names as documented for vLLM's
// OpenAI server, `vllm:` prefix) for the served model to EngineStats.
// Both the V0 name vllm:gpu_cache_usage_perc and the V1 name
// vllm:kv_cache_usage_perc are read. Samples of other models are
// ignored; none at all for the model is an error.
func VLLMStats(samples []Sample, model string) (EngineStats, error) {
	st := EngineStats{RequestsFinished: map[string]float64{}}
	seen := 0
	for _, s := range samples {
		if m, ok := s.Labels["model_name"]; !ok || m != model {
			continue
		}
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || s.Value < 0 {
			return EngineStats{}, fmt.Errorf("vllm metric %s = %v: want a finite non-negative value", s.Name, s.Value)
		}
		seen++
		switch s.Name {
		case "vllm:num_requests_running":
			st.RequestsRunning += s.Value
		case "vllm:num_requests_waiting":
			st.RequestsWaiting += s.Value
		case "vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc":
			st.KVCacheUsage = s.Value
		case "vllm:prompt_tokens_total":
			st.PromptTokens += s.Value
		case "vllm:generation_tokens_total":
			st.GenerationTokens += s.Value
		case "vllm:num_preemptions_total":
			st.Preemptions += s.Value
		case "vllm:request_success_total":
			st.RequestsFinished[s.Labels["finished_reason"]] += s.Value
		default:
			seen--
		}
	}
	if seen == 0 {
		return EngineStats{}, fmt.Errorf("vllm metrics: no vllm: samples for model %q", model)
	}
	if st.KVCacheUsage > 1 {
		return EngineStats{}, fmt.Errorf("vllm metrics: kv cache usage %v exceeds 1", st.KVCacheUsage)
	}
	return st, nil
}
