// Package operatorkeys writes, for tests and the reliability harness, the
// files an operator gets from WeChat Pay's merchant platform, freshly
// generated: the merchant API key and certificate (apiclient_key.pem,
// apiclient_cert.pem and its serial), the APIv3 key file, WeChat Pay's
// public key (pub_key.pem and its PUB_KEY_ID_…) and the WeChat Pay private
// key the emulator (`tollgate sandbox --wechatpay-private-key`) signs with in
// WeChat Pay's place. It also writes a test certificate authority and a TLS
// server certificate, for an https notify URL the emulator trusts through
// --notify-ca.
//
// The keys are generated for one run and never used anywhere real.
package operatorkeys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tollgate/wxpay"
)

// Files are the paths of one operator's key files, in Dir, and the values
// that are not secrets (serial, key id, mch_id, appid) or that a flag takes
// directly (APIv3Key, for the emulator's --apiv3-key). Every file is
// readable by its owner only, as an operator should keep them.
type Files struct {
	Dir            string
	MchID          string
	AppID          string
	MerchantKey    string // apiclient_key.pem (PKCS#8)
	MerchantCert   string // apiclient_cert.pem, self-signed
	MerchantPub    string // the merchant's public key alone (PEM PUBLIC KEY)
	MerchantSerial string // apiclient_cert.pem's serial, upper-case hex
	APIv3KeyFile   string // the 32-byte APIv3 key and a newline
	APIv3Key       string
	WechatpayKey   string // WeChat Pay's private key: only the emulator has it
	WechatpayPub   string // pub_key.pem
	WechatpayKeyID string // PUB_KEY_ID_…

	// MerchantPrivateKey and WechatpayPrivateKey are the parsed keys, for
	// in-process use.
	MerchantPrivateKey  *rsa.PrivateKey
	WechatpayPrivateKey *rsa.PrivateKey
}

// Generate makes a new operator key set in dir (which must exist): two
// 2048-bit RSA keys, a merchant certificate with a random serial, a random
// APIv3 key and PUB_KEY_ID_. mchID and appID name the merchant; empty
// means "1900000109" and "wx00000000000tollgate" (not the emulator's
// defaults, so that a test relying on them by mistake fails).
func Generate(dir, mchID, appID string) (*Files, error) {
	merchant, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("operatorkeys: merchant key: %w", err)
	}
	wechatpay, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("operatorkeys: WeChat Pay key: %w", err)
	}
	return Write(dir, mchID, appID, merchant, wechatpay)
}

// Write is Generate with the two RSA keys given (tests that need many key
// sets reuse keys, RSA generation being slow under -race).
func Write(dir, mchID, appID string, merchant, wechatpay *rsa.PrivateKey) (*Files, error) {
	if mchID == "" {
		mchID = "1900000109"
	}
	if appID == "" {
		appID = "wx00000000000tollgate"
	}
	f := &Files{Dir: dir, MchID: mchID, AppID: appID, MerchantPrivateKey: merchant, WechatpayPrivateKey: wechatpay}

	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: mchID, Organization: []string{"tollgate test merchant"}, OrganizationalUnit: []string{"operatorkeys"}, Country: []string{"CN"}},
		NotBefore:    now.Add(-time.Hour).Truncate(time.Second),
		NotAfter:     now.Add(5 * 365 * 24 * time.Hour).Truncate(time.Second),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &merchant.PublicKey, merchant)
	if err != nil {
		return nil, fmt.Errorf("operatorkeys: merchant certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("operatorkeys: merchant certificate: %w", err)
	}
	f.MerchantSerial = wxpay.V3CertificateSerial(cert)

	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	f.WechatpayKeyID = wxpay.V3PublicKeyIDPrefix + "01" + strings.ToUpper(hex.EncodeToString(id))
	f.APIv3Key, err = randomAlnum(32)
	if err != nil {
		return nil, err
	}

	w := writer{dir: dir}
	f.MerchantKey = w.pem("apiclient_key.pem", "PRIVATE KEY", w.pkcs8(merchant))
	f.MerchantCert = w.pem("apiclient_cert.pem", "CERTIFICATE", der)
	f.MerchantPub = w.pem("apiclient_pub.pem", "PUBLIC KEY", w.pkix(&merchant.PublicKey))
	f.WechatpayKey = w.pem("wechatpay_key.pem", "PRIVATE KEY", w.pkcs8(wechatpay))
	f.WechatpayPub = w.pem("pub_key.pem", "PUBLIC KEY", w.pkix(&wechatpay.PublicKey))
	f.APIv3KeyFile = w.file("apiv3.key", []byte(f.APIv3Key+"\n"))
	if w.err != nil {
		return nil, w.err
	}
	return f, nil
}

// TLS is a test certificate authority and a server certificate it issued
// for 127.0.0.1, ::1 and localhost.
type TLS struct {
	CACert     string // PEM CERTIFICATE: what --notify-ca and clients trust
	ServerCert string // PEM CERTIFICATE of the server
	ServerKey  string // PEM PRIVATE KEY of the server
	CAPool     *x509.CertPool
}

// GenerateTLS writes a CA and a server certificate (ECDSA P-256, valid for a
// day) into dir.
func GenerateTLS(dir string) (*TLS, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caSerial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	ca := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{CommonName: "tollgate test CA (operatorkeys)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("operatorkeys: CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	srvSerial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	srv := &x509.Certificate{
		SerialNumber: srvSerial,
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("operatorkeys: server certificate: %w", err)
	}
	w := writer{dir: dir}
	t := &TLS{CAPool: x509.NewCertPool()}
	t.CAPool.AddCert(caCert)
	t.CACert = w.pem("test-ca.pem", "CERTIFICATE", caDER)
	t.ServerCert = w.pem("server-cert.pem", "CERTIFICATE", srvDER)
	t.ServerKey = w.pem("server-key.pem", "PRIVATE KEY", w.pkcs8(srvKey))
	if w.err != nil {
		return nil, w.err
	}
	return t, nil
}

// writer writes files into dir, keeping the first error.
type writer struct {
	dir string
	err error
}

func (w *writer) pkcs8(key any) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("operatorkeys: %w", err)
	}
	return b
}

func (w *writer) pkix(key any) []byte {
	b, err := x509.MarshalPKIXPublicKey(key)
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("operatorkeys: %w", err)
	}
	return b
}

func (w *writer) pem(name, typ string, der []byte) string {
	return w.file(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func (w *writer) file(name string, b []byte) string {
	p := filepath.Join(w.dir, name)
	if w.err == nil {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			w.err = fmt.Errorf("operatorkeys: %w", err)
		}
	}
	return p
}

// randomSerial is a positive random 16-byte certificate serial (32 hex
// digits, as WeChat Pay's are 40).
func randomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	b[0] = b[0]&0x7f | 0x10
	return new(big.Int).SetBytes(b), nil
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomAlnum(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b), nil
}
