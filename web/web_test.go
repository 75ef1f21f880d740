package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/clocktest"
	"tollgate/web"
	"tollgate/web/webfake"
)

var secret = []byte("0123456789abcdef0123456789abcdef-test")

const account = tollgate.AccountID("acct_1")

// clock is a settable test clock.
// fixture is a Handler over a webfake.Flow with a test clock.
type fixture struct {
	h    *web.Handler
	flow *webfake.Flow
	clk  *clocktest.Clock
}

// MustFixture returns a sandbox Handler over a fresh fake flow; the
// session-creating caller is account unless the Authorization header is
// "Bearer bad".
func MustFixture(tb testing.TB) *fixture {
	tb.Helper()
	clk := clocktest.New(time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC))
	flow := &webfake.Flow{Clock: clk}
	h := &web.Handler{
		Secret: secret, MerchantName: "Example AI", Sandbox: true,
		Orders: flow, Refunder: flow, Accounts: flow, Catalog: flow, Clock: clk,
		Account: func(r *http.Request) (tollgate.AccountID, error) {
			if r.Header.Get("Authorization") != "Bearer good" {
				return "", tollgate.Errorf(tollgate.EUNAUTHORIZED, "invalid API key")
			}
			return account, nil
		},
	}
	if err := h.Check(); err != nil {
		tb.Fatal(err)
	}
	return &fixture{h: h, flow: flow, clk: clk}
}

// token returns a session token of account valid for 30 minutes.
func (f *fixture) token() string {
	return web.SignSession(secret, web.Session{Account: account, ExpiresAt: f.clk.Now().Add(30 * time.Minute)})
}

type resp struct {
	Status int
	Header http.Header
	Body   string
}

func (r resp) json(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal([]byte(r.Body), v); err != nil {
		tb.Fatalf("body %q: %v", r.Body, err)
	}
}

func (r resp) code(tb testing.TB) string {
	tb.Helper()
	var e struct {
		Error struct{ Code, Message, Type string }
	}
	r.json(tb, &e)
	return e.Error.Code
}

// do sends a request to the handler; headers come in pairs.
func (f *fixture) do(method, target, body string, headers ...string) resp {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return resp{rec.Code, rec.Header(), rec.Body.String()}
}

const fp = "0123456789abcdef0123456789abcdef"

func (f *fixture) createOrder(tb testing.TB, pkg, key string) map[string]any {
	tb.Helper()
	r := f.do("POST", "/checkout/"+f.token()+"/orders", `{"package_id":"`+pkg+`","device_fingerprint":"`+fp+`"}`, "Idempotency-Key", key)
	if r.Status != http.StatusCreated {
		tb.Fatalf("create order: %d %s", r.Status, r.Body)
	}
	var o map[string]any
	r.json(tb, &o)
	return o
}

