package wxpay_test

import (
	"crypto/rsa"
	"errors"
	"strings"
	"testing"

	"tollgate/wxpay"
)

// v3SignVector is one entry of testdata/v3/sign_vectors.json.
type v3SignVector struct {
	Name          string `json:"name"`
	PrivateKey    string `json:"private_key"`
	PublicKey     string `json:"public_key"`
	Message       string `json:"message"`
	BodyFile      string `json:"body_file"`
	MessageSuffix string `json:"message_suffix"`
	Signature     string `json:"signature"`
}

// fullMessage returns the exact signed message of v.
func (v v3SignVector) fullMessage(tb testing.TB) []byte {
	msg := []byte(v.Message)
	if v.BodyFile != "" {
		msg = append(msg, MustReadV3(tb, v.BodyFile)...)
	}
	return append(msg, v.MessageSuffix...)
}

func TestSignV3Vectors(t *testing.T) {
	var vectors []v3SignVector
	MustReadV3JSON(t, "sign_vectors.json", &vectors)
	if len(vectors) != 6 {
		t.Fatalf("%d sign vectors, want 6 (wechatpay-go and V3-A..E)", len(vectors))
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			priv := MustV3PrivateKey(t, v.PrivateKey)
			msg := v.fullMessage(t)
			got, err := wxpay.SignV3(priv, msg)
			if err != nil {
				t.Fatal(err)
			}
			if got != v.Signature {
				t.Errorf("SignV3 = %s\nwant      %s", got, v.Signature)
			}
			pub := &priv.PublicKey
			if v.PublicKey != "" {
				pub = MustV3PublicKey(t, v.PublicKey)
				if !pub.Equal(&priv.PublicKey) {
					t.Fatalf("%s is not the public half of %s", v.PublicKey, v.PrivateKey)
				}
			}
			if err := wxpay.VerifyV3Signature(pub, msg, v.Signature); err != nil {
				t.Errorf("VerifyV3Signature: %v", err)
			}
		})
	}
}

func TestSignV3NoKey(t *testing.T) {
	if _, err := wxpay.SignV3(nil, []byte("source")); err == nil {
		t.Fatal("SignV3(nil key) succeeded")
	}
}

// v3MessageVector is one entry of testdata/v3/message_vectors.json.
type v3MessageVector struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Method    string `json:"method"`
	URL       string `json:"url"`
	Timestamp string `json:"timestamp"`
	Nonce     string `json:"nonce"`
	Body      string `json:"body"`
	BodyFile  string `json:"body_file"`
	Message   string `json:"message"`
}

func TestV3MessageVectors(t *testing.T) {
	var vectors []v3MessageVector
	MustReadV3JSON(t, "message_vectors.json", &vectors)
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			body := []byte(v.Body)
			if v.BodyFile != "" {
				body = MustReadV3(t, v.BodyFile)
			}
			var got []byte
			switch v.Kind {
			case "request":
				got = wxpay.V3RequestMessage(v.Method, v.URL, v.Timestamp, v.Nonce, body)
			case "response":
				got = wxpay.V3ResponseMessage(v.Timestamp, v.Nonce, body)
			default:
				t.Fatalf("kind %q", v.Kind)
			}
			if string(got) != v.Message {
				t.Errorf("message = %q\nwant      %q", got, v.Message)
			}
		})
	}
}

func TestVerifyV3SignatureMutations(t *testing.T) {
	var vectors []v3SignVector
	MustReadV3JSON(t, "sign_vectors.json", &vectors)
	v := vectors[2] // V3-B: a request with a body
	if v.Name != "V3-B" {
		t.Fatalf("vector 2 is %s", v.Name)
	}
	msg := v.fullMessage(t)
	pub := MustV3PublicKey(t, "merchant_pub.pem")
	other := MustV3PublicKey(t, "wechatpay_pub.pem")
	flipped := []byte(v.Signature)
	flipped[10] ^= 0x01
	bodyChanged := append([]byte(nil), msg...)
	bodyChanged[len(bodyChanged)-20]++

	tests := []struct {
		name string
		pub  *rsa.PublicKey
		msg  []byte
		sig  string
		want error
	}{
		{"OK", pub, msg, v.Signature, nil},
		{"FlippedSignatureByte", pub, msg, string(flipped), wxpay.ErrBadSignature},
		{"BodyChangedByOneByte", pub, bodyChanged, v.Signature, wxpay.ErrBadSignature},
		{"TrailingNewlineDropped", pub, msg[:len(msg)-1], v.Signature, wxpay.ErrBadSignature},
		{"OtherKey", other, msg, v.Signature, wxpay.ErrBadSignature},
		{"NotBase64", pub, msg, "%%%" + v.Signature[3:], wxpay.ErrBadSignature},
		{"Truncated", pub, msg, v.Signature[:len(v.Signature)-4], wxpay.ErrBadSignature},
		{"Empty", pub, msg, "", wxpay.ErrNotSigned},
		{"Probe", pub, msg, "WECHATPAY/SIGNTEST/" + v.Signature, wxpay.ErrSignatureProbe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := wxpay.VerifyV3Signature(tt.pub, tt.msg, tt.sig)
			checkErrIs(t, err, tt.want)
		})
	}
}

