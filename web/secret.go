package web

import "tollgate"

// SecretFrom derives Handler.Secret from a deployment's master secret
// (serve's admin token): HMAC-SHA256(master, "tollgate checkout
// sessions"), so every instance sharing the master secret signs and
// verifies the same checkout links.
func SecretFrom(master string) []byte {
	return tollgate.DeriveSecret(master, "tollgate checkout sessions")
}
