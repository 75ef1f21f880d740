package operatorkeys

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"strings"
	"testing"

	"tollgate/wxpay"
)

func TestGenerateWritesAMatchingOperatorKeySet(t *testing.T) {
	f, err := Generate(t.TempDir(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.MerchantKey, f.MerchantCert, f.MerchantPub, f.APIv3KeyFile, f.WechatpayKey, f.WechatpayPub} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, st.Mode().Perm())
		}
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	block, _ := pem.Decode(read(f.MerchantCert))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := wxpay.V3CertificateSerial(cert); got != f.MerchantSerial {
		t.Errorf("certificate serial %s, MerchantSerial %s", got, f.MerchantSerial)
	}
	mkey, err := wxpay.LoadRSAPrivateKeyPEM(read(f.MerchantKey))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wxpay.SignV3(mkey, []byte("m\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.MerchantCert, f.MerchantPub} {
		pub, err := wxpay.LoadRSAPublicKeyPEM(read(p))
		if err != nil {
			t.Fatal(err)
		}
		if err := wxpay.VerifyV3Signature(pub, []byte("m\n"), sig); err != nil {
			t.Errorf("%s does not verify apiclient_key.pem's signature: %v", p, err)
		}
	}
	wkey, err := wxpay.LoadRSAPrivateKeyPEM(read(f.WechatpayKey))
	if err != nil {
		t.Fatal(err)
	}
	wpub, err := wxpay.LoadRSAPublicKeyPEM(read(f.WechatpayPub))
	if err != nil {
		t.Fatal(err)
	}
	if !wkey.PublicKey.Equal(wpub) || wkey.Equal(mkey) {
		t.Error("pub_key.pem is not WeChat Pay's key, or WeChat Pay's key is the merchant's")
	}
	if !strings.HasPrefix(f.WechatpayKeyID, wxpay.V3PublicKeyIDPrefix) {
		t.Errorf("key id %q", f.WechatpayKeyID)
	}
	if got := strings.TrimSpace(string(read(f.APIv3KeyFile))); got != f.APIv3Key || len(got) != 32 {
		t.Errorf("APIv3 key file holds %d bytes, want the 32-byte APIv3Key", len(got))
	}
}

func TestGenerateTLSIssuesALoopbackServerCertificate(t *testing.T) {
	tl, err := GenerateTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(tl.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "localhost", "::1"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: tl.CAPool}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: tl.CAPool}); err == nil {
		t.Error("the certificate is valid for example.com")
	}
}
