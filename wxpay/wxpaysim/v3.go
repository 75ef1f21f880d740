package wxpaysim

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tollgate"
	"tollgate/wxpay"
)

// v3Window is how far a v3 request timestamp may be from the emulator's
// clock.
const v3Window = 5 * time.Minute

// v3Call is a verified v3 request.
type v3Call struct {
	r    *http.Request
	body []byte
}

// v3Reply is a v3 answer: JSON (signed), empty (204, signed) or a raw bill
// file (unsigned, as WeChat Pay sends bill files).
type v3Reply struct {
	status int
	body   []byte
	raw    bool
}

func v3JSON(status int, v any) v3Reply {
	b, err := json.Marshal(v)
	if err != nil {
		return v3Err(&bizErr{"SYSTEMERROR", "SYSTEM_ERROR", 500, "encode: " + err.Error(), ""})
	}
	return v3Reply{status: status, body: b}
}

// v3Err renders a business error in the v3 error model.
func v3Err(be *bizErr) v3Reply {
	m := map[string]any{"code": be.v3Code, "message": be.msg}
	if be.field != "" {
		loc := "body"
		if !strings.HasPrefix(be.field, "/") {
			loc = "query"
		}
		m["detail"] = map[string]string{"field": be.field, "location": loc, "issue": be.msg}
	}
	b, _ := json.Marshal(m)
	return v3Reply{status: be.status, body: b}
}

func errSign(msg string) *bizErr { return &bizErr{"SIGNERROR", "SIGN_ERROR", 401, msg, ""} }

// v3Handler wraps a v3 business handler: body limit, Authorization check
// against the API path without any mount prefix, the SYSTEM_ERROR fault,
// and a signed answer with Request-ID.
func (s *Server) v3Handler(endpoint string, h func(v3Call) v3Reply) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, wxpay.MaxBodyBytes+1))
		var rep v3Reply
		switch {
		case err != nil:
			rep = v3Err(paramError("", "读取请求失败"))
		case len(body) > wxpay.MaxBodyBytes:
			rep = v3Err(paramError("", "请求数据过大"))
		default:
			if be := s.v3Verify(r, body); be != nil {
				s.logf("wxpaysim: v3 %s %s refused: %s", r.Method, r.URL.Path, be.msg)
				rep = v3Err(be)
			} else if be := s.admit(endpoint); be != nil {
				rep = v3Err(be)
			} else {
				rep = h(v3Call{r: r, body: body})
			}
		}
		if rep.status >= 400 {
			s.logf("wxpaysim: v3 %s %s: %d %s", r.Method, r.URL.Path, rep.status, rep.body)
		}
		s.writeV3(w, rep)
	})
}

// v3Verify checks the Authorization header of a request.
func (s *Server) v3Verify(r *http.Request, body []byte) *bizErr {
	h := r.Header.Get("Authorization")
	if h == "" {
		return errSign("缺少Authorization请求头")
	}
	if !strings.HasPrefix(h, wxpay.V3AuthScheme+" ") {
		return errSign("Authorization认证类型错误, 应为" + wxpay.V3AuthScheme)
	}
	a, err := wxpay.ParseV3Authorization(h)
	if err != nil {
		return errSign("Authorization格式错误")
	}
	if a.MchID != s.MchID {
		return errSign("商户号mchid与签名不匹配")
	}
	if a.SerialNo != s.MerchantSerial {
		return errSign("商户证书序列号serial_no有误")
	}
	ts, err := strconv.ParseInt(a.Timestamp, 10, 64)
	if err != nil {
		return errSign("timestamp格式错误")
	}
	now := s.wallNow()
	if d := now.Sub(time.Unix(ts, 0)); d > v3Window || d < -v3Window {
		return errSign("请求的时间戳已过期或超前")
	}
	for _, canonical := range canonicalURLs(r) {
		msg := wxpay.V3RequestMessage(r.Method, canonical, a.Timestamp, a.NonceStr, body)
		if wxpay.VerifyV3Signature(s.merchKey, msg, a.Signature) == nil {
			return nil
		}
	}
	return errSign("签名错误")
}

