package web_test

import (
	"encoding/hex"
	"testing"

	"tollgate/web"
)

// The derived secret must not change between versions: a checkout link
// signed before an upgrade must open after it.
func TestSecretFromIsStable(t *testing.T) {
	s := web.SecretFrom("tga_example-admin-token")
	if got, want := hex.EncodeToString(s), "b05d56d331ab912c5d04a360b3ec02ae09ccd07b37f198f76aa9eefec6ffb279"; got != want {
		t.Errorf("SecretFrom = %s, want %s", got, want)
	}
	if len(s) < web.MinSecretLen {
		t.Errorf("%d bytes, shorter than MinSecretLen", len(s))
	}
}
