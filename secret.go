package tollgate

import (
	"crypto/hmac"
	"crypto/sha256"
)

// DeriveSecret derives a purpose-bound secret from a deployment's master
// secret: HMAC-SHA256(master, label). Every instance that shares the
// master secret derives the same value for a label, and a value derived
// for one label says nothing about another's.
func DeriveSecret(master, label string) []byte {
	h := hmac.New(sha256.New, []byte(master))
	h.Write([]byte(label))
	return h.Sum(nil)
}