func (f *fixture) orderCount(tb testing.TB) int {
	tb.Helper()
	os, err := f.flow.ListOrders(context.Background(), account, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return len(os)
}

func TestSession(t *testing.T) {
	now := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	s := web.Session{Account: "acct_9", ExpiresAt: now.Add(time.Minute), PackageID: "plus"}
	tok := web.SignSession(secret, s)
	t.Run("OK", func(t *testing.T) {
		got, err := web.VerifySession(secret, tok, now)
		if err != nil || got.Account != s.Account || got.PackageID != "plus" || !got.ExpiresAt.Equal(s.ExpiresAt) {
			t.Fatalf("got %+v, %v", got, err)
		}
		if !regexp.MustCompile(`^[A-Za-z0-9_.-]+$`).MatchString(tok) {
			t.Fatalf("token %q is not URL-safe", tok)
		}
	})
	body, sig, _ := strings.Cut(tok, ".")
	other := web.SignSession(secret, web.Session{Account: "acct_other", ExpiresAt: now.Add(time.Hour)})
	otherBody, _, _ := strings.Cut(other, ".")
	for name, c := range map[string]struct {
		tok  string
		want error
	}{
		"ErrExpired":        {tok, web.ErrSessionExpired},
		"ErrSwappedPayload": {otherBody + "." + sig, web.ErrSessionSignature},
		"ErrFlippedSig":     {body + "." + flip(sig), web.ErrSessionSignature},
		"ErrOtherSecret":    {web.SignSession([]byte("another secret of thirty-two bytes!!"), s), web.ErrSessionSignature},
		"ErrNoDot":          {body, web.ErrSessionMalformed},
		"ErrEmpty":          {"", web.ErrSessionMalformed},
		"ErrBadBase64":      {body + ".***", web.ErrSessionMalformed},
		"ErrHuge":           {strings.Repeat("a", web.MaxTokenLen) + "." + sig, web.ErrSessionMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			at := now
			if name == "ErrExpired" {
				at = now.Add(time.Minute) // exactly at expiry is expired
			}
			if _, err := web.VerifySession(secret, c.tok, at); err != c.want {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// flip changes the first character of a base64url string.
func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

func TestCreateSession(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		f := MustFixture(t)
		r := f.do("POST", "http://pay.example/v1/checkout/sessions", `{"package_id":"plus"}`, "Authorization", "Bearer good")
		if r.Status != http.StatusCreated {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		var out struct {
			URL        string    `json:"url"`
			AccountURL string    `json:"account_url"`
			ExpiresAt  time.Time `json:"expires_at"`
		}
		r.json(t, &out)
		if !strings.HasPrefix(out.URL, "http://pay.example/checkout/") || !strings.HasPrefix(out.AccountURL, "http://pay.example/account/") || !out.ExpiresAt.Equal(f.clk.Now().Add(30*time.Minute)) {
			t.Fatalf("got %+v", out)
		}
		if strings.Contains(r.Body, "good") {
			t.Fatal("the API key leaked into the session answer")
		}
		s, err := web.VerifySession(secret, strings.TrimPrefix(out.URL, "http://pay.example/checkout/"), f.clk.Now())
		if err != nil || s.Account != account || s.PackageID != "plus" {
			t.Fatalf("session %+v, %v", s, err)
		}
	})
	t.Run("OKEmptyBodyAndPublicURL", func(t *testing.T) {
		f := MustFixture(t)
		f.h.PublicURL = "https://shop.example/"
		r := f.do("POST", "/v1/checkout/sessions", "", "Authorization", "Bearer good")
		if r.Status != http.StatusCreated || !strings.Contains(r.Body, `"url":"https://shop.example/checkout/`) {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	for name, c := range map[string]struct {
		body, auth string
		status     int
		code       string
	}{
		"ErrUnauthorized":   {`{}`, "Bearer bad", 401, tollgate.EUNAUTHORIZED},
		"ErrUnknownPackage": {`{"package_id":"nope"}`, "Bearer good", 400, tollgate.EINVALID},
		"ErrUnknownField":   {`{"amount_fen":5}`, "Bearer good", 400, tollgate.EINVALID},
		"ErrNotJSON":        {`package_id=plus`, "Bearer good", 400, tollgate.EINVALID},
	} {
		t.Run(name, func(t *testing.T) {
			f := MustFixture(t)
			r := f.do("POST", "/v1/checkout/sessions", c.body, "Authorization", c.auth)
			if r.Status != c.status || r.code(t) != c.code {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
		})
	}
}

func TestSessionPages(t *testing.T) {
	f := MustFixture(t)
	good := f.token()
	body, sig, _ := strings.Cut(good, ".")
	expired := web.SignSession(secret, web.Session{Account: account, ExpiresAt: f.clk.Now().Add(-time.Second)})
	longExpired := web.SignSession(secret, web.Session{Account: account, ExpiresAt: f.clk.Now().Add(-web.ReadGrace)})
	for name, c := range map[string]struct {
		path, lang string
		status     int
		want       string
	}{
		"ExpiredEN":     {"/checkout/" + expired, "en", 410, "This link has expired"},
		"ExpiredZH":     {"/checkout/" + expired, "zh-CN", 410, "链接已过期"},
		"TamperedEN":    {"/checkout/" + body + "x." + sig, "en", 404, "This link is not valid"},
		"TamperedZH":    {"/account/" + body + "." + flip(sig), "zh", 404, "链接无效"},
		"GarbageEN":     {"/checkout/%00%ff", "en", 404, "This link is not valid"},
		"AccountExpEN":  {"/account/" + expired, "en", 410, "This link has expired"},
		"ExpiredJSONqr": {"/checkout/" + longExpired + "/orders/TG1/qr.png", "en", 401, "session_expired"},
		"TamperedJSON":  {"/checkout/" + body + "." + flip(sig) + "/orders/TG1", "en", 401, "session_invalid"},
	} {
		t.Run(name, func(t *testing.T) {
			r := f.do("GET", c.path, "", "Accept-Language", c.lang)
			if r.Status != c.status || !strings.Contains(r.Body, c.want) {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
		})
	}
}

func TestCreateOrder(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		f := MustFixture(t)
		o := f.createOrder(t, "plus", "key-0000000001")
		if o["status"] != "NOTPAY" || o["amount"] != "50.00" || !strings.HasSuffix(o["qr_url"].(string), "/qr.png") {
			t.Fatalf("order %v", o)
		}
		if _, ok := o["access_token"]; ok {
			t.Fatal("a provisional access token reached the page")
		}
		if err := f.flow.Pay(o["out_trade_no"].(string)); err != nil {
			t.Fatal(err)
		}
		again := f.createOrder(t, "plus", "key-0000000001")
		if bal, _ := again["balance"].(map[string]any); again["status"] != "SUCCESS" || bal["display"] != "7,200,000" {
			t.Fatalf("replay of a paid order: %v", again)
		}
		if again["out_trade_no"] != o["out_trade_no"] || f.orderCount(t) != 1 {
			t.Fatalf("same key made another order: %v", again)
		}
	})
	tok := func(f *fixture) string { return f.token() }
	for name, c := range map[string]struct {
		path    func(*fixture) string
		body    string
		headers []string
		status  int
		code    string
	}{
		"ErrNoFingerprint":    {tok, `{"package_id":"plus"}`, []string{"Idempotency-Key", "key-0000000001"}, 400, "PARAM_ERROR"},
		"ErrShortFingerprint": {tok, `{"package_id":"plus","device_fingerprint":"abc"}`, []string{"Idempotency-Key", "key-0000000001"}, 400, "PARAM_ERROR"},
		"ErrBadFingerprint":   {tok, `{"package_id":"plus","device_fingerprint":"` + strings.Repeat("é", 20) + `"}`, []string{"Idempotency-Key", "key-0000000001"}, 400, "PARAM_ERROR"},
		"ErrNoKey":            {tok, `{"package_id":"plus","device_fingerprint":"` + fp + `"}`, nil, 400, tollgate.EINVALID},
		"ErrBadKey":           {tok, `{"package_id":"plus","device_fingerprint":"` + fp + `"}`, []string{"Idempotency-Key", "a b"}, 400, tollgate.EINVALID},
		"ErrUnknownPackage":   {tok, `{"package_id":"gold","device_fingerprint":"` + fp + `"}`, []string{"Idempotency-Key", "key-0000000001"}, 400, tollgate.EINVALID},
		"ErrNoPackage":        {tok, `{"device_fingerprint":"` + fp + `"}`, []string{"Idempotency-Key", "key-0000000001"}, 400, tollgate.EINVALID},
		"ErrUnknownField":     {tok, `{"package_id":"plus","device_fingerprint":"` + fp + `","amount_fen":1}`, []string{"Idempotency-Key", "key-0000000001"}, 400, tollgate.EINVALID},
		"ErrTrailing":         {tok, `{"package_id":"plus","device_fingerprint":"` + fp + `"} {}`, []string{"Idempotency-Key", "key-0000000001"}, 400, tollgate.EINVALID},
		"ErrEmptyBody":        {tok, ``, []string{"Idempotency-Key", "key-0000000001"}, 400, tollgate.EINVALID},
		"ErrTooLarge":         {tok, `{"package_id":"` + strings.Repeat("x", 20000) + `"}`, []string{"Idempotency-Key", "key-0000000001"}, 400, tollgate.EINVALID},
		"ErrFormPost":         {tok, `{"package_id":"plus","device_fingerprint":"` + fp + `"}`, []string{"Idempotency-Key", "key-0000000001", "Content-Type", "text/plain"}, 400, tollgate.EINVALID},
		"ErrCrossOrigin":      {tok, `{"package_id":"plus","device_fingerprint":"` + fp + `"}`, []string{"Idempotency-Key", "key-0000000001", "Origin", "https://evil.example"}, 403, tollgate.EFORBIDDEN},
		"ErrExpiredSession": {func(f *fixture) string {
			return web.SignSession(secret, web.Session{Account: account, ExpiresAt: f.clk.Now()})
		}, `{"package_id":"plus","device_fingerprint":"` + fp + `"}`, []string{"Idempotency-Key", "key-0000000001"}, 401, "session_expired"},
		"ErrForgedSession": {func(f *fixture) string {
			return web.SignSession([]byte("not the server's secret, 32 bytes+"), web.Session{Account: account, ExpiresAt: f.clk.Now().Add(time.Hour)})
		}, `{"package_id":"plus","device_fingerprint":"` + fp + `"}`, []string{"Idempotency-Key", "key-0000000001"}, 401, "session_invalid"},
	} {
		t.Run(name, func(t *testing.T) {
			f := MustFixture(t)
			r := f.do("POST", "/checkout/"+c.path(f)+"/orders", c.body, c.headers...)
			if r.Status != c.status || r.code(t) != c.code {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			if n := f.orderCount(t); n != 0 {
				t.Fatalf("%d orders created by a refused request", n)
			}
		})
	}
	t.Run("ErrKeyReused", func(t *testing.T) {
		f := MustFixture(t)
		f.createOrder(t, "plus", "key-0000000001")
		r := f.do("POST", "/checkout/"+f.token()+"/orders", `{"package_id":"pro","device_fingerprint":"`+fp+`"}`, "Idempotency-Key", "key-0000000001")
		if r.Status != 409 || r.code(t) != tollgate.ECONFLICT || f.orderCount(t) != 1 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
}

func TestOrderStatus(t *testing.T) {
	f := MustFixture(t)
	o := f.createOrder(t, "starter", "key-0000000001")
	no := o["out_trade_no"].(string)
	path := "/checkout/" + f.token() + "/orders/" + no
	get := func() map[string]any {
		r := f.do("GET", path, "")
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		var m map[string]any
		r.json(t, &m)
		return m
	}
	if got := get(); got["status"] != "NOTPAY" || got["balance"] != nil {
		t.Fatalf("%v", got)
	}
	r := f.do("GET", path+"/qr.png", "")
	if r.Status != 200 || r.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(r.Body, "\x89PNG") {
		t.Fatalf("qr: %d %q", r.Status, r.Header)
	}
	if err := f.flow.Pay(no); err != nil {
		t.Fatal(err)
	}
	got := get()
	bal, _ := got["balance"].(map[string]any)
	if got["status"] != "SUCCESS" || bal["display"] != "1,400,000" {
		t.Fatalf("%v", got)
	}
	t.Run("ErrOtherAccount", func(t *testing.T) {
		other := web.SignSession(secret, web.Session{Account: "acct_2", ExpiresAt: f.clk.Now().Add(time.Hour)})
		for _, p := range []string{"/checkout/" + other + "/orders/" + no, "/checkout/" + other + "/orders/" + no + "/qr.png"} {
			if r := f.do("GET", p, ""); r.Status != 404 || r.code(t) != tollgate.ENOTFOUND {
				t.Fatalf("%s: %d %s", p, r.Status, r.Body)
			}
		}
	})
	t.Run("ErrBadOrderNo", func(t *testing.T) {
		if r := f.do("GET", "/checkout/"+f.token()+"/orders/a%20b", ""); r.Status != 404 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("LinkExpiredWhilePaying", func(t *testing.T) {
		o := f.createOrder(t, "plus", "key-0000000003")
		late := web.SignSession(secret, web.Session{Account: account, ExpiresAt: f.clk.Now().Add(-time.Minute)})
		if r := f.do("GET", "/checkout/"+late+"/orders/"+o["out_trade_no"].(string), ""); r.Status != 200 {
			t.Fatalf("reading an order just after the link expired: %d %s", r.Status, r.Body)
		}
		r := f.do("POST", "/checkout/"+late+"/orders", `{"package_id":"plus","device_fingerprint":"`+fp+`"}`, "Idempotency-Key", "key-0000000004")
		if r.Status != 401 || r.code(t) != "session_expired" {
			t.Fatalf("creating with an expired link: %d %s", r.Status, r.Body)
		}
	})
	t.Run("Expired", func(t *testing.T) {
		o := f.createOrder(t, "plus", "key-0000000002")
		f.clk.Advance(31 * time.Minute)
		r := f.do("GET", "/checkout/"+f.token()+"/orders/"+o["out_trade_no"].(string), "")
		var m map[string]any
		r.json(t, &m)
		if m["status"] != "CLOSED" || m["expired"] != true {
			t.Fatalf("%v", m)
		}
	})
}

func TestRefund(t *testing.T) {
	f := MustFixture(t)
	o := f.createOrder(t, "plus", "key-0000000001")
	no := o["out_trade_no"].(string)
	path := "/checkout/" + f.token() + "/orders/" + no + "/refund"
	if r := f.do("POST", path, "{}"); r.Status != 409 || r.code(t) != tollgate.ECONFLICT {
		t.Fatalf("refund of an unpaid order: %d %s", r.Status, r.Body)
	}
	if err := f.flow.Pay(no); err != nil {
		t.Fatal(err)
	}
	if r := f.do("POST", path, ""); r.Status != 400 {
		t.Fatalf("refund without a JSON content type: %d %s", r.Status, r.Body)
	}
	if r := f.do("POST", path, "{}", "Origin", "https://evil.example"); r.Status != 403 {
		t.Fatalf("cross-origin refund: %d %s", r.Status, r.Body)
	}
	f.h.PublicURL = "https://pay.example"
	if r := f.do("POST", path, "{}", "Origin", "http://pay.example"); r.Status != 403 {
		t.Fatalf("refund from the public host over another scheme: %d %s", r.Status, r.Body)
	}
	r := f.do("POST", path, "{}", "Origin", "https://pay.example")
	if r.Status != 200 || !strings.Contains(r.Body, `"amount":"50.00"`) {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	f.h.Refunder = nil
	if r := f.do("POST", path, "{}"); r.Status != 404 {
		t.Fatalf("refund with no Refunder: %d %s", r.Status, r.Body)
	}
}

func TestAssets(t *testing.T) {
	f := MustFixture(t)
	for file, ct := range map[string]string{"app.css": "text/css", "checkout.js": "javascript", "account.js": "javascript"} {
		r := f.do("GET", "/web/assets/"+file, "")
		if r.Status != 200 || !strings.Contains(r.Header.Get("Content-Type"), ct) || len(r.Body) < 100 {
			t.Fatalf("%s: %d %v", file, r.Status, r.Header)
		}
		if regexp.MustCompile(`https?://|@import|url\(`).MatchString(r.Body) {
			t.Fatalf("%s refers to something outside the page's origin", file)
		}
	}
	if r := f.do("GET", "/web/assets/nope.js", ""); r.Status != 404 {
		t.Fatalf("%d", r.Status)
	}
}

func TestRoutes(t *testing.T) {
	f := MustFixture(t)
	auth := 0
	for _, rt := range f.h.Routes() {
		if rt.Auth {
			auth++
			if rt.Pattern != "POST /v1/checkout/sessions" && rt.Pattern != "POST /v1/account/links" {
				t.Fatalf("%s asks for API-key auth", rt.Pattern)
			}
		}
		if rt.MaxBody <= 0 || rt.Handler == nil {
			t.Fatalf("%s: no body limit or handler", rt.Pattern)
		}
	}
	if auth != 2 {
		t.Fatalf("%d routes with auth", auth)
	}
	if err := (&web.Handler{Secret: []byte("short")}).Check(); err == nil {
		t.Fatal("Check accepted a short secret")
	}
}

func mustDecode(tb testing.TB, res *http.Response, v any) {
	tb.Helper()
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		tb.Fatal(err)
	}
}

func TestRedactPath(t *testing.T) {
	for in, want := range map[string]string{
		"/checkout/abc.def/orders/TG1": "/checkout/…/orders/TG1",
		"/account/abc.def":             "/account/…",
		"/v1/checkout/sessions":        "/v1/checkout/sessions",
		"/web/assets/app.css":          "/web/assets/app.css",
	} {
		if got := web.RedactPath(in); got != want {
			t.Errorf("RedactPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func decodeJSON(res *http.Response, v any) error {
	defer res.Body.Close()
	return json.NewDecoder(res.Body).Decode(v)
}
