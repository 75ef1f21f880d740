package wxpay_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"tollgate/wxpay"
)

// v3Sentinels are the errors every refusal of a message must wrap, so that
// callers (and WriteV3NotifyAck) can classify it.
var v3Sentinels = []error{
	wxpay.ErrNotSigned, wxpay.ErrBadSignature, wxpay.ErrSignatureProbe, wxpay.ErrTooOld,
	wxpay.ErrUnknownSerial, wxpay.ErrBodyTooLarge, wxpay.ErrMalformed, wxpay.ErrV3KeyLength,
}

func checkClassified(t *testing.T, err error) {
	t.Helper()
	for _, s := range v3Sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("unclassified error: %v", err)
}

// FuzzV3ParseAuthorization: the parser never panics, and whatever it
// accepts has five non-empty items and survives String and a second parse.
func FuzzV3ParseAuthorization(f *testing.F) {
	f.Fuzz(func(t *testing.T, header string) {
		a, err := wxpay.ParseV3Authorization(header)
		if err != nil {
			if !errors.Is(err, wxpay.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if a.MchID == "" || a.NonceStr == "" || a.Timestamp == "" || a.SerialNo == "" || a.Signature == "" {
			t.Fatalf("accepted %q with an empty item: %+v", header, a)
		}
		b, err := wxpay.ParseV3Authorization(a.String())
		if err != nil || b != a {
			t.Fatalf("round trip of %q: %+v, %v", header, b, err)
		}
	})
}

// FuzzV3Notification: headers and body from the network never panic the
// parser, every refusal is classified, and nothing is accepted unless its
// signature verifies under the keyring.
func FuzzV3Notification(f *testing.F) {
	keyring := MustV3Keyring(f)
	now := time.Unix(1554208500, 0)
	f.Fuzz(func(t *testing.T, ts, nonce, serial, signature string, body []byte) {
		h := http.Header{}
		for k, v := range map[string]string{
			"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": serial, "Wechatpay-Signature": signature,
		} {
			if v != "" {
				h.Set(k, v)
			}
		}
		n, err := wxpay.ParseV3Notification(h, body, keyring, v3TestAPIKey, now)
		if err != nil {
			checkClassified(t, err)
			if n != nil {
				t.Fatal("a refused notification was returned")
			}
			return
		}
		if err := keyring.VerifyResponse(h, body, now); err != nil {
			t.Fatalf("accepted a notification that does not verify: %v", err)
		}
		if n.ID == "" || len(n.Plaintext) == 0 {
			t.Fatalf("accepted an empty notification: %+v", n)
		}
	})
}

// FuzzV3DecryptResource: decryption never panics, refusals are classified,
// nothing forged decrypts, and what EncryptV3Resource makes decrypts back.
func FuzzV3DecryptResource(f *testing.F) {
	f.Fuzz(func(t *testing.T, algorithm, nonce, associatedData, ciphertext string, plaintext []byte) {
		r := wxpay.V3Resource{Algorithm: algorithm, Nonce: nonce, AssociatedData: associatedData, Ciphertext: ciphertext}
		if _, err := wxpay.DecryptV3Resource(v3TestAPIKey, r); err != nil {
			checkClassified(t, err)
		} else if algorithm != wxpay.V3Algorithm || len(nonce) != 12 {
			t.Fatalf("decrypted a resource with algorithm %q and nonce %q", algorithm, nonce)
		}
		if len(nonce) != 12 {
			return
		}
		ct, err := wxpay.EncryptV3Resource(v3TestAPIKey, nonce, associatedData, plaintext)
		if err != nil {
			t.Fatal(err)
		}
		got, err := wxpay.DecryptV3Resource(v3TestAPIKey, wxpay.V3Resource{Algorithm: wxpay.V3Algorithm, Nonce: nonce, AssociatedData: associatedData, Ciphertext: ct})
		if err != nil || string(got) != string(plaintext) {
			t.Fatalf("round trip: %q, %v", got, err)
		}
		if associatedData != "x" {
			if _, err := wxpay.DecryptV3Resource(v3TestAPIKey, wxpay.V3Resource{Algorithm: wxpay.V3Algorithm, Nonce: nonce, AssociatedData: "x", Ciphertext: ct}); !errors.Is(err, wxpay.ErrBadSignature) {
				t.Fatalf("other associated data: %v", err)
			}
		}
	})
}
