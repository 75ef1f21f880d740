package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"tollgate/internal/operatorkeys"
)

// operatorKeys are the files an operator gets from WeChat Pay's merchant
// platform, generated for a test by internal/operatorkeys (as the interop
// and reliability tests do): the merchant API key and certificate, the
// APIv3 key file, and WeChat Pay's public key with its id. The WeChat Pay
// private key is what `tollgate sandbox` signs with in WeChat Pay's place.
type operatorKeys struct {
	*operatorkeys.Files
}

// keyCache holds RSA keys generated once per test binary: a 2048-bit key
// takes long under -race, and the tests need only a few distinct ones.
var keyCache struct {
	sync.Mutex
	keys []*rsa.PrivateKey
}

// testRSAKey returns the i-th cached 2048-bit key.
func testRSAKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	keyCache.Lock()
	defer keyCache.Unlock()
	for len(keyCache.keys) <= i {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		keyCache.keys = append(keyCache.keys, k)
	}
	return keyCache.keys[i]
}

// newOperatorKeys writes a fresh set of operator files for merchant
// testMchID into a temporary directory. set picks the cached keys (set 0:
// merchant key 0, WeChat Pay key 1; set 1: keys 2 and 3), so that two sets
// do not match each other.
func newOperatorKeys(t testing.TB, set int) *operatorKeys {
	t.Helper()
	f, err := operatorkeys.Write(t.TempDir(), testMchID, testAppID, testRSAKey(t, 2*set), testRSAKey(t, 2*set+1))
	if err != nil {
		t.Fatal(err)
	}
	return &operatorKeys{f}
}

func pkcs8(t testing.TB, key any) []byte {
	t.Helper()
	b, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writePEM writes one PEM block to dir/name, readable by its owner only.
func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serveV3Args are serve's (and `wxpay check`'s) merchant flags for k:
// public key mode, or certificate mode without the public key flags.
func (k *operatorKeys) serveV3Args(certMode bool) []string {
	a := []string{"--wxpay-private-key", k.MerchantKey, "--wxpay-cert-serial", k.MerchantSerial, "--wxpay-apiv3-key-file", k.APIv3KeyFile}
	if !certMode {
		a = append(a, "--wxpay-public-key", k.WechatpayPub, "--wxpay-public-key-id", k.WechatpayKeyID)
	}
	return a
}
