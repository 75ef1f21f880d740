package wxpaysim

import (
	"encoding/json"
	"fmt"
	"time"

	"tollgate"
	"tollgate/wxpay"
)

// queuePaymentLocked builds the payment notification of a paid order in
// its API version and starts delivering it.
func (s *Server) queuePaymentLocked(o *order) {
	n := &notification{kind: "payment", version: o.APIVersion, url: o.NotifyURL, outTradeNo: o.OutTradeNo}
	n.id = fmt.Sprintf("EV-%s%06d", o.PaidAt.In(tollgate.Beijing).Format("20060102150405"), s.notifySeq+1)
	v := s.viewLocked(o)
	if o.APIVersion == 2 {
		key := s.v2Key(o.Sandbox)
		n.rebuild = func() []byte { return s.v2PaymentBody(v, key) }
		n.body = n.rebuild()
	} else {
		plain, _ := json.Marshal(transaction(v))
		n.body = s.v3Envelope(n.id, "TRANSACTION.SUCCESS", "支付成功", "transaction", plain, o.PaidAt)
	}
	s.startLocked(n)
}

// v2PaymentBody is a v2 payment notification: every field signed with the
// order's sign type, and no sign_type field (as WeChat Pay sends them).
func (s *Server) v2PaymentBody(o Order, key string) []byte {
	m := map[string]string{
		"return_code": "SUCCESS", "return_msg": "OK", "result_code": "SUCCESS",
		"appid": o.AppID, "mch_id": o.MchID, "device_info": o.DeviceInfo, "nonce_str": randAlnum(32),
		"openid": o.OpenID, "is_subscribe": "N", "trade_type": o.TradeType, "bank_type": "OTHERS",
		"total_fee": itoa(o.Total), "fee_type": "CNY", "cash_fee": itoa(o.Total),
		"transaction_id": o.TransactionID, "out_trade_no": o.OutTradeNo, "attach": o.Attach,
		"time_end": o.PaidAt.In(tollgate.Beijing).Format("20060102150405"),
	}
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	sig, err := wxpay.SignV2(m, o.SignType, key)
	if err != nil {
		s.logf("wxpaysim: sign notification: %v", err)
	}
	m["sign"] = sig
	return wxpay.EncodeV2XML(m)
}

func (s *Server) v2Key(sandbox bool) string {
	if sandbox {
		return s.SandboxKey
	}
	return s.APIKey
}

// queueRefundLocked builds the refund notification of a finished refund:
// v2 with req_info encrypted (AES-256-ECB, key MD5 of the API key) and no
// sign; v3 REFUND.SUCCESS with an encrypted refund resource.
func (s *Server) queueRefundLocked(r *refund) {
	o := s.orders[r.OutTradeNo]
	n := &notification{kind: "refund", version: r.APIVersion, url: r.NotifyURL, outTradeNo: r.OutTradeNo, outRefundNo: r.OutRefundNo}
	n.id = fmt.Sprintf("EV-%s%06d", r.SuccessAt.In(tollgate.Beijing).Format("20060102150405"), s.notifySeq+1)
	if r.APIVersion == 2 {
		key := s.v2Key(r.sandbox)
		rv := r.Refund
		n.rebuild = func() []byte { return s.v2RefundBody(o.AppID, o.MchID, rv, key) }
		n.body = n.rebuild()
	} else {
		plain, _ := json.Marshal(map[string]any{
			"mchid": o.MchID, "out_trade_no": r.OutTradeNo, "transaction_id": r.TransactionID,
			"out_refund_no": r.OutRefundNo, "refund_id": r.RefundID, "refund_status": r.Status,
			"success_time": r.SuccessAt.In(tollgate.Beijing).Format(time.RFC3339), "user_received_account": "支付用户零钱",
			"amount": map[string]int64{"total": r.Total, "refund": r.Amount, "payer_total": r.Total, "payer_refund": r.Amount},
		})
		n.body = s.v3Envelope(n.id, "REFUND.SUCCESS", "退款成功", "refund", plain, r.SuccessAt)
	}
	s.startLocked(n)
}

func (s *Server) v2RefundBody(appID, mchID string, r Refund, key string) []byte {
	plain := map[string]string{
		"transaction_id": r.TransactionID, "out_trade_no": r.OutTradeNo, "refund_id": r.RefundID,
		"out_refund_no": r.OutRefundNo, "total_fee": itoa(r.Total), "settlement_total_fee": itoa(r.Total),
		"refund_fee": itoa(r.Amount), "settlement_refund_fee": itoa(r.Amount), "refund_status": r.Status,
		"success_time": r.SuccessAt.In(tollgate.Beijing).Format(time.DateTime), "refund_recv_accout": "支付用户零钱",
		"refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS", "refund_request_source": "API",
		"cash_refund_fee": itoa(r.Amount),
	}
	enc, err := wxpay.EncryptV2RefundReqInfo(plain, key)
	if err != nil {
		s.logf("wxpaysim: encrypt req_info: %v", err)
	}
	return wxpay.EncodeV2XML(map[string]string{
		"return_code": "SUCCESS", "appid": appID, "mch_id": mchID, "nonce_str": randAlnum(32), "req_info": enc,
	})
}

// v3Envelope encrypts plain as the resource of a v3 notification.
func (s *Server) v3Envelope(id, event, summary, kind string, plain []byte, at time.Time) []byte {
	nonce := randAlnum(12)
	ct, err := wxpay.EncryptV3Resource(s.APIv3Key, nonce, kind, plain)
	if err != nil {
		s.logf("wxpaysim: encrypt resource: %v", err)
	}
	b, _ := json.Marshal(map[string]any{
		"id": id, "create_time": at.In(tollgate.Beijing).Format(time.RFC3339), "resource_type": "encrypt-resource",
		"event_type": event, "summary": summary,
		"resource": map[string]string{
			"original_type": kind, "algorithm": "AEAD_AES_256_GCM", "ciphertext": ct,
			"associated_data": kind, "nonce": nonce,
		},
	})
	return b
}
