package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/liteclient"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton"
	"github.com/xssnick/tonutils-go/ton/wallet"
	"github.com/xssnick/tonutils-go/tvm/cell"
	"golang.org/x/sys/unix"

	"github.com/chrysalis-cc/chrysalis/measure/manifest"
	"github.com/chrysalis-cc/chrysalis/measure/manifest/dsse"
	"github.com/chrysalis-cc/chrysalis/measure/payment"
	"github.com/chrysalis-cc/chrysalis/measure/registry"
)

func init() {
	register("publish", "sign a release's manifest and write what to upload and the registry messages (optionally send them)", runPublish)
}

// Files `publish` writes into its --out directory.
const (
	pubManifest     = "manifest.json"
	pubEnvelope     = "manifest.dsse.json"
	pubKey          = "publisher.pub"
	pubSums         = "SHA256SUMS"
	pubRegistryBOC  = "registry-messages.boc"
	pubRegistryText = "registry-messages.txt"
)

// registryAmount is attached to every registry message: far above the
// 2,700–3,900 gas an add costs (measure/registry/README.md); what the
// contract does not spend stays on it as storage rent.
var registryAmount = tlb.MustFromTON("0.05")

func publishUsage(w io.Writer) {
	fmt.Fprint(w, `usage:
  chrysalis publish --key KEY --out DIR
                    (--release DIR --shape NAME[,NAME...] [--shape-file F] [--rtmr0 NAME=HEX...] | --manifest manifest.json)
                    [--registry ADDR | --governance ADDR] [--model-hash HEX...] [--testnet]
                    [--wallet-key FILE --liteserver-config FILE [--wallet-version v5r1|v4r2]]
  Builds the manifest as 'manifest build' does (or takes one built earlier
  with --manifest), signs it with KEY, verifies the envelope against KEY.pub
  and creates DIR (never overwrites; all files appear at once):
    manifest.json          the canonical manifest
    manifest.dsse.json     the DSSE envelope (what verifiers pin with --pub)
    publisher.pub          the publisher's public key (KEY.pub)
    SHA256SUMS             the release files' SHA-256, from the manifest
  With --registry (or --governance, whose registry address it derives):
    registry-messages.boc  one bag of cells, one root per message body, in
                           order: add_image for each distinct image hash of
                           the manifest's shapes, then add_model for each
                           --model-hash
    registry-messages.txt  for a governance wallet to sign: destination,
                           amount, each body in hex and a ton://transfer link
  With --wallet-key (a 12/24-word mnemonic or 64 hex digits of ed25519 seed,
  mode 0600) and --liteserver-config (a global config JSON), the messages are
  also sent from that wallet: one external, one bounceable internal message
  of 0.05 TON per body, mode 3; the transaction hash is printed.
`)
}

func runPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		publishUsage(stderr)
		fs.PrintDefaults()
	}
	src := mfSourceFlags(fs)
	built := fs.String("manifest", "", "publish this manifest `file` (from manifest build) instead of building one from --release and --shape")
	keyPath := fs.String("key", "", "publisher private key `file` (from manifest keygen); KEY.pub must be its public half")
	out := fs.String("out", "", "`directory` to create with the files to upload")
	regFlag := fs.String("registry", "", "registry contract `address` to write (and send) add messages for")
	govFlag := fs.String("governance", "", "governance `address`: derives the registry address when --registry is not given, and must be the sending wallet")
	var models repeated
	fs.Var(&models, "model-hash", "also list this model `hash` (64 hex digits) in the registry; repeatable")
	testnet := fs.Bool("testnet", false, "addresses and the wallet are on testnet")
	walletKey := fs.String("wallet-key", "", "send the registry messages from the wallet of this key `file`")
	walletVersion := fs.String("wallet-version", "v5r1", "wallet `version` of --wallet-key: v5r1 or v4r2")
	lsConfig := fs.String("liteserver-config", "", "liteserver global config `file` (JSON) to send through")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the wallet's transaction")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	// Check every input before doing any work.
	if *keyPath == "" || *out == "" {
		return errors.New("--key and --out are required")
	}
	if (*built == "") == (src.shapes == "") {
		return errors.New("give either --shape (with --release) to build the manifest, or --manifest")
	}
	if err := checkNewDir(*out); err != nil {
		return err
	}
	key, err := dsse.LoadPrivateKey(*keyPath)
	if err != nil {
		return err
	}
	pub, err := dsse.LoadPublicKey(dsse.PublicKeyPath(*keyPath))
	if err != nil {
		return err
	}
	var reg, gov *address.Address
	if *govFlag != "" {
		if gov, err = parseTONAddress("--governance", *govFlag, *testnet, false); err != nil {
			return err
		}
	}
	switch {
	case *regFlag != "":
		if reg, err = parseTONAddress("--registry", *regFlag, *testnet, false); err != nil {
			return err
		}
	case gov != nil:
		if reg, err = registry.Address(gov); err != nil {
			return fmt.Errorf("--governance %s: %w", *govFlag, err)
		}
	}
	modelHashes, err := parseModelHashes(models)
	if err != nil {
		return err
	}
	if reg == nil && (len(modelHashes) > 0 || *walletKey != "" || *lsConfig != "") {
		return errors.New("--model-hash, --wallet-key and --liteserver-config need --registry or --governance")
	}
	var send *walletSend
	if *walletKey != "" || *lsConfig != "" {
		if *walletKey == "" || *lsConfig == "" {
			return errors.New("sending needs both --wallet-key and --liteserver-config")
		}
		send, err = loadWalletSend(*walletKey, *walletVersion, *testnet)
		if err != nil {
			return err
		}
		send.governance = gov
	}

	// Manifest: built from the release exactly as `manifest build` does,
	// or read back from a file.
	var m *manifest.Manifest
	if *built != "" {
		b, err := mfReadLimited(*built, manifest.MaxSize)
		if err != nil {
			return err
		}
		if m, err = manifest.Parse(b); err != nil {
			return fmt.Errorf("--manifest %s: %w", *built, err)
		}
	} else if m, err = src.build(stderr, "publish"); err != nil {
		return err
	}
	p, err := preparePublication(m, key, pub, reg, *testnet, gov, modelHashes)
	if err != nil {
		return err
	}
	if err := writeNewDir(*out, p.files()); err != nil {
		return err
	}
	if err := m.WriteSummary(stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signed         by %s, verified against %s\n", key.ID, dsse.PublicKeyPath(*keyPath))
	for _, f := range p.files() {
		fmt.Fprintf(stdout, "wrote          %s\n", filepath.Join(*out, f.name))
	}
	if send == nil {
		return nil
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	chain, err := dialLiteservers(ctx, *lsConfig)
	if err != nil {
		return err
	}
	res, err := send.send(ctx, chain, reg, p.messages)
	if err != nil {
		return fmt.Errorf("sending the registry messages (the files in %s are written; a governance wallet can still send them): %w", *out, err)
	}
	fmt.Fprintf(stdout, "sent           %d messages from %s to %s\n", len(p.messages), res.wallet.String(), friendly(reg, *testnet))
	fmt.Fprintf(stdout, "transaction    %s\n", hex.EncodeToString(res.tx.Hash))
	return nil
}

// publication is everything `publish` writes.
type publication struct {
	manifest, envelope, pub, sums []byte
	digest                        string
	registry                      *address.Address // nil: no registry messages
	testnet                       bool
	governance                    *address.Address
	messages                      []registryMessage
}

// registryMessage is one body for the registry.
type registryMessage struct {
	op      string // add_image or add_model
	what    string // the shapes or model the hash stands for
	hash    [32]byte
	queryID uint64
	body    *cell.Cell
}

// preparePublication encodes and signs m, verifies the envelope against
// pub (so a KEY.pub that is not KEY's public half is caught before
// anything is published) and builds the registry bodies.
func preparePublication(m *manifest.Manifest, key *dsse.PrivateKey, pub *dsse.PublicKey, reg *address.Address, testnet bool, gov *address.Address, models [][32]byte) (*publication, error) {
	enc, err := m.Encode()
	if err != nil {
		return nil, err
	}
	_, env, err := manifest.Sign(m, key)
	if err != nil {
		return nil, err
	}
	if _, err := manifest.Verify(env, []*dsse.PublicKey{pub}); err != nil {
		return nil, fmt.Errorf("the signed envelope does not verify against the public key next to --key: %w", err)
	}
	pubPEM, err := pub.MarshalPEM()
	if err != nil {
		return nil, err
	}
	digest, err := m.Digest()
	if err != nil {
		return nil, err
	}
	p := &publication{manifest: enc, envelope: env, pub: pubPEM, sums: releaseSums(m), digest: digest, registry: reg, testnet: testnet, governance: gov}
	if reg != nil {
		p.messages = registryMessages(m, enc, models)
	}
	return p, nil
}

// releaseSums is SHA256SUMS (sha256sum format) of the release files the
// manifest names; LoadRelease checked them against the release's own
// SHA256SUMS when the manifest was built.
func releaseSums(m *manifest.Manifest) []byte {
	files := append([]manifest.File(nil), m.Release.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	var b bytes.Buffer
	for _, f := range files {
		fmt.Fprintf(&b, "%s  %s\n", f.SHA256, f.Name)
	}
	return b.Bytes()
}

// registryMessages is add_image for each distinct image hash of the
// manifest's shapes (in shape order), then add_model for each model hash.
// query_id is the first 8 bytes of the manifest's SHA-256 plus the
// message's index, so the messages of one manifest are recognisable.
func registryMessages(m *manifest.Manifest, enc []byte, models [][32]byte) []registryMessage {
	sum := sha256.Sum256(enc)
	base := binary.BigEndian.Uint64(sum[:8])
	var out []registryMessage
	index := map[manifest.Hash]int{}
	for _, s := range m.Shapes {
		if i, ok := index[s.ImageHash]; ok {
			out[i].what += ", " + s.Name
			continue
		}
		index[s.ImageHash] = len(out)
		out = append(out, registryMessage{op: "add_image", what: "shape " + s.Name, hash: s.ImageHash})
	}
	for _, h := range models {
		out = append(out, registryMessage{op: "add_model", what: "model", hash: h})
	}
	for i := range out {
		out[i].queryID = base + uint64(i)
		if out[i].op == "add_image" {
			out[i].body = registry.AddImage(out[i].queryID, out[i].hash)
		} else {
			out[i].body = registry.AddModel(out[i].queryID, out[i].hash)
		}
	}
	return out
}

type outFile struct {
	name string
	data []byte
}

func (p *publication) files() []outFile {
	out := []outFile{
		{pubManifest, p.manifest},
		{pubEnvelope, p.envelope},
		{pubKey, p.pub},
		{pubSums, p.sums},
	}
	if p.registry != nil {
		roots := make([]*cell.Cell, len(p.messages))
		for i, m := range p.messages {
			roots[i] = m.body
		}
		out = append(out, outFile{pubRegistryBOC, cell.ToBOCWithOptions(roots, cell.BOCSerializeOptions{WithCRC32C: true})}, outFile{pubRegistryText, p.registryText()})
	}
	return out
}

// friendly is the user-friendly bounceable form the registry is addressed
// by (EQ…, or kQ… on testnet).
func friendly(a *address.Address, testnet bool) string {
	return a.Bounce(true).Testnet(testnet).String()
}

// registryText is registry-messages.txt: what a governance wallet needs
// to send the messages by hand.
func (p *publication) registryText() []byte {
	var b bytes.Buffer
	network := "mainnet"
	if p.testnet {
		network = "testnet"
	}
	gov := "(not given: the registry accepts these only from its governance address)"
	if p.governance != nil {
		gov = friendly(p.governance, p.testnet) + " (" + p.governance.StringRaw() + ")"
	}
	dst := friendly(p.registry, p.testnet)
	fmt.Fprintf(&b, "# Registry messages for manifest %s\n", p.digest)
	fmt.Fprintf(&b, "# Send each from the governance wallet, bounceable, with the amount shown (a refused\n")
	fmt.Fprintf(&b, "# message bounces back). %s holds the same bodies, one root each, in this order.\n", pubRegistryBOC)
	fmt.Fprintf(&b, "network     %s\n", network)
	fmt.Fprintf(&b, "registry    %s (%s)\n", dst, p.registry.StringRaw())
	fmt.Fprintf(&b, "governance  %s\n", gov)
	fmt.Fprintf(&b, "amount      %s TON (%s nanoton) per message\n", registryAmount.String(), registryAmount.Nano().String())
	fmt.Fprintf(&b, "messages    %d\n", len(p.messages))
	for i, m := range p.messages {
		boc := m.body.ToBOC()
		fmt.Fprintf(&b, "\nmessage %d   %s (%s)\n", i+1, m.op, m.what)
		fmt.Fprintf(&b, "  hash      %x\n", m.hash)
		fmt.Fprintf(&b, "  query_id  %d\n", m.queryID)
		fmt.Fprintf(&b, "  body      %s\n", hex.EncodeToString(boc))
		fmt.Fprintf(&b, "  link      ton://transfer/%s?amount=%s&bin=%s\n", dst, registryAmount.Nano().String(), base64.RawURLEncoding.EncodeToString(boc))
	}
	return b.Bytes()
}

// parseTONAddress accepts a user-friendly address (either base64
// alphabet; its testnet flag must match the network unless anyNetwork) or
// the raw "wc:hex" form, in workchain 0 or -1.
func parseTONAddress(flagName, s string, testnet, anyNetwork bool) (*address.Address, error) {
	var a *address.Address
	var err error
	if strings.Contains(s, ":") {
		a, err = address.ParseRawAddr(s)
	} else {
		a, err = address.ParseAddr(strings.NewReplacer("+", "-", "/", "_").Replace(s))
		if err == nil && !anyNetwork && a.IsTestnetOnly() != testnet {
			if testnet {
				return nil, fmt.Errorf("%s %q is a mainnet address, but --testnet is set", flagName, s)
			}
			return nil, fmt.Errorf("%s %q is a testnet address; add --testnet", flagName, s)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s %q is not a TON address (user-friendly or wc:hex): %v", flagName, s, err)
	}
	if wc := a.Workchain(); wc != 0 && wc != -1 {
		return nil, fmt.Errorf("%s %q: workchain %d is neither 0 nor -1", flagName, s, wc)
	}
	return a, nil
}

func parseModelHashes(in []string) ([][32]byte, error) {
	var out [][32]byte
	seen := map[[32]byte]bool{}
	for _, s := range in {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("--model-hash %q: want 64 hex digits (a 32-byte hash)", s)
		}
		h := [32]byte(b)
		if seen[h] {
			return nil, fmt.Errorf("--model-hash %s given twice", s)
		}
		seen[h] = true
		out = append(out, h)
	}
	return out, nil
}

// checkNewDir refuses an --out that exists.
func checkNewDir(dir string) error {
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("--out %s exists: not overwriting it", dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--out %s: %w", dir, err)
	}
	return nil
}

// writeNewDir creates dir holding files, all at once: the files are
// written and synced in a temporary sibling directory that is then
// renamed to dir without replacing anything. On failure nothing is left.
func writeNewDir(dir string, files []outFile) (err error) {
	if err := checkNewDir(dir); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	for _, f := range files {
		if err := writeSynced(filepath.Join(tmp, f.name), f.data); err != nil {
			return err
		}
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE); err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return fmt.Errorf("--out %s exists: not overwriting it", dir)
		}
		return fmt.Errorf("--out %s: %w", dir, err)
	}
	return syncDir(parent)
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// tonChain is what sending needs from the network: the wallet's own
// wallet.TonAPI (publish uses SendExternalMessageWaitTransaction) and the
// wallet account's state. liveChain implements it over liteservers; the
// tests implement it with the TVM emulator (measure/registry/registrytest).
type tonChain interface {
	wallet.TonAPI
	// WalletState reports whether the account at a is active and, if so,
	// the seqno its "seqno" get-method returns.
	WalletState(ctx context.Context, a *address.Address) (active bool, seqno uint32, err error)
}

// walletSend is a configured sending wallet.
type walletSend struct {
	key        ed25519.PrivateKey
	version    wallet.VersionConfig
	governance *address.Address // when set, the wallet must be it
}

type sendResult struct {
	wallet *address.Address
	ext    *tlb.ExternalMessage
	tx     *tlb.Transaction
}

// loadWalletSend reads a wallet key file: a mnemonic (12 or 24 words,
// TON's derivation) or 64 hex digits of ed25519 seed. Like the publisher
// key, it must not be readable by group or others.
func loadWalletSend(path, version string, testnet bool) (*walletSend, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--wallet-key: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("--wallet-key %s has mode %04o: it must not be accessible to group or others (chmod 600 %s)", path, perm, path)
	}
	b, err := mfReadLimited(path, 4096)
	if err != nil {
		return nil, fmt.Errorf("--wallet-key: %w", err)
	}
	words := strings.Fields(string(b))
	var key ed25519.PrivateKey
	switch {
	case len(words) == 1 && len(words[0]) == 2*ed25519.SeedSize:
		seed, err := hex.DecodeString(words[0])
		if err != nil {
			return nil, fmt.Errorf("--wallet-key %s: not 64 hex digits", path)
		}
		key = ed25519.NewKeyFromSeed(seed)
	case len(words) == 12 || len(words) == 24:
		if key, err = wallet.SeedToPrivateKeyWithOptions(words); err != nil {
			return nil, fmt.Errorf("--wallet-key %s: mnemonic: %v", path, err)
		}
	default:
		return nil, fmt.Errorf("--wallet-key %s: want a 12- or 24-word mnemonic or 64 hex digits of ed25519 seed, got %d fields", path, len(words))
	}
	ws := &walletSend{key: key}
	switch version {
	case "v5r1":
		id := int32(wallet.MainnetGlobalID)
		if testnet {
			id = wallet.TestnetGlobalID
		}
		ws.version = wallet.ConfigV5R1Final{NetworkGlobalID: id, Workchain: 0}
	case "v4r2":
		ws.version = wallet.V4R2
	default:
		return nil, fmt.Errorf("--wallet-version %q: want v5r1 or v4r2", version)
	}
	return ws, nil
}

