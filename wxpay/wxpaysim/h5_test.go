package wxpaysim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tollgate/wxpay/wxpaysim"
)

// v3H5Body is an H5 order body notifying the receiver, changed by mutate
// (may be nil).
func (e *env) v3H5Body(no string, total int, mutate func(m map[string]any)) []byte {
	var m map[string]any
	_ = json.Unmarshal(e.v3OrderBody(no, total), &m)
	m["scene_info"] = map[string]any{"payer_client_ip": "203.0.113.7", "h5_info": map[string]any{"type": "Wap"}}
	if mutate != nil {
		mutate(m)
	}
	b, _ := json.Marshal(m)
	return b
}

// mustH5Order places an H5 order and returns its h5_url.
func (e *env) mustH5Order(no string, total int) string {
	e.t.Helper()
	st, b := e.v3("POST", "/v3/pay/transactions/h5", e.v3H5Body(no, total, nil))
	var ans struct {
		H5URL string `json:"h5_url"`
	}
	if err := json.Unmarshal(b, &ans); st != 200 || err != nil || ans.H5URL == "" {
		e.t.Fatalf("h5 order: %d %s", st, b)
	}
	return ans.H5URL
}

// noRedirects is a browser that shows each redirect instead of following it.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// mustPage fetches a page and returns its status, Location and body.
func mustPage(t testing.TB, method, u string, form url.Values) (int, string, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = noRedirects.PostForm(u, form)
	} else {
		resp, err = noRedirects.Get(u)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// shopExample makes shop.example the merchant's H5 payment domain.
func shopExample(s *wxpaysim.Server) { s.RedirectHosts = []string{"shop.example"} }

func TestV3H5PaymentFlow(t *testing.T) {
	e := mustEnv(t, shopExample)
	h5 := e.mustH5Order("T3-H5-0001", 1234)
	if want := e.base + "/sim/h5/pay?prepay_id=wx"; !strings.HasPrefix(h5, want) {
		t.Fatalf("h5_url %q, want it to start with %q", h5, want)
	}
	back := "https://shop.example/checkout/T3-H5-0001?from=h5"
	page := h5 + "&redirect_url=" + url.QueryEscape(back)

	st, _, body := mustPage(t, http.MethodGet, page, nil)
	for _, want := range []string{`<link rel="icon" href="data:,">`, "¥12.34", "tollgate credits", `method="post"`, `id="pay"`, `name="redirect_url" value="https://shop.example/checkout/T3-H5-0001?from=h5"`} {
		if st != 200 || !strings.Contains(body, want) {
			t.Fatalf("payment page %d lacks %q:\n%s", st, want, body)
		}
	}
	if o, _ := e.sim.Order("T3-H5-0001"); o.State != wxpaysim.StateNotPay {
		t.Fatalf("showing the page paid the order: %s", o.State)
	}

	prepay := strings.TrimPrefix(h5, e.base+"/sim/h5/pay?prepay_id=")
	st, loc, body := mustPage(t, http.MethodPost, e.base+"/sim/h5/pay", url.Values{"prepay_id": {prepay}, "redirect_url": {back}})
	if st != http.StatusFound || loc != back {
		t.Fatalf("Pay: %d Location %q, want 302 to %q\n%s", st, loc, back, body)
	}

	got := e.rcv.next(t)
	_, tx := decryptResource(t, e.cfg.APIv3Key, got.Body)
	if tx["trade_type"] != "MWEB" || tx["trade_state"] != "SUCCESS" || tx["out_trade_no"] != "T3-H5-0001" {
		t.Fatalf("notification: %v", tx)
	}
	if st, q := e.v3Query("T3-H5-0001"); st != 200 || q["trade_type"] != "MWEB" || q["trade_state"] != "SUCCESS" {
		t.Fatalf("query: %d %v", st, q)
	}
	o, _ := e.sim.Order("T3-H5-0001")
	if o.PayerClientIP != "203.0.113.7" || o.H5Type != "Wap" {
		t.Fatalf("ground truth: payer_client_ip %q h5_type %q", o.PayerClientIP, o.H5Type)
	}

	// Back on the page, or pressing Pay again: nothing more is paid.
	if st, _, body := mustPage(t, http.MethodGet, page, nil); st != 200 || strings.Contains(body, `id="pay"`) || !strings.Contains(body, "SUCCESS") {
		t.Fatalf("page of a paid order: %d\n%s", st, body)
	}
	before := digest(t, e.sim)
	if st, _, _ := mustPage(t, http.MethodPost, e.base+"/sim/h5/pay", url.Values{"prepay_id": {prepay}, "redirect_url": {back}}); st != http.StatusConflict {
		t.Fatalf("paying twice: %d, want 409", st)
	}
	if digest(t, e.sim) != before {
		t.Fatal("paying twice changed the emulator's state")
	}
}

func TestV3H5PayWithoutRedirectShowsTheResult(t *testing.T) {
	e := mustEnv(t, nil)
	h5 := e.mustH5Order("T3-H5-0002", 100)
	prepay := strings.TrimPrefix(h5, e.base+"/sim/h5/pay?prepay_id=")
	st, loc, body := mustPage(t, http.MethodPost, e.base+"/sim/h5/pay", url.Values{"prepay_id": {prepay}})
	if st != 200 || loc != "" || !strings.Contains(body, "支付成功") {
		t.Fatalf("Pay without redirect_url: %d %q\n%s", st, loc, body)
	}
}

func TestV3H5OrderRefusals(t *testing.T) {
	e := mustEnv(t, nil)
	tests := []struct {
		name   string
		mutate func(m map[string]any)
		field  string
	}{
		{"NoSceneInfo", func(m map[string]any) { delete(m, "scene_info") }, "/scene_info/payer_client_ip"},
		{"NoClientIP", func(m map[string]any) {
			m["scene_info"] = map[string]any{"h5_info": map[string]any{"type": "Wap"}}
		}, "/scene_info/payer_client_ip"},
		{"ClientIPWithPort", func(m map[string]any) {
			m["scene_info"] = map[string]any{"payer_client_ip": "203.0.113.7:5555", "h5_info": map[string]any{"type": "Wap"}}
		}, "/scene_info/payer_client_ip"},
		{"NoH5Info", func(m map[string]any) {
			m["scene_info"] = map[string]any{"payer_client_ip": "203.0.113.7"}
		}, "/scene_info/h5_info/type"},
		{"UnknownH5Type", func(m map[string]any) {
			m["scene_info"] = map[string]any{"payer_client_ip": "2001:db8::1", "h5_info": map[string]any{"type": "Desktop"}}
		}, "/scene_info/h5_info/type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := digest(t, e.sim)
			st, b := e.v3("POST", "/v3/pay/transactions/h5", e.v3H5Body("T3-H5-BAD", 100, tt.mutate))
			var ans struct {
				Code   string `json:"code"`
				Detail struct {
					Field string `json:"field"`
				} `json:"detail"`
			}
			_ = json.Unmarshal(b, &ans)
			if st != 400 || ans.Code != "PARAM_ERROR" || ans.Detail.Field != tt.field {
				t.Fatalf("%d %s, want 400 PARAM_ERROR at %s", st, b, tt.field)
			}
			if digest(t, e.sim) != before {
				t.Fatal("a refused order changed the emulator's state")
			}
		})
	}
}