// canonicalURLs returns the canonical URLs a request may have been signed
// over: the API path and query (what a client of api.mch.weixin.qq.com
// signs), and, when the emulator is mounted under a prefix, the full path
// as sent (what a generic client given the prefixed base URL signs, e.g.
// wechatpay-axios-plugin). Both are the merchant's signature over this very
// request, so accepting either lets no forgery through.
func canonicalURLs(r *http.Request) []string {
	api := r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		api += "?" + r.URL.RawQuery
	}
	if r.RequestURI != "" && r.RequestURI != api && strings.HasPrefix(r.RequestURI, "/") {
		return []string{api, r.RequestURI}
	}
	return []string{api}
}

// writeV3 writes a v3 answer with Request-ID and, except for bill files,
// the Wechatpay-* signature headers over the exact body bytes.
func (s *Server) writeV3(w http.ResponseWriter, rep v3Reply) {
	h := w.Header()
	h.Set("Request-ID", randAlnum(24)+"-"+strconv.Itoa(rep.status))
	if rep.raw {
		h.Set("Content-Type", "application/octet-stream")
		w.WriteHeader(rep.status)
		_, _ = w.Write(rep.body)
		return
	}
	ts := strconv.FormatInt(s.wallNow().Unix(), 10)
	nonce := randAlnum(32)
	key, serial := s.signer()
	sig, err := wxpay.SignV3(key, wxpay.V3ResponseMessage(ts, nonce, rep.body))
	if err != nil {
		s.logf("wxpaysim: sign v3 answer: %v", err)
		http.Error(w, "wxpaysim: cannot sign answer", http.StatusInternalServerError)
		return
	}
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Serial", serial)
	h.Set("Wechatpay-Signature", sig)
	if len(rep.body) > 0 {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body)
}

// decodeV3 decodes a JSON body; a type error names the field as a JSON
// pointer.
func decodeV3(body []byte, v any) *bizErr {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return paramError("/"+strings.ReplaceAll(te.Field, ".", "/"), "字段类型错误")
		}
		return paramError("", "请求体不是合法的JSON")
	}
	return nil
}

