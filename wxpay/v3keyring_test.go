package wxpay_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"strconv"
	"testing"
	"time"

	"tollgate/wxpay"
)

// v3NotifyVector is one entry of testdata/v3/notify_vectors.json.
type v3NotifyVector struct {
	Name          string            `json:"name"`
	Headers       map[string]string `json:"headers"`
	Now           int64             `json:"now"`
	PublicKey     string            `json:"public_key"`
	Certificate   string            `json:"certificate"`
	BodyFile      string            `json:"body_file"`
	APIv3Key      string            `json:"api_v3_key"`
	ID            string            `json:"id"`
	EventType     string            `json:"event_type"`
	Plaintext     string            `json:"plaintext"`
	PlaintextFile string            `json:"plaintext_file"`
}

// keyring returns a keyring holding the vector's key.
func (v v3NotifyVector) keyring(tb testing.TB) *wxpay.V3Keyring {
	tb.Helper()
	k := wxpay.NewV3Keyring()
	var err error
	if v.Certificate != "" {
		err = k.AddCertificatePEM(MustReadV3(tb, v.Certificate))
	} else {
		err = k.AddPublicKeyPEM(v.Headers["Wechatpay-Serial"], MustReadV3(tb, v.PublicKey))
	}
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func (v v3NotifyVector) header() http.Header {
	h := http.Header{}
	for k, val := range v.Headers {
		h.Set(k, val)
	}
	return h
}

func (v v3NotifyVector) plaintext(tb testing.TB) string {
	if v.PlaintextFile != "" {
		return string(MustReadV3(tb, v.PlaintextFile))
	}
	return v.Plaintext
}

func mustNotifyVectors(tb testing.TB) []v3NotifyVector {
	var vectors []v3NotifyVector
	MustReadV3JSON(tb, "notify_vectors.json", &vectors)
	return vectors
}

func TestV3KeyringVerifyResponseVectors(t *testing.T) {
	for _, v := range mustNotifyVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			k := v.keyring(t)
			body := MustReadV3(t, v.BodyFile)
			if err := k.VerifyResponse(v.header(), body, time.Unix(v.Now, 0)); err != nil {
				t.Fatal(err)
			}
			var env struct{ Resource wxpay.V3Resource }
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatal(err)
			}
			sealed, err := base64.StdEncoding.DecodeString(env.Resource.Ciphertext)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := wxpay.OpenV3GCMForTest([]byte(v.APIv3Key), env.Resource.Nonce, env.Resource.AssociatedData, sealed)
			if err != nil || string(plain) != v.plaintext(t) {
				t.Errorf("resource = %q, %v; want %q", plain, err, v.plaintext(t))
			}
		})
	}
}

