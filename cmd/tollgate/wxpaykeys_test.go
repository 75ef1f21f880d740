package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// productionV3Args is a complete production configuration with API v3 in
// public key mode (certificate mode without the public key flags), its
// version left to production's default.
func productionV3Args(t *testing.T, k *operatorKeys, certMode bool) []string {
	return append(productionBaseArgs(t), k.serveV3Args(certMode)...)
}

// productionBaseArgs is production's configuration without the merchant's
// credentials.
func productionBaseArgs(t *testing.T) []string {
	return []string{"--mode", "production", "--public-url", "https://pay.example.com", "--providers", providersAt(t, "http://127.0.0.1:9"),
		"--admin-token-file", writeFile(t, "admin-token", strings.Repeat("t", 32)+"\n"),
		"--wxpay-url", "http://127.0.0.1:9", "--wxpay-mch-id", "1900000109", "--wxpay-appid", "wxd678efh567hg6787"}
}

// TestServeProductionDefaultsToV3: production without --wxpay-api-version
// places orders with API v3, and takes the merchant's key files in either
// verification mode; v2 stays possible when asked for, with its key.
func TestServeProductionDefaultsToV3(t *testing.T) {
	k := newOperatorKeys(t, 0)
	for _, certMode := range []bool{false, true} {
		m := NewMain(io.Discard, io.Discard)
		if err := m.ParseFlags(productionV3Args(t, k, certMode)); err != nil {
			t.Fatalf("certificate mode %v: a complete v3 configuration was refused: %v", certMode, err)
		}
		if m.Config.WxpayAPIVersion != "v3" {
			t.Errorf("production's API version %q, want v3 by default", m.Config.WxpayAPIVersion)
		}
	}
	// Dev keeps v2 as its default (the emulator's zero configuration).
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags(nil); err != nil || m.Config.WxpayAPIVersion != "v2" {
		t.Errorf("dev: version %q, err %v", m.Config.WxpayAPIVersion, err)
	}
	// Explicit v2 in production needs the v2 key, not the v3 files.
	v2 := append(productionV3Args(t, k, false), "--wxpay-api-version", "v2")
	if err := parseServe(v2...); err == nil || !strings.Contains(err.Error(), "no --wxpay-api-key") {
		t.Errorf("v2 without --wxpay-api-key: %v", err)
	}
	if err := parseServe(append(v2, "--wxpay-api-key", strings.Repeat("k", 32))...); err != nil {
		t.Errorf("v2 with its key: %v", err)
	}
	// The same settings from the environment and a config file.
	t.Setenv("TOLLGATE_WXPAY_PRIVATE_KEY", k.MerchantKey)
	t.Setenv("TOLLGATE_WXPAY_CERT_SERIAL", k.MerchantSerial)
	cfg := writeFile(t, "tollgate.json", `{"wxpay-apiv3-key-file":"`+k.APIv3KeyFile+`","wxpay-public-key":"`+k.WechatpayPub+
		`","wxpay-public-key-id":"`+k.WechatpayKeyID+`","wechat-oauth-url":"https://oauth.example.com"}`)
	base := productionBaseArgs(t)
	m = NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags(append(base, "--config", cfg)); err != nil {
		t.Fatalf("v3 settings from env and config: %v", err)
	}
	if c := m.Config; c.WxpayV3.PrivateKey != k.MerchantKey || c.WxpayV3.CertSerial != k.MerchantSerial || c.WxpayV3.PublicKeyID != k.WechatpayKeyID ||
		c.WechatOAuthURL != "https://oauth.example.com" || c.WechatAPIURL != DefaultWechatAPIURL {
		t.Errorf("settings read as %+v", c)
	}
}

