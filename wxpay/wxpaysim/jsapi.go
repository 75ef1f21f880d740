package wxpaysim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"tollgate/wxpay"
)

// JSAPI payment sheet answers (err_msg of getBrandWCPayRequest).
const (
	JSAPIPayOK   = "get_brand_wcpay_request:ok"
	JSAPIPayFail = "get_brand_wcpay_request:fail"
)

// jsapiParams is what a page passes to
// WeixinJSBridge.invoke('getBrandWCPayRequest', params, cb). The emulator
// decodes it itself, independently of the merchant client that built it.
type jsapiParams struct {
	AppID     string `json:"appId"`
	TimeStamp string `json:"timeStamp"`
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"`
	SignType  string `json:"signType"`
	PaySign   string `json:"paySign"`
	// OpenID is not a getBrandWCPayRequest parameter: it is the WeChat
	// user who has the sheet open, which WeChat knows and the emulator
	// does not. Optional; see sheetPayer.
	OpenID string `json:"openid"`
}

// jsapiRoutes registers the simulated WeChat payment sheet and the script
// that stands in for WeixinJSBridge outside WeChat.
func (s *Server) jsapiRoutes(m *http.ServeMux) {
	m.HandleFunc("OPTIONS /sim/jsapi/pay", func(w http.ResponseWriter, r *http.Request) {
		allowAnyOrigin(w)
		w.Header().Set("Access-Control-Allow-Methods", "POST")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /sim/jsapi/pay", s.jsapiPay)
	m.HandleFunc("GET /sim/jsapi/bridge.js", s.jsapiBridge)
}

// allowAnyOrigin lets the merchant's checkout page, on its own origin, call
// the sheet. No credentials are involved: the params are the authority.
func allowAnyOrigin(w http.ResponseWriter) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
}

// jsapiPay is the payer confirming the payment sheet: it checks the params
// as WeChat does (appId, signType, the merchant's paySign, a known unpaid
// JSAPI prepay_id) and pays. Any failed check answers 400 with
// JSAPIPayFail and a reason, and pays nothing.
func (s *Server) jsapiPay(w http.ResponseWriter, r *http.Request) {
	s.init()
	allowAnyOrigin(w)
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<10+1))
	if err != nil || len(body) > 16<<10 {
		s.jsapiFail(w, "the params could not be read")
		return
	}
	var p jsapiParams
	if err := json.Unmarshal(body, &p); err != nil {
		s.jsapiFail(w, "the params are not a JSON object of strings")
		return
	}
	payer, reason := sheetPayer(r, p)
	if reason != "" {
		s.jsapiFail(w, reason)
		return
	}
	no, reason := s.jsapiCheck(p, payer)
	if reason != "" {
		s.jsapiFail(w, reason)
		return
	}
	if _, err := s.Pay(no); err != nil {
		reason := "the order cannot be paid"
		if errors.Is(err, ErrWrongState) {
			o, _ := s.Order(no)
			reason = fmt.Sprintf("order %s is %s, not payable", no, o.State)
		}
		s.jsapiFail(w, reason)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"err_msg": JSAPIPayOK})
}

// sheetPayer is the openid of the user paying with the sheet, "" when
// the request does not say: the "openid" field of the body, else the
// browser's wxpaysim_openid cookie (which the emulator's OAuth gave it;
// bridge.js sends it when the page is on the emulator's origin, as in
// tollgate's dev mode, and a cross-origin page's fetch carries none).
func sheetPayer(r *http.Request, p jsapiParams) (openID, reason string) {
	if p.OpenID != "" {
		if !openIDRe.MatchString(p.OpenID) {
			return "", "openid must be 1 to 128 characters of [A-Za-z0-9_-]"
		}
		return p.OpenID, ""
	}
	if c, err := r.Cookie(OAuthOpenIDCookie); err == nil && openIDRe.MatchString(c.Value) {
		return c.Value, ""
	}
	return "", ""
}