// checkErrIs fails t unless err is nil when want is nil, or wraps want.
func checkErrIs(tb testing.TB, err, want error) {
	tb.Helper()
	switch {
	case want == nil && err != nil:
		tb.Fatalf("err = %v, want nil", err)
	case want != nil && !errors.Is(err, want):
		tb.Fatalf("err = %v, want %v", err, want)
	}
}

// v3AuthorizationVector is one entry of testdata/v3/authorization_vectors.json.
type v3AuthorizationVector struct {
	Name          string `json:"name"`
	Authorization string `json:"authorization"`
	MchID         string `json:"mchid"`
	NonceStr      string `json:"nonce_str"`
	Timestamp     string `json:"timestamp"`
	SerialNo      string `json:"serial_no"`
}

func TestV3AuthorizationVectors(t *testing.T) {
	var vectors []v3AuthorizationVector
	MustReadV3JSON(t, "authorization_vectors.json", &vectors)
	var signs []v3SignVector
	MustReadV3JSON(t, "sign_vectors.json", &signs)
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			a, err := wxpay.ParseV3Authorization(v.Authorization)
			if err != nil {
				t.Fatal(err)
			}
			if a.MchID != v.MchID || a.NonceStr != v.NonceStr || a.Timestamp != v.Timestamp || a.SerialNo != v.SerialNo {
				t.Errorf("parsed %+v", a)
			}
			if got := a.String(); got != v.Authorization {
				t.Errorf("String() = %s\nwant       %s", got, v.Authorization)
			}
			// The header of V3-B carries V3-B's signature, which verifies
			// over the message rebuilt from its items.
			msg := wxpay.V3RequestMessage("POST", "/v3/pay/transactions/native", a.Timestamp, a.NonceStr, MustReadV3(t, "body_v3-b.json"))
			if err := wxpay.VerifyV3Signature(MustV3PublicKey(t, "merchant_pub.pem"), msg, a.Signature); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestParseV3Authorization(t *testing.T) {
	want := wxpay.V3Authorization{MchID: "1900009191", NonceStr: "593BEC0C930BF1AFEB40B4A08C8FB242", Timestamp: "1554208460", SerialNo: "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C", Signature: "uOVRnA4q+/=="}
	const s = "WECHATPAY2-SHA256-RSA2048 "
	tests := []struct {
		name   string
		header string
		ok     bool
	}{
		{"SDKOrder", want.String(), true},
		{"OfficialExampleOrder", s + `mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",signature="uOVRnA4q+/==",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"`, true},
		{"SpaceAfterComma", s + `signature="uOVRnA4q+/==", timestamp="1554208460", serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C", mchid="1900009191", nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242"`, true},
		{"Empty", "", false},
		{"OtherScheme", strings.Replace(want.String(), "RSA2048", "RSA4096", 1), false},
		{"LowerCaseScheme", strings.Replace(want.String(), "WECHATPAY2", "wechatpay2", 1), false},
		{"NoItems", s, false},
		{"MissingSignature", s + `mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"`, false},
		{"RepeatedItem", want.String() + `,mchid="1900009191"`, false},
		{"UnknownItem", want.String() + `,extra="1"`, false},
		{"EmptyValue", strings.Replace(want.String(), `mchid="1900009191"`, `mchid=""`, 1), false},
		{"UnquotedValue", strings.Replace(want.String(), `mchid="1900009191"`, `mchid=1900009191`, 1), false},
		{"QuoteInValue", strings.Replace(want.String(), `mchid="1900009191"`, `mchid="19"00"`, 1), false},
		{"SpaceInValue", strings.Replace(want.String(), `mchid="1900009191"`, `mchid="19 00"`, 1), false},
		{"MillisecondTimestamp", strings.Replace(want.String(), `1554208460"`, `1554208460000"`, 1), false},
		{"LetterTimestamp", strings.Replace(want.String(), `1554208460"`, `155420846x"`, 1), false},
		{"TrailingComma", want.String() + ",", false},
		{"DoubleSpaceAfterScheme", strings.Replace(want.String(), " ", "  ", 1), false},
		{"TooLong", strings.Replace(want.String(), "uOVRnA4q+/==", strings.Repeat("A", 4096), 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wxpay.ParseV3Authorization(tt.header)
			if !tt.ok {
				checkErrIs(t, err, wxpay.ErrMalformed)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLoadRSAKeyPEMRefusesOtherBlocks(t *testing.T) {
	pub := MustReadV3(t, "merchant_pub.pem")
	if _, err := wxpay.LoadRSAPrivateKeyPEM(pub); err == nil {
		t.Error("LoadRSAPrivateKeyPEM accepted a public key")
	}
	if _, err := wxpay.LoadRSAPublicKeyPEM([]byte("not pem")); err == nil {
		t.Error("LoadRSAPublicKeyPEM accepted garbage")
	}
	cert := MustReadV3(t, "wechatpay-go_notify_cert.pem")
	if _, err := wxpay.LoadRSAPublicKeyPEM(cert); err != nil {
		t.Errorf("LoadRSAPublicKeyPEM(certificate): %v", err)
	}
}
