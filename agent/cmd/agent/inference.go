package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/chrysalis-cc/chrysalis/agent/api"
	"github.com/chrysalis-cc/chrysalis/agent/api/engine"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

// Where the engine lives on a model disk: the binary and ollama's
// content-addressed store, both under the dm-verity root the measured
// config names (models/ollama writes this layout).
const (
	engineBinary = "engine/ollama"
	engineStore  = "store"
	// engineStart bounds the engine's start, model load included (TCG
	// guests are slow).
	engineStart = 2 * time.Minute
)

// inference is the running engine and the API in front of it.
type inference struct {
	sup *engine.Supervisor
	api *api.API
}

// startInference starts the engine from the verified model disk and
// builds the OpenAI-compatible API in front of it, signing a receipt per
// request with signer (nil: no payment channel, no receipts). Without a model it
// returns nil: the worker serves attestation only. A model disk without
// an engine is an error: a worker that cannot serve its measured model
// must not report ready.
func startInference(log *slog.Logger, cfg *guest.Config, signer api.Signer) (*inference, error) {
	m := cfg.Measured
	if m.ModelRoot == "" {
		return nil, nil
	}
	bin := filepath.Join(guest.ModelMountPoint, engineBinary)
	if _, err := os.Stat(bin); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("model %s: the model disk has no %s", m.Model, engineBinary)
	} else if err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "engine-home-")
	if err != nil {
		return nil, err
	}
	sup, err := engine.NewSupervisor(engine.Config{
		Adapter: engine.Ollama{Binary: bin, Models: filepath.Join(guest.ModelMountPoint, engineStore), Home: home, Model: m.Model},
		Log:     log.With("component", "engine"), StartTimeout: engineStart,
	})
	if err != nil {
		return nil, err
	}
	sup.Start()
	ctx, cancel := context.WithTimeout(context.Background(), engineStart)
	defer cancel()
	if err := sup.WaitReady(ctx); err != nil {
		sup.Stop()
		return nil, fmt.Errorf("model %s: %w", m.Model, err)
	}
	in, out, err := m.Prices()
	if err != nil {
		sup.Stop()
		return nil, err
	}
	a, err := api.New(api.Config{
		Engine: sup, Model: m.Model, Prices: api.Prices{InPer1M: in, OutPer1M: out}, Signer: signer,
		Log: log.With("component", "api"),
	})
	if err != nil {
		sup.Stop()
		return nil, err
	}
	log.Info("engine ready", "model", m.Model, "url", sup.URL(), "pid", sup.PID())
	return &inference{sup: sup, api: a}, nil
}

// mount adds the inference routes to mux (nothing without a model).
func (inf *inference) mount(mux *http.ServeMux) {
	if inf == nil {
		return
	}
	for _, p := range api.Paths {
		mux.Handle(p, inf.api)
	}
}

// health is the engine's state for the status channel.
func (inf *inference) health() string {
	switch {
	case inf == nil:
		return guest.EngineNone
	case inf.sup.Ready():
		return fmt.Sprintf("up (restarts %d)", inf.sup.Restarts())
	default:
		return fmt.Sprintf("down (restarts %d)", inf.sup.Restarts())
	}
}

func (inf *inference) stop() {
	if inf != nil {
		inf.sup.Stop()
	}
}