// jsapiCheck verifies p and returns the out_trade_no to pay, or why not.
// A payer ("" when unknown) must be the order's openid: WeChat lets only
// the user the JSAPI order was placed for pay it.
func (s *Server) jsapiCheck(p jsapiParams, payer string) (outTradeNo, reason string) {
	switch {
	case p.AppID != s.AppID:
		return "", fmt.Sprintf("appId %.40q is not the merchant's appid", p.AppID)
	case p.SignType != "RSA":
		return "", fmt.Sprintf(`signType %.20q, want "RSA"`, p.SignType)
	case !isDecimal(p.TimeStamp, 12):
		return "", "timeStamp must be the Unix time in seconds"
	case p.NonceStr == "" || len(p.NonceStr) > 32:
		return "", "nonceStr must be 1 to 32 characters"
	case !strings.HasPrefix(p.Package, "prepay_id="):
		return "", `package must be "prepay_id=<prepay_id>"`
	}
	msg := p.AppID + "\n" + p.TimeStamp + "\n" + p.NonceStr + "\n" + p.Package + "\n"
	if err := wxpay.VerifyV3Signature(s.merchKey, []byte(msg), p.PaySign); err != nil {
		return "", "paySign is not the merchant's signature of appId, timeStamp, nonceStr and package"
	}
	o, err := s.orderByPrepay(strings.TrimPrefix(p.Package, "prepay_id="))
	switch {
	case err != nil:
		return "", "no order has this prepay_id"
	case o.APIVersion != 3 || o.TradeType != tradeJSAPI:
		return "", fmt.Sprintf("order %s is a v%d %s order, not a v3 JSAPI one", o.OutTradeNo, o.APIVersion, o.TradeType)
	case payer != "" && payer != o.OpenID:
		return "", fmt.Sprintf("the payer's openid is not the one order %s was placed for (payer.openid): another WeChat user cannot pay it", o.OutTradeNo)
	case o.State != StateNotPay && o.State != StateUserPaying:
		return "", fmt.Sprintf("order %s is %s, not payable", o.OutTradeNo, o.State)
	}
	return o.OutTradeNo, ""
}

// isDecimal reports whether v is 1 to n ASCII digits.
func isDecimal(v string, n int) bool {
	if v == "" || len(v) > n {
		return false
	}
	for _, c := range []byte(v) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (s *Server) jsapiFail(w http.ResponseWriter, reason string) {
	s.logf("wxpaysim: JSAPI payment sheet refused: %s", reason)
	writeJSON(w, http.StatusBadRequest, map[string]string{"err_msg": JSAPIPayFail, "reason": reason})
}

// jsapiBridge serves a script defining window.WeixinJSBridge for a page
// outside WeChat (a browser test): invoke('getBrandWCPayRequest', params,
// cb) posts params to this emulator's /sim/jsapi/pay (an absolute URL, the
// page being on another origin) and calls cb with its {err_msg}. It then
// fires WeixinJSBridgeReady, as WeChat does for pages that wait for it.
// The post carries the browser's cookies when the page is on the
// emulator's origin (credentials "same-origin"): then the sheet knows the
// payer by the wxpaysim_openid cookie, as WeChat knows its user.
func (s *Server) jsapiBridge(w http.ResponseWriter, r *http.Request) {
	endpoint, _ := json.Marshal(s.baseURL(r) + "/sim/jsapi/pay") // escapes <, >, &
	allowAnyOrigin(w)
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = fmt.Fprintf(w, bridgeJS, endpoint)
}

const bridgeJS = `// WeixinJSBridge stand-in served by wxpaysim, the WeChat Pay emulator.
(function () {
  var endpoint = %s;
  function invoke(name, params, cb) {
    var done = typeof cb === "function" ? cb : function () {};
    if (name !== "getBrandWCPayRequest") {
      setTimeout(function () { done({err_msg: name + ":fail", reason: "wxpaysim models getBrandWCPayRequest only"}); }, 0);
      return;
    }
    fetch(endpoint, {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"}, body: JSON.stringify(params || {})})
      .then(function (r) { return r.json(); })
      .then(function (a) { done(a); },
            function (e) { done({err_msg: "get_brand_wcpay_request:fail", reason: "wxpaysim unreachable: " + e}); });
  }
  window.WeixinJSBridge = {invoke: invoke, on: function () {}, call: function () {}};
  try { document.dispatchEvent(new Event("WeixinJSBridgeReady")); } catch (e) {}
})();
`
