package wxpay_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"tollgate/wxpay"
)

// v3TestOpenID is the payer of the JSAPI tests (docs/WECHATPAY.md samples).
const v3TestOpenID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"

func v3TestH5Order() *wxpay.V3H5OrderRequest {
	return &wxpay.V3H5OrderRequest{
		OutTradeNo:    "1217752501201407033233368018",
		Description:   "Image形象店-深圳腾大-QQ公仔",
		NotifyURL:     "https://www.weixin.qq.com/wxpay/pay.php",
		Total:         5000,
		PayerClientIP: "203.0.113.7",
		TimeExpire:    v3TestNow.Add(30 * time.Minute),
	}
}

func v3TestJSAPIOrder() *wxpay.V3JSAPIOrderRequest {
	return &wxpay.V3JSAPIOrderRequest{
		OutTradeNo:  "1217752501201407033233368018",
		Description: "Image形象店-深圳腾大-QQ公仔",
		NotifyURL:   "https://www.weixin.qq.com/wxpay/pay.php",
		Total:       5000,
		OpenID:      v3TestOpenID,
		TimeExpire:  v3TestNow.Add(30 * time.Minute),
	}
}

// v3OrderJSON is the part of an order body the H5 and JSAPI tests look at.
type v3OrderJSON struct {
	Payer *struct {
		OpenID string `json:"openid"`
	} `json:"payer"`
	SceneInfo *struct {
		PayerClientIP string `json:"payer_client_ip"`
		DeviceID      string `json:"device_id"`
		H5Info        *struct {
			Type string `json:"type"`
		} `json:"h5_info"`
	} `json:"scene_info"`
}

// TestV3ClientH5AndJSAPIOrders sends H5 and JSAPI orders to the fake server,
// with and without a mount prefix, and checks the path, the exact body and
// the fields WeChat Pay requires of each.
func TestV3ClientH5AndJSAPIOrders(t *testing.T) {
	tests := []struct {
		name          string
		answer        string
		call          func(*wxpay.V3Client) (string, error)
		want          string
		wantCanonical string
		wantBody      string
		check         func(t *testing.T, b v3OrderJSON)
	}{
		{
			name: "H5", answer: `{"h5_url":"https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2916263004719461949c84457c735b0000&package=2150917749"}`,
			call:          func(c *wxpay.V3Client) (string, error) { return c.H5Order(context.Background(), v3TestH5Order()) },
			want:          "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2916263004719461949c84457c735b0000&package=2150917749",
			wantCanonical: "/v3/pay/transactions/h5", wantBody: mustReadV3Line("request_h5_order.json"),
			check: func(t *testing.T, b v3OrderJSON) {
				if b.SceneInfo == nil || b.SceneInfo.PayerClientIP != "203.0.113.7" || b.SceneInfo.H5Info == nil || b.SceneInfo.H5Info.Type != "Wap" || b.Payer != nil {
					t.Errorf("body %+v: want scene_info.payer_client_ip and h5_info.type Wap", b)
				}
			},
		},
		{
			name: "H5AndroidIPv6WithDevice", answer: `{"h5_url":"http://127.0.0.1:8080/sim/h5/pay?prepay_id=wx1"}`,
			call: func(c *wxpay.V3Client) (string, error) {
				r := v3TestH5Order()
				r.H5Type, r.PayerClientIP, r.DeviceID = wxpay.V3H5TypeAndroid, "2001:db8::7", "fp-7f3a"
				return c.H5Order(context.Background(), r)
			},
			want: "http://127.0.0.1:8080/sim/h5/pay?prepay_id=wx1", wantCanonical: "/v3/pay/transactions/h5",
			check: func(t *testing.T, b v3OrderJSON) {
				if b.SceneInfo == nil || b.SceneInfo.PayerClientIP != "2001:db8::7" || b.SceneInfo.DeviceID != "fp-7f3a" || b.SceneInfo.H5Info == nil || b.SceneInfo.H5Info.Type != "Android" {
					t.Errorf("body %+v", b)
				}
			},
		},
		{
			name: "JSAPI", answer: `{"prepay_id":"wx201410272009395522657a690389285100"}`,
			call:          func(c *wxpay.V3Client) (string, error) { return c.JSAPIOrder(context.Background(), v3TestJSAPIOrder()) },
			want:          "wx201410272009395522657a690389285100",
			wantCanonical: "/v3/pay/transactions/jsapi", wantBody: mustReadV3Line("request_jsapi_order.json"),
			check: func(t *testing.T, b v3OrderJSON) {
				if b.Payer == nil || b.Payer.OpenID != v3TestOpenID || b.SceneInfo != nil {
					t.Errorf("body %+v: want payer.openid and no scene_info", b)
				}
			},
		},
		{
			name: "JSAPIWithScene", answer: `{"prepay_id":"wx2"}`,
			call: func(c *wxpay.V3Client) (string, error) {
				r := v3TestJSAPIOrder()
				r.PayerClientIP = "203.0.113.7"
				return c.JSAPIOrder(context.Background(), r)
			},
			want: "wx2", wantCanonical: "/v3/pay/transactions/jsapi",
			check: func(t *testing.T, b v3OrderJSON) {
				if b.Payer == nil || b.Payer.OpenID != v3TestOpenID || b.SceneInfo == nil || b.SceneInfo.PayerClientIP != "203.0.113.7" || b.SceneInfo.H5Info != nil {
					t.Errorf("body %+v", b)
				}
			},
		},
	}
	for _, prefix := range []string{"", "/sandbox/wxpay"} {
		for _, tt := range tests {
			t.Run(tt.name+"/prefix="+prefix, func(t *testing.T) {
				f, srv := newV3FakeServer(t, prefix)
				f.answer(200, tt.answer, nil)
				got, err := tt.call(newV3TestClient(t, srv, prefix))
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("got %q, want %q", got, tt.want)
				}
				seen := f.requests()
				if len(seen) != 1 {
					t.Fatalf("server saw %d verified requests, want 1", len(seen))
				}
				s := seen[0]
				if s.Method != "POST" || s.Canonical != tt.wantCanonical || s.Header.Get("Content-Type") != "application/json" {
					t.Errorf("request %s %s (%s), want POST %s", s.Method, s.Canonical, s.Header.Get("Content-Type"), tt.wantCanonical)
				}
				if tt.wantBody != "" && string(s.Body) != tt.wantBody {
					t.Errorf("body %s\nwant %s", s.Body, tt.wantBody)
				}
				var b v3OrderJSON
				if err := json.Unmarshal(s.Body, &b); err != nil {
					t.Fatal(err)
				}
				tt.check(t, b)
			})
		}
	}
}

