package wxpaysim

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"tollgate"
	"tollgate/wxpay"
)

// v2Call is a verified v2 request.
type v2Call struct {
	p        map[string]string
	signType string
	key      string
	sandbox  bool
}

// v2Fields are the business fields of a successful v2 answer.
type v2Fields map[string]string

// v2Allowed lists the parameters each v2 endpoint accepts; any other is
// answered PARAM_ERROR "请求中含有未在API文档中定义的参数", as WeChat Pay does.
var v2Allowed = map[string][]string{
	epOrder: {"appid", "mch_id", "device_info", "nonce_str", "sign", "sign_type", "body", "detail", "attach",
		"out_trade_no", "fee_type", "total_fee", "spbill_create_ip", "time_start", "time_expire", "goods_tag",
		"notify_url", "trade_type", "product_id", "limit_pay", "openid", "receipt", "scene_info",
		"profit_sharing", "version"},
	epQuery:       {"appid", "mch_id", "transaction_id", "out_trade_no", "nonce_str", "sign", "sign_type"},
	epClose:       {"appid", "mch_id", "out_trade_no", "nonce_str", "sign", "sign_type"},
	epRefund:      {"appid", "mch_id", "nonce_str", "sign", "sign_type", "transaction_id", "out_trade_no", "out_refund_no", "total_fee", "refund_fee", "refund_fee_type", "refund_desc", "refund_account", "notify_url"},
	epRefundQuery: {"appid", "mch_id", "nonce_str", "sign", "sign_type", "transaction_id", "out_trade_no", "out_refund_no", "refund_id", "offset"},
	epBill:        {"appid", "mch_id", "nonce_str", "sign", "sign_type", "bill_date", "bill_type", "tar_type"},
}

// v2Parse reads, decodes and verifies a v2 request. On failure it has
// already answered (return_code=FAIL, unsigned, as WeChat Pay does) and
// returns false.
func (s *Server) v2Parse(w http.ResponseWriter, r *http.Request, endpoint string, sandbox bool) (v2Call, bool) {
	fail := func(msg string) (v2Call, bool) {
		s.logf("wxpaysim: v2 %s refused: %s", r.URL.Path, msg)
		writeV2(w, wxpay.EncodeV2XML(map[string]string{"return_code": "FAIL", "return_msg": msg}))
		return v2Call{}, false
	}
	if r.Method != http.MethodPost {
		return fail("请使用post方法")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, wxpay.MaxBodyBytes+1))
	if err != nil {
		return fail("读取请求失败")
	}
	if len(body) == 0 {
		return fail("post数据为空")
	}
	if !utf8.Valid(body) {
		return fail("编码格式错误")
	}
	p, err := wxpay.DecodeV2XML(body)
	if err != nil {
		if errors.Is(err, wxpay.ErrBodyTooLarge) {
			return fail("请求数据过大")
		}
		return fail("XML格式错误")
	}
	c := v2Call{p: p, signType: p["sign_type"], key: s.APIKey, sandbox: sandbox}
	if sandbox {
		c.key = s.SandboxKey
	}
	if c.signType == "" {
		c.signType = wxpay.SignTypeMD5
	}
	if c.signType != wxpay.SignTypeMD5 && c.signType != wxpay.SignTypeHMACSHA256 {
		return fail("sign_type参数格式错误")
	}
	if p["sign"] == "" {
		return fail("缺少参数sign")
	}
	if err := wxpay.VerifyV2(p, c.signType, c.key); err != nil {
		return fail("签名错误")
	}
	return c, true
}

