package dsse

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
)

// PEM block types of the key files.
const (
	PrivateKeyPEMType = "PRIVATE KEY"
	PublicKeyPEMType  = "PUBLIC KEY"
)

// MaxKeyFileSize bounds a key file.
const MaxKeyFileSize = 64 << 10

// PrivateKey is an ed25519 signing key and its id.
type PrivateKey struct {
	Key ed25519.PrivateKey
	// ID is KeyID of the public half.
	ID string
}

// PublicKey is an ed25519 verification key and its id.
type PublicKey struct {
	Key ed25519.PublicKey
	// ID is KeyID(Key).
	ID string
}

// KeyID is the lower-case hex SHA-256 of the key's PKIX
// (SubjectPublicKeyInfo) DER encoding.
func KeyID(pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("dsse: ed25519 public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// NewPrivateKey wraps an ed25519 private key.
func NewPrivateKey(k ed25519.PrivateKey) (*PrivateKey, error) {
	if len(k) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("dsse: ed25519 private key is %d bytes, want %d", len(k), ed25519.PrivateKeySize)
	}
	id, err := KeyID(k.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return &PrivateKey{Key: k, ID: id}, nil
}

// NewPublicKey wraps an ed25519 public key.
func NewPublicKey(k ed25519.PublicKey) (*PublicKey, error) {
	id, err := KeyID(k)
	if err != nil {
		return nil, err
	}
	return &PublicKey{Key: k, ID: id}, nil
}

// GenerateKey makes a new key from rand (crypto/rand when nil).
func GenerateKey(rand io.Reader) (*PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("dsse: generate key: %w", err)
	}
	return NewPrivateKey(k)
}

// Public returns the public half.
func (k *PrivateKey) Public() *PublicKey {
	return &PublicKey{Key: k.Key.Public().(ed25519.PublicKey), ID: k.ID}
}

// MarshalPEM encodes the key as a PEM "PRIVATE KEY" block (PKCS #8).
func (k *PrivateKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: PrivateKeyPEMType, Bytes: der}), nil
}

// MarshalPEM encodes the key as a PEM "PUBLIC KEY" block (PKIX).
func (k *PublicKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: PublicKeyPEMType, Bytes: der}), nil
}

// onePEM decodes exactly one PEM block of type typ with no headers and
// nothing but white space around it.
func onePEM(b []byte, typ string) ([]byte, error) {
	if len(b) > MaxKeyFileSize {
		return nil, fmt.Errorf("key file is %d bytes, more than %d", len(b), MaxKeyFileSize)
	}
	blk, rest := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("no PEM block (want %q)", typ)
	}
	if blk.Type != typ {
		return nil, fmt.Errorf("PEM block is %q, want %q", blk.Type, typ)
	}
	if len(blk.Headers) != 0 {
		return nil, errors.New("PEM block has headers (an encrypted key?); want a plain block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data after the PEM block")
	}
	if i := bytes.Index(b, []byte("-----BEGIN")); len(bytes.TrimSpace(b[:i])) != 0 {
		return nil, errors.New("data before the PEM block")
	}
	return blk.Bytes, nil
}

// ParsePrivateKeyPEM decodes a private key file's contents.
func ParsePrivateKeyPEM(b []byte) (*PrivateKey, error) {
	der, err := onePEM(b, PrivateKeyPEMType)
	if err != nil {
		return nil, fmt.Errorf("dsse: private key: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("dsse: private key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("dsse: private key is %T, want ed25519", k)
	}
	return NewPrivateKey(ek)
}

// ParsePublicKeyPEM decodes a public key file's contents.
func ParsePublicKeyPEM(b []byte) (*PublicKey, error) {
	der, err := onePEM(b, PublicKeyPEMType)
	if err != nil {
		return nil, fmt.Errorf("dsse: public key: %w", err)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("dsse: public key: %w", err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("dsse: public key is %T, want ed25519", k)
	}
	return NewPublicKey(ek)
}

func readKeyFile(path string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return nil, nil, err
	}
	return b, st, nil
}

// LoadPrivateKey reads a private key file. It refuses a file that group
// or others may read or write.
func LoadPrivateKey(path string) (*PrivateKey, error) {
	b, st, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("dsse: private key: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("dsse: private key %s has mode %04o: it must not be accessible to group or others (chmod 600 %s)", path, perm, path)
	}
	k, err := ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return k, nil
}

// LoadPublicKey reads a public key file.
func LoadPublicKey(path string) (*PublicKey, error) {
	b, _, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("dsse: public key: %w", err)
	}
	k, err := ParsePublicKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return k, nil
}

// PublicKeyPath is where WriteKeyPair puts the public half of the key at
// path.
func PublicKeyPath(path string) string { return path + ".pub" }

// WriteKeyPair writes k to path (mode 0600) and its public half to
// PublicKeyPath(path) (mode 0644), each atomically; it fails without
// writing anything if either file exists.
func WriteKeyPair(path string, k *PrivateKey) error {
	priv, err := k.MarshalPEM()
	if err != nil {
		return err
	}
	pub, err := k.Public().MarshalPEM()
	if err != nil {
		return err
	}
	pubPath := PublicKeyPath(path)
	for _, p := range []string{path, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("dsse: %s exists; not overwriting a key", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("dsse: %w", err)
		}
	}
	if err := writeNew(path, priv, 0o600); err != nil {
		return err
	}
	if err := writeNew(pubPath, pub, 0o644); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// writeNew writes data to a new file at path; an existing file is never
// overwritten.
func writeNew(path string, data []byte, mode os.FileMode) error {
	if err := atomicfile.WriteNew(path, data, mode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("dsse: %s exists; not overwriting a key", path)
		}
		return fmt.Errorf("dsse: %w", err)
	}
	return nil
}
