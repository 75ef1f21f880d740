package wxpaysim_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"testing"
	"time"

	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

var certSerialRe = regexp.MustCompile(`^[0-9A-F]{32}$`)

// listedCert is one entry of /v3/certificates, decrypted by the test.
type listedCert struct {
	serial string
	cert   *x509.Certificate
}

// mustListCertificates downloads /v3/certificates and decrypts every
// certificate with the APIv3 key (AES-256-GCM, written here from the docs).
func (e *env) mustListCertificates() []listedCert {
	e.t.Helper()
	st, b := e.v3("GET", "/v3/certificates", nil)
	var ans struct {
		Data []struct {
			SerialNo           string `json:"serial_no"`
			EffectiveTime      string `json:"effective_time"`
			ExpireTime         string `json:"expire_time"`
			EncryptCertificate struct {
				Algorithm      string `json:"algorithm"`
				Nonce          string `json:"nonce"`
				AssociatedData string `json:"associated_data"`
				Ciphertext     string `json:"ciphertext"`
			} `json:"encrypt_certificate"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &ans); st != 200 || err != nil {
		e.t.Fatalf("/v3/certificates: %d %s", st, b)
	}
	var out []listedCert
	for _, d := range ans.Data {
		ec := d.EncryptCertificate
		if ec.Algorithm != "AEAD_AES_256_GCM" || ec.AssociatedData != "certificate" || len(ec.Nonce) != 12 {
			e.t.Fatalf("encrypt_certificate %+v", ec)
		}
		ct, _ := base64.StdEncoding.DecodeString(ec.Ciphertext)
		block, _ := aes.NewCipher([]byte(e.cfg.APIv3Key))
		gcm, _ := cipher.NewGCM(block)
		plain, err := gcm.Open(nil, []byte(ec.Nonce), ct, []byte(ec.AssociatedData))
		if err != nil {
			e.t.Fatalf("decrypt certificate %s: %v", d.SerialNo, err)
		}
		p, _ := pem.Decode(plain)
		if p == nil || p.Type != "CERTIFICATE" {
			e.t.Fatalf("certificate %s: no CERTIFICATE block", d.SerialNo)
		}
		cert, err := x509.ParseCertificate(p.Bytes)
		if err != nil {
			e.t.Fatal(err)
		}
		eff, err1 := time.Parse(time.RFC3339, d.EffectiveTime)
		exp, err2 := time.Parse(time.RFC3339, d.ExpireTime)
		if got := fmt.Sprintf("%X", cert.SerialNumber.Bytes()); got != d.SerialNo || !certSerialRe.MatchString(got) ||
			err1 != nil || err2 != nil || !eff.Equal(cert.NotBefore) || !exp.Equal(cert.NotAfter) {
			e.t.Fatalf("entry %s %s %s describes certificate %s %s %s", d.SerialNo, d.EffectiveTime, d.ExpireTime, got, cert.NotBefore, cert.NotAfter)
		}
		out = append(out, listedCert{d.SerialNo, cert})
	}
	return out
}

func serialsOf(l []listedCert) []string {
	var out []string
	for _, c := range l {
		out = append(out, c.serial)
	}
	return out
}

// certClient is a tollgate v3 client of e that trusts only what it
// downloads from /v3/certificates.
func (e *env) certClient() *wxpay.V3Client {
	return &wxpay.V3Client{BaseURL: e.base, MchID: e.cfg.MchID, AppID: e.cfg.AppID, MerchantSerialNo: e.cfg.MerchantSerial,
		MerchantKey: e.priv, APIv3Key: e.cfg.APIv3Key, Keyring: wxpay.NewV3Keyring()}
}

func TestPlatformCertificateMode(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.PlatformCertificates = true })
	if e.cfg.PlatformKeyID != "" || !e.cfg.PlatformCertificates || !certSerialRe.MatchString(e.cfg.PlatformCertificateSerial) {
		t.Fatalf("config in certificate mode: %+v", e.cfg)
	}
	listed := e.mustListCertificates()
	if len(listed) != 1 || listed[0].serial != e.cfg.PlatformCertificateSerial {
		t.Fatalf("listed %v, want [%s]", serialsOf(listed), e.cfg.PlatformCertificateSerial)
	}
	// The certificate is for the platform key (here the built-in test key).
	if !listed[0].cert.PublicKey.(*rsa.PublicKey).Equal(mustPublicKey(t, wxpaysim.TestPlatformPublicKeyPEM)) {
		t.Fatal("the certificate is not for the platform key")
	}

	// tollgate's own client bootstraps from the download and verifies with it.
	c := e.certClient()
	certs, err := c.FetchCertificates(context.Background())
	if err != nil || len(certs) != 1 {
		t.Fatalf("FetchCertificates: %v %v", certs, err)
	}
	_, err = c.QueryOrder(context.Background(), "T3-CERT-NONE")
	var apiErr *wxpay.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "ORDER_NOT_EXIST" {
		t.Fatalf("verified query of an unknown order: %v", err)
	}

	// A client with the wrong APIv3 key cannot decrypt the certificates.
	c = e.certClient()
	c.APIv3Key = "0123456789abcdefghijklmnopqrstuX"
	if _, err := c.FetchCertificates(context.Background()); !errors.Is(err, wxpay.ErrBadSignature) {
		t.Fatalf("FetchCertificates with another APIv3 key: %v", err)
	}

	// Notifications carry the certificate's serial.
	if st, b := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-CERT-0001", 100)); st != 200 {
		t.Fatalf("order: %d %s", st, b)
	}
	e.simPost("/sim/orders/T3-CERT-0001/pay")
	got := e.rcv.next(t)
	if got.Header.Get("Wechatpay-Serial") != e.cfg.PlatformCertificateSerial || verifyWechatpay(listed[0].cert.PublicKey.(*rsa.PublicKey), got.Header, got.Body) != nil {
		t.Fatalf("notification not signed by the certificate: %v", got.Header)
	}
}

// rotate calls POST /sim/rotate-certificate and decodes the answer.
func (e *env) rotate(query string) (int, string, []string) {
	e.t.Helper()
	resp, err := http.Post(e.base+"/sim/rotate-certificate"+query, "application/json", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		Serial  string   `json:"serial"`
		Serials []string `json:"serials"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ans)
	return resp.StatusCode, ans.Serial, ans.Serials
}

func TestRotateCertificate(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.PlatformCertificates = true })
	old := e.cfg.PlatformCertificateSerial
	c := e.certClient()
	if _, err := c.FetchCertificates(context.Background()); err != nil {
		t.Fatal(err)
	}

	st, serial, serials := e.rotate("")
	if st != 200 || !certSerialRe.MatchString(serial) || serial == old || !slices.Equal(serials, []string{old, serial}) {
		t.Fatalf("rotate: %d %s %v", st, serial, serials)
	}
	if got := serialsOf(e.mustListCertificates()); !slices.Equal(got, []string{old, serial}) {
		t.Fatalf("listed after rotation %v, want the old and the new (overlap)", got)
	}
	// A client that knows only the old certificate meets an unknown serial,
	// and recovers by downloading again.
	if _, err := c.QueryOrder(context.Background(), "T3-ROT-NONE"); !errors.Is(err, wxpay.ErrUnknownSerial) {
		t.Fatalf("query with the old certificate only: %v", err)
	}
	if certs, err := c.FetchCertificates(context.Background()); err != nil || len(certs) != 2 {
		t.Fatalf("re-download: %d certificates, %v", len(certs), err)
	}
	var apiErr *wxpay.APIError
	if _, err := c.QueryOrder(context.Background(), "T3-ROT-NONE"); !errors.As(err, &apiErr) || apiErr.Code != "ORDER_NOT_EXIST" {
		t.Fatalf("query after the re-download: %v", err)
	}

	// Notifications are signed by the new certificate.
	if st, b := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-ROT-0001", 100)); st != 200 {
		t.Fatalf("order: %d %s", st, b)
	}
	e.simPost("/sim/orders/T3-ROT-0001/pay")
	got := e.rcv.next(t)
	if _, err := c.ParseNotification(got.Header, got.Body); err != nil || got.Header.Get("Wechatpay-Serial") != serial {
		t.Fatalf("notification after rotation (serial %s): %v", got.Header.Get("Wechatpay-Serial"), err)
	}

	if st, _, _ := e.rotate("?retire=yes"); st != 400 {
		t.Fatalf("retire=yes: %d, want 400", st)
	}
	if got := e.sim.CertificateSerials(); !slices.Equal(got, []string{old, serial}) {
		t.Fatalf("a refused rotation changed the certificates: %v", got)
	}
	st, newest, serials := e.rotate("?retire=1")
	if st != 200 || !slices.Equal(serials, []string{newest}) {
		t.Fatalf("rotate?retire=1: %d %s %v", st, newest, serials)
	}
	if got := serialsOf(e.mustListCertificates()); !slices.Equal(got, []string{newest}) {
		t.Fatalf("listed after retiring %v", got)
	}
}

