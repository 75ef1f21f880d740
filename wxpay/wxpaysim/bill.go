package wxpaysim

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"strings"
	"time"

	"tollgate"
	"tollgate/wxpay"
)

// Bill columns (docs/WECHATPAY.md §2.10). Every data field is prefixed with a
// backtick; amounts are in yuan with two decimals. Unlike WeChat Pay, which
// builds day T's bill on T+1 from 09:00, the emulator serves any past or
// current day at once, computed from its orders.
var (
	billColsAll = []string{"交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识",
		"交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号", "商户退款单号", "退款金额",
		"充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注"}
	billColsSuccess = []string{"交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识",
		"交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "商品名称", "商户数据包", "手续费", "费率",
		"订单金额", "费率备注"}
	billColsRefund = append(append(append([]string{}, billColsAll[:14]...), "退款申请时间", "退款成功时间"), billColsAll[14:]...)

	billSumAll     = []string{"总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额", "申请退款总金额"}
	billSumSuccess = []string{"总交易单数", "应结订单总金额", "手续费总金额", "订单总金额"}
)

// feeRatePermille is the merchant fee the bill shows (0.6%), in 1/1000.
const feeRatePermille = 6

// yuan formats fen as yuan with two decimals ("-0.05" for -5).
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

// fee is the merchant fee on amount fen, rounded half up.
func fee(amount int64) int64 { return (amount*feeRatePermille + 500) / 1000 }

// bill renders the trade bill of one Beijing day: payments by payment
// time, refunds by acceptance time. ok is false when there is no row.
func (s *Server) bill(day time.Time, billType string, sandbox bool) (text []byte, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, tollgate.Beijing)
	end := start.AddDate(0, 0, 1)
	in := func(t time.Time) bool { return !t.IsZero() && !t.Before(start) && t.Before(end) }

	cols, sumCols := billColsAll, billSumAll
	switch billType {
	case "SUCCESS":
		cols, sumCols = billColsSuccess, billSumSuccess
	case "REFUND":
		cols = billColsRefund
	}
	var rows [][]string
	var settled, refunded, fees, ordered int64
	for _, no := range s.orderSeq {
		o := s.orders[no]
		if o.Sandbox != sandbox {
			continue
		}
		if billType != "REFUND" && in(o.PaidAt) {
			f := fee(o.Total)
			settled, fees, ordered = settled+o.Total, fees+f, ordered+o.Total
			rows = append(rows, pick(cols, s.billRowLocked(o, nil, f)))
		}
		if billType == "SUCCESS" {
			continue
		}
		for _, rno := range o.refundNos {
			r := s.refunds[rno]
			if !in(r.CreatedAt) {
				continue
			}
			f := -fee(r.Amount)
			refunded, fees = refunded+r.Amount, fees+f
			rows = append(rows, pick(cols, s.billRowLocked(o, r, f)))
		}
	}
	if len(rows) == 0 {
		return nil, false
	}
	sums := map[string]string{
		"总交易单数": fmt.Sprint(len(rows)), "应结订单总金额": yuan(settled), "退款总金额": yuan(refunded),
		"充值券退款总金额": "0.00", "手续费总金额": yuan(fees), "订单总金额": yuan(ordered), "申请退款总金额": yuan(refunded),
	}
	var b bytes.Buffer
	b.WriteString("\ufeff")
	b.WriteString(strings.Join(cols, ",") + "\r\n")
	for _, r := range rows {
		b.WriteString("`" + strings.Join(r, ",`") + "\r\n")
	}
	b.WriteString(strings.Join(sumCols, ",") + "\r\n")
	b.WriteString("`" + strings.Join(pick(sumCols, sums), ",`") + "\r\n")
	return b.Bytes(), true
}

// billRowLocked returns every column of a payment row (r nil) or a refund row.
func (s *Server) billRowLocked(o *order, r *refund, f int64) map[string]string {
	m := map[string]string{
		"交易时间": o.PaidAt.In(tollgate.Beijing).Format(time.DateTime), "公众账号ID": o.AppID, "商户号": o.MchID,
		"特约商户号": "0", "设备号": o.DeviceInfo, "微信订单号": o.TransactionID, "商户订单号": o.OutTradeNo,
		"用户标识": o.OpenID, "交易类型": o.TradeType, "交易状态": "SUCCESS", "付款银行": "OTHERS", "货币种类": "CNY",
		"应结订单金额": yuan(o.Total), "代金券金额": "0.00", "微信退款单号": "0", "商户退款单号": "0", "退款金额": "0.00",
		"充值券退款金额": "0.00", "退款类型": "", "退款状态": "", "商品名称": o.Description, "商户数据包": o.Attach,
		"手续费": yuan(f), "费率": "0.60%", "订单金额": yuan(o.Total), "申请退款金额": "0.00", "费率备注": "",
		"退款申请时间": "", "退款成功时间": "",
	}
	if r != nil {
		m["交易状态"], m["应结订单金额"], m["订单金额"] = "REFUND", "0.00", "0.00"
		m["交易时间"] = r.CreatedAt.In(tollgate.Beijing).Format(time.DateTime)
		m["微信退款单号"], m["商户退款单号"] = r.RefundID, r.OutRefundNo
		m["退款金额"], m["申请退款金额"], m["退款类型"], m["退款状态"] = yuan(r.Amount), yuan(r.Amount), "ORIGINAL", r.Status
		m["退款申请时间"] = r.CreatedAt.In(tollgate.Beijing).Format(time.DateTime)
		if !r.SuccessAt.IsZero() {
			m["退款成功时间"] = r.SuccessAt.In(tollgate.Beijing).Format(time.DateTime)
		}
	}
	return m
}

func pick(cols []string, m map[string]string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = m[c]
	}
	return out
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// v2BillHandler serves /pay/downloadbill: the bill text on success, an
// unsigned FAIL XML with error_code otherwise (as WeChat Pay answers).
func (s *Server) v2BillHandler(sandbox bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.v2Parse(w, r, epBill, sandbox)
		if !ok {
			return
		}
		fail := func(msg, code string) {
			writeV2(w, wxpay.EncodeV2XML(map[string]string{"return_code": "FAIL", "return_msg": msg, "error_code": code}))
		}
		if be := s.v2Check(c, epBill); be != nil {
			fail(be.msg, be.v2Code)
			return
		}
		day, err := time.ParseInLocation("20060102", c.p["bill_date"], tollgate.Beijing)
		if err != nil || day.After(s.now()) {
			fail("invalid bill_date", "20003")
			return
		}
		bt := c.p["bill_type"]
		if bt == "" {
			bt = "ALL"
		}
		if bt != "ALL" && bt != "SUCCESS" && bt != "REFUND" {
			fail("invalid bill_type", "20003")
			return
		}
		text, ok := s.bill(day, bt, sandbox)
		if !ok {
			fail("No Bill Exist", "20002")
			return
		}
		if c.p["tar_type"] == "GZIP" {
			w.Header().Set("Content-Type", "application/x-gzip")
			_, _ = w.Write(gzipBytes(text))
			return
		}
		w.Header().Set("Content-Type", "text/plain;charset=utf-8")
		_, _ = w.Write(text)
	})
}
