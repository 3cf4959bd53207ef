package dsse

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chrysalis-cc/chrysalis/measure/golden"
)

// testKey is a fixed key: ed25519 signatures are deterministic, so an
// envelope signed with it is a stable golden file.
func testKey(t testing.TB, label string) *PrivateKey {
	t.Helper()
	seed := sha256.Sum256([]byte("chrysalis dsse test key " + label))
	k, err := NewPrivateKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const testType = "application/vnd.chrysalis.test+json"

func TestPAE(t *testing.T) {
	// The example of the DSSE protocol specification.
	got := PAE("http://example.com/HelloWorld", []byte("hello world"))
	if want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"; string(got) != want {
		t.Errorf("PAE = %q, want %q", got, want)
	}
	if got := PAE("t", nil); string(got) != "DSSEv1 1 t 0 " {
		t.Errorf("empty payload: %q", got)
	}
	// Lengths count bytes, not characters.
	if got := PAE("x", []byte("é")); string(got) != "DSSEv1 1 x 2 é" {
		t.Errorf("utf-8 payload: %q", got)
	}
}

func TestGoldenEnvelope(t *testing.T) {
	k := testKey(t, "a")
	env, err := Sign(testType, []byte(`{"hello":"world"}`), k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "envelope.golden.json", b)
	want, err := os.ReadFile(filepath.Join("testdata", "envelope.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The golden envelope verifies, and the signature is over PAE.
	e, err := Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(e, testType, []*PublicKey{k.Public()}, 1)
	if err != nil || string(v.Payload) != `{"hello":"world"}` || len(v.KeyIDs) != 1 || v.KeyIDs[0] != k.ID {
		t.Fatalf("Verify = %+v, %v", v, err)
	}
	sig, _ := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
	if !ed25519.Verify(k.Public().Key, PAE(testType, v.Payload), sig) {
		t.Error("signature is not over PAE")
	}
}

// mutate decodes the canonical envelope into generic JSON, applies f and
// re-encodes it.
func mutate(t *testing.T, env []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(env, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sig0(m map[string]any) map[string]any {
	return m["signatures"].([]any)[0].(map[string]any)
}

func TestTamper(t *testing.T) {
	k := testKey(t, "a")
	other := testKey(t, "b")
	env, err := Sign(testType, []byte("payload"), k)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := env.Marshal()
	pinned := []*PublicKey{k.Public()}
	flipSig := func(m map[string]any) {
		s, _ := base64.StdEncoding.DecodeString(sig0(m)["sig"].(string))
		s[10] ^= 1
		sig0(m)["sig"] = base64.StdEncoding.EncodeToString(s)
	}
	for _, tc := range []struct {
		name  string
		in    []byte
		keys  []*PublicKey
		typ   string
		parse string // error from Parse
		err   string // error from Verify
	}{
		{name: "good", in: good},
		{name: "payload changed", in: mutate(t, good, func(m map[string]any) { m["payload"] = base64.StdEncoding.EncodeToString([]byte("payloaD")) }), err: "does not verify"},
		{name: "signature changed", in: mutate(t, good, flipSig), err: "signature by pinned key"},
		{name: "wrong key", in: good, keys: []*PublicKey{other.Public()}, err: "is not a pinned key"},
		{name: "payloadType changed", in: mutate(t, good, func(m map[string]any) { m["payloadType"] = "application/other" }), err: `payloadType is "application/other"`},
		{name: "verifier wants another type", in: good, typ: "application/other", err: "payloadType is"},
		{name: "keyid changed", in: mutate(t, good, func(m map[string]any) { sig0(m)["keyid"] = "00" }), err: ""}, // keyid is a hint only
		{name: "keyid of other pinned key", in: mutate(t, good, func(m map[string]any) { sig0(m)["keyid"] = other.ID }), keys: []*PublicKey{k.Public(), other.Public()}, err: "signature by pinned key"},
		{name: "trailing data", in: append(bytes.Clone(good), []byte(" {}")...), parse: "trailing data"},
		{name: "trailing garbage", in: append(bytes.Clone(good), 'x'), parse: "trailing data"},
		{name: "unknown field", in: mutate(t, good, func(m map[string]any) { m["extra"] = 1 }), parse: `unknown field "extra"`},
		{name: "unknown sig field", in: mutate(t, good, func(m map[string]any) { sig0(m)["cert"] = "x" }), parse: `unknown field "cert"`},
		{name: "duplicate key", in: []byte(strings.Replace(string(good), `"payloadType"`, `"payloadType":"x","payloadType"`, 1)), parse: "duplicate object key"},
		{name: "missing payload", in: mutate(t, good, func(m map[string]any) { delete(m, "payload") }), parse: `no "payload"`},
		{name: "null signatures", in: mutate(t, good, func(m map[string]any) { m["signatures"] = nil }), parse: `no "signatures"`},
		{name: "missing keyid", in: mutate(t, good, func(m map[string]any) { delete(sig0(m), "keyid") }), parse: `signatures[0] has no "keyid"`},
		{name: "no signatures", in: mutate(t, good, func(m map[string]any) { m["signatures"] = []any{} }), parse: "0 signatures"},
		{name: "url base64", in: mutate(t, good, func(m map[string]any) { m["payload"] = base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff}) }), parse: "payload is not standard padded base64"},
		{name: "unpadded base64", in: mutate(t, good, func(m map[string]any) { m["payload"] = "cGF5bG9hZA" }), parse: "payload is not standard padded base64"},
		{name: "base64 with newline", in: mutate(t, good, func(m map[string]any) { m["payload"] = "cGF5\nbG9hZA==" }), parse: "standard padded base64"},
		{name: "non-canonical base64", in: mutate(t, good, func(m map[string]any) { m["payload"] = "cGF5bG9hZB==" }), parse: "not standard padded base64"},
		{name: "short sig", in: mutate(t, good, func(m map[string]any) { sig0(m)["sig"] = "AAAA" }), parse: "3 bytes, want a 64-byte"},
		{name: "empty type", in: mutate(t, good, func(m map[string]any) { m["payloadType"] = "" }), parse: "payloadType must be"},
		{name: "not an object", in: []byte(`[1]`), parse: "not a JSON object"},
		{name: "oversized", in: append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxEnvelopeSize)...), parse: "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse(tc.in)
			if tc.parse != "" {
				if err == nil || !strings.Contains(err.Error(), tc.parse) {
					t.Fatalf("Parse: %v, want %q", err, tc.parse)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			keys, typ := tc.keys, tc.typ
			if keys == nil {
				keys = pinned
			}
			if typ == "" {
				typ = testType
			}
			_, err = Verify(e, typ, keys, 1)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrUnverified) {
				t.Fatalf("Verify: %v, want %q", err, tc.err)
			}
		})
	}
}

