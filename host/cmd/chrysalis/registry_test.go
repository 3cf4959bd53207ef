package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton"
	"github.com/xssnick/tonutils-go/ton/wallet"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/chrysalis-cc/chrysalis/measure/golden"
	"github.com/chrysalis-cc/chrysalis/measure/registry"
	"github.com/chrysalis-cc/chrysalis/measure/registry/registrytest"
)

// emuAccounts is registryAccounts on registrytest's emulated chain: the
// accounts the real contract code left there, returned as a liteserver's
// GetAccount returns them after its proof checks (no proofs exist here:
// the network cannot be reached from the tests), in a fixed masterchain
// block.
type emuAccounts struct {
	chain *registrytest.Chain
	block *ton.BlockIDExt
}

func (e emuAccounts) CurrentMasterchainInfo(context.Context) (*ton.BlockIDExt, error) {
	return e.block, nil
}

func (e emuAccounts) GetAccount(_ context.Context, block *ton.BlockIDExt, a *address.Address) (*tlb.Account, error) {
	if !block.Equals(e.block) {
		return nil, errors.New("response with incorrect master block")
	}
	st := e.chain.State(a)
	if st == nil {
		return &tlb.Account{IsActive: false}, nil
	}
	acc := &tlb.Account{IsActive: true, State: st}
	if st.Status == tlb.AccountStatusActive {
		acc.Code, acc.Data = st.StateInit.Code, st.StateInit.Data
	}
	return acc, nil
}

func emuBlock() *ton.BlockIDExt {
	root, file := sha256.Sum256([]byte("root")), sha256.Sum256([]byte("file"))
	return &ton.BlockIDExt{Workchain: -1, Shard: -0x8000000000000000, SeqNo: 52_000_000, RootHash: root[:], FileHash: file[:]}
}

func tagHash(tag string) [32]byte { return sha256.Sum256([]byte(tag)) }

// emulatedRegistry deploys a registry governed by tagAddr("governance")
// and runs adds and removes against it, a minute apart, plus one add from
// another sender that the contract refuses. The images left are image-a
// and image-c, the model model-b.
func emulatedRegistry(t *testing.T) (*registrytest.Chain, *address.Address) {
	t.Helper()
	c, err := registrytest.NewChain(1_760_000_000)
	if err != nil {
		t.Fatal(err)
	}
	gov := tagAddr("governance")
	reg, err := c.DeployRegistry(gov)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range []struct {
		from *address.Address
		body *cell.Cell
		exit int32
	}{
		{gov, registry.AddImage(1, tagHash("image-a")), 0},
		{gov, registry.AddImage(2, tagHash("image-b")), 0},
		{gov, registry.AddModel(3, tagHash("model-a")), 0},
		{tagAddr("intruder"), registry.AddImage(4, tagHash("image-x")), registry.ExitNotGovernance},
		{gov, registry.AddImage(5, tagHash("image-c")), 0},
		{gov, registry.RemoveImage(6, tagHash("image-b")), 0},
		{gov, registry.AddModel(7, tagHash("model-b")), 0},
		{gov, registry.RemoveModel(8, tagHash("model-a")), 0},
	} {
		c.SetNow(c.Now() + 60)
		tx, err := c.SendInternal(&tlb.InternalMessage{IHRDisabled: true, Bounce: true, SrcAddr: m.from, DstAddr: reg, Amount: tlb.MustFromTON("0.05"), Body: m.body})
		if err != nil {
			t.Fatal(err)
		}
		if tx.ExitCode != m.exit {
			t.Fatalf("message %d: exit code %d, want %d", i, tx.ExitCode, m.exit)
		}
	}
	return c, reg
}

