package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton"
	"github.com/xssnick/tonutils-go/ton/wallet"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/chrysalis-cc/chrysalis/image"
	"github.com/chrysalis-cc/chrysalis/measure/golden"
	"github.com/chrysalis-cc/chrysalis/measure/manifest"
	"github.com/chrysalis-cc/chrysalis/measure/manifest/dsse"
	"github.com/chrysalis-cc/chrysalis/measure/registry"
	"github.com/chrysalis-cc/chrysalis/measure/registry/registrytest"
)

// tagAddr is a made-up basechain address.
func tagAddr(tag string) *address.Address {
	h := sha256.Sum256([]byte(tag))
	return address.NewAddress(0, 0, h[:])
}

func keygen(t *testing.T, path string) {
	t.Helper()
	if code, _, errs := cli("manifest", "keygen", "--out", path); code != 0 {
		t.Fatal(errs)
	}
}

// assertOnlyEntries fails when dir holds anything but names (a temporary
// directory left behind, a half-written --out).
func assertOnlyEntries(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Fatalf("%s holds %q, want %q", dir, got, names)
	}
}

// TestPublishManifestFiles publishes a fixed manifest with registry
// messages: every file is checked, registry-messages.txt against a golden
// file, and the output verifies with `manifest verify`.
func TestPublishManifestFiles(t *testing.T) {
	dir := t.TempDir()
	mpath := filepath.Join(dir, "manifest.json")
	m := writeTestManifest(t, mpath)
	key := filepath.Join(dir, "key")
	keygen(t, key)
	gov := tagAddr("governance")
	model := hexSHA("model")
	out := filepath.Join(dir, "out")
	code, stdout, errs := cli("publish", "--manifest", mpath, "--key", key, "--out", out, "--governance", gov.String(), "--model-hash", model)
	if code != 0 {
		t.Fatalf("publish: %d %s %s", code, stdout, errs)
	}
	assertOnlyEntries(t, dir, "key", "key.pub", "manifest.json", "out")
	assertOnlyEntries(t, out, pubManifest, pubEnvelope, pubKey, pubSums, pubRegistryBOC, pubRegistryText)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if want, _ := os.ReadFile(mpath); !bytes.Equal(read(pubManifest), want) {
		t.Error("manifest.json differs from the manifest published")
	}
	if want, _ := os.ReadFile(key + ".pub"); !bytes.Equal(read(pubKey), want) {
		t.Error("publisher.pub differs from KEY.pub")
	}
	wantSums := ""
	for _, f := range m.Release.Files {
		wantSums += f.SHA256 + "  " + f.Name + "\n"
	}
	if got := string(read(pubSums)); got != wantSums {
		t.Errorf("SHA256SUMS:\n%s\nwant\n%s", got, wantSums)
	}
	code, vout, errs := cli("manifest", "verify", "--pub", filepath.Join(out, pubKey), filepath.Join(out, pubEnvelope))
	digest, _ := m.Digest()
	if code != 0 || !strings.Contains(vout, digest) {
		t.Fatalf("manifest verify of the published envelope: %d %s %s", code, vout, errs)
	}

	// The BOC holds one body per image hash, then the model, in the order
	// of the text file.
	roots, err := cell.FromBOCMultiRoot(read(pubRegistryBOC))
	if err != nil {
		t.Fatal(err)
	}
	text := string(read(pubRegistryText))
	if len(roots) != len(m.Shapes)+1 {
		t.Fatalf("%d roots, want %d", len(roots), len(m.Shapes)+1)
	}
	for i, r := range roots {
		s, err := r.BeginParse()
		if err != nil {
			t.Fatal(err)
		}
		op := uint32(s.MustLoadUInt(32))
		s.MustLoadUInt(64)
		h := s.MustLoadSlice(256)
		wantOp, wantHash := registry.OpAddImage, m.Shapes[min(i, len(m.Shapes)-1)].ImageHash[:]
		if i == len(m.Shapes) {
			wantOp, wantHash = registry.OpAddModel, mustHex(t, model)
		}
		if op != wantOp || !bytes.Equal(h, wantHash) {
			t.Errorf("root %d: op %#x hash %x, want %#x %x", i, op, h, wantOp, wantHash)
		}
		if !strings.Contains(text, "  body      "+hex.EncodeToString(r.ToBOC())+"\n") {
			t.Errorf("registry-messages.txt lacks body %d", i)
		}
	}
	reg, _ := registry.Address(gov)
	for _, s := range []string{reg.String(), gov.String(), "amount      0.05 TON (50000000 nanoton)", "ton://transfer/" + reg.String() + "?amount=50000000&bin=te6c"} {
		if !strings.Contains(text, s) {
			t.Errorf("registry-messages.txt lacks %q", s)
		}
	}
	golden.Check(t, "publish/registry-messages.txt", read(pubRegistryText))
	for _, s := range []string{"wrote          " + filepath.Join(out, pubRegistryText), "verified against " + key + ".pub"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("publish output lacks %q:\n%s", s, stdout)
		}
	}

	// Without a registry only the four manifest files are written.
	out2 := filepath.Join(dir, "out2")
	if code, _, errs := cli("publish", "--manifest", mpath, "--key", key, "--out", out2); code != 0 {
		t.Fatal(errs)
	}
	assertOnlyEntries(t, out2, pubManifest, pubEnvelope, pubKey, pubSums)
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPublishBadInputs: each is one clear line on stderr and nothing
// written next to --out.
func TestPublishBadInputs(t *testing.T) {
	dir := t.TempDir()
	mpath := filepath.Join(dir, "manifest.json")
	writeTestManifest(t, mpath)
	key, other := filepath.Join(dir, "key"), filepath.Join(dir, "other")
	keygen(t, key)
	keygen(t, other)
	// A key whose .pub is another key's public half.
	mixed := filepath.Join(dir, "mixed")
	priv, _ := os.ReadFile(key)
	pub, _ := os.ReadFile(other + ".pub")
	os.WriteFile(mixed, priv, 0o600)
	os.WriteFile(mixed+".pub", pub, 0o644)
	existing := filepath.Join(dir, "existing")
	os.Mkdir(existing, 0o755)
	gov := tagAddr("governance")
	out := filepath.Join(dir, "out")
	base := []string{"publish", "--manifest", mpath, "--key", key, "--out", out}
	before := []string{"existing", "key", "key.pub", "manifest.json", "mixed", "mixed.pub", "other", "other.pub"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"wrong key", []string{"publish", "--manifest", mpath, "--key", mixed, "--out", out}, "does not verify against the public key next to --key"},
		{"existing out", []string{"publish", "--manifest", mpath, "--key", key, "--out", existing}, "--out " + existing + " exists: not overwriting it"},
		{"bad registry address", append(slices.Clone(base), "--registry", "EQnot-an-address"), `--registry "EQnot-an-address" is not a TON address`},
		{"registry checksum", append(slices.Clone(base), "--registry", gov.String()[:47]+"A"), "--registry"},
		{"testnet registry on mainnet", append(slices.Clone(base), "--registry", gov.Testnet(true).String()), "is a testnet address; add --testnet"},
		{"bad workchain", append(slices.Clone(base), "--registry", "5:"+strings.Repeat("ab", 32)), "workchain 5 is neither 0 nor -1"},
		{"bad model hash", append(slices.Clone(base), "--governance", gov.String(), "--model-hash", "abcd"), `--model-hash "abcd": want 64 hex digits`},
		{"model hash twice", append(slices.Clone(base), "--governance", gov.String(), "--model-hash", hexSHA("m"), "--model-hash", hexSHA("m")), "given twice"},
		{"model hash without registry", append(slices.Clone(base), "--model-hash", hexSHA("m")), "need --registry or --governance"},
		{"wallet without liteservers", append(slices.Clone(base), "--governance", gov.String(), "--wallet-key", key), "both --wallet-key and --liteserver-config"},
		{"no source", []string{"publish", "--key", key, "--out", out}, "either --shape"},
		{"both sources", append(slices.Clone(base), "--shape", "dev-small"), "either --shape"},
		{"no key", []string{"publish", "--manifest", mpath, "--out", out}, "--key and --out are required"},
		{"bad manifest", []string{"publish", "--manifest", key + ".pub", "--key", key, "--out", out}, "--manifest " + key + ".pub"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := cli(tc.args...)
			if code != 1 || !strings.Contains(errs, tc.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Fatalf("exit %d, stderr %q, want one line with %q", code, errs, tc.want)
			}
			assertOnlyEntries(t, dir, before...)
			assertOnlyEntries(t, existing)
		})
	}
}

