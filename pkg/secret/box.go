package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
)

// ErrSealed is returned by Box.Open for data that was not sealed by a box
// with the same key (or was tampered with). It never says more.
var ErrSealed = errors.New("secret: sealed data cannot be opened with this key")

// boxVersion prefixes sealed data so that the format (and the key) can be
// rotated later without guessing.
const boxVersion = 1

// Box seals values stored at rest (a job's environment, say) with
// AES-256-GCM under a key derived from a master secret. Every Seal uses a
// fresh random nonce, so sealing the same value twice gives different bytes.
type Box struct {
	aead cipher.AEAD
}

// NewBox derives a Box key for purpose (e.g. "jobs-env") from master, which
// must hold at least 32 bytes of entropy; different purposes get
// independent keys from the same master.
func NewBox(master []byte, purpose string) (*Box, error) {
	if len(master) < 32 {
		return nil, errors.New("secret: encryption key must be at least 32 bytes")
	}
	key, err := hkdf.Key(sha256.New, master, nil, "slipway/"+purpose, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts and authenticates plaintext.
func (b *Box) Seal(plaintext []byte) []byte {
	out := make([]byte, 1+b.aead.NonceSize(), 1+b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	out[0] = boxVersion
	_, _ = rand.Read(out[1:])
	return b.aead.Seal(out, out[1:], plaintext, out[:1])
}

// Open decrypts what Seal produced, or returns ErrSealed.
func (b *Box) Open(sealed []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != boxVersion {
		return nil, ErrSealed
	}
	plain, err := b.aead.Open(nil, sealed[1:1+n], sealed[1+n:], sealed[:1])
	if err != nil {
		return nil, ErrSealed
	}
	return plain, nil
}
