package wxpay_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"testing"

	"tollgate/wxpay"
)

// v3CertificatesAnswer returns a /v3/certificates body carrying cert,
// encrypted with key, announced under serial.
func v3CertificatesAnswer(tb testing.TB, certPEM []byte, serial, key string, mutate func(*wxpay.V3Resource)) string {
	tb.Helper()
	r := wxpay.V3Resource{Algorithm: wxpay.V3Algorithm, AssociatedData: "certificate", Nonce: "a1b2c3d4e5f6"}
	var err error
	if r.Ciphertext, err = wxpay.EncryptV3Resource(key, r.Nonce, r.AssociatedData, certPEM); err != nil {
		tb.Fatal(err)
	}
	if mutate != nil {
		mutate(&r)
	}
	b, err := json.Marshal(map[string]any{"data": []any{map[string]any{
		"serial_no": serial, "effective_time": "2025-12-01T08:00:00+08:00", "expire_time": "2026-12-01T08:00:00+08:00",
		"encrypt_certificate": r,
	}}})
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func TestV3ClientFetchCertificates(t *testing.T) {
	priv := MustV3PrivateKey(t, "wechatpay_key.pem")
	serialInt, _ := new(big.Int).SetString("5157F09EFDC096DE15EBE81A47057A7232F1B8E1", 16)
	cert := mustPlatformCertificate(t, priv, serialInt, v3TestNow.AddDate(0, -1, 0))
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	serial := wxpay.V3CertificateSerial(cert)
	signedByCert := func(h http.Header) { h.Set("Wechatpay-Serial", serial) }
	tests := []struct {
		name    string
		status  int
		answer  string
		tamper  func(http.Header)
		wantErr error
		wantAPI string
	}{
		{name: "Bootstrap", status: 200, answer: v3CertificatesAnswer(t, certPEM, serial, v3TestAPIKey, nil), tamper: signedByCert},
		{name: "SignedByPublicKey", status: 200, answer: v3CertificatesAnswer(t, certPEM, serial, v3TestAPIKey, nil)},
		{
			name: "CiphertextTampered", status: 200, tamper: signedByCert, wantErr: wxpay.ErrBadSignature,
			answer: v3CertificatesAnswer(t, certPEM, serial, v3TestAPIKey, func(r *wxpay.V3Resource) {
				raw, _ := base64.StdEncoding.DecodeString(r.Ciphertext)
				raw[3] ^= 1
				r.Ciphertext = base64.StdEncoding.EncodeToString(raw)
			}),
		},
		{name: "OtherAPIv3Key", status: 200, answer: v3CertificatesAnswer(t, certPEM, serial, "0123456789abcdefghijklmnopqrstuw", nil), tamper: signedByCert, wantErr: wxpay.ErrBadSignature},
		{name: "SerialMismatch", status: 200, answer: v3CertificatesAnswer(t, certPEM, "0DEADBEEF0", v3TestAPIKey, nil), tamper: signedByCert, wantErr: wxpay.ErrMalformed},
		{name: "NotACertificate", status: 200, answer: v3CertificatesAnswer(t, MustReadV3(t, "wechatpay_pub.pem"), serial, v3TestAPIKey, nil), tamper: signedByCert, wantErr: wxpay.ErrMalformed},
		{name: "Empty", status: 200, answer: `{"data":[]}`, wantErr: wxpay.ErrMalformed},
		{
			name: "SignedByUnknownKey", status: 200, answer: v3CertificatesAnswer(t, certPEM, serial, v3TestAPIKey, nil), wantErr: wxpay.ErrUnknownSerial,
			tamper: func(h http.Header) { h.Set("Wechatpay-Serial", "0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") },
		},
		{name: "PublicKeyMerchant", status: 404, answer: `{"code":"RESOURCE_NOT_EXISTS","message":"无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥"}`, wantAPI: "RESOURCE_NOT_EXISTS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newV3FakeServer(t, "")
			f.answer(tt.status, tt.answer, tt.tamper)
			c := newV3TestClient(t, srv, "")
			got, err := c.FetchCertificates(context.Background())
			_, added := c.Keyring.Lookup(serial)
			switch {
			case tt.wantAPI != "":
				var api *wxpay.APIError
				if !errors.As(err, &api) || api.Code != tt.wantAPI {
					t.Fatalf("err = %v, want %s", err, tt.wantAPI)
				}
			case tt.wantErr != nil:
				var te *wxpay.TransportError
				if !errors.As(err, &te) || !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want a *TransportError wrapping %v", err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 1 || !got[0].Equal(cert) || !added {
					t.Fatalf("certificates %v, added %v", got, added)
				}
				return
			}
			if added {
				t.Error("a refused certificate was added to the keyring")
			}
		})
	}
}