// withEmulatedLiteservers makes --liteserver-config read the emulated
// chain for the rest of the test.
func withEmulatedLiteservers(t *testing.T, c *registrytest.Chain) {
	t.Helper()
	real := dialRegistryAccounts
	dialRegistryAccounts = func(context.Context, string) (registryAccounts, error) {
		return emuAccounts{chain: c, block: emuBlock()}, nil
	}
	t.Cleanup(func() { dialRegistryAccounts = real })
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestRegistryDump dumps the emulated registry from its account data file
// and through the liteserver interface, as text and JSON (golden files),
// and checks the JSON lists exactly what the messages left listed.
func TestRegistryDump(t *testing.T) {
	c, reg := emulatedRegistry(t)
	data, err := c.Data(reg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stateFile := filepath.Join(dir, "registry.boc")
	if err := os.WriteFile(stateFile, data.ToBOC(), 0o644); err != nil {
		t.Fatal(err)
	}
	hexFile := filepath.Join(dir, "registry.hex")
	if err := os.WriteFile(hexFile, []byte(hex.EncodeToString(data.ToBOC())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	withEmulatedLiteservers(t, c)
	saved := filepath.Join(dir, "saved.boc")
	state := []string{"registry", "dump", "--state", stateFile, "--registry", reg.String()}
	lite := []string{"registry", "dump", "--liteserver-config", "global.config.json", "--registry", reg.String()}
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"registry/dump-state.txt", state},
		{"registry/dump-state.json", append(slices.Clone(state), "--json")},
		{"registry/dump-liteserver.txt", append(slices.Clone(lite), "--save-state", saved)},
		{"registry/dump-liteserver.json", append(slices.Clone(lite), "--json")},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			code, out, errs := runCLI(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			golden.Check(t, tc.golden, []byte(out))
			if !strings.HasSuffix(tc.golden, ".json") {
				return
			}
			var d registryDump
			if err := json.Unmarshal([]byte(out), &d); err != nil {
				t.Fatal(err)
			}
			hashes := func(es []dumpEntry) []string {
				var out []string
				for _, e := range es {
					out = append(out, e.Hash)
				}
				return out
			}
			wantImages := []string{hexHash("image-a"), hexHash("image-c")}
			slices.Sort(wantImages)
			if got := hashes(d.Images); !slices.Equal(got, wantImages) {
				t.Errorf("images %v, want %v", got, wantImages)
			}
			if got := hashes(d.Models); !slices.Equal(got, []string{hexHash("model-b")}) {
				t.Errorf("models %v, want model-b", got)
			}
			if d.Governance != tagAddr("governance").StringRaw() || d.Registry != reg.StringRaw() || d.Seqno != 7 {
				t.Errorf("governance %s registry %s seqno %d", d.Governance, d.Registry, d.Seqno)
			}
		})
	}
	// The hex text form reads the same; the saved state is the account
	// data, which verify --registry-state then reads.
	code, out, errs := runCLI(t, "registry", "dump", "--state", hexFile, "--registry", reg.String())
	if want, _ := os.ReadFile("testdata/registry/dump-state.txt"); code != 0 || out != string(want) {
		t.Errorf("hex state file: exit %d %s\n%s", code, errs, out)
	}
	b, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, data.ToBOC()) {
		t.Errorf("--save-state wrote %x, want the account data %x", b, data.ToBOC())
	}
	st, err := decodeRegistryState(b)
	if err != nil || !st.ImageAllowed(tagHash("image-c")) || st.ImageAllowed(tagHash("image-b")) {
		t.Errorf("saved state: %v", err)
	}
}

func hexHash(tag string) string {
	h := tagHash(tag)
	return hex.EncodeToString(h[:])
}