func TestThresholdAndMultipleSignatures(t *testing.T) {
	a, b, c := testKey(t, "a"), testKey(t, "b"), testKey(t, "c")
	env, err := Sign(testType, []byte("x"), a, b)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(env, testType, []*PublicKey{b.Public(), c.Public(), a.Public()}, 2)
	if err != nil || len(v.KeyIDs) != 2 || v.KeyIDs[0] != b.ID || v.KeyIDs[1] != a.ID {
		t.Errorf("2 of 3: %+v, %v", v, err)
	}
	if _, err := Verify(env, testType, []*PublicKey{a.Public(), c.Public()}, 2); err == nil || !strings.Contains(err.Error(), "1 of 2 required") {
		t.Errorf("threshold not met: %v", err)
	}
	// The same key signing twice counts once.
	env2, _ := Sign(testType, []byte("x"), a, a)
	if _, err := Verify(env2, testType, []*PublicKey{a.Public(), b.Public()}, 2); err == nil {
		t.Error("a key counted twice")
	}
	if _, err := Verify(env, testType, []*PublicKey{a.Public()}, 0); err == nil {
		t.Error("threshold 0 accepted")
	}
	if _, err := Verify(env, testType, nil, 1); err == nil {
		t.Error("no keys accepted")
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyPair(path, k); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, PublicKeyPath(path): 0o644} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v", p, err, st.Mode())
		}
	}
	if err := WriteKeyPair(path, k); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Errorf("overwrite: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("directory has %d entries, want 2 (no temporary files left)", len(ents))
	}
	priv, err := LoadPrivateKey(path)
	if err != nil || !priv.Key.Equal(k.Key) || priv.ID != k.ID {
		t.Fatalf("LoadPrivateKey: %v", err)
	}
	pub, err := LoadPublicKey(PublicKeyPath(path))
	if err != nil || !pub.Key.Equal(k.Public().Key) || pub.ID != k.ID {
		t.Fatalf("LoadPublicKey: %v", err)
	}
	// The key id is the SHA-256 of the PKIX DER.
	der, _ := x509.MarshalPKIXPublicKey(pub.Key)
	sum := sha256.Sum256(der)
	if pub.ID != hex.EncodeToString(sum[:]) {
		t.Errorf("key id %s", pub.ID)
	}
	// A private key readable by others is refused.
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("mode 0640: %v", err)
	}
	if _, err := LoadPrivateKey(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file loaded")
	}
}