// emuChain is tonChain on registrytest's emulated chain: the wallet's
// external runs against the real wallet code, the internal messages it
// creates against the real registry code.
type emuChain struct {
	*registrytest.Chain
	delivered []*registrytest.Tx
}

func (e *emuChain) WalletState(_ context.Context, a *address.Address) (bool, uint32, error) {
	st := e.State(a)
	if st == nil || st.Status != tlb.AccountStatusActive {
		return false, 0, nil
	}
	stack, err := e.RunGetMethod(a, "seqno")
	if err != nil {
		return false, 0, err
	}
	v, err := stack.PopInt()
	if err != nil {
		return false, 0, err
	}
	return true, uint32(v.Uint64()), nil
}

func (e *emuChain) SendExternalMessageWaitTransaction(_ context.Context, ext *tlb.ExternalMessage) (*tlb.Transaction, *ton.BlockIDExt, []byte, error) {
	tx, err := e.SendExternal(ext)
	if err != nil {
		return nil, nil, nil, err
	}
	if !tx.Accepted {
		return nil, nil, nil, fmt.Errorf("wallet did not accept the external (exit code %d)", tx.ExitCode)
	}
	d, err := e.Deliver(tx)
	e.delivered = append(e.delivered, d...)
	return tx.Transaction, nil, ext.Body.Hash(), err
}