// TestV3KeyringVerifyResponseMutations changes one thing at a time in the
// V3-E notification and checks the sentinel each change is refused with.
func TestV3KeyringVerifyResponseMutations(t *testing.T) {
	v := mustNotifyVectors(t)[0]
	if v.Name != "V3-E" {
		t.Fatalf("vector 0 is %s", v.Name)
	}
	body := MustReadV3(t, v.BodyFile)
	ts := time.Unix(v.Now, 0)
	sig := v.Headers["Wechatpay-Signature"]
	flipped := []byte(sig)
	flipped[20] ^= 0x02
	tests := []struct {
		name   string
		header func(http.Header)
		body   func([]byte) []byte
		now    time.Time
		want   error
	}{
		{name: "OK", now: ts},
		{name: "NowOneSecondLater", now: ts.Add(time.Second)},
		{name: "Stale299s", now: ts.Add(299 * time.Second)},
		{name: "Stale300s", now: ts.Add(300 * time.Second), want: wxpay.ErrTooOld},
		{name: "StaleOneHour", now: ts.Add(time.Hour), want: wxpay.ErrTooOld},
		{name: "Future299s", now: ts.Add(-299 * time.Second)},
		{name: "Future300s", now: ts.Add(-300 * time.Second), want: wxpay.ErrTooOld},
		// The window is exact, not whole seconds of the local clock: less
		// than 300 s either way is in it, to the microsecond.
		{name: "Stale300sLess1µs", now: ts.Add(300*time.Second - time.Microsecond)},
		{name: "Future300sLess1µs", now: ts.Add(-300*time.Second + time.Microsecond)},
		{name: "Future299.5s", now: ts.Add(-299500 * time.Millisecond)},
		{name: "Future300sMore1µs", now: ts.Add(-300*time.Second - time.Microsecond), want: wxpay.ErrTooOld},
		{name: "FlippedSignature", now: ts, header: func(h http.Header) { h.Set("Wechatpay-Signature", string(flipped)) }, want: wxpay.ErrBadSignature},
		{name: "BodyChangedByOneByte", now: ts, body: func(b []byte) []byte { b[30]++; return b }, want: wxpay.ErrBadSignature},
		{name: "BodyTrailingNewline", now: ts, body: func(b []byte) []byte { return append(b, '\n') }, want: wxpay.ErrBadSignature},
		{name: "NonceChanged", now: ts, header: func(h http.Header) { h.Set("Wechatpay-Nonce", "fdasflkja484x") }, want: wxpay.ErrBadSignature},
		{name: "TimestampChangedInWindow", now: ts, header: func(h http.Header) { h.Set("Wechatpay-Timestamp", strconv.FormatInt(v.Now+1, 10)) }, want: wxpay.ErrBadSignature},
		{name: "OtherSerial", now: ts, header: func(h http.Header) { h.Set("Wechatpay-Serial", "PUB_KEY_ID_0112300001092025010100000000000002") }, want: wxpay.ErrUnknownSerial},
		{name: "CertificateSerial", now: ts, header: func(h http.Header) { h.Set("Wechatpay-Serial", "5157F09EFDC096DE15EBE81A47057A7232F1B8E1") }, want: wxpay.ErrUnknownSerial},
		{name: "Probe", now: ts, header: func(h http.Header) { h.Set("Wechatpay-Signature", "WECHATPAY/SIGNTEST/"+sig) }, want: wxpay.ErrSignatureProbe},
		{name: "ProbeStale", now: ts.Add(time.Hour), header: func(h http.Header) { h.Set("Wechatpay-Signature", "WECHATPAY/SIGNTEST/x") }, want: wxpay.ErrSignatureProbe},
		{name: "NoSignature", now: ts, header: func(h http.Header) { h.Del("Wechatpay-Signature") }, want: wxpay.ErrNotSigned},
		{name: "NoTimestamp", now: ts, header: func(h http.Header) { h.Del("Wechatpay-Timestamp") }, want: wxpay.ErrMalformed},
		{name: "MillisecondTimestamp", now: ts, header: func(h http.Header) { h.Set("Wechatpay-Timestamp", strconv.FormatInt(v.Now*1000, 10)) }, want: wxpay.ErrMalformed},
		{name: "NegativeTimestamp", now: ts, header: func(h http.Header) { h.Set("Wechatpay-Timestamp", "-1554208500") }, want: wxpay.ErrMalformed},
		{name: "NoNonce", now: ts, header: func(h http.Header) { h.Del("Wechatpay-Nonce") }, want: wxpay.ErrMalformed},
		{name: "NoSerial", now: ts, header: func(h http.Header) { h.Del("Wechatpay-Serial") }, want: wxpay.ErrMalformed},
		{name: "OtherSignatureType", now: ts, header: func(h http.Header) { h.Set("Wechatpay-Signature-Type", "WECHATPAY2-SM2-WITH-SM3") }, want: wxpay.ErrMalformed},
		{name: "NoSignatureTypeIsFine", now: ts, header: func(h http.Header) { h.Del("Wechatpay-Signature-Type") }},
	}
	k := v.keyring(t)
	t.Run("SkewReported", func(t *testing.T) {
		for _, d := range []time.Duration{300 * time.Second, -301 * time.Second, 10 * time.Minute} {
			var skew *wxpay.V3ClockSkewError
			if err := k.VerifyResponse(v.header(), body, ts.Add(d)); !errors.As(err, &skew) || skew.Skew != d {
				t.Errorf("now %+v: err = %v, want a skew of %v", d, err, d)
			}
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := v.header()
			if tt.header != nil {
				tt.header(h)
			}
			b := append([]byte(nil), body...)
			if tt.body != nil {
				b = tt.body(b)
			}
			checkErrIs(t, k.VerifyResponse(h, b, tt.now), tt.want)
		})
	}
}

// mustPlatformCertificate makes a self-signed platform certificate for the
// test WeChat Pay key, valid from notBefore for a year.
func mustPlatformCertificate(tb testing.TB, priv *rsa.PrivateKey, serial *big.Int, notBefore time.Time) *x509.Certificate {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "Tenpay.com Root CA test", Organization: []string{"Tenpay.com"}},
		NotBefore:    notBefore,
		NotAfter:     notBefore.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}

