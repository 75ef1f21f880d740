package wxpay_test

import (
	"encoding/base64"
	"testing"

	"tollgate/wxpay"
)

// v3GCMVector is one entry of testdata/v3/gcm_vectors.json.
type v3GCMVector struct {
	Name           string `json:"name"`
	Key            string `json:"key"`
	Nonce          string `json:"nonce"`
	AssociatedData string `json:"associated_data"`
	Ciphertext     string `json:"ciphertext"`
	Plaintext      string `json:"plaintext"`
}

func TestV3GCMVectors(t *testing.T) {
	var vectors []v3GCMVector
	MustReadV3JSON(t, "gcm_vectors.json", &vectors)
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			sealed, err := base64.StdEncoding.DecodeString(v.Ciphertext)
			if err != nil {
				t.Fatal(err)
			}
			got, err := wxpay.OpenV3GCMForTest([]byte(v.Key), v.Nonce, v.AssociatedData, sealed)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != v.Plaintext {
				t.Errorf("plaintext = %q, want %q", got, v.Plaintext)
			}

			// The resource API insists on AES-256: the third-party 16-byte
			// keys are refused before any decryption.
			r := wxpay.V3Resource{Algorithm: wxpay.V3Algorithm, Ciphertext: v.Ciphertext, AssociatedData: v.AssociatedData, Nonce: v.Nonce}
			plain, err := wxpay.DecryptV3Resource(v.Key, r)
			if len(v.Key) != 32 {
				checkErrIs(t, err, wxpay.ErrV3KeyLength)
				return
			}
			if err != nil || string(plain) != v.Plaintext {
				t.Fatalf("DecryptV3Resource = %q, %v", plain, err)
			}
			ct, err := wxpay.EncryptV3Resource(v.Key, v.Nonce, v.AssociatedData, []byte(v.Plaintext))
			if err != nil || ct != v.Ciphertext {
				t.Errorf("EncryptV3Resource = %s, %v; want %s", ct, err, v.Ciphertext)
			}
		})
	}
}

func TestDecryptV3ResourceMutations(t *testing.T) {
	plain := MustReadV3(t, "notify_v3-e_plaintext.json")
	good := wxpay.V3Resource{OriginalType: "transaction", Algorithm: wxpay.V3Algorithm, AssociatedData: "transaction", Nonce: "0123456789ab"}
	var err error
	good.Ciphertext, err = wxpay.EncryptV3Resource(v3TestAPIKey, good.Nonce, good.AssociatedData, plain)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(good.Ciphertext)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x80
		return base64.StdEncoding.EncodeToString(b)
	}
	tests := []struct {
		name   string
		key    string
		mutate func(*wxpay.V3Resource)
		want   error
	}{
		{"OK", v3TestAPIKey, func(*wxpay.V3Resource) {}, nil},
		{"TagFlipped", v3TestAPIKey, func(r *wxpay.V3Resource) { r.Ciphertext = flip(len(raw) - 1) }, wxpay.ErrBadSignature},
		{"CiphertextFlipped", v3TestAPIKey, func(r *wxpay.V3Resource) { r.Ciphertext = flip(0) }, wxpay.ErrBadSignature},
		{"AssociatedDataChanged", v3TestAPIKey, func(r *wxpay.V3Resource) { r.AssociatedData = "refund" }, wxpay.ErrBadSignature},
		{"AssociatedDataDropped", v3TestAPIKey, func(r *wxpay.V3Resource) { r.AssociatedData = "" }, wxpay.ErrBadSignature},
		{"NonceChanged", v3TestAPIKey, func(r *wxpay.V3Resource) { r.Nonce = "0123456789ac" }, wxpay.ErrBadSignature},
		{"OtherKey", "0123456789abcdefghijklmnopqrstuw", func(*wxpay.V3Resource) {}, wxpay.ErrBadSignature},
		{"WrongAlgorithm", v3TestAPIKey, func(r *wxpay.V3Resource) { r.Algorithm = "AEAD_AES_128_GCM" }, wxpay.ErrMalformed},
		{"NoAlgorithm", v3TestAPIKey, func(r *wxpay.V3Resource) { r.Algorithm = "" }, wxpay.ErrMalformed},
		{"ShortNonce", v3TestAPIKey, func(r *wxpay.V3Resource) { r.Nonce = "0123" }, wxpay.ErrMalformed},
		{"NotBase64", v3TestAPIKey, func(r *wxpay.V3Resource) { r.Ciphertext = "!" + r.Ciphertext }, wxpay.ErrMalformed},
		{"ShorterThanTag", v3TestAPIKey, func(r *wxpay.V3Resource) { r.Ciphertext = base64.StdEncoding.EncodeToString(raw[:15]) }, wxpay.ErrMalformed},
		{"Empty", v3TestAPIKey, func(r *wxpay.V3Resource) { r.Ciphertext = "" }, wxpay.ErrMalformed},
		{"Key16Refused", v3TestAPIKey[:16], func(*wxpay.V3Resource) {}, wxpay.ErrV3KeyLength},
		{"Key24Refused", v3TestAPIKey[:24], func(*wxpay.V3Resource) {}, wxpay.ErrV3KeyLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.mutate(&r)
			got, err := wxpay.DecryptV3Resource(tt.key, r)
			checkErrIs(t, err, tt.want)
			if tt.want == nil && string(got) != string(plain) {
				t.Errorf("plaintext = %q", got)
			}
			if tt.want != nil && got != nil {
				t.Errorf("a refused resource returned plaintext %q", got)
			}
		})
	}
}

func TestEncryptV3ResourceRefusesBadParameters(t *testing.T) {
	if _, err := wxpay.EncryptV3Resource("testAPIv3Key0000", "0123456789ab", "", []byte("x")); err == nil {
		t.Error("16-byte key accepted")
	}
	if _, err := wxpay.EncryptV3Resource(v3TestAPIKey, "short", "", []byte("x")); err == nil {
		t.Error("5-byte nonce accepted")
	}
}
