package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// operatorKeys are the files an operator gets from WeChat Pay's merchant
// platform, generated for a test: the merchant API key and certificate
// (apiclient_key.pem, apiclient_cert.pem, its serial), the APIv3 key file,
// and WeChat Pay's public key (pub_key.pem, its PUB_KEY_ID_…). The WeChat
// Pay private key is what `tollgate sandbox` signs with in WeChat Pay's
// place.
type operatorKeys struct {
	Dir            string
	MerchantKey    string // apiclient_key.pem
	MerchantCert   string // apiclient_cert.pem
	MerchantSerial string // its serial, upper-case hex
	APIv3KeyFile   string
	APIv3Key       string // the key itself, for the sandbox's --apiv3-key
	WechatpayKey   string // WeChat Pay's private key (the sandbox's)
	WechatpayPub   string // pub_key.pem
	WechatpayKeyID string
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

// newOperatorKeys writes a fresh set of operator files into a temporary
// directory. set picks the cached keys (set 0: merchant key 0, WeChat Pay
// key 1; set 1: keys 2 and 3), so that two sets do not match each other.
func newOperatorKeys(t testing.TB, set int) *operatorKeys {
	t.Helper()
	dir := t.TempDir()
	mkey, wkey := testRSAKey(t, 2*set), testRSAKey(t, 2*set+1)
	serial := big.NewInt(0x5E3A0C1F00 + int64(set))
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "1900000109", Organization: []string{"tollgate test merchant"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &mkey.PublicKey, mkey)
	if err != nil {
		t.Fatal(err)
	}
	k := &operatorKeys{Dir: dir, MerchantSerial: fmt.Sprintf("%X", serial.Bytes()),
		APIv3Key: fmt.Sprintf("tollgateTestAPIv3Key%012d", set), WechatpayKeyID: fmt.Sprintf("PUB_KEY_ID_0119000010920260101000000000%02d", set)}
	k.MerchantKey = writePEM(t, dir, "apiclient_key.pem", "PRIVATE KEY", pkcs8(t, mkey))
	k.MerchantCert = writePEM(t, dir, "apiclient_cert.pem", "CERTIFICATE", der)
	k.WechatpayKey = writePEM(t, dir, "wechatpay_key.pem", "PRIVATE KEY", pkcs8(t, wkey))
	pub, err := x509.MarshalPKIXPublicKey(&wkey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	k.WechatpayPub = writePEM(t, dir, "pub_key.pem", "PUBLIC KEY", pub)
	k.APIv3KeyFile = filepath.Join(dir, "apiv3.key")
	if err := os.WriteFile(k.APIv3KeyFile, []byte(k.APIv3Key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
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