type v3OrderBody struct {
	AppID       string `json:"appid"`
	MchID       string `json:"mchid"`
	Description string `json:"description"`
	OutTradeNo  string `json:"out_trade_no"`
	TimeExpire  string `json:"time_expire"`
	Attach      string `json:"attach"`
	NotifyURL   string `json:"notify_url"`
	Amount      *struct {
		Total    *int64 `json:"total"`
		Currency string `json:"currency"`
	} `json:"amount"`
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

// Trade types of v3 orders (trade_type in queries and notifications).
const (
	tradeNative = "NATIVE"
	tradeJSAPI  = "JSAPI"
	tradeH5     = "MWEB" // WeChat Pay's name for H5 payments, in v2 and v3
)

func (s *Server) v3Native(c v3Call) v3Reply { return s.v3Order(c, tradeNative) }
func (s *Server) v3JSAPI(c v3Call) v3Reply  { return s.v3Order(c, tradeJSAPI) }

// v3H5 places an H5 order: the payer's mobile browser opens h5_url, the
// emulator's payment page (h5.go).
func (s *Server) v3H5(c v3Call) v3Reply { return s.v3Order(c, tradeH5) }

func (s *Server) v3Order(c v3Call, tradeType string) v3Reply {
	var b v3OrderBody
	if be := decodeV3(c.body, &b); be != nil {
		return v3Err(be)
	}
	req, be := s.v3OrderReq(b, tradeType)
	if be != nil {
		return v3Err(be)
	}
	var canon any
	_ = json.Unmarshal(c.body, &canon)
	fp, _ := json.Marshal(canon) // map keys sorted: key order never matters
	req.fingerprint = tradeType + string(fp)
	o, be := s.createOrder(b.OutTradeNo, req)
	if be != nil {
		return v3Err(be)
	}
	switch tradeType {
	case tradeNative:
		return v3JSON(200, map[string]string{"code_url": o.CodeURL})
	case tradeH5:
		return v3JSON(200, map[string]string{"h5_url": s.h5URL(c.r, o.PrepayID)})
	}
	return v3JSON(200, map[string]string{"prepay_id": o.PrepayID})
}

// v3OrderReq validates an order body field by field.
func (s *Server) v3OrderReq(b v3OrderBody, tradeType string) (orderReq, *bizErr) {
	switch {
	case b.AppID == "":
		return orderReq{}, paramError("/appid", "appid不能为空")
	case b.MchID == "":
		return orderReq{}, paramError("/mchid", "mchid不能为空")
	case b.MchID != s.MchID:
		return orderReq{}, &bizErr{"MCHID_NOT_EXIST", "MCH_NOT_EXISTS", 400, "商户号不存在", "/mchid"}
	case b.AppID != s.AppID:
		return orderReq{}, &bizErr{"APPID_MCHID_NOT_MATCH", "APPID_MCHID_NOT_MATCH", 400, "appid和mch_id不匹配", "/appid"}
	case b.Description == "" || len([]rune(b.Description)) > 127:
		return orderReq{}, paramError("/description", "description长度应为1到127")
	case !outTradeNoRe.MatchString(b.OutTradeNo):
		return orderReq{}, paramError("/out_trade_no", "out_trade_no格式错误")
	case !validNotifyURL(b.NotifyURL):
		return orderReq{}, paramError("/notify_url", "notify_url格式错误")
	case b.Amount == nil:
		return orderReq{}, paramError("/amount", "amount不能为空")
	case b.Amount.Total == nil || *b.Amount.Total <= 0:
		return orderReq{}, paramError("/amount/total", "total应为正整数")
	case b.Amount.Currency != "" && b.Amount.Currency != "CNY":
		return orderReq{}, paramError("/amount/currency", "Currency code is invalid")
	case b.SceneInfo != nil && b.SceneInfo.PayerClientIP == "":
		return orderReq{}, paramError("/scene_info/payer_client_ip", "payer_client_ip不能为空")
	case s.RequireDeviceFingerprint && (b.SceneInfo == nil || b.SceneInfo.DeviceID == ""):
		return orderReq{}, paramError("/scene_info/device_id", "缺少设备指纹scene_info.device_id")
	case tradeType == tradeJSAPI && (b.Payer == nil || b.Payer.OpenID == ""):
		return orderReq{}, paramError("/payer/openid", "openid不能为空")
	}
	if tradeType == tradeH5 {
		if be := v3H5Scene(b); be != nil {
			return orderReq{}, be
		}
	}
	req := orderReq{
		version: 3, tradeType: tradeType, description: b.Description, attach: b.Attach,
		notifyURL: b.NotifyURL, total: *b.Amount.Total, currency: "CNY",
	}
	if b.SceneInfo != nil {
		req.deviceInfo, req.clientIP = b.SceneInfo.DeviceID, b.SceneInfo.PayerClientIP
		if b.SceneInfo.H5Info != nil {
			req.h5Type = b.SceneInfo.H5Info.Type
		}
	}
	if b.Payer != nil {
		req.openID = b.Payer.OpenID
	}
	if b.TimeExpire != "" {
		t, err := time.Parse(time.RFC3339, b.TimeExpire)
		if err != nil {
			return orderReq{}, paramError("/time_expire", "time_expire格式错误, 应为RFC 3339")
		}
		req.timeExpire = t
	}
	return req, nil
}

// v3H5Scene checks what an H5 order needs beyond the others: the payer's
// IP (WeChat Pay compares it with the browser that opens h5_url) and
// h5_info.type.
func v3H5Scene(b v3OrderBody) *bizErr {
	switch {
	case b.SceneInfo == nil || b.SceneInfo.PayerClientIP == "":
		return paramError("/scene_info/payer_client_ip", "payer_client_ip不能为空")
	case net.ParseIP(b.SceneInfo.PayerClientIP) == nil:
		return paramError("/scene_info/payer_client_ip", "payer_client_ip应为IPv4或IPv6地址")
	case b.SceneInfo.H5Info == nil || b.SceneInfo.H5Info.Type == "":
		return paramError("/scene_info/h5_info/type", "h5_info.type不能为空")
	}
	switch b.SceneInfo.H5Info.Type {
	case "iOS", "Android", "Wap":
		return nil
	}
	return paramError("/scene_info/h5_info/type", "h5_info.type应为iOS, Android或Wap")
}

// v3Transaction is the Transaction object of queries and notifications.
type v3Transaction struct {
	AppID          string     `json:"appid"`
	MchID          string     `json:"mchid"`
	OutTradeNo     string     `json:"out_trade_no"`
	TransactionID  string     `json:"transaction_id,omitempty"`
	TradeType      string     `json:"trade_type,omitempty"`
	TradeState     string     `json:"trade_state"`
	TradeStateDesc string     `json:"trade_state_desc"`
	BankType       string     `json:"bank_type,omitempty"`
	Attach         string     `json:"attach"`
	SuccessTime    string     `json:"success_time,omitempty"`
	Payer          *v3Payer   `json:"payer,omitempty"`
	Amount         v3Amount   `json:"amount"`
	SceneInfo      *v3DevInfo `json:"scene_info,omitempty"`
}

type v3Payer struct {
	OpenID string `json:"openid"`
}

type v3DevInfo struct {
	DeviceID string `json:"device_id"`
}

type v3Amount struct {
	Total         int64  `json:"total"`
	PayerTotal    *int64 `json:"payer_total,omitempty"`
	Currency      string `json:"currency"`
	PayerCurrency string `json:"payer_currency,omitempty"`
}

func transaction(o Order) v3Transaction {
	t := v3Transaction{
		AppID: o.AppID, MchID: o.MchID, OutTradeNo: o.OutTradeNo, TradeType: o.TradeType,
		TradeState: o.State, TradeStateDesc: tradeStateDesc[o.State], Attach: o.Attach,
		Amount: v3Amount{Total: o.Total, Currency: o.Currency},
	}
	if o.DeviceInfo != "" {
		t.SceneInfo = &v3DevInfo{DeviceID: o.DeviceInfo}
	}
	if o.State == StateSuccess || o.State == StateRefund {
		paid := o.Total
		t.TransactionID, t.BankType = o.TransactionID, "OTHERS"
		t.SuccessTime = o.PaidAt.In(tollgate.Beijing).Format(time.RFC3339)
		t.Payer = &v3Payer{OpenID: o.OpenID}
		t.Amount.PayerTotal, t.Amount.PayerCurrency = &paid, "CNY"
	}
	return t
}

// v3MchIDQuery checks the mchid query parameter of a GET.
func (s *Server) v3MchIDQuery(r *http.Request) *bizErr {
	m := r.URL.Query().Get("mchid")
	if m == "" {
		return paramError("mchid", "mchid不能为空")
	}
	if m != s.MchID {
		return &bizErr{"MCHID_NOT_EXIST", "MCH_NOT_EXISTS", 400, "商户号不存在", "mchid"}
	}
	return nil
}

func (s *Server) v3Query(c v3Call) v3Reply {
	if be := s.v3MchIDQuery(c.r); be != nil {
		return v3Err(be)
	}
	o, be := s.answerOrder(c.r.PathValue("no"), "", false)
	if be != nil {
		return v3Err(be)
	}
	return v3JSON(200, transaction(o))
}

func (s *Server) v3QueryByID(c v3Call) v3Reply {
	if be := s.v3MchIDQuery(c.r); be != nil {
		return v3Err(be)
	}
	o, be := s.answerOrder("", c.r.PathValue("id"), false)
	if be != nil {
		return v3Err(be)
	}
	return v3JSON(200, transaction(o))
}

func (s *Server) v3Close(c v3Call) v3Reply {
	var b struct {
		MchID string `json:"mchid"`
	}
	if be := decodeV3(c.body, &b); be != nil {
		return v3Err(be)
	}
	if b.MchID == "" {
		return v3Err(paramError("/mchid", "mchid不能为空"))
	}
	if b.MchID != s.MchID {
		return v3Err(&bizErr{"MCHID_NOT_EXIST", "MCH_NOT_EXISTS", 400, "商户号不存在", "/mchid"})
	}
	if be := s.closeOrder(c.r.PathValue("no"), 3, false); be != nil {
		return v3Err(be)
	}
	return v3Reply{status: http.StatusNoContent}
}

type v3RefundBody struct {
	TransactionID string `json:"transaction_id"`
	OutTradeNo    string `json:"out_trade_no"`
	OutRefundNo   string `json:"out_refund_no"`
	Reason        string `json:"reason"`
	NotifyURL     string `json:"notify_url"`
	Amount        *struct {
		Refund   *int64 `json:"refund"`
		Total    *int64 `json:"total"`
		Currency string `json:"currency"`
	} `json:"amount"`
}

// v3RefundObject is the Refund object of refund answers.
type v3RefundObject struct {
	RefundID            string         `json:"refund_id"`
	OutRefundNo         string         `json:"out_refund_no"`
	TransactionID       string         `json:"transaction_id"`
	OutTradeNo          string         `json:"out_trade_no"`
	Channel             string         `json:"channel"`
	UserReceivedAccount string         `json:"user_received_account"`
	SuccessTime         string         `json:"success_time,omitempty"`
	CreateTime          string         `json:"create_time"`
	Status              string         `json:"status"`
	FundsAccount        string         `json:"funds_account"`
	Amount              v3RefundAmount `json:"amount"`
}

type v3RefundAmount struct {
	Total            int64  `json:"total"`
	Refund           int64  `json:"refund"`
	PayerTotal       int64  `json:"payer_total"`
	PayerRefund      int64  `json:"payer_refund"`
	SettlementRefund int64  `json:"settlement_refund"`
	SettlementTotal  int64  `json:"settlement_total"`
	DiscountRefund   int64  `json:"discount_refund"`
	Currency         string `json:"currency"`
}

func refundObject(r Refund) v3RefundObject {
	o := v3RefundObject{
		RefundID: r.RefundID, OutRefundNo: r.OutRefundNo, TransactionID: r.TransactionID,
		OutTradeNo: r.OutTradeNo, Channel: "ORIGINAL", UserReceivedAccount: "支付用户零钱",
		CreateTime: r.CreatedAt.In(tollgate.Beijing).Format(time.RFC3339), Status: r.Status, FundsAccount: "UNSETTLED",
		Amount: v3RefundAmount{Total: r.Total, Refund: r.Amount, PayerTotal: r.Total, PayerRefund: r.Amount,
			SettlementRefund: r.Amount, SettlementTotal: r.Total, Currency: "CNY"},
	}
	if !r.SuccessAt.IsZero() {
		o.SuccessTime = r.SuccessAt.In(tollgate.Beijing).Format(time.RFC3339)
	}
	return o
}

func (s *Server) v3Refund(c v3Call) v3Reply {
	var b v3RefundBody
	if be := decodeV3(c.body, &b); be != nil {
		return v3Err(be)
	}
	switch {
	case !outRefundNoRe.MatchString(b.OutRefundNo):
		return v3Err(paramError("/out_refund_no", "out_refund_no格式错误"))
	case b.OutTradeNo == "" && b.TransactionID == "":
		return v3Err(paramError("/out_trade_no", "transaction_id和out_trade_no必须二选一"))
	case b.Amount == nil:
		return v3Err(paramError("/amount", "amount不能为空"))
	case b.Amount.Refund == nil || *b.Amount.Refund <= 0:
		return v3Err(paramError("/amount/refund", "refund应为正整数"))
	case b.Amount.Total == nil || *b.Amount.Total <= 0:
		return v3Err(paramError("/amount/total", "total应为正整数"))
	case b.Amount.Currency != "CNY":
		return v3Err(paramError("/amount/currency", "currency应为CNY"))
	case b.NotifyURL != "" && !validNotifyURL(b.NotifyURL):
		return v3Err(paramError("/notify_url", "notify_url格式错误"))
	}
	no := b.OutTradeNo
	if b.TransactionID != "" {
		no = ""
	}
	rf, be := s.createRefund(refundReq{
		version: 3, outTradeNo: no, txID: b.TransactionID, outRefundNo: b.OutRefundNo,
		amount: *b.Amount.Refund, total: *b.Amount.Total, notifyURL: b.NotifyURL, reason: b.Reason,
	})
	if be != nil {
		return v3Err(be)
	}
	return v3JSON(200, refundObject(s.answerRefunds(LieInRefund, rf)[0]))
}

func (s *Server) v3RefundQuery(c v3Call) v3Reply {
	rf, be := s.queryRefund(c.r.PathValue("no"), false)
	if be != nil {
		return v3Err(be)
	}
	return v3JSON(200, refundObject(s.answerRefunds(LieInRefundQuery, rf)[0]))
}

func (s *Server) v3TradeBill(c v3Call) v3Reply {
	q := c.r.URL.Query()
	day, err := time.ParseInLocation(time.DateOnly, q.Get("bill_date"), tollgate.Beijing)
	if err != nil || day.After(s.now()) {
		return v3Err(&bizErr{"PARAM_ERROR", "INVALID_REQUEST", 400, "bill_date格式错误或超出范围", "bill_date"})
	}
	bt := q.Get("bill_type")
	if bt == "" {
		bt = "ALL"
	}
	if bt != "ALL" && bt != "SUCCESS" && bt != "REFUND" {
		return v3Err(paramError("bill_type", "bill_type应为ALL, SUCCESS或REFUND"))
	}
	text, ok := s.bill(day, bt, false)
	if !ok {
		return v3Err(&bizErr{"NO_STATEMENT_EXIST", "NO_STATEMENT_EXIST", 400, "请求的账单文件不存在", ""})
	}
	sum := sha1.Sum(text)
	file := text
	if q.Get("tar_type") == "GZIP" {
		file = gzipBytes(text)
	}
	token := randAlnum(32)
	s.mu.Lock()
	s.bills[token] = file
	s.mu.Unlock()
	return v3JSON(200, map[string]string{
		"hash_type": "SHA1", "hash_value": hex.EncodeToString(sum[:]),
		"download_url": s.baseURL(c.r) + "/v3/billdownload/file?token=" + token,
	})
}

func (s *Server) v3BillDownload(c v3Call) v3Reply {
	s.mu.Lock()
	file, ok := s.bills[c.r.URL.Query().Get("token")]
	s.mu.Unlock()
	if !ok {
		return v3Err(&bizErr{"INVALID_REQUEST", "INVALID_REQUEST", 400, "下载链接无效或已过期", "token"})
	}
	return v3Reply{status: 200, body: file, raw: true}
}

// baseURL is BaseURL, or the scheme, host and mount prefix of r (the part
// of the original request path that http.StripPrefix removed).
func (s *Server) baseURL(r *http.Request) string {
	if s.BaseURL != "" {
		return strings.TrimSuffix(s.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	orig := r.RequestURI
	if i := strings.IndexByte(orig, '?'); i >= 0 {
		orig = orig[:i]
	}
	prefix := strings.TrimSuffix(orig, r.URL.EscapedPath())
	return fmt.Sprintf("%s://%s%s", scheme, r.Host, prefix)
}