func TestRotateCertificateInPublicKeyMode(t *testing.T) {
	e := mustEnv(t, nil)
	if _, err := e.sim.RotateCertificate(); !errors.Is(err, wxpaysim.ErrPublicKeyMode) {
		t.Fatalf("RotateCertificate: %v", err)
	}
	if st, _, _ := e.rotate(""); st != http.StatusConflict {
		t.Fatalf("POST /sim/rotate-certificate: %d, want 409", st)
	}
	if st, b := e.v3("GET", "/v3/certificates", nil); st != 404 {
		t.Fatalf("/v3/certificates in public key mode: %d %s", st, b)
	}
}

// TestOperatorKeys: with the operator's merchant public key and WeChat Pay
// key, requests signed with the built-in test key are refused and answers
// are signed with the operator's key and id.
func TestOperatorKeys(t *testing.T) {
	merchant, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	platform, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	const serial, keyID = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1", "PUB_KEY_ID_0119000000002025010100000000000042"
	e := mustEnv(t, func(s *wxpaysim.Server) {
		s.MerchantPublicKey, s.MerchantSerial, s.PlatformKey, s.PlatformKeyID = &merchant.PublicKey, serial, platform, keyID
	})
	if e.cfg.MerchantPrivateKeyPEM != "" || e.cfg.PlatformKeyID != keyID || !e.plat.Equal(&platform.PublicKey) {
		t.Fatalf("config with operator keys: %+v", e.cfg)
	}
	e.priv = merchant
	if st, b := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-OPK-0001", 100)); st != 200 {
		t.Fatalf("order signed with the operator's key: %d %s", st, b)
	}
	test := mustPrivateKey(t, wxpaysim.TestMerchantPrivateKeyPEM)
	before := digest(t, e.sim)
	if st, _ := e.v3With("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-OPK-0002", 100), test, serial, time.Now()); st != 401 {
		t.Fatalf("order signed with the test key: %d, want 401", st)
	}
	if digest(t, e.sim) != before {
		t.Fatal("a refused order changed the emulator's state")
	}
}