// maxMessages is how many internal messages one external of the version
// carries.
func (s *walletSend) maxMessages() int {
	if s.version == wallet.V4R2 {
		return 4
	}
	return 255
}

// send builds one external carrying every message (bounceable, 0.05 TON,
// mode 3: fees paid separately, errors ignored — wallet v5 refuses
// external requests without +2 with exit code 137), sends it and waits for
// the wallet's transaction, which must have created every message: with
// +2 a message the wallet cannot pay for is skipped, not failed.
func (s *walletSend) send(ctx context.Context, chain tonChain, reg *address.Address, msgs []registryMessage) (*sendResult, error) {
	if len(msgs) == 0 {
		return nil, errors.New("no registry messages to send")
	}
	if len(msgs) > s.maxMessages() {
		return nil, fmt.Errorf("%d messages, but one external of this wallet version carries at most %d (use v5r1)", len(msgs), s.maxMessages())
	}
	w, err := wallet.FromPrivateKey(chain, s.key, s.version)
	if err != nil {
		return nil, err
	}
	addr := w.WalletAddress()
	if s.governance != nil && !addr.Equals(s.governance) {
		return nil, fmt.Errorf("the wallet of --wallet-key is %s, not the governance address %s: the registry would refuse its messages", addr.StringRaw(), s.governance.StringRaw())
	}
	active, seqno, err := chain.WalletState(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("wallet %s: %w", addr.String(), err)
	}
	spec, ok := w.GetSpec().(interface {
		SetSeqnoFetcher(func(ctx context.Context, subWallet uint32) (uint32, error))
	})
	if !ok {
		return nil, fmt.Errorf("wallet version %v has no seqno", s.version)
	}
	spec.SetSeqnoFetcher(func(context.Context, uint32) (uint32, error) { return seqno, nil })
	var out []*wallet.Message
	for _, m := range msgs {
		out = append(out, &wallet.Message{Mode: wallet.PayGasSeparately + wallet.IgnoreErrors, InternalMessage: &tlb.InternalMessage{
			IHRDisabled: true, Bounce: true, DstAddr: reg.Bounce(true), Amount: registryAmount, Body: m.body,
		}})
	}
	ext, err := w.PrepareExternalMessageForMany(ctx, !active, out)
	if err != nil {
		return nil, err
	}
	tx, _, _, err := chain.SendExternalMessageWaitTransaction(ctx, ext)
	if err != nil {
		return nil, err
	}
	if err := checkWalletTx(tx, len(out)); err != nil {
		return nil, fmt.Errorf("wallet %s transaction %x: %w", addr.String(), tx.Hash, err)
	}
	return &sendResult{wallet: addr, ext: ext, tx: tx}, nil
}