func (e *emuChain) SendExternalMessage(ctx context.Context, ext *tlb.ExternalMessage) error {
	_, _, _, err := e.SendExternalMessageWaitTransaction(ctx, ext)
	return err
}

var errEmu = errors.New("not available on the emulated chain")

func (e *emuChain) WaitForBlock(uint32) ton.APIClientWrapped {
	panic("publish queried the wallet through WaitForBlock: the seqno must come from WalletState")
}
func (e *emuChain) CurrentMasterchainInfo(context.Context) (*ton.BlockIDExt, error) {
	return nil, errEmu
}
func (e *emuChain) FindLastTransactionByInMsgHash(context.Context, *address.Address, []byte, ...int) (*tlb.Transaction, error) {
	return nil, errEmu
}

// newWalletSend writes a hex seed key file and loads it as publish does.
func newWalletSend(t *testing.T, dir, tag, version string) (*walletSend, *address.Address) {
	t.Helper()
	seed := sha256.Sum256([]byte(tag))
	path := filepath.Join(dir, tag+".wallet")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(seed[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ws, err := loadWalletSend(path, version, false)
	if err != nil {
		t.Fatal(err)
	}
	w, err := wallet.FromPrivateKey(nil, ws.key, ws.version)
	if err != nil {
		t.Fatal(err)
	}
	return ws, w.WalletAddress()
}

// publishToRegistry deploys a registry governed by the wallet, funds the
// wallet and sends msgs through walletSend.send.
func publishToRegistry(t *testing.T, ws *walletSend, walletAddr *address.Address, msgs []registryMessage) (*emuChain, *address.Address, *sendResult) {
	t.Helper()
	c, err := registrytest.NewChain(uint32(time.Now().Unix()))
	if err != nil {
		t.Fatal(err)
	}
	emu := &emuChain{Chain: c}
	reg, err := c.DeployRegistry(walletAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Fund(walletAddr, tlb.MustFromTON("5")); err != nil {
		t.Fatal(err)
	}
	ws.governance = walletAddr
	res, err := ws.send(context.Background(), emu, reg, msgs)
	if err != nil {
		t.Fatal(err)
	}
	return emu, reg, res
}

// TestPublishSendEmulated executes the exact external the wallet builds
// against the real wallet code, then its internal messages against the
// real registry: the registry ends up listing every hash.
func TestPublishSendEmulated(t *testing.T) {
	dir := t.TempDir()
	m := writeTestManifest(t, filepath.Join(dir, "manifest.json"))
	k, err := dsse.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	models := [][32]byte{sha256.Sum256([]byte("model"))}
	for _, version := range []string{"v5r1", "v4r2"} {
		t.Run(version, func(t *testing.T) {
			ws, waddr := newWalletSend(t, dir, "wallet-"+version, version)
			reg, _ := registry.Address(waddr)
			p, err := preparePublication(m, k, k.Public(), reg, false, waddr, models)
			if err != nil {
				t.Fatal(err)
			}
			emu, reg, res := publishToRegistry(t, ws, waddr, p.messages)
			if !res.wallet.Equals(waddr) || len(res.tx.Hash) != 32 {
				t.Fatalf("result: wallet %s, tx hash %x", res.wallet.StringRaw(), res.tx.Hash)
			}
			if res.ext.StateInit == nil {
				t.Error("the first external of an undeployed wallet carries no state init")
			}
			if len(emu.delivered) != len(p.messages) {
				t.Fatalf("%d internal messages delivered, want %d", len(emu.delivered), len(p.messages))
			}
			for i, d := range emu.delivered {
				if !d.Account.Equals(reg) || !d.Success || d.ExitCode != 0 {
					t.Fatalf("message %d on %s: exit %d success %v", i, d.Account.StringRaw(), d.ExitCode, d.Success)
				}
			}
			st, err := emu.RegistryState(reg)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range m.Shapes {
				if !st.ImageAllowed(s.ImageHash) {
					t.Errorf("registry does not list the image of shape %s", s.Name)
				}
			}
			if !st.ModelAllowed(models[0]) || len(st.Images) != len(m.Shapes) || st.Seqno != uint32(len(p.messages)) {
				t.Errorf("registry state: %d images, model listed %v, seqno %d", len(st.Images), st.ModelAllowed(models[0]), st.Seqno)
			}
			// The wallet is deployed now: a second send uses seqno 1 and no
			// state init; the registry refuses the duplicates (409) and
			// bounces them, the wallet's own transaction still succeeds.
			emu.delivered = nil
			res2, err := ws.send(context.Background(), emu, reg, p.messages[:1])
			if err != nil {
				t.Fatal(err)
			}
			if res2.ext.StateInit != nil || len(emu.delivered) != 2 || emu.delivered[0].ExitCode != registry.ExitAlreadyListed || !emu.delivered[0].Bounced {
				t.Fatalf("second send: state init %v, deliveries %d", res2.ext.StateInit != nil, len(emu.delivered))
			}
		})
	}
}

func TestPublishSendRefusals(t *testing.T) {
	dir := t.TempDir()
	m := writeTestManifest(t, filepath.Join(dir, "manifest.json"))
	k, _ := dsse.GenerateKey(nil)
	ws, waddr := newWalletSend(t, dir, "w", "v5r1")
	reg, _ := registry.Address(waddr)
	p, err := preparePublication(m, k, k.Public(), reg, false, waddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := registrytest.NewChain(uint32(time.Now().Unix()))
	if err != nil {
		t.Fatal(err)
	}
	emu := &emuChain{Chain: c}
	// Not the governance wallet.
	ws.governance = tagAddr("someone else")
	if _, err := ws.send(context.Background(), emu, reg, p.messages); err == nil || !strings.Contains(err.Error(), "not the governance address") {
		t.Fatalf("wrong wallet: %v", err)
	}
	// An unfunded wallet cannot pay for its external.
	ws.governance = waddr
	if _, err := ws.send(context.Background(), emu, reg, p.messages); err == nil || !strings.Contains(err.Error(), "fees exceed account balance") {
		t.Fatalf("unfunded wallet: %v", err)
	}
	// A wallet that can pay the fees but not every message: the wallet
	// skips what it cannot pay (mode +2) and publish reports it.
	if err := c.Fund(waddr, tlb.MustFromTON("0.07")); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.send(context.Background(), emu, reg, p.messages); err == nil || !strings.Contains(err.Error(), "of the 2 messages") {
		t.Fatalf("underfunded wallet: %v", err)
	}
	// Too many messages for v4r2.
	ws4, _ := newWalletSend(t, dir, "w4", "v4r2")
	many := slices.Repeat(p.messages, 3)
	if _, err := ws4.send(context.Background(), emu, reg, many); err == nil || !strings.Contains(err.Error(), "at most 4") {
		t.Fatalf("6 messages on v4r2: %v", err)
	}
	for _, tc := range []struct{ content, version, want string }{
		{"abc", "v5r1", "got 1 fields"},
		{strings.Repeat("zz", 32), "v5r1", "not 64 hex digits"},
		{strings.Repeat("ab", 32), "v3", `--wallet-version "v3"`},
		{strings.Repeat("abandon ", 23) + "zoo", "v5r1", "mnemonic"},
	} {
		path := filepath.Join(dir, "wk")
		os.WriteFile(path, []byte(tc.content), 0o600)
		if _, err := loadWalletSend(path, tc.version, false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("wallet key %q: %v, want %q", tc.content, err, tc.want)
		}
	}
	os.Chmod(filepath.Join(dir, "wk"), 0o644)
	if _, err := loadWalletSend(filepath.Join(dir, "wk"), "v5r1", false); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("0644 wallet key: %v", err)
	}
}

// TestPublishVerifyRoundTrip publishes the built release (the directory of
// CHRYSALIS_TEST_OVMF), verifies the output with `manifest verify`, sends
// the registry messages from the file publish wrote through the emulated
// wallet and registry, and checks that a tdx policy built from the
// published manifest and one built from the registry's account data allow
// the same image hashes.
func TestPublishVerifyRoundTrip(t *testing.T) {
	ovmf := os.Getenv("CHRYSALIS_TEST_OVMF")
	if ovmf == "" {
		t.Skip("CHRYSALIS_TEST_OVMF not set: no built release")
	}
	relDir := filepath.Dir(ovmf)
	if _, err := image.LoadRelease(relDir); err != nil {
		t.Skipf("%s is not a release directory: %v", relDir, err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	keygen(t, key)
	ws, waddr := newWalletSend(t, dir, "gov", "v5r1")
	out := filepath.Join(dir, "published")
	code, stdout, errs := cli("publish", "--release", relDir, "--shape", "dev-small,cpu-4c-8g",
		"--rtmr0", "dev-small="+strings.Repeat("11", 48), "--rtmr0", "cpu-4c-8g="+strings.Repeat("22", 48),
		"--key", key, "--out", out, "--governance", waddr.String())
	if code != 0 {
		t.Fatalf("publish: %s %s", stdout, errs)
	}
	env := filepath.Join(out, pubEnvelope)
	if code, o, e := cli("manifest", "verify", "--pub", filepath.Join(out, pubKey), env); code != 0 {
		t.Fatalf("manifest verify: %s %s", o, e)
	}
	// SHA256SUMS is the release's own.
	sums, _ := os.ReadFile(filepath.Join(out, pubSums))
	relSums, _ := os.ReadFile(filepath.Join(relDir, "SHA256SUMS"))
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		if !strings.Contains(string(relSums), line) {
			t.Errorf("SHA256SUMS line %q is not in the release's", line)
		}
	}

	// Send exactly the bodies of registry-messages.boc.
	b, err := os.ReadFile(filepath.Join(out, pubRegistryBOC))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := cell.FromBOCMultiRoot(b)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []registryMessage
	for _, r := range roots {
		msgs = append(msgs, registryMessage{body: r})
	}
	emu, reg, _ := publishToRegistry(t, ws, waddr, msgs)
	data, err := emu.Data(reg)
	if err != nil {
		t.Fatal(err)
	}
	stateFile := filepath.Join(dir, "registry-state.hex")
	if err := os.WriteFile(stateFile, []byte(hex.EncodeToString(data.ToBOC())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	fromManifest, err := tdxPolicy([]string{env}, []string{key + ".pub"}, "", "", dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	fromRegistry, err := tdxPolicy(nil, nil, stateFile, reg.String(), dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	both, err := tdxPolicy([]string{env}, []string{key + ".pub"}, stateFile, reg.String(), dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := func(m map[manifest.Hash]string) []string {
		var out []string
		for k := range m {
			out = append(out, k.String())
		}
		slices.Sort(out)
		return out
	}
	if len(fromManifest.Images) != 2 || !slices.Equal(keys(fromManifest.Images), keys(fromRegistry.Images)) || !slices.Equal(keys(both.Images), keys(fromManifest.Images)) {
		t.Fatalf("allowlists differ:\nmanifest %v\nregistry %v\nboth     %v", keys(fromManifest.Images), keys(fromRegistry.Images), keys(both.Images))
	}
	for h, label := range both.Images {
		if !strings.Contains(label, "shape ") || !strings.Contains(label, "registry "+reg.StringRaw()+", seqno 2") {
			t.Errorf("image %s label %q names not both sources", h, label)
		}
	}
}