// TestServeRefusesBadMerchantKeys: each missing, unreadable, malformed or
// contradictory v3 setting refuses production's start with a message
// naming the flag, and no message quotes a secret.
func TestServeRefusesBadMerchantKeys(t *testing.T) {
	k := newOperatorKeys(t, 0)
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallPub, err := x509.MarshalPKIXPublicKey(&small.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "SECRET-apiv3-key-do-not-print"
	for _, tc := range []struct {
		name string
		set  []string // flag, value pairs over the complete configuration
		want string
	}{
		{"no private key", []string{"--wxpay-private-key", ""}, "no --wxpay-private-key"},
		{"private key missing", []string{"--wxpay-private-key", filepath.Join(dir, "none.pem")}, "--wxpay-private-key " + filepath.Join(dir, "none.pem") + " does not exist"},
		{"private key a directory", []string{"--wxpay-private-key", dir}, "--wxpay-private-key " + dir + " cannot be read"},
		{"private key empty", []string{"--wxpay-private-key", file("empty.pem", "\n")}, "is empty"},
		{"private key not PEM", []string{"--wxpay-private-key", file("garbage.pem", "apiclient_key")}, "is not the merchant API private key"},
		{"private key a certificate", []string{"--wxpay-private-key", k.MerchantCert}, `unexpected PEM block "CERTIFICATE"`},
		{"private key not RSA", []string{"--wxpay-private-key", writePEM(t, dir, "ec.pem", "PRIVATE KEY", pkcs8(t, ec))}, "is not RSA"},
		{"private key too short", []string{"--wxpay-private-key", writePEM(t, dir, "small.pem", "PRIVATE KEY", pkcs8(t, small))}, "is a 1024-bit RSA key"},
		{"no serial", []string{"--wxpay-cert-serial", ""}, "no --wxpay-cert-serial"},
		{"serial not hex", []string{"--wxpay-cert-serial", "serial-1"}, "--wxpay-cert-serial must be the merchant API certificate's serial number in hexadecimal"},
		{"no APIv3 key", []string{"--wxpay-apiv3-key-file", ""}, "no --wxpay-apiv3-key-file"},
		{"APIv3 key missing", []string{"--wxpay-apiv3-key-file", filepath.Join(dir, "none.key")}, "does not exist"},
		{"APIv3 key short", []string{"--wxpay-apiv3-key-file", file("short.key", secret+"\n")}, "holds 29 bytes: the APIv3 key is exactly 32 characters"},
		{"APIv3 key long", []string{"--wxpay-apiv3-key-file", file("long.key", secret+"-and-more\n")}, "holds 38 bytes"},
		{"APIv3 key with spaces", []string{"--wxpay-apiv3-key-file", file("spaced.key", " "+k.APIv3Key[1:]+"\n")}, "starts or ends with a space"},
		{"public key without id", []string{"--wxpay-public-key-id", ""}, "--wxpay-public-key without --wxpay-public-key-id"},
		{"id without public key", []string{"--wxpay-public-key", ""}, "--wxpay-public-key-id without --wxpay-public-key"},
		{"id not a public key id", []string{"--wxpay-public-key-id", "5E3A0C1F00"}, "--wxpay-public-key-id must be the WeChat Pay public key's id, PUB_KEY_ID_"},
		{"public key not PEM", []string{"--wxpay-public-key", file("pub.txt", "pub_key")}, "is not the WeChat Pay public key"},
		{"public key a private key", []string{"--wxpay-public-key", k.MerchantKey}, `unexpected PEM block "PRIVATE KEY"`},
		{"public key too short", []string{"--wxpay-public-key", writePEM(t, dir, "smallpub.pem", "PUBLIC KEY", smallPub)}, "is a 1024-bit RSA key"},
		{"app secret missing", []string{"--wechat-app-secret-file", filepath.Join(dir, "none.secret")}, "--wechat-app-secret-file"},
		{"app secret two lines", []string{"--wechat-app-secret-file", file("two.secret", secret+"\n"+secret+"\n")}, "alone on one line"},
		{"bad OAuth URL", []string{"--wechat-oauth-url", "open.weixin.qq.com"}, "--wechat-oauth-url must be an http(s) URL"},
		{"bad API URL", []string{"--wechat-api-url", ""}, "--wechat-api-url must not be empty"},
		{"bad wxpay URL", []string{"--wxpay-url", "api.mch.weixin.qq.com"}, "--wxpay-url must be an http(s) URL"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			err := parseServe(append(productionV3Args(t, k, false), tc.set...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), k.APIv3Key) || strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("the error quotes a secret: %v", err)
			}
		})
	}
	// Several bad files at once are all named.
	err = parseServe(append(productionV3Args(t, k, false), "--wxpay-private-key", filepath.Join(dir, "none.pem"),
		"--wxpay-apiv3-key-file", file("short2.key", "x\n"), "--wxpay-public-key-id", "")...)
	for _, w := range []string{"--wxpay-private-key", "--wxpay-apiv3-key-file", "--wxpay-public-key without"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("several problems: %v lacks %q", err, w)
		}
	}
}

// TestServeDevMerchantKeys: dev takes the v3 key files for an external
// emulator at --wxpay-url and refuses them for the in-process one, which
// signs with its own test keys.
func TestServeDevMerchantKeys(t *testing.T) {
	k := newOperatorKeys(t, 0)
	ids := []string{"--wxpay-mch-id", "1900000109", "--wxpay-appid", "wxd678efh567hg6787", "--wxpay-api-version", "v3"}
	ext := append([]string{"--wxpay-url", "http://127.0.0.1:9"}, ids...)
	if err := parseServe(append(ext, k.serveV3Args(false)...)...); err != nil {
		t.Errorf("dev, external emulator, API v3 with key files: %v", err)
	}
	if err := parseServe(ext...); err == nil || !strings.Contains(err.Error(), "no --wxpay-private-key") {
		t.Errorf("dev, external emulator, API v3 without keys: %v", err)
	}
	if err := parseServe(k.serveV3Args(false)...); err == nil || !strings.Contains(err.Error(), "the in-process emulator has its own test keys") {
		t.Errorf("dev, in-process emulator, with key files: %v", err)
	}
	secret := writeFile(t, "app-secret", "secret\n")
	if err := parseServe("--wechat-app-secret-file", secret); err == nil || !strings.Contains(err.Error(), "--wechat-app-secret-file") {
		t.Errorf("dev, in-process emulator, with an app secret: %v", err)
	}
	if err := parseServe(append(append(ext, k.serveV3Args(true)...), "--wechat-app-secret-file", secret)...); err != nil {
		t.Errorf("dev, external emulator, certificate mode and an app secret: %v", err)
	}
}
