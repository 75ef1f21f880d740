package wxpaysim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"

	"tollgate/wxpay"
)

// Clients returns merchant clients of both API versions for the emulator
// with this configuration served at baseURL: the v2 client with a
// throwaway client certificate (the emulator does not check it, but the
// v2 client refuses to call /secapi/ refunds without one), the v3 client
// with the emulator's test merchant key and platform public key (or, in
// certificate mode, the current platform certificate). It needs
// the built-in merchant key (MerchantPrivateKeyPEM set).
func (c Config) Clients(baseURL string) (*wxpay.V2Client, *wxpay.V3Client, error) {
	cert, err := ClientCertificate(c.MchID)
	if err != nil {
		return nil, nil, err
	}
	v2 := &wxpay.V2Client{BaseURL: baseURL, AppID: c.AppID, MchID: c.MchID, APIKey: c.APIKey, Certificate: cert}
	mkey, err := wxpay.LoadRSAPrivateKeyPEM([]byte(c.MerchantPrivateKeyPEM))
	if err != nil {
		return nil, nil, fmt.Errorf("wxpaysim: merchant key: %w", err)
	}
	ring, serial := wxpay.NewV3Keyring(), c.PlatformKeyID
	if c.PlatformCertificates {
		serial = c.PlatformCertificateSerial
		if err := ring.AddCertificatePEM([]byte(c.PlatformCertificatePEM)); err != nil {
			return nil, nil, fmt.Errorf("wxpaysim: platform certificate: %w", err)
		}
	} else if err := ring.AddPublicKeyPEM(c.PlatformKeyID, []byte(c.PlatformPublicKeyPEM)); err != nil {
		return nil, nil, fmt.Errorf("wxpaysim: public key: %w", err)
	}
	v3 := &wxpay.V3Client{BaseURL: baseURL, MchID: c.MchID, AppID: c.AppID, MerchantSerialNo: c.MerchantSerial,
		MerchantKey: mkey, APIv3Key: c.APIv3Key, Keyring: ring, WechatpaySerial: serial}
	return v2, v3, nil
}

// ClientCertificate makes a self-signed merchant API certificate for
// mchID, good for ten years: what v2 refunds present to the emulator,
// which does not check it. Never use it against WeChat Pay.
func ClientCertificate(mchID string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("wxpaysim: client certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: mchID},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("wxpaysim: client certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