func TestRegistryDumpErrors(t *testing.T) {
	c, reg := emulatedRegistry(t)
	// An uninitialised account (funded, never deployed) and an active
	// account running other code (a wallet v4r2, deployed by state init).
	uninit := tagAddr("funded")
	if err := c.Fund(uninit, tlb.MustFromTON("1")); err != nil {
		t.Fatal(err)
	}
	pub := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	si, err := wallet.GetStateInit(pub, wallet.V4R2, wallet.DefaultSubwallet)
	if err != nil {
		t.Fatal(err)
	}
	w, err := wallet.AddressFromPubKey(pub, wallet.V4R2, wallet.DefaultSubwallet)
	if err != nil {
		t.Fatal(err)
	}
	if tx, err := c.SendInternal(&tlb.InternalMessage{IHRDisabled: true, SrcAddr: uninit, DstAddr: w, Amount: tlb.MustFromTON("1"), StateInit: si, Body: cell.BeginCell().EndCell()}); err != nil || !tx.Success {
		t.Fatalf("deploying a wallet: %v", err)
	}
	withEmulatedLiteservers(t, c)

	dir := t.TempDir()
	notRegistry := filepath.Join(dir, "body.boc")
	if err := os.WriteFile(notRegistry, registry.AddImage(1, tagHash("x")).ToBOC(), 0o644); err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(text, []byte("not a state\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.boc")
	ls := []string{"--liteserver-config", "global.config.json"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", nil, "missing subcommand (dump)"},
		{"unknown subcommand", []string{"list"}, `unknown subcommand "list"`},
		{"no source", []string{"dump"}, "exactly one source"},
		{"two sources", append([]string{"dump", "--state", notRegistry, "--registry", reg.String()}, ls...), "exactly one source"},
		{"extra argument", []string{"dump", "--state", notRegistry, "x"}, `unexpected argument "x"`},
		{"missing file", []string{"dump", "--state", missing}, "--state: open " + missing + ": no such file"},
		{"not a registry state", []string{"dump", "--state", notRegistry}, "--state " + notRegistry + ": registry data: 352 bits, want 301"},
		{"not a BOC", []string{"dump", "--state", text}, "--state " + text + ":"},
		{"bad address", []string{"dump", "--state", notRegistry, "--registry", "EQnope"}, `--registry "EQnope" is not a TON address`},
		{"save with state", []string{"dump", "--state", notRegistry, "--save-state", filepath.Join(dir, "s.boc")}, "--save-state is for --liteserver-config"},
		{"liteserver without registry", append([]string{"dump"}, ls...), "--liteserver-config needs --registry"},
		{"no account", append([]string{"dump", "--registry", tagAddr("governance").String()}, ls...), "no account at this address in masterchain block 52000000"},
		{"uninit account", append([]string{"dump", "--registry", uninit.String()}, ls...), "the account is uninit, not active"},
		{"other code", append([]string{"dump", "--registry", w.String()}, ls...), "runs code " + hex.EncodeToString(si.Code.Hash()) + ", not the registry contract's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCLI(t, append([]string{"registry"}, tt.args...)...)
			if code == 0 || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want a failure mentioning %q", code, errs, tt.want)
			}
			if out != "" {
				t.Errorf("printed %q on failure", out)
			}
		})
	}
	// The real liteserver client: a config file that is not there (no
	// network is reachable from the tests).
	dialRegistryAccounts = func(ctx context.Context, path string) (registryAccounts, error) {
		api, err := dialTONAPI(ctx, path)
		if err != nil {
			return nil, err
		}
		return liveAccounts{api}, nil
	}
	code, _, errs := runCLI(t, "registry", "dump", "--liteserver-config", missing, "--registry", reg.String())
	if code == 0 || !strings.Contains(errs, "--liteserver-config "+missing) {
		t.Errorf("missing liteserver config: exit %d %s", code, errs)
	}
	// A failed --save-state leaves nothing behind.
	withEmulatedLiteservers(t, c)
	bad := filepath.Join(dir, "no-dir", "s.boc")
	if code, _, errs := runCLI(t, "registry", "dump", "--registry", reg.String(), "--liteserver-config", "x", "--save-state", bad); code == 0 || !strings.Contains(errs, "--save-state") {
		t.Errorf("unwritable --save-state: exit %d %s", code, errs)
	}
}
