package wxpay_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tollgate/wxpay"
)

// signVector is the shape of testdata/v2/sign_*.json.
type signVector struct {
	Vector         string            `json:"vector"`
	Key            string            `json:"key"`
	Params         map[string]string `json:"params"`
	StringSignTemp string            `json:"string_sign_temp"`
	MD5            string            `json:"md5"`
	HMACSHA256     string            `json:"hmac_sha256"`
}

// MustLoadJSON decodes testdata file name into v.
func MustLoadJSON(tb testing.TB, name string, v any) {
	tb.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
}

// MustGlob returns the testdata files matching pattern, failing if none do.
func MustGlob(tb testing.TB, pattern string) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "v2", pattern))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no testdata matches %s (%v)", pattern, err)
	}
	return files
}

func TestSignV2Vectors(t *testing.T) {
	for _, file := range MustGlob(t, "sign_*.json") {
		var v signVector
		MustLoadJSON(t, file, &v)
		for _, c := range []struct{ signType, want string }{
			{wxpay.SignTypeMD5, v.MD5},
			{wxpay.SignTypeHMACSHA256, v.HMACSHA256},
		} {
			t.Run(filepath.Base(file)+"/"+c.signType, func(t *testing.T) {
				got, err := wxpay.SignV2(v.Params, c.signType, v.Key)
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want {
					t.Errorf("SignV2 = %s, want %s", got, c.want)
				}
				signed := maps.Clone(v.Params)
				signed["sign"] = c.want
				// Verified both with the algorithm named and chosen by length.
				for _, st := range []string{c.signType, ""} {
					if err := wxpay.VerifyV2(signed, st, v.Key); err != nil {
						t.Errorf("VerifyV2(signType %q) = %v", st, err)
					}
				}
			})
		}
	}
}

func TestSignV2UnknownType(t *testing.T) {
	for _, st := range []string{"", "md5", "SHA256", "HMAC-SHA1"} {
		if _, err := wxpay.SignV2(map[string]string{"a": "b"}, st, "k"); !errors.Is(err, wxpay.ErrV2SignType) {
			t.Errorf("SignV2(%q) err = %v, want ErrV2SignType", st, err)
		}
	}
	p := map[string]string{"a": "b", "sign": "9A0A8659F005D6984697E2CA0A9CF3B7"}
	if err := wxpay.VerifyV2(p, "RSA", "k"); !errors.Is(err, wxpay.ErrV2SignType) {
		t.Errorf("VerifyV2(RSA) err = %v, want ErrV2SignType", err)
	}
}

// reqInfoVector is the shape of testdata/v2/reqinfo_*.json.
type reqInfoVector struct {
	Key       string            `json:"key"`
	ReqInfo   string            `json:"req_info"`
	Plaintext string            `json:"plaintext"`
	Fields    map[string]string `json:"fields"`
}

func TestDecryptV2RefundReqInfoVectors(t *testing.T) {
	for _, file := range MustGlob(t, "reqinfo_*.json") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			var v reqInfoVector
			MustLoadJSON(t, file, &v)
			got, err := wxpay.DecryptV2RefundReqInfo(v.ReqInfo, v.Key)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, v.Fields) {
				t.Errorf("fields = %v\nwant     %v", got, v.Fields)
			}
			// The inverse gives the same fields back; with the vector's own
			// plaintext layout (sorted, CDATA) it gives the same bytes.
			enc, err := wxpay.EncryptV2RefundReqInfo(v.Fields, v.Key)
			if err != nil {
				t.Fatal(err)
			}
			if v.Plaintext != "" && enc != v.ReqInfo {
				t.Errorf("EncryptV2RefundReqInfo = %s\nwant %s", enc, v.ReqInfo)
			}
			back, err := wxpay.DecryptV2RefundReqInfo(enc, v.Key)
			if err != nil || !maps.Equal(back, v.Fields) {
				t.Errorf("round trip = %v, %v", back, err)
			}
			if _, err := wxpay.DecryptV2RefundReqInfo(v.ReqInfo, v.Key+"x"); !errors.Is(err, wxpay.ErrMalformed) {
				t.Errorf("wrong key: err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestDecryptV2RefundReqInfoRefused(t *testing.T) {
	key := "192006250b4c09247ec02edce69f6a2d"
	good, err := wxpay.EncryptV2RefundReqInfo(map[string]string{"refund_fee": "1"}, key)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(good)
	for name, in := range map[string]string{
		"not base64":      "@@@",
		"empty":           "",
		"not a block":     base64.StdEncoding.EncodeToString(raw[:len(raw)-1]),
		"truncated block": base64.StdEncoding.EncodeToString(raw[:len(raw)-16]),
		"url alphabet":    strings.NewReplacer("+", "-", "/", "_").Replace(good) + "-_",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := wxpay.DecryptV2RefundReqInfo(in, key); !errors.Is(err, wxpay.ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestAESECBVector(t *testing.T) {
	var v struct{ Key, Plaintext, Ciphertext string }
	MustLoadJSON(t, filepath.Join("testdata", "v2", "ecb_v2-5_php.json"), &v)
	ct, err := wxpay.EncryptECBForTest([]byte(v.Key), []byte(v.Plaintext))
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.StdEncoding.EncodeToString(ct); got != v.Ciphertext {
		t.Errorf("ciphertext = %s, want %s", got, v.Ciphertext)
	}
	pt, err := wxpay.DecryptECBForTest([]byte(v.Key), ct)
	if err != nil || string(pt) != v.Plaintext {
		t.Errorf("decrypt = %q, %v", pt, err)
	}
}
