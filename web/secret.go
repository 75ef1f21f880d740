package web

import (
	"crypto/hmac"
	"crypto/sha256"
)

// SecretFrom derives Handler.Secret from a deployment's master secret
// (serve's admin token): HMAC-SHA256(master, "tollgate checkout
// sessions"), so every instance sharing the master secret signs and
// verifies the same checkout links.
func SecretFrom(master string) []byte {
	h := hmac.New(sha256.New, []byte(master))
	h.Write([]byte("tollgate checkout sessions"))
	return h.Sum(nil)
}