// v2Check applies the checks shared by every signed v2 call: known
// parameters, merchant identity, nonce, the SYSTEMERROR fault.
func (s *Server) v2Check(c v2Call, endpoint string) *bizErr {
	allowed := v2Allowed[endpoint]
	for k := range c.p {
		if !contains(allowed, k) {
			return paramError(k, "请求中含有未在API文档中定义的参数")
		}
	}
	for _, k := range []string{"appid", "mch_id", "nonce_str"} {
		if c.p[k] == "" {
			return lackParams(k)
		}
	}
	if len(c.p["nonce_str"]) > 32 {
		return paramError("nonce_str", "nonce_str长度超过32")
	}
	if c.p["mch_id"] != s.MchID {
		return &bizErr{"MCHID_NOT_EXIST", "MCH_NOT_EXISTS", 400, "mch_id不存在", "mch_id"}
	}
	if c.p["appid"] != s.AppID {
		return &bizErr{"APPID_MCHID_NOT_MATCH", "APPID_MCHID_NOT_MATCH", 400, "appid和mch_id不匹配", "appid"}
	}
	return s.admit(endpoint)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// v2Handler wraps a v2 business handler: verification, common checks and a
// signed answer with the request's sign type.
func (s *Server) v2Handler(endpoint string, sandbox bool, h func(v2Call) (v2Fields, *bizErr)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.v2Parse(w, r, endpoint, sandbox)
		if !ok {
			return
		}
		be := s.v2Check(c, endpoint)
		var f v2Fields
		if be == nil {
			f, be = h(c)
		}
		if be != nil {
			s.logf("wxpaysim: v2 %s: %s %s", r.URL.Path, be.v2Code, be.msg)
		}
		s.writeV2Signed(w, c, f, be)
	})
}

// writeV2Signed answers return_code=SUCCESS with result fields, signed.
func (s *Server) writeV2Signed(w http.ResponseWriter, c v2Call, f v2Fields, be *bizErr) {
	m := map[string]string{
		"return_code": "SUCCESS", "return_msg": "OK",
		"appid": s.AppID, "mch_id": s.MchID, "nonce_str": randAlnum(32),
		"result_code": "SUCCESS",
	}
	if be != nil {
		m["result_code"], m["err_code"], m["err_code_des"] = "FAIL", be.v2Code, be.msg
	}
	for k, v := range f {
		m[k] = v
	}
	sig, err := wxpay.SignV2(m, c.signType, c.key)
	if err != nil {
		s.logf("wxpaysim: sign v2 answer: %v", err)
		http.Error(w, "wxpaysim: cannot sign answer", http.StatusInternalServerError)
		return
	}
	m["sign"] = sig
	writeV2(w, wxpay.EncodeV2XML(m))
}