// checkWalletTx requires a successful compute and action phase that
// created n messages.
func checkWalletTx(tx *tlb.Transaction, n int) error {
	if tx == nil {
		return errors.New("no transaction")
	}
	d, ok := tx.Description.(tlb.TransactionDescriptionOrdinary)
	if !ok {
		return fmt.Errorf("description %T, want ordinary", tx.Description)
	}
	vm, ok := d.ComputePhase.Phase.(tlb.ComputePhaseVM)
	if !ok || !vm.Success {
		return fmt.Errorf("compute phase failed (%T)", d.ComputePhase.Phase)
	}
	if d.Aborted || d.ActionPhase == nil || !d.ActionPhase.Success {
		code := int32(-1)
		if d.ActionPhase != nil {
			code = d.ActionPhase.ResultCode
		}
		return fmt.Errorf("action phase failed (result code %d): is the wallet funded?", code)
	}
	if int(d.ActionPhase.MessagesCreated) != n {
		return fmt.Errorf("created %d of the %d messages (compute exit code %d, %d actions skipped): is the wallet funded?", d.ActionPhase.MessagesCreated, n, vm.Details.ExitCode, d.ActionPhase.SkippedActions)
	}
	return nil
}

// liveChain is tonChain over liteservers.
type liveChain struct{ ton.APIClientWrapped }

