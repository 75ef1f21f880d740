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
	s.startLocked(s.paymentNotificationLocked(s.viewLocked(o)))
}

// paymentNotificationLocked builds the payment notification of the order
// view v. Its paymentBody renders any view of the order, true or not, so
// that a lie (lies.go) is signed like the truth.
func (s *Server) paymentNotificationLocked(v Order) *notification {
	n := &notification{kind: "payment", version: v.APIVersion, url: v.NotifyURL, outTradeNo: v.OutTradeNo, order: v}
	n.id = fmt.Sprintf("EV-%s%06d", v.PaidAt.In(tollgate.Beijing).Format("20060102150405"), s.notifySeq+1)
	if v.APIVersion == 2 {
		key := s.v2Key(v.Sandbox)
		n.paymentBody = func(o Order) []byte { return s.v2PaymentBody(o, key) }
		n.rebuild = func() []byte { return n.paymentBody(n.order) }
	} else {
		at := v.PaidAt
		n.paymentBody = func(o Order) []byte {
			plain, _ := json.Marshal(transaction(o))
			return s.v3Envelope(n.id, "TRANSACTION.SUCCESS", "支付成功", "transaction", plain, at)
		}
	}
	n.body = n.paymentBody(v)
	return n
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
	if o.State != StateSuccess { // only a lie (lies.go) reports another state
		m["result_code"], m["err_code"], m["err_code_des"], m["trade_state"] = "FAIL", o.State, tradeStateDesc[o.State], o.State
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

// queueRefundLocked builds the refund notification of a finished refund
// and starts delivering it.
func (s *Server) queueRefundLocked(r *refund) {
	s.startLocked(s.refundNotificationLocked(r))
}

// refundNotificationLocked builds the refund notification of r: v2 with
// req_info encrypted (AES-256-ECB, key MD5 of the API key) and no sign; v3
// REFUND.SUCCESS with an encrypted refund resource. Its refundBody renders
// any view of the refund, true or not (lies.go).
func (s *Server) refundNotificationLocked(r *refund) *notification {
	o := s.orders[r.OutTradeNo]
	n := &notification{kind: "refund", version: r.APIVersion, url: r.NotifyURL, outTradeNo: r.OutTradeNo,
		outRefundNo: r.OutRefundNo, refund: r.Refund}
	n.id = fmt.Sprintf("EV-%s%06d", r.SuccessAt.In(tollgate.Beijing).Format("20060102150405"), s.notifySeq+1)
	if r.APIVersion == 2 {
		key := s.v2Key(r.sandbox)
		n.refundBody = func(rv Refund) []byte { return s.v2RefundBody(o.AppID, o.MchID, rv, key) }
		n.rebuild = func() []byte { return n.refundBody(n.refund) }
	} else {
		n.refundBody = func(rv Refund) []byte {
			plain, _ := json.Marshal(map[string]any{
				"mchid": o.MchID, "out_trade_no": rv.OutTradeNo, "transaction_id": rv.TransactionID,
				"out_refund_no": rv.OutRefundNo, "refund_id": rv.RefundID, "refund_status": rv.Status,
				"success_time": rv.SuccessAt.In(tollgate.Beijing).Format(time.RFC3339), "user_received_account": "支付用户零钱",
				"amount": map[string]int64{"total": rv.Total, "refund": rv.Amount, "payer_total": rv.Total, "payer_refund": rv.Amount},
			})
			return s.v3Envelope(n.id, "REFUND.SUCCESS", "退款成功", "refund", plain, rv.SuccessAt)
		}
	}
	n.body = n.refundBody(r.Refund)
	return n
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
