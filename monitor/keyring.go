package monitor

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Environment variables read by LoadKeyRing.
const (
	// EnvWebhookKeys holds the key ring inline: "id:base64key" entries
	// separated by commas or newlines; the last entry is the newest key.
	EnvWebhookKeys = "PGGIT_WEBHOOK_KEYS"
	// EnvWebhookKeysFile names a file with one "id:base64key" per line (# for
	// comments); the last entry is the newest key.
	EnvWebhookKeysFile = "PGGIT_WEBHOOK_KEYS_FILE"
)

var (
	// ErrNoKeyRing is returned when a webhook secret must be encrypted or
	// decrypted and the Client has no key ring.
	ErrNoKeyRing = errors.New("pggit: no webhook key ring configured (set Config.KeyRing, or PGGIT_WEBHOOK_KEYS / PGGIT_WEBHOOK_KEYS_FILE)")
	// ErrUnknownKey is returned when a secret was encrypted with a key id the
	// key ring does not hold.
	ErrUnknownKey = errors.New("pggit: webhook secret encrypted with a key not in the key ring")
	// ErrSecretTampered is returned when a secret does not authenticate: a
	// wrong key under the right id, a modified ciphertext, a ciphertext moved
	// from another webhook, or a row whose bound fields (type, name, channel,
	// secret_aad_version) were changed outside this package.
	ErrSecretTampered = errors.New("pggit: webhook secret does not match its row (wrong key, modified ciphertext, or the row's type, name or channel changed outside the API); store the webhook again to re-seal it")
)

// KeyRing holds the AES-256 keys that encrypt webhook secrets at rest. Keys
// are identified by short ids stored next to each ciphertext, so old keys can
// still decrypt while new secrets use the newest key. The database never sees
// a key or a plaintext secret.
type KeyRing struct {
	keys   map[string]cipher.AEAD
	newest string
}

// NewKeyRing builds a key ring from ids and 32-byte keys; newest names the key
// used for new encryptions. A key of another length, or of zero bytes only (a
// placeholder, not a key), is refused with an error that names its id, never
// the key.
func NewKeyRing(keys map[string][]byte, newest string) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("pggit: key ring needs at least one key")
	}
	kr := &KeyRing{keys: make(map[string]cipher.AEAD, len(keys)), newest: newest}
	for id, key := range keys {
		if id == "" || len(id) > 64 || strings.ContainsAny(id, ":,\n\r\t ") {
			return nil, fmt.Errorf("pggit: key id must be 1..64 characters without ':', ',' or spaces, got %q", id)
		}
		if len(key) != 32 {
			return nil, fmt.Errorf("pggit: key %q must be 32 bytes (AES-256), got %d", id, len(key))
		}
		if allZero(key) {
			return nil, fmt.Errorf("pggit: key %q is all zero bytes; make a random one with: head -c 32 /dev/urandom | base64", id)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		kr.keys[id] = aead
	}
	if _, ok := kr.keys[newest]; !ok {
		return nil, fmt.Errorf("pggit: newest key %q is not in the key ring", newest)
	}
	return kr, nil
}

// ParseKeyRing parses "id:base64key" entries separated by commas or
// newlines (blank lines and # comments ignored); the last entry is the newest.
// Keys are standard or URL-safe base64 of 32 bytes, not all zero.
func ParseKeyRing(spec string) (*KeyRing, error) {
	keys := map[string][]byte{}
	var newest string
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(spec, ",", "\n")))
	line := 0
	for sc.Scan() {
		line++
		entry := strings.TrimSpace(sc.Text())
		if entry == "" || strings.HasPrefix(entry, "#") {
			continue
		}
		id, b64, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, fmt.Errorf("pggit: key ring entry %d: want id:base64key", line)
		}
		key, err := decodeKey(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("pggit: key ring entry %d (id %q): key is not base64", line, id)
		}
		id = strings.TrimSpace(id)
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("pggit: key ring entry %d: key id %q appears twice", line, id)
		}
		keys[id] = key
		newest = id
	}
	return NewKeyRing(keys, newest)
}

func allZero(b []byte) bool {
	var or byte
	for _, c := range b {
		or |= c
	}
	return or == 0
}

func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// LoadKeyRing reads the key ring from PGGIT_WEBHOOK_KEYS, else from the file
// named by PGGIT_WEBHOOK_KEYS_FILE. It returns nil, nil when neither is set.
func LoadKeyRing() (*KeyRing, error) {
	if spec := os.Getenv(EnvWebhookKeys); spec != "" {
		return ParseKeyRing(spec)
	}
	if path := os.Getenv(EnvWebhookKeysFile); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("pggit: reading %s: %w", EnvWebhookKeysFile, err)
		}
		return ParseKeyRing(string(b))
	}
	return nil, nil
}

// NewestKeyID returns the id of the key used for new encryptions.
func (k *KeyRing) NewestKeyID() string { return k.newest }

// seal encrypts plaintext with the newest key, bound to aad.
func (k *KeyRing) seal(plaintext, aad []byte) (ciphertext, nonce []byte, keyID string, err error) {
	aead := k.keys[k.newest]
	nonce = make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, "", err
	}
	return aead.Seal(nil, nonce, plaintext, aad), nonce, k.newest, nil
}

// open decrypts a ciphertext made by seal with the same aad.
func (k *KeyRing) open(ciphertext, nonce []byte, keyID string, aad []byte) ([]byte, error) {
	aead, ok := k.keys[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: key id %q", ErrUnknownKey, keyID)
	}
	if len(nonce) != aead.NonceSize() {
		return nil, ErrSecretTampered
	}
	pt, err := aead.Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, ErrSecretTampered
	}
	return pt, nil
}
