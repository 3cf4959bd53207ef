package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/chrysalis-cc/chrysalis/agent/api"
	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/event"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/measure/payment/channel"
	"github.com/chrysalis-cc/chrysalis/measure/verify"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// freePort asks the kernel for an unused loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// env is what every scenario shares: the repository, the CLI binary and
// one release built from the pinned inputs.
type env struct {
	root, dir, bin, release string
}

// run runs a command in the repository root and returns its stdout.
func (e *env) run(t *testing.T, timeout time.Duration, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = e.root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// vm is a running `chrysalis launch --dev`.
type vm struct {
	cmd      *exec.Cmd
	state    string
	endpoint string
	exited   chan error
	stderr   bytes.Buffer
}

// startVM launches the release with cfg and waits until the guest is
// ready (endpoint != "") or launch exits (endpoint == "", exit status in
// the returned error).
func (e *env) startVM(t *testing.T, name string, cfg guest.Config, shapeName string, disks ...string) (*vm, error) {
	t.Helper()
	var extra []string
	for _, d := range disks {
		extra = append(extra, "--disk", d)
	}
	return e.startVMArgs(t, name, cfg, shapeName, extra...)
}

// startVMArgs is startVM with any extra launch arguments.
func (e *env) startVMArgs(t *testing.T, name string, cfg guest.Config, shapeName string, extra ...string) (*vm, error) {
	t.Helper()
	cfgPath := filepath.Join(e.dir, name+"-config.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	v := &vm{state: filepath.Join(e.dir, name+"-state"), exited: make(chan error, 1)}
	args := []string{"launch", "--dev", "--release", e.release, "--port", fmt.Sprint(freePort(t)), "--state", v.state, "--config", cfgPath, "--shape", shapeName}
	args = append(args, extra...)
	v.cmd = exec.Command(e.bin, args...)
	v.cmd.Dir = e.root
	stdout, err := v.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	v.cmd.Stderr = &v.stderr
	start := time.Now()
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	endpointC := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			t.Logf("%s launch: %s", name, line)
			if f := strings.Fields(line); len(f) == 2 && f[0] == "endpoint:" {
				endpointC <- f[1]
			}
		}
		v.exited <- v.cmd.Wait()
	}()
	t.Cleanup(func() {
		if v.cmd.ProcessState == nil {
			v.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("%s console:\n%s", name, v.console(t))
			t.Logf("%s launch stderr:\n%s", name, v.stderr.Bytes())
		}
	})
	select {
	case v.endpoint = <-endpointC:
		t.Logf("%s: boot to ready %s", name, time.Since(start).Round(time.Millisecond))
		return v, nil
	case err := <-v.exited:
		return v, fmt.Errorf("launch exited before ready: %v", err)
	case <-time.After(5 * time.Minute):
		t.Fatalf("%s: guest not ready after 5 minutes", name)
	}
	return nil, nil
}

func (v *vm) console(t *testing.T) []byte {
	c, _ := os.ReadFile(filepath.Join(v.state, "console.log"))
	return c
}

// stop sends Ctrl-C and requires a clean exit within a minute.
func (v *vm) stop(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	v.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-v.exited:
		if err != nil {
			t.Fatalf("launch exited with %v after Ctrl-C", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("launch did not exit within 60 s of Ctrl-C")
	}
	return time.Since(start)
}

// verifyReport is the part of `chrysalis verify --json` the tests read.
type verifyReport struct {
	Type        string          `json:"type"`
	Insecure    bool            `json:"insecure"`
	Config      json.RawMessage `json:"config"`
	Events      []event.Entry   `json:"events"`
	RTMR3       event.Digest    `json:"rtmr3"`
	RTMR3Source string          `json:"rtmr3_source"`
	HandshakeMS float64         `json:"handshake_ms"`
	Claims      struct {
		Instance     string `json:"instance"`
		OwnerAddress string `json:"owner_address"`
		Model        string `json:"model"`
	} `json:"claims"`
}

func (e *env) verify(t *testing.T, endpoint string) verifyReport {
	t.Helper()
	out := e.run(t, 2*time.Minute, e.bin, "verify", endpoint, "--policy", "insecure-dev", "--json")
	var rep verifyReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("verify output: %v\n%s", err, out)
	}
	l := event.Log{Version: event.LogVersion, Events: rep.Events}
	if mr, err := l.Replay(); err != nil || mr != rep.RTMR3 {
		t.Fatalf("replay %s (%v), reported %s", mr, err, rep.RTMR3)
	}
	return rep
}

func TestBootVerifyShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs under TCG; run without -short")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatal("qemu-system-x86_64 not found: install qemu-system-x86 (.ci/run does)")
	}
	e := &env{root: repoRoot(t), dir: t.TempDir()}
	e.bin = filepath.Join(e.dir, "chrysalis")
	e.release = filepath.Join(e.dir, "release")
	e.run(t, 5*time.Minute, "go", "build", "-o", e.bin, "./host/cmd/chrysalis")
	start := time.Now()
	e.run(t, 15*time.Minute, e.bin, "build", "--out", e.release)
	t.Logf("release built in %s", time.Since(start).Round(time.Millisecond))

	// The release's expected TDX measurements: MRTD of the pinned OVMF
	// (single-pass, cross-checked against gce-tcb-verifier in measure/tdvf)
	// and RTMR0-2 with their events.
	var ms []struct {
		MRTD                string
		RTMR0, RTMR1, RTMR2 struct{ Value string }
	}
	if err := json.Unmarshal(e.run(t, time.Minute, e.bin, "measure", "--release", e.release, "--shape", "dev-small", "--json"), &ms); err != nil {
		t.Fatal(err)
	}
	const pinnedMRTD = "bdc6fb145880f06f30c8b346b8dce2a99d9351b56892df22f80fcf6574caa9f9c31df8e8576d53b4d0cd1c3f28910e11"
	if len(ms) != 1 || ms[0].MRTD != pinnedMRTD || len(ms[0].RTMR0.Value) != 96 || len(ms[0].RTMR1.Value) != 96 || len(ms[0].RTMR2.Value) != 96 {
		t.Fatalf("measurements %+v", ms)
	}

	cfg := guest.Config{Version: 1, Measured: guest.MeasuredConfig{Instance: "e2e-worker", OwnerAddress: "UQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqEBI", Model: "none"}, Network: guest.DevNetwork}
	v, err := e.startVM(t, "plain", cfg, "dev-small")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.endpoint, "https://127.0.0.1:") {
		t.Fatalf("endpoint %q", v.endpoint)
	}

	// A verifier without the insecure-dev opt-in refuses the guest.
	if out, err := exec.Command(e.bin, "verify", v.endpoint, "--policy", "tdx").CombinedOutput(); err == nil {
		t.Fatalf("verify --policy tdx accepted insecure-dev evidence:\n%s", out)
	}
	rep := e.verify(t, v.endpoint)
	t.Logf("RA-TLS handshake (incl. verification): %.1f ms", rep.HandshakeMS)
	if rep.Type != "insecure-dev" || !rep.Insecure || rep.RTMR3Source != "software" {
		t.Fatalf("evidence type %q insecure=%v source %q", rep.Type, rep.Insecure, rep.RTMR3Source)
	}
	if rep.Claims.Instance != "e2e-worker" || rep.Claims.OwnerAddress != "UQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqEBI" {
		t.Fatalf("claims %+v", rep.Claims)
	}
	// The first event is exactly our measured config, canonicalised.
	want, _ := canon.Marshal(cfg.Measured)
	if len(rep.Events) != 3 || rep.Events[0].Name != event.NameConfig || string(rep.Events[0].Payload) != string(want) {
		t.Fatalf("events %+v, want config payload %s, payout, ready", rep.Events, want)
	}
	// The payout event is the owner address, normalised.
	if p := string(rep.Events[1].Payload); rep.Events[1].Name != event.NamePayout || p != `{"address":"UQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqEBI","network":"mainnet","raw":"0:83dfd552e63729b472fcbcc8c45ebcc6691702558b68ec7527e1ba403a0f31a8"}` {
		t.Fatalf("payout event %s %s", rep.Events[1].Name, p)
	}
	wantEv, _ := event.New(event.NameConfig, 1, json.RawMessage(want))
	if d, _ := wantEv.Digest(); d != rep.Events[0].Digest {
		t.Fatalf("config event digest %s, want %s", rep.Events[0].Digest, d)
	}
	// Status and logs round trip over the host-guest channel
	// (control.sock -> launcher -> virtio-serial -> agent).
	var st guest.StatusReport
	stOut := e.run(t, time.Minute, e.bin, "status", "--state", v.state, "--json")
	if err := json.Unmarshal(stOut, &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, stOut)
	}
	if st.State != guest.StateReady || st.TEE != "insecure-dev" || st.Instance != "e2e-worker" || len(st.Events) != 3 ||
		st.Events[0].Name != event.NameConfig || st.Events[0].Digest != rep.Events[0].Digest.String() || st.RTMR3 != rep.RTMR3.String() ||
		st.GPU.State != guest.GPUNone || st.Engine != guest.EngineNone {
		t.Fatalf("status %+v", st)
	}
	if logs := string(e.run(t, time.Minute, e.bin, "logs", "--state", v.state, "-n", "50")); !strings.Contains(logs, "msg=ready") {
		t.Fatalf("logs lack the ready line:\n%s", logs)
	}
	t.Logf("shutdown: %s", v.stop(t).Round(time.Millisecond))
	if !bytes.Contains(v.console(t), []byte("power off requested by host")) {
		t.Fatal("guest did not log the host's power-off request")
	}

	t.Run("model disk", func(t *testing.T) { testModelDisk(t, e) })
}

