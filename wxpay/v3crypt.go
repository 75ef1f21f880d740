package wxpay

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
)

// V3Algorithm is the only resource algorithm of API v3: AES-256-GCM with the
// APIv3 key, a 12-byte nonce and the resource's associated data.
const V3Algorithm = "AEAD_AES_256_GCM"

// ErrV3KeyLength is returned when an APIv3 key is not 32 bytes. It is a
// configuration error, not a property of the message.
var ErrV3KeyLength = errors.New("wxpay v3: APIv3 key must be 32 bytes")

const (
	v3KeyLen   = 32
	v3NonceLen = 12
	gcmTagLen  = 16
)

// V3Resource is the encrypted part of an API v3 notification (and of a
// platform certificate download): the ciphertext is base64(ciphertext‖tag).
type V3Resource struct {
	OriginalType   string `json:"original_type,omitempty"`
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	AssociatedData string `json:"associated_data"`
	Nonce          string `json:"nonce"`
}

// EncryptV3Resource encrypts plaintext as WeChat Pay does for a notification
// resource: AES-256-GCM with apiV3Key (32 bytes, used as raw bytes), nonce
// (12 bytes) and associatedData (may be empty), and returns
// base64(ciphertext‖tag) for V3Resource.Ciphertext.
func EncryptV3Resource(apiV3Key, nonce, associatedData string, plaintext []byte) (string, error) {
	if len(apiV3Key) != v3KeyLen {
		return "", fmt.Errorf("wxpay v3: encrypt resource: %d-byte key: %w", len(apiV3Key), ErrV3KeyLength)
	}
	if len(nonce) != v3NonceLen {
		return "", fmt.Errorf("wxpay v3: encrypt resource: nonce is %d bytes, want %d", len(nonce), v3NonceLen)
	}
	aead, err := newGCM([]byte(apiV3Key))
	if err != nil {
		return "", fmt.Errorf("wxpay v3: encrypt resource: %w", err)
	}
	sealed := aead.Seal(nil, []byte(nonce), plaintext, []byte(associatedData))
	return base64.StdEncoding.EncodeToString(sealed), nil
}

// DecryptV3Resource decrypts r with apiV3Key. It refuses a key that is not
// 32 bytes (ErrV3KeyLength); an algorithm other than AEAD_AES_256_GCM, a
// nonce that is not 12 bytes or a ciphertext that is not base64 of at least
// a tag (ErrMalformed); and a ciphertext, tag, nonce or associated data that
// fails authentication (ErrBadSignature: someone without the key made or
// changed it).
func DecryptV3Resource(apiV3Key string, r V3Resource) ([]byte, error) {
	if len(apiV3Key) != v3KeyLen {
		return nil, fmt.Errorf("wxpay v3: decrypt resource: %d-byte key: %w", len(apiV3Key), ErrV3KeyLength)
	}
	if r.Algorithm != V3Algorithm {
		return nil, fmt.Errorf("wxpay v3: decrypt resource: algorithm %.40q: %w", r.Algorithm, ErrMalformed)
	}
	if len(r.Nonce) != v3NonceLen {
		return nil, fmt.Errorf("wxpay v3: decrypt resource: nonce is %d bytes: %w", len(r.Nonce), ErrMalformed)
	}
	sealed, err := base64.StdEncoding.DecodeString(r.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("wxpay v3: decrypt resource: ciphertext is not base64: %w", ErrMalformed)
	}
	return openGCM([]byte(apiV3Key), r.Nonce, r.AssociatedData, sealed)
}

// openGCM is the AES-GCM step of DecryptV3Resource for any AES key size (the
// third-party vectors use 16-byte keys); the nonce must be 12 bytes.
func openGCM(key []byte, nonce, associatedData string, sealed []byte) ([]byte, error) {
	if len(sealed) < gcmTagLen {
		return nil, fmt.Errorf("wxpay v3: decrypt resource: ciphertext shorter than a tag: %w", ErrMalformed)
	}
	if len(nonce) != v3NonceLen {
		return nil, fmt.Errorf("wxpay v3: decrypt resource: nonce is %d bytes: %w", len(nonce), ErrMalformed)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, fmt.Errorf("wxpay v3: decrypt resource: %w", err)
	}
	plain, err := aead.Open(nil, []byte(nonce), sealed, []byte(associatedData))
	if err != nil {
		return nil, fmt.Errorf("wxpay v3: decrypt resource: authentication failed: %w", ErrBadSignature)
	}
	return plain, nil
}

// newGCM returns AES-GCM with the standard 12-byte nonce and 16-byte tag.
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