func TestV3H5PageRefusals(t *testing.T) {
	e := mustEnv(t, shopExample)
	h5 := e.mustH5Order("T3-H5-0003", 100)
	prepay := strings.TrimPrefix(h5, e.base+"/sim/h5/pay?prepay_id=")
	st, b := e.v3("POST", "/v3/pay/transactions/jsapi", e.v3JSAPIBody("T3-JS-0003", 100, "oTestOpenID0000000000000003"))
	var js struct {
		PrepayID string `json:"prepay_id"`
	}
	if err := json.Unmarshal(b, &js); st != 200 || err != nil {
		t.Fatalf("jsapi order: %d %s", st, b)
	}
	tests := []struct {
		name   string
		form   url.Values
		status int
	}{
		{"UnknownPrepayID", url.Values{"prepay_id": {"wx0000"}}, 404},
		{"NoPrepayID", url.Values{}, 404},
		{"NotAnH5Order", url.Values{"prepay_id": {js.PrepayID}}, 400},
		{"RelativeRedirect", url.Values{"prepay_id": {prepay}, "redirect_url": {"/checkout"}}, 400},
		{"JavascriptRedirect", url.Values{"prepay_id": {prepay}, "redirect_url": {"javascript:alert(1)"}}, 400},
		{"UnconfiguredRedirectHost", url.Values{"prepay_id": {prepay}, "redirect_url": {"https://evil.example/"}}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := digest(t, e.sim)
			if st, _, _ := mustPage(t, http.MethodGet, e.base+"/sim/h5/pay?"+tt.form.Encode(), nil); st != tt.status {
				t.Errorf("GET: %d, want %d", st, tt.status)
			}
			if st, loc, _ := mustPage(t, http.MethodPost, e.base+"/sim/h5/pay", tt.form); st != tt.status || loc != "" {
				t.Errorf("POST: %d %q, want %d", st, loc, tt.status)
			}
			if digest(t, e.sim) != before {
				t.Fatal("a refused payment changed the emulator's state")
			}
		})
	}

	t.Run("Expired", func(t *testing.T) {
		e.sim.Advance(3 * time.Hour)
		st, loc, body := mustPage(t, http.MethodPost, e.base+"/sim/h5/pay", url.Values{"prepay_id": {prepay}, "redirect_url": {"https://shop.example/"}})
		if st != http.StatusConflict || loc != "" || !strings.Contains(body, "CLOSED") {
			t.Fatalf("paying an expired order: %d %q\n%s", st, loc, body)
		}
		if o, _ := e.sim.Order("T3-H5-0003"); o.State != wxpaysim.StateClosed {
			t.Fatalf("state %s", o.State)
		}
	})
}
