package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

func TestStatusAndLogsWithoutLauncher(t *testing.T) {
	state := t.TempDir()
	for _, tc := range []struct {
		run  func(context.Context, []string, *bytes.Buffer, *bytes.Buffer) error
		args []string
		want string
	}{
		{rs, []string{"--state", state}, "no launcher is running in " + state},
		{rs, []string{"--state", state, "--instance", "3"}, "no launcher is running in " + filepath.Join(state, "instance-3")},
		{rs, []string{"--state", state, "--instance", "64"}, "instance 64 is out of range"},
		{rs, []string{"--state", state, "extra"}, `unexpected argument "extra"`},
		{rl, []string{"--state", state, "-n", "0"}, "-n 0: want 1..1000"},
		{rl, []string{"--state", state}, "no launcher is running"},
	} {
		var out, errb bytes.Buffer
		if err := tc.run(context.Background(), tc.args, &out, &errb); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func rs(ctx context.Context, a []string, o, e *bytes.Buffer) error { return runStatus(ctx, a, o, e) }
func rl(ctx context.Context, a []string, o, e *bytes.Buffer) error { return runLogs(ctx, a, o, e) }

func TestWriteStatus(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "measure", "guest", "testdata", "status-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := guest.ParseReply(bytes.TrimSpace(b))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	writeStatus(&out, r.Status, "/state/instance-3")
	for _, want := range []string{
		"state        ready (up 12s)\n",
		"tee          insecure-dev (rtmr3 from software)\n",
		"instance     e2e-worker\n",
		"gpu          attested GPU-3a1b2c3d-0000-1111-2222-333344445555\n",
		"engine       unknown\n", "earnings     n/a\n",
		"  event 0    config   000102",
		"console      /state/instance-3/console.log\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}
