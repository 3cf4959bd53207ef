package payment

import (
	"context"
	"fmt"
	"time"

	"github.com/xssnick/tonutils-go/liteclient"
	tonapi "github.com/xssnick/tonutils-go/ton"
)

// DialTON connects to the liteservers of a global config and returns a
// client that checks every answer's proofs (ton.ProofCheckPolicySecure)
// from the config's validator.init_block, retrying each query up to three
// times (20 s each). The host's publish and registry commands and the
// agent's settler all reach the chain through it.
func DialTON(ctx context.Context, cfg *liteclient.GlobalConfig) (tonapi.APIClientWrapped, error) {
	pool := liteclient.NewConnectionPool()
	if err := pool.AddConnectionsFromConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("connecting to the %d liteservers: %w", len(cfg.Liteservers), err)
	}
	api := tonapi.NewAPIClient(pool, tonapi.ProofCheckPolicySecure)
	api.SetTrustedBlockFromConfig(cfg)
	return api.WithRetryTimeout(3, 20*time.Second), nil
}