func TestKeyParseErrors(t *testing.T) {
	k := testKey(t, "a")
	privPEM, _ := k.MarshalPEM()
	pubPEM, _ := k.Public().MarshalPEM()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPubDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	for _, tc := range []struct {
		name string
		in   []byte
		pub  bool
		err  string
	}{
		{"public as private", pubPEM, false, `PEM block is "PUBLIC KEY", want "PRIVATE KEY"`},
		{"private as public", privPEM, true, `PEM block is "PRIVATE KEY", want "PUBLIC KEY"`},
		{"not pem", []byte("hello"), false, "no PEM block"},
		{"trailing", append(bytes.Clone(privPEM), "junk"...), false, "data after the PEM block"},
		{"leading", append([]byte("junk\n"), privPEM...), false, "data before the PEM block"},
		{"two blocks", append(bytes.Clone(privPEM), privPEM...), false, "data after the PEM block"},
		{"headers", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}}), false, "headers"},
		{"ecdsa private", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), false, "want ed25519"},
		{"ecdsa public", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPubDER}), true, "want ed25519"},
		{"bad der", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2}}), true, "public key"},
	} {
		var err error
		if tc.pub {
			_, err = ParsePublicKeyPEM(tc.in)
		} else {
			_, err = ParsePrivateKeyPEM(tc.in)
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
	// Surrounding white space is fine.
	if _, err := ParsePublicKeyPEM(append(append([]byte("\n"), pubPEM...), "\n\n"...)); err != nil {
		t.Errorf("white space: %v", err)
	}
}

// TestOpenSSLKeys: keys made by openssl load, and our key id equals
// sha256 of `openssl pkey -pubout -outform DER`.
func TestOpenSSLKeys(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "k.pem")
	run := func(args ...string) []byte {
		out, err := exec.Command("openssl", args...).Output()
		if err != nil {
			t.Fatalf("openssl %v: %v", args, err)
		}
		return out
	}
	run("genpkey", "-algorithm", "ed25519", "-out", key)
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	priv, err := LoadPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := run("pkey", "-in", key, "-pubout")
	pub, err := ParsePublicKeyPEM(pubPEM)
	if err != nil || pub.ID != priv.ID {
		t.Fatalf("public key: %v (%s vs %s)", err, pub.ID, priv.ID)
	}
	der := run("pkey", "-in", key, "-pubout", "-outform", "DER")
	sum := sha256.Sum256(der)
	if pub.ID != hex.EncodeToString(sum[:]) {
		t.Errorf("key id %s, openssl DER sha256 %x", pub.ID, sum)
	}
	// openssl verifies our signature over PAE.
	env, err := Sign(testType, []byte("data"), priv)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	msg, sigPath, pubPath := filepath.Join(dir, "msg"), filepath.Join(dir, "sig"), filepath.Join(dir, "pub.pem")
	os.WriteFile(msg, PAE(testType, []byte("data")), 0o644)
	os.WriteFile(sigPath, sig, 0o644)
	os.WriteFile(pubPath, pubPEM, 0o644)
	run("pkeyutl", "-verify", "-pubin", "-inkey", pubPath, "-rawin", "-in", msg, "-sigfile", sigPath)
}

func FuzzParseEnvelope(f *testing.F) {
	k := testKey(f, "a")
	env, _ := Sign(testType, []byte(`{"a":1}`), k)
	good, _ := env.Marshal()
	f.Add(good)
	f.Add([]byte(`{"payload":"","payloadType":"t","signatures":[{"keyid":"","sig":""}]}`))
	pinned := []*PublicKey{k.Public()}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			return
		}
		enc, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		e2, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-encoding does not parse: %v", err)
		}
		enc2, _ := e2.Marshal()
		if !bytes.Equal(enc, enc2) {
			t.Fatal("re-encoding is not stable")
		}
		if v, err := Verify(e, testType, pinned, 1); err == nil {
			// Only the genuine payload verifies.
			if string(v.Payload) != `{"a":1}` {
				t.Fatalf("forged payload %q verified", v.Payload)
			}
		}
	})
}