// TestNotifyRootCAs: an https notify URL is reached when its CA is in
// NotifyRootCAs, and not otherwise.
func TestNotifyRootCAs(t *testing.T) {
	tlsRcv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(tlsRcv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(tlsRcv.Certificate())

	for _, tt := range []struct {
		name    string
		pool    *x509.CertPool
		outcome string
	}{
		{"Trusted", pool, wxpaysim.OutcomeAcked},
		{"NotTrusted", nil, wxpaysim.OutcomeFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEnv(t, func(s *wxpaysim.Server) { s.NotifyRootCAs = tt.pool })
			if st, b := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBodyTo("T3-TLS-0001", 100, tlsRcv.URL+"/notify")); st != 200 {
				t.Fatalf("order: %d %s", st, b)
			}
			e.simPost("/sim/orders/T3-TLS-0001/pay")
			waitFor(t, "the first delivery is recorded", func() bool { return len(e.sim.Notifications()) > 0 })
			if d := e.sim.Notifications()[0]; d.Outcome != tt.outcome {
				t.Fatalf("first delivery %+v, want %s", d, tt.outcome)
			}
		})
	}
}

// TestNotifySignedByARetiredCertificate: after a rotation that retired the
// first certificate, a notification can still be signed with it, as a
// receiver must refuse.
func TestNotifySignedByARetiredCertificate(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.PlatformCertificates = true })
	old := e.mustListCertificates()[0]
	if st, b := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-OLD-0001", 100)); st != 200 {
		t.Fatalf("order: %d %s", st, b)
	}
	if st, b := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-OLD-UNPAID", 100)); st != 200 {
		t.Fatalf("order: %d %s", st, b)
	}
	e.simPost("/sim/orders/T3-OLD-0001/pay")
	e.rcv.next(t)
	if st, newest, _ := e.rotate("?retire=1"); st != 200 || newest == old.serial {
		t.Fatalf("rotate: %d", st)
	}
	before := digest(t, e.sim)
	if st := e.simPost("/sim/orders/T3-OLD-0001/notify-signed-by?serial=" + old.serial); st != 200 {
		t.Fatalf("notify-signed-by: %d", st)
	}
	got := e.rcv.next(t)
	if got.Header.Get("Wechatpay-Serial") != old.serial || verifyWechatpay(old.cert.PublicKey.(*rsa.PublicKey), got.Header, got.Body) != nil {
		t.Fatalf("notification not signed by the retired certificate %s: %v", old.serial, got.Header)
	}
	if _, tx := decryptResource(t, e.cfg.APIv3Key, got.Body); tx["out_trade_no"] != "T3-OLD-0001" || tx["trade_state"] != "SUCCESS" {
		t.Fatalf("notification %v", tx)
	}
	if d := e.sim.Notifications(); d[len(d)-1].SignedBy != old.serial {
		t.Fatalf("delivery %+v", d[len(d)-1])
	}
	for path, want := range map[string]int{
		"/sim/orders/T3-OLD-0001/notify-signed-by?serial=00":              404,
		"/sim/orders/T3-OLD-NONE/notify-signed-by?serial=" + old.serial:   404,
		"/sim/orders/T3-OLD-UNPAID/notify-signed-by?serial=" + old.serial: 409,
	} {
		if st := e.simPost(path); st != want {
			t.Errorf("%s: %d, want %d", path, st, want)
		}
	}
	if digest(t, e.sim) != before {
		t.Fatal("NotifySignedBy changed the emulator's state")
	}

	pk := mustEnv(t, nil)
	if st := pk.simPost("/sim/orders/T3-OLD-0001/notify-signed-by?serial=" + old.serial); st != 409 {
		t.Fatalf("in public key mode: %d, want 409", st)
	}
}