// dialLiteservers connects to the liteservers of a global config and
// checks proofs from the config's trusted block.
func dialLiteservers(ctx context.Context, path string) (tonChain, error) {
	api, err := dialTONAPI(ctx, path)
	if err != nil {
		return nil, err
	}
	return liveChain{api}, nil
}

// dialTONAPI is the proof-checking liteserver client of a global config
// file (publish, registry dump): secure proof checks from the config's
// trusted block, with retries.
func dialTONAPI(ctx context.Context, path string) (ton.APIClientWrapped, error) {
	cfg, err := liteclient.GetConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("--liteserver-config %s: %w", path, err)
	}
	api, err := payment.DialTON(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("--liteserver-config %s: %w", path, err)
	}
	return api, nil
}

func (l liveChain) WalletState(ctx context.Context, a *address.Address) (bool, uint32, error) {
	block, err := l.CurrentMasterchainInfo(ctx)
	if err != nil {
		return false, 0, err
	}
	api := l.WaitForBlock(block.SeqNo)
	acc, err := api.GetAccount(ctx, block, a)
	if err != nil {
		return false, 0, err
	}
	if !acc.IsActive || acc.State == nil || acc.State.Status != tlb.AccountStatusActive {
		return false, 0, nil
	}
	res, err := api.RunGetMethod(ctx, block, a, "seqno")
	if err != nil {
		return false, 0, fmt.Errorf("seqno: %w", err)
	}
	v, err := res.Int(0)
	if err != nil {
		return false, 0, fmt.Errorf("seqno: %w", err)
	}
	return true, uint32(v.Uint64()), nil
}