// testModelDisk packs the catalog's test model (the inference engine and
// its store, models/ollama) into a squashfs image with its verity tree,
// boots with it attached, checks that the agent opened it through
// dm-verity with the measured root and measured a model event, and streams
// a chat completion from the real engine through RA-TLS; then that a
// config naming another root is refused.
func testModelDisk(t *testing.T, e *env) {
	engineBin := os.Getenv("CHRYSALIS_TEST_ENGINE")
	if engineBin == "" {
		t.Skip("the model disk carries the inference engine: set CHRYSALIS_TEST_ENGINE to the pinned ollama binary (ci/engine.sh prints its path)")
	}
	mdir := filepath.Join(e.dir, "model")
	e.run(t, time.Minute, e.bin, "testmodel", "--out", mdir, "--engine", engineBin)
	img := filepath.Join(e.dir, "model.img")
	out := string(e.run(t, 2*time.Minute, e.bin, "model", "pack", "--dir", mdir, "--out", img))
	var root string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "root" && len(f[len(f)-1]) == 64 {
			root = f[len(f)-1]
		}
	}
	if root == "" {
		t.Fatalf("no root hash in model pack output:\n%s", out)
	}
	const model = "chrysalis-tiny:latest"
	disks := []string{"model=" + img, "model-verity=" + img + ".verity"}
	cfg := guest.Config{Version: 1, Measured: guest.MeasuredConfig{Instance: "e2e-model", Model: model, ModelRoot: root}, Network: guest.DevNetwork}

	// The paid worker: a payment channel in the measured config, the
	// owner's payout secret apart from it (--payout-secret), and a
	// persistent disk that launch creates (ext4) for the payout ledger.
	secretFile := filepath.Join(e.dir, "payout.secret")
	keys := e.run(t, time.Minute, e.bin, "payout", "keys", "--secret", secretFile, "--new", "--json")
	var pk struct {
		WorkerKey string `json:"worker_key"`
	}
	if err := json.Unmarshal(keys, &pk); err != nil {
		t.Fatalf("payout keys: %v\n%s", err, keys)
	}
	paid := cfg
	paid.Measured.OwnerAddress = "UQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqEBI"
	paid.Measured.PriceInPer1M, paid.Measured.PriceOutPer1M = "1000000", "3000000"
	paid.Measured.Payment = &payment.ChannelTerms{
		ProxyKey: hex.EncodeToString(e2eProxyKey.Public().(ed25519.PublicKey)), WorkerKey: pk.WorkerKey,
		ChannelID: "c4715a11dead030405060708090a0b0c", ProxyAddress: "0:" + strings.Repeat("aa", 32),
		StorageFee: "50000000", MisbehaviorFine: "100000000", QuarantineSeconds: 3600, ConditionalCloseSeconds: 1800, SettleThreshold: "1000000000",
	}
	persistent := filepath.Join(e.dir, "persistent.img")
	paidArgs := []string{"--payout-secret", secretFile, "--disk", "persistent=" + persistent}
	for _, d := range disks {
		paidArgs = append(paidArgs, "--disk", d)
	}
	v, err := e.startVMArgs(t, "model", paid, "dev-paid", paidArgs...)
	if err != nil {
		t.Fatal(err)
	}
	rep := e.verify(t, v.endpoint)
	if len(rep.Events) != 4 || rep.Events[2].Name != event.NameModel {
		t.Fatalf("events %+v, want config, payout, model, ready", rep.Events)
	}
	wantPayload, _ := canon.Marshal(event.ModelPayload{Name: model, RootHash: root})
	if string(rep.Events[2].Payload) != string(wantPayload) {
		t.Fatalf("model event payload %s, want %s", rep.Events[2].Payload, wantPayload)
	}
	verified, receipts := chatThroughRATLS(t, v.endpoint, model)
	checkReceipts(t, verified, receipts, 1)
	earned := payProxyState(t, v.endpoint, verified)
	v.stop(t)
	if c := v.console(t); !bytes.Contains(c, []byte("model mounted")) || !bytes.Contains(c, []byte("engine ready")) {
		t.Fatal("guest did not log the mounted model and the ready engine")
	}

	// A restart on the same persistent disk: the ledger kept the proxy's
	// state and the receipt numbering goes on (never reused). This boot
	// also gets chain access (--ton-config) naming a liteserver that
	// refuses connections (the host through user-net): the worker serves
	// anyway and the owner sees why it does not settle.
	tonCfg := filepath.Join(e.dir, "ton-global-config.json")
	unreachable := `{"liteservers":[{"ip":167772674,"port":1,"id":{"@type":"pub.ed25519","key":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"}}],` +
		`"validator":{"init_block":{"workchain":-1,"shard":-9223372036854775808,"seqno":1,"root_hash":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) +
		`","file_hash":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"}}}`
	if err := os.WriteFile(tonCfg, []byte(unreachable), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err = e.startVMArgs(t, "model-restart", paid, "dev-paid", append(paidArgs, "--ton-config", tonCfg)...)
	if err != nil {
		t.Fatal(err)
	}
	verified, receipts = chatThroughRATLS(t, v.endpoint, model)
	checkReceipts(t, verified, receipts, 3)
	if st := paymentStatus(t, v.endpoint); st.Earned != earned || st.Receipts != 4 {
		t.Fatalf("after the restart: earned %s, %d receipts; want %s, 4", st.Earned, st.Receipts, earned)
	}
	var ps payment.Summary
	deadline := time.Now().Add(time.Minute)
	for !strings.HasPrefix(ps.Settler, "no chain access") {
		if time.Now().After(deadline) {
			t.Fatalf("payout status: settler %q, want no chain access", ps.Settler)
		}
		time.Sleep(time.Second)
		out := e.run(t, time.Minute, e.bin, "payout", "status", "--state", v.state, "--json")
		if err := json.Unmarshal(out, &ps); err != nil {
			t.Fatalf("payout status --json: %v\n%s", err, out)
		}
	}
	if ps.Earned != earned || ps.Receipts != 4 {
		t.Fatalf("payout status %+v, want earned %s and 4 receipts", ps, earned)
	}
	t.Logf("settler: %s", ps.Settler)
	v.stop(t)

	// The same disk under a config that names another root: the agent
	// refuses it and the guest never becomes ready.
	bad := cfg
	bad.Measured.Instance = "e2e-badroot"
	bad.Measured.ModelRoot = strings.Repeat("0", 64)
	v, err = e.startVM(t, "badroot", bad, "dev-model", disks...)
	if err == nil {
		v.stop(t)
		t.Fatal("guest became ready with a model disk whose root is not the measured one")
	}
	// The failure is the mount through dm-verity with the wrong root: the
	// kernel's verity target refuses the blocks, squashfs cannot read its
	// superblock.
	// The agent reports it on the status channel (the launcher prints the
	// detail); its console line may be cut off by the power-off.
	launchOut := v.stderr.Bytes()
	i := bytes.Index(launchOut, []byte("status: failed"))
	if i < 0 || !bytes.Contains(launchOut[i:], []byte("dm-verity over")) {
		t.Fatalf("guest did not report failing on the verity mount; launch stderr:\n%s\nconsole:\n%s", launchOut, v.console(t))
	}
	t.Logf("badroot: %s", bytes.SplitN(launchOut[i:], []byte("\n"), 2)[0])
}

// chatThroughRATLS streams a chat completion from the guest's engine over
// a connection whose RA-TLS evidence verified (insecure-dev policy: the
// dev VM has no TEE), then asks once without streaming for the usage.
func chatThroughRATLS(t *testing.T, endpoint, model string) (*verify.Result, []payment.SignedReceipt) {
	t.Helper()
	var receipts []payment.SignedReceipt
	var verified *verify.Result
	c := raTLSClient(t, 3*time.Minute, func(r *verify.Result) { verified = r })
	body := `{"model":"` + model + `","stream":true,"max_tokens":24,"temperature":0,"messages":[{"role":"user","content":"hello"}]}`
	start := time.Now()
	resp, err := c.Post(endpoint+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: status %d, %v\n%s", resp.StatusCode, err, raw)
	}
	if verified == nil || verified.Config.Model != model {
		t.Fatalf("the chat went over a connection that was not verified for model %s", model)
	}
	var text strings.Builder
	chunks, done, receiptNext := 0, false, false
	for _, l := range strings.Split(string(raw), "\n") {
		if l == "event: "+api.ReceiptEvent {
			receiptNext = true
			continue
		}
		d, ok := strings.CutPrefix(l, "data: ")
		if !ok {
			continue
		}
		if receiptNext {
			sr, err := payment.DecodeSignedReceipt([]byte(d))
			if err != nil {
				t.Fatalf("stream receipt: %v", err)
			}
			receipts = append(receipts, sr)
			receiptNext = false
			continue
		}
		if d == "[DONE]" {
			done = true
			continue
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(d), &ch) == nil && len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
			chunks++
			text.WriteString(ch.Choices[0].Delta.Content)
		}
	}
	if !done || chunks == 0 || text.Len() == 0 {
		t.Fatalf("stream: %d content chunks, [DONE] %v:\n%s", chunks, done, raw)
	}
	t.Logf("streamed %d chunks through RA-TLS in %s: %q", chunks, time.Since(start).Round(time.Millisecond), text.String())

	resp, err = c.Post(endpoint+"/v1/chat/completions", "application/json", strings.NewReader(strings.Replace(body, `"stream":true`, `"stream":false`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	var full struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	err = json.NewDecoder(resp.Body).Decode(&full)
	resp.Body.Close()
	if h := resp.Header.Get(api.HeaderReceipt); h != "" {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		sr, err := payment.DecodeSignedReceipt(b)
		if err != nil {
			t.Fatalf("receipt header: %v", err)
		}
		receipts = append(receipts, sr)
	}
	if err != nil || resp.StatusCode != 200 || len(full.Choices) != 1 || full.Usage.CompletionTokens == 0 || full.Usage.PromptTokens == 0 {
		t.Fatalf("non-streaming: status %d, %v, %+v", resp.StatusCode, err, full)
	}
	// Greedy decoding of the deterministic test model: the same text.
	if full.Choices[0].Message.Content != text.String() {
		t.Fatalf("non-streaming text %q differs from the streamed %q", full.Choices[0].Message.Content, text.String())
	}
	return verified, receipts
}

// e2eProxyKey is the proxy's channel key (party A) in the paid e2e worker.
var e2eProxyKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xa1}, 32))

// checkReceipts checks that a paid worker's two requests got receipts
// signed with the attested receipt key for the measured channel and the
// measured prices, numbered from first.
func checkReceipts(t *testing.T, v *verify.Result, receipts []payment.SignedReceipt, first uint64) {
	t.Helper()
	if len(receipts) != 2 {
		t.Fatalf("%d receipts for a streamed and a plain request, want 2", len(receipts))
	}
	ch := channelOf(t, v)
	key, err := hex.DecodeString(v.Claims.ReceiptKey)
	if err != nil || len(key) != ed25519.PublicKeySize || v.Claims.ReceiptKey != v.Config.Payment.WorkerKey {
		t.Fatalf("attested receipt key %q (measured worker key %s)", v.Claims.ReceiptKey, v.Config.Payment.WorkerKey)
	}
	for i, sr := range receipts {
		if err := payment.VerifyReceipt(sr, ed25519.PublicKey(key), ch); err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
		r := sr.Receipt
		if r.Seq != first+uint64(i) || r.PriceInPer1M != v.Config.PriceInPer1M || r.PriceOutPer1M != v.Config.PriceOutPer1M || r.TokensOut == 0 {
			t.Fatalf("receipt %d: %+v", i, r)
		}
		t.Logf("receipt seq %d: %d+%d tokens, %s nanoTON", r.Seq, r.TokensIn, r.TokensOut, r.Amount)
	}
}

func channelOf(t *testing.T, v *verify.Result) *address.Address {
	c, _, err := v.Config.Channel()
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Address()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// raTLSClient is a client that talks only to a guest whose RA-TLS
// evidence verifies under the insecure-dev policy (the dev VM has no
// TEE), passing each verification result to onVerified.
func raTLSClient(t *testing.T, timeout time.Duration, onVerified func(*verify.Result)) *http.Client {
	t.Helper()
	pol, err := verify.PolicyByName(verify.PolicyInsecureDev)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: verify.ClientConfig(pol, verify.Options{}, onVerified)}}
}

// payProxyState posts a proxy-signed cumulative state (0.005 TON) to the
// worker and returns the earned amount its ledger reports.
func payProxyState(t *testing.T, endpoint string, v *verify.Result) string {
	t.Helper()
	cfg, _, err := v.Config.Channel()
	if err != nil {
		t.Fatal(err)
	}
	s, err := channel.Sign(e2eProxyKey, channel.SemiChannel{ID: cfg.ID, Data: channel.SemiState{Seqno: 1, Sent: big.NewInt(5_000_000)}})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := payment.NewPaymentState(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(ps)
	resp, err := raTLSClient(t, time.Minute, nil).Post(endpoint+"/v1/payment/state", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("payment state: %d %s", resp.StatusCode, b)
	}
	st := paymentStatus(t, endpoint)
	if st.Earned != "5000000" || st.Receipts != 2 {
		t.Fatalf("status after the state: %+v", st)
	}
	return st.Earned
}

type payStatus struct {
	Earned   string `json:"earned_nanoton"`
	Receipts uint64 `json:"receipts_issued"`
}

func paymentStatus(t *testing.T, endpoint string) payStatus {
	t.Helper()
	resp, err := raTLSClient(t, time.Minute, nil).Get(endpoint + "/v1/payment/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st payStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("payment status: %d %v", resp.StatusCode, err)
	}
	return st
}
