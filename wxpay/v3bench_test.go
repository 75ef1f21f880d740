package wxpay_test

import (
	"encoding/json"
	"testing"
	"time"

	"tollgate/wxpay"
)

func BenchmarkSignV3(b *testing.B) {
	priv := MustV3PrivateKey(b, "merchant_key.pem")
	msg := wxpay.V3RequestMessage("POST", "/v3/pay/transactions/native", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", MustReadV3(b, "body_v3-b.json"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wxpay.SignV3(priv, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyV3(b *testing.B) {
	v := mustNotifyVectors(b)[0]
	body := MustReadV3(b, v.BodyFile)
	pub := MustV3PublicKey(b, "wechatpay_pub.pem")
	msg := wxpay.V3ResponseMessage(v.Headers["Wechatpay-Timestamp"], v.Headers["Wechatpay-Nonce"], body)
	sig := v.Headers["Wechatpay-Signature"]
	b.ReportAllocs()
	for b.Loop() {
		if err := wxpay.VerifyV3Signature(pub, msg, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecryptV3Resource(b *testing.B) {
	var env struct{ Resource wxpay.V3Resource }
	if err := json.Unmarshal(MustReadV3(b, "notify_v3-e.json"), &env); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wxpay.DecryptV3Resource(v3TestAPIKey, env.Resource); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseV3Notification is the whole notification path: headers,
// signature, envelope, decryption and the Transaction decode.
func BenchmarkParseV3Notification(b *testing.B) {
	v := mustNotifyVectors(b)[0]
	body := MustReadV3(b, v.BodyFile)
	h := v.header()
	k := v.keyring(b)
	now := time.Unix(v.Now, 0)
	b.ReportAllocs()
	for b.Loop() {
		n, err := wxpay.ParseV3Notification(h, body, k, v.APIv3Key, now)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := n.Transaction(); err != nil {
			b.Fatal(err)
		}
	}
}