// TestV3ClientH5AndJSAPIRefused checks that requests missing what WeChat Pay
// requires never leave the client, and that answers without a usable
// h5_url or prepay_id are not believed.
func TestV3ClientH5AndJSAPIRefused(t *testing.T) {
	h5 := func(m func(*wxpay.V3H5OrderRequest)) func(*wxpay.V3Client) error {
		return func(c *wxpay.V3Client) error {
			r := v3TestH5Order()
			m(r)
			_, err := c.H5Order(context.Background(), r)
			return err
		}
	}
	jsapi := func(m func(*wxpay.V3JSAPIOrderRequest)) func(*wxpay.V3Client) error {
		return func(c *wxpay.V3Client) error {
			r := v3TestJSAPIOrder()
			m(r)
			_, err := c.JSAPIOrder(context.Background(), r)
			return err
		}
	}
	refused := []struct {
		name string
		call func(*wxpay.V3Client) error
	}{
		{"H5NoClientIP", h5(func(r *wxpay.V3H5OrderRequest) { r.PayerClientIP = "" })},
		{"H5ClientIPNotAnIP", h5(func(r *wxpay.V3H5OrderRequest) { r.PayerClientIP = "203.0.113.7, 10.0.0.1" })},
		{"H5UnknownType", h5(func(r *wxpay.V3H5OrderRequest) { r.H5Type = "wap" })},
		{"H5ZeroAmount", h5(func(r *wxpay.V3H5OrderRequest) { r.Total = 0 })},
		{"H5NoNotifyURL", h5(func(r *wxpay.V3H5OrderRequest) { r.NotifyURL = "" })},
		{"H5BadOutTradeNo", h5(func(r *wxpay.V3H5OrderRequest) { r.OutTradeNo = "123456/../x" })},
		{"H5NoAppID", func(c *wxpay.V3Client) error {
			c.AppID = ""
			_, err := c.H5Order(context.Background(), v3TestH5Order())
			return err
		}},
		{"JSAPINoOpenID", jsapi(func(r *wxpay.V3JSAPIOrderRequest) { r.OpenID = "" })},
		{"JSAPILongOpenID", jsapi(func(r *wxpay.V3JSAPIOrderRequest) { r.OpenID = strings.Repeat("o", 129) })},
		{"JSAPINoDescription", jsapi(func(r *wxpay.V3JSAPIOrderRequest) { r.Description = "" })},
		{"JSAPINegativeAmount", jsapi(func(r *wxpay.V3JSAPIOrderRequest) { r.Total = -1 })},
		{"JSAPIDeviceWithoutIP", jsapi(func(r *wxpay.V3JSAPIOrderRequest) { r.DeviceID = "fp" })},
		{"JSAPINoMerchantKey", func(c *wxpay.V3Client) error {
			c.MerchantKey = nil
			_, err := c.JSAPIOrder(context.Background(), v3TestJSAPIOrder())
			return err
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newV3FakeServer(t, "")
			f.answer(200, `{"h5_url":"https://wx.tenpay.com/x","prepay_id":"wx1"}`, nil)
			err := tt.call(newV3TestClient(t, srv, ""))
			checkErrIs(t, err, wxpay.ErrV3Request)
			if n := len(f.requests()); n != 0 {
				t.Errorf("server saw %d requests", n)
			}
		})
	}

	malformed := []struct {
		name, answer string
		call         func(*wxpay.V3Client) error
	}{
		{"H5NoURL", `{}`, h5(func(*wxpay.V3H5OrderRequest) {})},
		{"H5JavascriptURL", `{"h5_url":"javascript:alert(1)"}`, h5(func(*wxpay.V3H5OrderRequest) {})},
		{"H5RelativeURL", `{"h5_url":"/pay?prepay_id=wx1"}`, h5(func(*wxpay.V3H5OrderRequest) {})},
		{"JSAPINoPrepayID", `{}`, jsapi(func(*wxpay.V3JSAPIOrderRequest) {})},
		{"JSAPIPrepayIDWithNewline", `{"prepay_id":"wx1\nappId"}`, jsapi(func(*wxpay.V3JSAPIOrderRequest) {})},
	}
	for _, tt := range malformed {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newV3FakeServer(t, "")
			f.answer(200, tt.answer, nil)
			err := tt.call(newV3TestClient(t, srv, ""))
			var te *wxpay.TransportError
			if !errors.As(err, &te) || !errors.Is(err, wxpay.ErrMalformed) {
				t.Fatalf("err = %v, want a *TransportError wrapping ErrMalformed", err)
			}
		})
	}

	t.Run("OpenIDMismatchIsAPIError", func(t *testing.T) {
		f, srv := newV3FakeServer(t, "")
		f.answer(500, `{"code":"OPENID_MISMATCH","message":"openid和appid不匹配"}`, nil)
		_, err := newV3TestClient(t, srv, "").JSAPIOrder(context.Background(), v3TestJSAPIOrder())
		if wxpay.ErrorCode(err) != "OPENID_MISMATCH" {
			t.Fatalf("err = %v, want OPENID_MISMATCH", err)
		}
	})
}

