package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton"

	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
	"github.com/chrysalis-cc/chrysalis/measure/canon"
	"github.com/chrysalis-cc/chrysalis/measure/registry"
)

func init() {
	register("registry", "read the on-chain allowlist of image and model hashes (dump)", runRegistry)
}

const registryUsage = `usage:
  chrysalis registry dump --state DATA.boc [--registry ADDR] [--json]
  chrysalis registry dump --liteserver-config CONFIG --registry ADDR [--save-state DATA.boc] [--json]

dump prints a registry contract's governance address, seqno and the allowed
image and model hashes (ascending; --json: canonical JSON), read either
from an account data file (--state: the BOC, or its hex or base64 text,
that verify --registry-state reads; its origin is not checked) or from the
chain through liteservers (--liteserver-config, a global config JSON): the
account at the latest masterchain block, with the liteserver's proofs
checked from the config's trusted block and the account's code hash
required to be the registry contract's. --save-state writes the account
data read from the chain for verify --registry-state.

flags:
`

func registryUsageText(w io.Writer) { fmt.Fprint(w, registryUsage) }

func runRegistry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, registryUsageText, []subcommand{{name: "dump", run: runRegistryDump}}, args, stdout, stderr)
}

// registryAccounts is what dump needs from liteservers: the latest
// masterchain block and an account's proof-checked state in it. The
// tests implement it over the TVM emulator (registrytest).
type registryAccounts interface {
	CurrentMasterchainInfo(ctx context.Context) (*ton.BlockIDExt, error)
	GetAccount(ctx context.Context, block *ton.BlockIDExt, a *address.Address) (*tlb.Account, error)
}

// liveAccounts is registryAccounts over a liteserver client; GetAccount
// waits for a liteserver that has the block.
type liveAccounts struct{ api ton.APIClientWrapped }

func (l liveAccounts) CurrentMasterchainInfo(ctx context.Context) (*ton.BlockIDExt, error) {
	return l.api.CurrentMasterchainInfo(ctx)
}

func (l liveAccounts) GetAccount(ctx context.Context, block *ton.BlockIDExt, a *address.Address) (*tlb.Account, error) {
	return l.api.WaitForBlock(block.SeqNo).GetAccount(ctx, block, a)
}

// dialRegistryAccounts connects to the liteservers of a global config
// file; a variable so that the tests can put the emulator behind it.
var dialRegistryAccounts = func(ctx context.Context, path string) (registryAccounts, error) {
	api, err := dialTONAPI(ctx, path)
	if err != nil {
		return nil, err
	}
	return liveAccounts{api}, nil
}

// registryDump is what dump prints; its JSON form is canonical.
type registryDump struct {
	// Registry is the contract's raw address ("wc:hex"), when known.
	Registry string `json:"registry,omitempty"`
	// Source is "state-file" or "liteserver".
	Source string `json:"source"`
	// Block is the masterchain block the account was read at (liteserver).
	Block *dumpBlock `json:"block,omitempty"`
	// CodeHash is the account's code hash (liteserver; always the
	// registry contract's, or dump fails).
	CodeHash   string      `json:"code_hash,omitempty"`
	Governance string      `json:"governance"`
	Seqno      uint32      `json:"seqno"`
	Images     []dumpEntry `json:"images"`
	Models     []dumpEntry `json:"models"`
}

type dumpBlock struct {
	Workchain int32  `json:"workchain"`
	Shard     string `json:"shard"`
	Seqno     uint32 `json:"seqno"`
	RootHash  string `json:"root_hash"`
	FileHash  string `json:"file_hash"`
}

type dumpEntry struct {
	Hash       string `json:"hash"`
	AddedAt    uint32 `json:"added_at"`
	AddedSeqno uint32 `json:"added_seqno"`
}

func runRegistryDump(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := groupFlagSet("registry", "dump", registryUsageText, stderr)
	statePath := fs.String("state", "", "registry account data `file` (BOC, or its hex or base64 text), as verify --registry-state reads it")
	lsConfig := fs.String("liteserver-config", "", "liteserver global config `file` (JSON) to read the account through, proofs checked")
	regFlag := fs.String("registry", "", "the registry contract `address` (required with --liteserver-config; a label with --state)")
	save := fs.String("save-state", "", "with --liteserver-config: also write the account data BOC to this `file` (for verify --registry-state)")
	asJSON := fs.Bool("json", false, "print canonical JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see chrysalis registry dump -h)", fs.Arg(0))
	}
	if (*statePath == "") == (*lsConfig == "") {
		return errors.New("give --state FILE or --liteserver-config FILE --registry ADDR (exactly one source)")
	}
	var reg *address.Address
	if *regFlag != "" {
		var err error
		if reg, err = parseTONAddress("--registry", *regFlag, false, true); err != nil {
			return err
		}
	}
	var d *registryDump
	var err error
	if *statePath != "" {
		if *save != "" {
			return errors.New("--save-state is for --liteserver-config: with --state the file is already saved")
		}
		d, err = dumpStateFile(*statePath, reg)
	} else {
		if reg == nil {
			return errors.New("--liteserver-config needs --registry ADDR: the contract to read")
		}
		var acc registryAccounts
		if acc, err = dialRegistryAccounts(ctx, *lsConfig); err != nil {
			return err
		}
		var boc []byte
		if d, boc, err = dumpLiteserver(ctx, acc, reg); err == nil && *save != "" {
			if err = atomicfile.WriteFile(*save, boc, 0o644); err != nil {
				err = fmt.Errorf("--save-state: %w", err)
			}
		}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := canon.Marshal(d)
		if err != nil {
			return err
		}
		_, err = stdout.Write(append(b, '\n'))
		return err
	}
	_, err = io.WriteString(stdout, d.text())
	return err
}

