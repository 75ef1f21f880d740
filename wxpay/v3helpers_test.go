package wxpay_test

import (
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tollgate/wxpay"
)

// v3TestPubKeyID is the id the docs/WECHATPAY.md §6.2 vectors give the test WeChat Pay
// public key.
const v3TestPubKeyID = "PUB_KEY_ID_0112300001092025010100000000000001"

// v3TestAPIKey is the APIv3 key of the docs/WECHATPAY.md §6.2 vectors.
const v3TestAPIKey = "0123456789abcdefghijklmnopqrstuv"

// MustReadV3 returns testdata/v3/name.
func MustReadV3(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "v3", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// MustReadV3JSON decodes testdata/v3/name into v.
func MustReadV3JSON(tb testing.TB, name string, v any) {
	tb.Helper()
	if err := json.Unmarshal(MustReadV3(tb, name), v); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
}

// MustV3PrivateKey loads a private key from testdata/v3. The files label
// their blocks "TESTING KEY" so that secret scanners leave them alone.
func MustV3PrivateKey(tb testing.TB, name string) *rsa.PrivateKey {
	tb.Helper()
	pemBytes := strings.ReplaceAll(string(MustReadV3(tb, name)), "TESTING KEY", "PRIVATE KEY")
	k, err := wxpay.LoadRSAPrivateKeyPEM([]byte(pemBytes))
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return k
}

// MustV3PublicKey loads a public key from testdata/v3.
func MustV3PublicKey(tb testing.TB, name string) *rsa.PublicKey {
	tb.Helper()
	k, err := wxpay.LoadRSAPublicKeyPEM(MustReadV3(tb, name))
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return k
}

// MustV3Keyring returns a keyring holding the test WeChat Pay public key
// under v3TestPubKeyID.
func MustV3Keyring(tb testing.TB) *wxpay.V3Keyring {
	tb.Helper()
	k := wxpay.NewV3Keyring()
	if err := k.AddPublicKeyPEM(v3TestPubKeyID, MustReadV3(tb, "wechatpay_pub.pem")); err != nil {
		tb.Fatal(err)
	}
	return k
}

// mustReadV3Line returns testdata/v3/name without its final newline: the
// one-line JSON bodies of requests and answers, byte for byte. It panics on
// error, as it initialises package variables.
func mustReadV3Line(name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", "v3", name))
	if err != nil {
		panic(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}