// TestV3JSAPIMessageVector checks the message layout on the wechatpay-skills
// example values and the paySign openssl made of it with the test merchant
// key (testdata/v3/jsapi_vectors.json).
func TestV3JSAPIMessageVector(t *testing.T) {
	var p wxpay.V3JSAPIParams
	MustReadV3JSON(t, "jsapi_vectors.json", &p)
	const want = "wx2421b1c4370ec43b\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\nprepay_id=wx201410272009395522657a690389285100\n"
	if got := wxpay.V3JSAPIMessage(p); got != want {
		t.Fatalf("message %q\nwant    %q", got, want)
	}
	sig, err := wxpay.SignV3(MustV3PrivateKey(t, "merchant_key.pem"), []byte(want))
	if err != nil || sig != p.PaySign {
		t.Fatalf("SignV3 = %q, %v\nwant      %q (openssl)", sig, err, p.PaySign)
	}
	pub := MustV3PublicKey(t, "merchant_pub.pem")
	if err := wxpay.VerifyV3JSAPIPaySign(pub, p); err != nil {
		t.Fatalf("vector does not verify: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*wxpay.V3JSAPIParams)
		want   error
	}{
		{"OtherPackage", func(p *wxpay.V3JSAPIParams) { p.Package = "prepay_id=wx201410272009395522657a690389285101" }, wxpay.ErrBadSignature},
		{"OtherAppID", func(p *wxpay.V3JSAPIParams) { p.AppID = "wxd678efh567hg6787" }, wxpay.ErrBadSignature},
		{"OtherTimeStamp", func(p *wxpay.V3JSAPIParams) { p.TimeStamp = "1554208461" }, wxpay.ErrBadSignature},
		{"OtherNonce", func(p *wxpay.V3JSAPIParams) { p.NonceStr = strings.ToLower(p.NonceStr) }, wxpay.ErrBadSignature},
		{"NotBase64", func(p *wxpay.V3JSAPIParams) { p.PaySign = "%%%" }, wxpay.ErrBadSignature},
		{"NoPaySign", func(p *wxpay.V3JSAPIParams) { p.PaySign = "" }, wxpay.ErrNotSigned},
		{"SignTypeMD5", func(p *wxpay.V3JSAPIParams) { p.SignType = "MD5" }, wxpay.ErrMalformed},
		{"NewlineShift", func(p *wxpay.V3JSAPIParams) {
			// The same message bytes from other fields: refused, not verified.
			p.AppID, p.TimeStamp = "wx2421b1c4370ec43b\n1554208460", ""
		}, wxpay.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := p
			tt.mutate(&q)
			checkErrIs(t, wxpay.VerifyV3JSAPIPaySign(pub, q), tt.want)
		})
	}
	t.Run("OtherKey", func(t *testing.T) {
		checkErrIs(t, wxpay.VerifyV3JSAPIPaySign(MustV3PublicKey(t, "wechatpay_pub.pem"), p), wxpay.ErrBadSignature)
	})
}