// dumpStateFile reads an account data file with verify's reader.
func dumpStateFile(path string, reg *address.Address) (*registryDump, error) {
	b, err := mfReadLimited(path, maxRegistryStateFile)
	if err != nil {
		return nil, fmt.Errorf("--state: %w", err)
	}
	st, err := decodeRegistryState(b)
	if err != nil {
		return nil, fmt.Errorf("--state %s: %w", path, err)
	}
	return newRegistryDump(st, reg, "state-file"), nil
}

// dumpLiteserver reads the registry account at the latest masterchain
// block and returns the dump and the account data BOC.
func dumpLiteserver(ctx context.Context, src registryAccounts, reg *address.Address) (*registryDump, []byte, error) {
	block, err := src.CurrentMasterchainInfo(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("latest masterchain block: %w", err)
	}
	acc, err := src.GetAccount(ctx, block, reg)
	if err != nil {
		return nil, nil, fmt.Errorf("--registry %s: account at masterchain block %d: %w", reg.StringRaw(), block.SeqNo, err)
	}
	switch {
	case acc == nil || !acc.IsActive || acc.State == nil:
		return nil, nil, fmt.Errorf("--registry %s: no account at this address in masterchain block %d (never deployed, or deleted): wrong address?", reg.StringRaw(), block.SeqNo)
	case acc.State.Status != tlb.AccountStatusActive:
		return nil, nil, fmt.Errorf("--registry %s: the account is %s, not active (a registry is deployed with its code): wrong address?", reg.StringRaw(), strings.ToLower(string(acc.State.Status)))
	case acc.Code == nil || acc.Data == nil:
		return nil, nil, fmt.Errorf("--registry %s: the active account has no code or data", reg.StringRaw())
	}
	code := registry.CodeHash()
	if got := acc.Code.Hash(); string(got) != string(code[:]) {
		return nil, nil, fmt.Errorf("--registry %s runs code %x, not the registry contract's %x: wrong address?", reg.StringRaw(), got, code)
	}
	boc := acc.Data.ToBOC()
	st, err := decodeRegistryState(boc)
	if err != nil {
		return nil, nil, fmt.Errorf("--registry %s: account data: %w", reg.StringRaw(), err)
	}
	d := newRegistryDump(st, reg, "liteserver")
	d.CodeHash = hex.EncodeToString(code[:])
	d.Block = &dumpBlock{
		Workchain: block.Workchain,
		Shard:     fmt.Sprintf("%016x", uint64(block.Shard)),
		Seqno:     block.SeqNo,
		RootHash:  hex.EncodeToString(block.RootHash),
		FileHash:  hex.EncodeToString(block.FileHash),
	}
	return d, boc, nil
}

func newRegistryDump(st *registry.State, reg *address.Address, source string) *registryDump {
	d := &registryDump{Source: source, Governance: st.Governance.StringRaw(), Seqno: st.Seqno, Images: []dumpEntry{}, Models: []dumpEntry{}}
	if reg != nil {
		d.Registry = reg.StringRaw()
	}
	for _, h := range st.ImageHashes() {
		e := st.Images[h]
		d.Images = append(d.Images, dumpEntry{Hash: hex.EncodeToString(h[:]), AddedAt: e.AddedAt, AddedSeqno: e.AddedSeqno})
	}
	for _, h := range st.ModelHashes() {
		e := st.Models[h]
		d.Models = append(d.Models, dumpEntry{Hash: hex.EncodeToString(h[:]), AddedAt: e.AddedAt, AddedSeqno: e.AddedSeqno})
	}
	return d
}

// text is the human form: one "key  value" line per field, then one line
// per hash with when it was added.
func (d *registryDump) text() string {
	var b strings.Builder
	if d.Registry != "" {
		fmt.Fprintf(&b, "registry    %s\n", d.Registry)
	}
	if d.Block != nil {
		fmt.Fprintf(&b, "source      liteserver, masterchain block (%d,%s,%d) root hash %s, proofs checked\n",
			d.Block.Workchain, d.Block.Shard, d.Block.Seqno, d.Block.RootHash)
		fmt.Fprintf(&b, "code hash   %s (the registry contract's)\n", d.CodeHash)
	} else {
		fmt.Fprintf(&b, "source      account data file (its origin is not checked)\n")
	}
	fmt.Fprintf(&b, "governance  %s\n", d.Governance)
	fmt.Fprintf(&b, "seqno       %d\n", d.Seqno)
	for _, l := range []struct {
		name    string
		entries []dumpEntry
	}{{"images", d.Images}, {"models", d.Models}} {
		fmt.Fprintf(&b, "%-11s %d\n", l.name, len(l.entries))
		for _, e := range l.entries {
			fmt.Fprintf(&b, "  %s  added %s, change %d\n", e.Hash, time.Unix(int64(e.AddedAt), 0).UTC().Format(time.RFC3339), e.AddedSeqno)
		}
	}
	return b.String()
}
