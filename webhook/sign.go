package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"tollgate"
)

// Standard Webhooks headers of every delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every signing secret; the rest is the base64 of the
// key bytes (Standard Webhooks).
const SecretPrefix = "whsec_"

// RotationOverlap is how long the previous secret still signs after
// rotate-secret: receivers have that long to switch.
const RotationOverlap = 24 * time.Hour

// NewSecret returns a fresh signing secret: whsec_ and 32 random bytes in
// base64.
func NewSecret() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// SecretKey returns the key bytes of secret. Errors carry EINVALID.
func SecretKey(secret string) ([]byte, error) {
	s, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, tollgate.Errorf(tollgate.EINVALID, "webhook secret does not start with %s", SecretPrefix)
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(k) < 24 || len(k) > 64 {
		return nil, tollgate.Errorf(tollgate.EINVALID, "webhook secret is not %s and the base64 of 24 to 64 bytes", SecretPrefix)
	}
	return k, nil
}

// Signature returns the v1 signature of one delivery with key:
// "v1," and the base64 of HMAC-SHA256(key, id "." timestamp "." body).
func Signature(key []byte, id string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignHeaders returns the three Standard Webhooks headers of a delivery of
// body as event id at ts, signed with every secret given (the current one
// and, during a rotation, the previous one), space-separated. A secret
// that does not parse is skipped; with none left it returns an error.
func SignHeaders(secrets []string, id string, ts time.Time, body []byte) (map[string]string, error) {
	var sigs []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		k, err := SecretKey(s)
		if err != nil {
			continue
		}
		sigs = append(sigs, Signature(k, id, ts, body))
	}
	if len(sigs) == 0 {
		return nil, tollgate.Errorf(tollgate.EINTERNAL, "webhook: no usable signing secret")
	}
	return map[string]string{
		HeaderID:        id,
		HeaderTimestamp: strconv.FormatInt(ts.Unix(), 10),
		HeaderSignature: strings.Join(sigs, " "),
	}, nil
}