func writeV2(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

var (
	outTradeNoRe  = regexp.MustCompile(`^[0-9A-Za-z_\-|*]{6,32}$`)
	outRefundNoRe = regexp.MustCompile(`^[0-9A-Za-z_\-|*@]{1,64}$`)
	feeRe         = regexp.MustCompile(`^[1-9][0-9]{0,11}$`)
)

// parseFee parses a positive integer amount in fen.
func parseFee(v string) (int64, bool) {
	if !feeRe.MatchString(v) {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// validNotifyURL: absolute http(s) URL without a query string.
func validNotifyURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.RawQuery == "" && len(v) <= 256
}

func (s *Server) v2UnifiedOrder(c v2Call) (v2Fields, *bizErr) {
	p := c.p
	for _, k := range []string{"body", "out_trade_no", "total_fee", "spbill_create_ip", "notify_url", "trade_type"} {
		if p[k] == "" {
			return nil, lackParams(k)
		}
	}
	if !outTradeNoRe.MatchString(p["out_trade_no"]) {
		return nil, paramError("out_trade_no", "out_trade_no参数格式错误")
	}
	total, ok := parseFee(p["total_fee"])
	if !ok {
		return nil, paramError("total_fee", "total_fee参数格式错误")
	}
	if p["fee_type"] != "" && p["fee_type"] != "CNY" {
		return nil, paramError("fee_type", "fee_type参数错误")
	}
	if utf8.RuneCountInString(p["body"]) > 128 {
		return nil, paramError("body", "body参数长度有误")
	}
	if !validNotifyURL(p["notify_url"]) {
		return nil, paramError("notify_url", "notify_url参数格式错误")
	}
	switch p["trade_type"] {
	case "NATIVE":
		if p["product_id"] == "" {
			return nil, lackParams("product_id")
		}
	case "JSAPI":
		if p["openid"] == "" {
			return nil, lackParams("openid")
		}
	default:
		return nil, paramError("trade_type", "trade_type参数错误 (the emulator models NATIVE and JSAPI)")
	}
	if s.RequireDeviceFingerprint && p["device_info"] == "" {
		return nil, paramError("device_info", "缺少设备指纹device_info")
	}
	var exp time.Time
	if v := p["time_expire"]; v != "" {
		t, err := time.ParseInLocation("20060102150405", v, tollgate.Beijing)
		if err != nil {
			return nil, paramError("time_expire", "time_expire时间格式错误")
		}
		exp = t
	}
	req := orderReq{
		version: 2, sandbox: c.sandbox, signType: c.signType, tradeType: p["trade_type"],
		description: p["body"], attach: p["attach"], notifyURL: p["notify_url"], deviceInfo: p["device_info"],
		openID: p["openid"], clientIP: p["spbill_create_ip"], total: total, currency: "CNY", timeExpire: exp,
		fingerprint: v2Fingerprint(p),
	}
	o, be := s.createOrder(p["out_trade_no"], req)
	if be != nil {
		return nil, be
	}
	f := v2Fields{"trade_type": o.TradeType, "prepay_id": o.PrepayID, "device_info": p["device_info"]}
	if o.CodeURL != "" {
		f["code_url"] = o.CodeURL
	}
	return f, nil
}

// v2Fingerprint identifies an order request's parameters, ignoring those
// that differ on every call (nonce_str, sign) and the sign type.
func v2Fingerprint(p map[string]string) string {
	keys := make([]string, 0, len(p))
	for k, v := range p {
		if k != "nonce_str" && k != "sign" && k != "sign_type" && v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + p[k] + "\x00")
	}
	return b.String()
}

var tradeStateDesc = map[string]string{
	StateSuccess: "支付成功", StateRefund: "转入退款", StateNotPay: "订单未支付",
	StateClosed: "订单已关闭", StateUserPaying: "用户支付中", StatePayError: "支付失败",
}

func (s *Server) v2OrderQuery(c v2Call) (v2Fields, *bizErr) {
	no, tx := c.p["out_trade_no"], c.p["transaction_id"]
	if no == "" && tx == "" {
		return nil, lackParams("out_trade_no")
	}
	if tx != "" {
		no = "" // transaction_id wins when both are given
	}
	o, be := s.answerOrder(no, tx, c.sandbox)
	if be != nil {
		return nil, be
	}
	f := v2Fields{
		"appid": o.AppID, "mch_id": o.MchID,
		"out_trade_no": o.OutTradeNo, "trade_state": o.State, "trade_state_desc": tradeStateDesc[o.State],
		"total_fee": itoa(o.Total), "fee_type": o.Currency, "trade_type": o.TradeType,
		"attach": o.Attach, "device_info": o.DeviceInfo,
	}
	if o.State == StateSuccess || o.State == StateRefund {
		f["transaction_id"] = o.TransactionID
		f["openid"] = o.OpenID
		f["is_subscribe"] = "N"
		f["bank_type"] = "OTHERS"
		f["cash_fee"] = itoa(o.Total)
		f["time_end"] = o.PaidAt.In(tollgate.Beijing).Format("20060102150405")
	}
	return f, nil
}

func (s *Server) v2CloseOrder(c v2Call) (v2Fields, *bizErr) {
	no := c.p["out_trade_no"]
	if no == "" {
		return nil, lackParams("out_trade_no")
	}
	if be := s.closeOrder(no, 2, c.sandbox); be != nil {
		return nil, be
	}
	return v2Fields{"result_msg": "OK"}, nil
}

func (s *Server) v2Refund(c v2Call) (v2Fields, *bizErr) {
	p := c.p
	for _, k := range []string{"out_refund_no", "total_fee", "refund_fee"} {
		if p[k] == "" {
			return nil, lackParams(k)
		}
	}
	if p["out_trade_no"] == "" && p["transaction_id"] == "" {
		return nil, lackParams("out_trade_no")
	}
	if !outRefundNoRe.MatchString(p["out_refund_no"]) {
		return nil, paramError("out_refund_no", "out_refund_no参数格式错误")
	}
	total, ok1 := parseFee(p["total_fee"])
	amount, ok2 := parseFee(p["refund_fee"])
	if !ok1 || !ok2 {
		return nil, paramError("refund_fee", "total_fee或refund_fee参数格式错误")
	}
	if p["notify_url"] != "" && !validNotifyURL(p["notify_url"]) {
		return nil, paramError("notify_url", "notify_url参数格式错误")
	}
	no, tx := p["out_trade_no"], p["transaction_id"]
	if tx != "" {
		no = ""
	}
	rf, be := s.createRefund(refundReq{
		version: 2, sandbox: c.sandbox, outTradeNo: no, txID: tx, outRefundNo: p["out_refund_no"],
		amount: amount, total: total, notifyURL: p["notify_url"], reason: p["refund_desc"],
	})
	if be != nil {
		return nil, be
	}
	rf = s.answerRefunds(LieInRefund, rf)[0]
	return v2Fields{
		"transaction_id": rf.TransactionID, "out_trade_no": rf.OutTradeNo, "out_refund_no": rf.OutRefundNo,
		"refund_id": rf.RefundID, "refund_fee": itoa(rf.Amount), "settlement_refund_fee": itoa(rf.Amount),
		"total_fee": itoa(rf.Total), "settlement_total_fee": itoa(rf.Total), "fee_type": "CNY",
		"cash_fee": itoa(rf.Total), "cash_refund_fee": itoa(rf.Amount),
	}, nil
}

func (s *Server) v2RefundQuery(c v2Call) (v2Fields, *bizErr) {
	p := c.p
	var refunds []Refund
	var o Order
	switch {
	case p["refund_id"] != "" || p["out_refund_no"] != "":
		rf, be := s.findRefund(p["refund_id"], p["out_refund_no"], c.sandbox)
		if be != nil {
			return nil, be
		}
		refunds = []Refund{rf}
		o, _ = s.queryOrder(rf.OutTradeNo, "", c.sandbox)
	case p["transaction_id"] != "" || p["out_trade_no"] != "":
		no, tx := p["out_trade_no"], p["transaction_id"]
		if tx != "" {
			no = ""
		}
		var be *bizErr
		if o, be = s.queryOrder(no, tx, c.sandbox); be != nil {
			return nil, errRefundNotExist
		}
		refunds = o.Refunds
	default:
		return nil, lackParams("out_refund_no")
	}
	if len(refunds) == 0 {
		return nil, errRefundNotExist
	}
	refunds = s.answerRefunds(LieInRefundQuery, refunds...)
	f := v2Fields{
		"transaction_id": o.TransactionID, "out_trade_no": o.OutTradeNo, "total_fee": itoa(o.Total),
		"cash_fee": itoa(o.Total), "fee_type": "CNY", "refund_count": itoa(int64(len(refunds))),
		"total_refund_count": itoa(int64(len(o.Refunds))),
	}
	for i, rf := range refunds {
		n := "_" + strconv.Itoa(i)
		f["out_refund_no"+n] = rf.OutRefundNo
		f["refund_id"+n] = rf.RefundID
		f["refund_channel"+n] = "ORIGINAL"
		f["refund_fee"+n] = itoa(rf.Amount)
		f["settlement_refund_fee"+n] = itoa(rf.Amount)
		f["refund_status"+n] = rf.Status
		f["refund_account"+n] = "REFUND_SOURCE_UNSETTLED_FUNDS"
		f["refund_recv_accout"+n] = "支付用户零钱"
		if !rf.SuccessAt.IsZero() {
			f["refund_success_time"+n] = rf.SuccessAt.In(tollgate.Beijing).Format(time.DateTime)
		}
	}
	return f, nil
}

// findRefund finds a refund by refund_id or out_refund_no.
func (s *Server) findRefund(refundID, outRefundNo string, sandbox bool) (Refund, *bizErr) {
	if outRefundNo != "" {
		return s.queryRefund(outRefundNo, sandbox)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.refunds {
		if r.RefundID == refundID && r.sandbox == sandbox {
			return r.Refund, nil
		}
	}
	return Refund{}, errRefundNotExist
}

// v2GetSignKey answers /sandboxnew/pay/getsignkey: the request is signed
// (MD5) with the real API key; the answer carries the sandbox key.
func (s *Server) v2GetSignKey(w http.ResponseWriter, r *http.Request) {
	c, ok := s.v2Parse(w, r, "getsignkey", false)
	if !ok {
		return
	}
	if c.p["mch_id"] != s.MchID {
		writeV2(w, wxpay.EncodeV2XML(map[string]string{"return_code": "FAIL", "return_msg": "mch_id不存在"}))
		return
	}
	writeV2(w, wxpay.EncodeV2XML(map[string]string{
		"return_code": "SUCCESS", "return_msg": "ok", "mch_id": s.MchID, "sandbox_signkey": s.SandboxKey,
	}))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