// TestV3ClientJSAPIParams checks the parameters a page hands to
// WeixinJSBridge: the JSON names, the clock's timestamp, a fresh nonce per
// call and a paySign the merchant's public key verifies.
func TestV3ClientJSAPIParams(t *testing.T) {
	_, srv := newV3FakeServer(t, "")
	c := newV3TestClient(t, srv, "")
	p, err := c.JSAPIParams("wx201410272009395522657a690389285100")
	if err != nil {
		t.Fatal(err)
	}
	if p.AppID != v3TestAppID || p.TimeStamp != strconv.FormatInt(v3TestNow.Unix(), 10) || len(p.NonceStr) != 32 ||
		p.Package != "prepay_id=wx201410272009395522657a690389285100" || p.SignType != "RSA" {
		t.Errorf("params %+v", p)
	}
	if err := wxpay.VerifyV3JSAPIPaySign(MustV3PublicKey(t, "merchant_pub.pem"), p); err != nil {
		t.Errorf("paySign: %v", err)
	}
	b, _ := json.Marshal(p)
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"} {
		if m[k] == "" {
			t.Errorf("JSON %s lacks %s", b, k)
		}
	}
	if len(m) != 6 {
		t.Errorf("JSON %s has %d keys, want 6", b, len(m))
	}
	q, err := c.JSAPIParams("wx201410272009395522657a690389285100")
	if err != nil || q.NonceStr == p.NonceStr || q.PaySign == p.PaySign {
		t.Errorf("second call reused nonce or paySign: %+v, %v", q, err)
	}

	for _, tt := range []struct {
		name     string
		prepayID string
		mutate   func(*wxpay.V3Client)
	}{
		{"EmptyPrepayID", "", nil},
		{"PrepayIDWithNewline", "wx1\nwx2", nil},
		{"PrepayIDWithPrefix", "prepay_id=wx1", nil},
		{"NoAppID", "wx1", func(c *wxpay.V3Client) { c.AppID = "" }},
		{"NoMerchantKey", "wx1", func(c *wxpay.V3Client) { c.MerchantKey = nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newV3TestClient(t, srv, "")
			if tt.mutate != nil {
				tt.mutate(c)
			}
			_, err := c.JSAPIParams(tt.prepayID)
			checkErrIs(t, err, wxpay.ErrV3Request)
		})
	}
}