// TestV3KeyringBothKeyKinds signs the same answer with the test WeChat Pay
// key, once announced by a platform certificate serial and once by a public
// key id, as during WeChat's migration from certificates to public keys.
func TestV3KeyringBothKeyKinds(t *testing.T) {
	priv := MustV3PrivateKey(t, "wechatpay_key.pem")
	now := time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z
	serial, _ := new(big.Int).SetString("05157F09EFDC096DE15EBE81A47057A7232F1B8E", 16)
	cert := mustPlatformCertificate(t, priv, serial, now.AddDate(0, -1, 0))
	if got, want := wxpay.V3CertificateSerial(cert), "05157F09EFDC096DE15EBE81A47057A7232F1B8E"; got != want {
		t.Fatalf("V3CertificateSerial = %s, want %s", got, want)
	}

	k := wxpay.NewV3Keyring()
	if err := k.AddCertificatePEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})); err != nil {
		t.Fatal(err)
	}
	if err := k.AddPublicKeyPEM(v3TestPubKeyID, MustReadV3(t, "wechatpay_pub.pem")); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig, err := wxpay.SignV3(priv, wxpay.V3ResponseMessage(ts, "nonce1", body))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		serial string
		now    time.Time
		want   error
	}{
		{"Certificate", wxpay.V3CertificateSerial(cert), now, nil},
		{"CertificateLowerCaseSerial", "05157f09efdc096de15ebe81a47057a7232f1b8e", now, nil},
		{"PublicKeyID", v3TestPubKeyID, now, nil},
		{"PublicKeyIDLowerCase", "pub_key_id_0112300001092025010100000000000001", now, wxpay.ErrUnknownSerial},
		{"CertificateExpired", wxpay.V3CertificateSerial(cert), now.AddDate(1, 0, 0), wxpay.ErrUnknownSerial},
		{"CertificateNotYetValid", wxpay.V3CertificateSerial(cert), now.AddDate(0, -2, 0), wxpay.ErrUnknownSerial},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("Wechatpay-Timestamp", strconv.FormatInt(tt.now.Unix(), 10))
			h.Set("Wechatpay-Nonce", "nonce1")
			h.Set("Wechatpay-Serial", tt.serial)
			h.Set("Wechatpay-Signature", sig)
			if tt.now != now {
				// Re-sign for the shifted clock so that only validity is tested.
				s, err := wxpay.SignV3(priv, wxpay.V3ResponseMessage(h.Get("Wechatpay-Timestamp"), "nonce1", body))
				if err != nil {
					t.Fatal(err)
				}
				h.Set("Wechatpay-Signature", s)
			}
			checkErrIs(t, k.VerifyResponse(h, body, tt.now), tt.want)
		})
	}
	if pub, ok := k.Lookup(v3TestPubKeyID); !ok || !pub.Equal(&priv.PublicKey) {
		t.Error("Lookup(public key id) did not return the key")
	}
	if _, ok := k.Lookup("PUB_KEY_ID_unknown"); ok {
		t.Error("Lookup(unknown) found a key")
	}
}

func TestV3KeyringRefusesWeakOrMissingKeys(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	var k wxpay.V3Keyring // the zero value is usable
	if err := k.Add("PUB_KEY_ID_1", &small.PublicKey); err == nil {
		t.Error("a 1024-bit key was accepted")
	}
	if err := k.Add("", &MustV3PrivateKey(t, "merchant_key.pem").PublicKey); err == nil {
		t.Error("an empty serial was accepted")
	}
	if err := k.Add("PUB_KEY_ID_1", nil); err == nil {
		t.Error("a nil key was accepted")
	}
	if err := k.AddCertificatePEM(MustReadV3(t, "wechatpay_pub.pem")); err == nil {
		t.Error("a public key was accepted as a certificate")
	}
	h := http.Header{}
	h.Set("Wechatpay-Timestamp", "1554208500")
	h.Set("Wechatpay-Nonce", "n")
	h.Set("Wechatpay-Serial", "PUB_KEY_ID_1")
	h.Set("Wechatpay-Signature", "AAAA")
	checkErrIs(t, k.VerifyResponse(h, nil, time.Unix(1554208500, 0)), wxpay.ErrUnknownSerial)
}
