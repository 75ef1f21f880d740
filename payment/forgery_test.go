package payment_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"tollgate/payment"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// post sends a notification over HTTP to the receiver and returns the status.
func (w *world) post(t *testing.T, h http.Header, body []byte) int {
	t.Helper()
	path := "/v2"
	if w.mode.version == payment.APIv3 {
		path = "/v3"
	}
	req, err := http.NewRequest(http.MethodPost, w.notify+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// v2Payment is a payment notification's fields for order no of fen.
func v2Payment(cfg wxpaysim.Config, no string, fen int64, nonce string) map[string]string {
	return map[string]string{
		"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": cfg.AppID, "mch_id": cfg.MchID,
		"nonce_str": nonce, "out_trade_no": no, "transaction_id": "4200000000" + strconv.FormatInt(time.Now().UnixNano()%1e12, 10),
		"total_fee": strconv.FormatInt(fen, 10), "cash_fee": strconv.FormatInt(fen, 10), "fee_type": "CNY",
		"time_end": "20261127120000", "trade_type": "NATIVE", "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
		"bank_type": "OTHERS", "is_subscribe": "N",
	}
}

func signedV2(t *testing.T, m map[string]string, signType, key string) []byte {
	t.Helper()
	sig, err := wxpay.SignV2(m, signType, key)
	if err != nil {
		t.Fatal(err)
	}
	m["sign"] = sig
	return wxpay.EncodeV2XML(m)
}

type forgery struct {
	reason string
	header http.Header
	body   []byte
}

func v2Forgeries(t *testing.T, w *world, no string, fen int64) []forgery {
	cfg := w.sim.Config()
	st, other := w.mode.signType, wxpay.SignTypeMD5
	if st == wxpay.SignTypeMD5 {
		other = wxpay.SignTypeHMACSHA256
	}
	mk := func(edit func(m map[string]string)) map[string]string {
		m := v2Payment(cfg, no, fen, fmt.Sprintf("nonce%d", time.Now().UnixNano()))
		if edit != nil {
			edit(m)
		}
		return m
	}
	flipped := mk(nil)
	body := string(signedV2(t, flipped, st, cfg.APIKey))
	i := strings.Index(body, "<sign><![CDATA[") + len("<sign><![CDATA[")
	c := byte('0')
	if body[i] == '0' {
		c = '1'
	}
	flippedBody := []byte(body[:i] + string(c) + body[i+1:])
	empty := mk(nil)
	empty["sign"] = ""
	w.nonces.SetNX(w.ctx, "wxpay:v2:"+cfg.MchID+":seen-nonce", time.Hour)
	return []forgery{
		{payment.ReasonBadSignature, nil, flippedBody},
		{payment.ReasonBadSignature, nil, signedV2(t, mk(nil), st, "00000000000000000000000000000000")},
		{payment.ReasonBadSignature, nil, signedV2(t, mk(nil), other, cfg.APIKey)},
		{payment.ReasonBadSignature, nil, wxpay.EncodeV2XML(empty)},
		{payment.ReasonAmountMismatch, nil, signedV2(t, mk(func(m map[string]string) { m["total_fee"] = strconv.FormatInt(fen+1, 10) }), st, cfg.APIKey)},
		{payment.ReasonAmountMismatch, nil, signedV2(t, mk(func(m map[string]string) { m["fee_type"] = "USD" }), st, cfg.APIKey)},
		{payment.ReasonWrongMerchant, nil, signedV2(t, mk(func(m map[string]string) { m["appid"] = "wx0000000000000000" }), st, cfg.APIKey)},
		{payment.ReasonWrongMerchant, nil, signedV2(t, mk(func(m map[string]string) { m["mch_id"] = "1999999999" }), st, cfg.APIKey)},
		{payment.ReasonUnknownOrder, nil, signedV2(t, mk(func(m map[string]string) { m["out_trade_no"] = "tg20261127NOSUCHORDER0000" }), st, cfg.APIKey)},
		{payment.ReasonNotSuccess, nil, signedV2(t, mk(func(m map[string]string) { m["result_code"] = "FAIL" }), st, cfg.APIKey)},
		{payment.ReasonReplay, nil, signedV2(t, mk(func(m map[string]string) { m["nonce_str"] = "seen-nonce" }), st, cfg.APIKey)},
		{payment.ReasonMalformed, nil, []byte(`<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><out_trade_no>&x;</out_trade_no></xml>`)},
		{payment.ReasonMalformed, nil, []byte("<xml><out_trade_no>" + no + "</out_trade_no><out_trade_no>x</out_trade_no></xml>")},
		{payment.ReasonMalformed, nil, bytes.Repeat([]byte("x"), wxpay.MaxBodyBytes+10)},
	}
}

// v3Signer signs notifications as the emulator's WeChat Pay key does.
func v3Headers(t *testing.T, body []byte, ts time.Time, nonce, serial string) http.Header {
	t.Helper()
	key, err := wxpay.LoadRSAPrivateKeyPEM([]byte(wxpaysim.TestPlatformPrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	tss := strconv.FormatInt(ts.Unix(), 10)
	sig, err := wxpay.SignV3(key, wxpay.V3ResponseMessage(tss, nonce, body))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(wxpay.HeaderV3Timestamp, tss)
	h.Set(wxpay.HeaderV3Nonce, nonce)
	h.Set(wxpay.HeaderV3Serial, serial)
	h.Set(wxpay.HeaderV3SignatureType, wxpay.V3AuthScheme)
	h.Set(wxpay.HeaderV3Signature, sig)
	return h
}

func v3Body(t *testing.T, apiV3Key string, tx map[string]any, tamperTag bool) []byte {
	t.Helper()
	plain, _ := json.Marshal(tx)
	ct, err := wxpay.EncryptV3Resource(apiV3Key, "0123456789ab", "transaction", plain)
	if err != nil {
		t.Fatal(err)
	}
	if tamperTag {
		b := []byte(ct) // another valid base64 digit: a bad tag, not bad base64
		if b[len(b)-3] == 'A' {
			b[len(b)-3] = 'B'
		} else {
			b[len(b)-3] = 'A'
		}
		ct = string(b)
	}
	b, _ := json.Marshal(map[string]any{"id": "EV-1", "create_time": "2026-11-27T12:00:00+08:00",
		"resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
		"resource": map[string]string{"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
			"ciphertext": ct, "associated_data": "transaction", "nonce": "0123456789ab"}})
	return b
}

func v3Forgeries(t *testing.T, w *world, no string, fen int64) []forgery {
	cfg := w.sim.Config()
	now := w.clock.Now()
	tx := func(edit func(m map[string]any)) map[string]any {
		m := map[string]any{"appid": cfg.AppID, "mchid": cfg.MchID, "out_trade_no": no, "transaction_id": "4200000000000000000000000001",
			"trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "ok", "bank_type": "OTHERS",
			"success_time": "2026-11-27T12:00:00+08:00", "payer": map[string]string{"openid": "o1"},
			"amount": map[string]any{"total": fen, "payer_total": fen, "currency": "CNY", "payer_currency": "CNY"}}
		if edit != nil {
			edit(m)
		}
		return m
	}
	n := 0
	sign := func(body []byte, ts time.Time, serial string) http.Header {
		n++
		return v3Headers(t, body, ts, fmt.Sprintf("nonce%d", n), serial)
	}
	good := v3Body(t, cfg.APIv3Key, tx(nil), false)
	probe := sign(good, now, cfg.PlatformKeyID)
	probe.Set(wxpay.HeaderV3Signature, wxpay.V3SignatureProbePrefix+"abc")
	flipped := sign(good, now, cfg.PlatformKeyID)
	sig := []byte(flipped.Get(wxpay.HeaderV3Signature))
	// Change one base64 digit to another valid one (flipping a bit could
	// make '+' or '/' into a non-base64 byte: malformed, not a bad signature).
	if sig[5] == 'A' {
		sig[5] = 'B'
	} else {
		sig[5] = 'A'
	}
	flipped.Set(wxpay.HeaderV3Signature, string(sig))
	replay := v3Headers(t, good, now, "seen-nonce", cfg.PlatformKeyID)
	w.nonces.SetNX(w.ctx, "wxpay:v3:"+cfg.MchID+":seen-nonce", time.Hour)
	amount := v3Body(t, cfg.APIv3Key, tx(func(m map[string]any) {
		m["amount"] = map[string]any{"total": fen - 1, "payer_total": fen - 1, "currency": "CNY"}
	}), false)
	appid := v3Body(t, cfg.APIv3Key, tx(func(m map[string]any) { m["appid"] = "wx0000000000000000" }), false)
	unknown := v3Body(t, cfg.APIv3Key, tx(func(m map[string]any) { m["out_trade_no"] = "tg20261127NOSUCHORDER0000" }), false)
	notpay := v3Body(t, cfg.APIv3Key, tx(func(m map[string]any) { m["trade_state"] = "NOTPAY" }), false)
	tag := v3Body(t, cfg.APIv3Key, tx(nil), true)
	return []forgery{
		{payment.ReasonProbe, probe, good},
		{payment.ReasonBadSignature, flipped, good},
		{payment.ReasonBadSignature, sign(good, now, "PUB_KEY_ID_0000000000000000000000000000000000"), good},
		{payment.ReasonBadSignature, sign(tag, now, cfg.PlatformKeyID), tag},
		{payment.ReasonTooOld, sign(good, now.Add(-10*time.Minute), cfg.PlatformKeyID), good},
		{payment.ReasonAmountMismatch, sign(amount, now, cfg.PlatformKeyID), amount},
		{payment.ReasonWrongMerchant, sign(appid, now, cfg.PlatformKeyID), appid},
		{payment.ReasonUnknownOrder, sign(unknown, now, cfg.PlatformKeyID), unknown},
		{payment.ReasonNotSuccess, sign(notpay, now, cfg.PlatformKeyID), notpay},
		{payment.ReasonReplay, replay, good},
		{payment.ReasonMalformed, sign([]byte("{"), now, cfg.PlatformKeyID), []byte("{")},
	}
}

// TestForgedNotificationsChangeNothing: forged, tampered, replayed,
// wrong-merchant and malformed notifications, posted over HTTP, are all
// refused with 4xx, counted by reason, and leave every money table and
// order row as it was; the genuine notification then credits once.
func TestForgedNotificationsChangeNothing(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		w.mustAccount("alice")
		res := w.mustOrder("alice", "plus")
		spend(t, w, "h1", "alice", res.OutTradeNo, 10)
		var fs []forgery
		if w.mode.version == payment.APIv3 {
			fs = v3Forgeries(t, w, res.OutTradeNo, int64(res.AmountFen))
		} else {
			fs = v2Forgeries(t, w, res.OutTradeNo, int64(res.AmountFen))
		}
		before := w.digest("alice")
		want := map[string]int64{}
		for i, f := range fs {
			if st := w.post(t, f.header, f.body); st < 400 || st >= 500 {
				t.Errorf("forgery %d (%s) answered %d, want 4xx", i, f.reason, st)
			}
			want[f.reason]++
		}
		if w.digest("alice") != before {
			t.Fatal("a refused notification changed the ledger or the orders")
		}
		for reason, n := range want {
			if got := w.metrics.Get(payment.EventNotificationRejected, reason); got != n {
				t.Errorf("rejected/%s = %d, want %d (all: %v)", reason, got, n, w.metrics.Snapshot())
			}
		}
		if got, all := w.metrics.Sum(payment.EventNotificationRejected), int64(len(fs)); got != all {
			t.Errorf("%d rejections counted, want %d", got, all)
		}
		if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
		if ls := w.lots("alice"); len(ls) != 1 || ls[0].Fen != res.AmountFen {
			t.Fatalf("lots %+v", ls)
		}
	})
}

// TestRefundNotificationsMustMatch: a refund notification is acted on only
// for a refund we asked for, with its amount; others are refused and
// change nothing.
func TestRefundNotificationsMustMatch(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		w.mustAccount("alice")
		res := w.mustOrder("alice", "starter")
		if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
		r, err := w.svc.Refund(w.ctx, "alice", res.OutTradeNo)
		if err != nil {
			t.Fatal(err)
		}
		cfg := w.sim.Config()
		var fs []forgery
		if w.mode.version == payment.APIv3 {
			mk := func(no string, fen int64) forgery {
				plain, _ := json.Marshal(map[string]any{"mchid": cfg.MchID, "out_trade_no": res.OutTradeNo,
					"transaction_id": "4200000000000000000000000009", "out_refund_no": no, "refund_id": "50300000000",
					"refund_status": "SUCCESS", "success_time": "2026-11-27T12:00:00+08:00", "user_received_account": "x",
					"amount": map[string]int64{"total": int64(res.AmountFen), "refund": fen, "payer_total": int64(res.AmountFen), "payer_refund": fen}})
				ct, err := wxpay.EncryptV3Resource(cfg.APIv3Key, "0123456789ab", "refund", plain)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := json.Marshal(map[string]any{"id": "EV-2", "create_time": "2026-11-27T12:00:00+08:00",
					"resource_type": "encrypt-resource", "event_type": "REFUND.SUCCESS", "summary": "退款成功",
					"resource": map[string]string{"original_type": "refund", "algorithm": "AEAD_AES_256_GCM",
						"ciphertext": ct, "associated_data": "refund", "nonce": "0123456789ab"}})
				return forgery{"", v3Headers(t, body, w.clock.Now(), fmt.Sprintf("n%d%s", fen, no), cfg.PlatformKeyID), body}
			}
			fs = []forgery{mk("R-not-ours", int64(r.RefundFen)), mk(r.OutRefundNo, int64(r.RefundFen)+1)}
		} else {
			mk := func(no string, fen int64, key string) forgery {
				enc, err := wxpay.EncryptV2RefundReqInfo(map[string]string{"transaction_id": "4200000000000000000000000009",
					"out_trade_no": res.OutTradeNo, "refund_id": "50300000000", "out_refund_no": no,
					"total_fee": strconv.FormatInt(int64(res.AmountFen), 10), "settlement_total_fee": strconv.FormatInt(int64(res.AmountFen), 10),
					"refund_fee": strconv.FormatInt(fen, 10), "settlement_refund_fee": strconv.FormatInt(fen, 10),
					"refund_status": "SUCCESS", "success_time": "2026-11-27 12:00:00", "refund_recv_accout": "x",
					"refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS", "refund_request_source": "API"}, key)
				if err != nil {
					t.Fatal(err)
				}
				return forgery{"", nil, wxpay.EncodeV2XML(map[string]string{"return_code": "SUCCESS", "appid": cfg.AppID,
					"mch_id": cfg.MchID, "nonce_str": fmt.Sprintf("n%d%s", fen, no), "req_info": enc})}
			}
			fs = []forgery{mk("R-not-ours", int64(r.RefundFen), cfg.APIKey), mk(r.OutRefundNo, int64(r.RefundFen)+1, cfg.APIKey),
				mk(r.OutRefundNo, int64(r.RefundFen), "00000000000000000000000000000000")}
		}
		before := w.digest("alice")
		for i, f := range fs {
			if st := w.post(t, f.header, f.body); st != http.StatusBadRequest {
				t.Errorf("refund forgery %d answered %d", i, st)
			}
		}
		if w.digest("alice") != before {
			t.Fatal("a refused refund notification changed something")
		}
		if w.metrics.Get(payment.EventNotificationRejected, payment.ReasonUnknownRefund) != 1 ||
			w.metrics.Get(payment.EventNotificationRejected, payment.ReasonAmountMismatch) != 1 {
			t.Fatalf("metrics %v", w.metrics.Snapshot())
		}
		if _, err := w.sim.CompleteRefund(r.OutRefundNo); err != nil {
			t.Fatal(err)
		}
		w.eventually("the genuine refund notification", func() bool {
			rec, _ := w.store.Refund(w.ctx, r.OutRefundNo)
			return rec.Status == payment.RefundSucceeded
		})
	})
}

// TestConcurrentDuplicatesAcrossInstances: the same genuine notification
// fired at two instances at once through a barrier: every copy is
// acknowledged and exactly one lot exists (docs/DESIGN.md §7.2 F2).
func TestConcurrentDuplicatesAcrossInstances(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		cfg := w.svc.Config()
		cfg.InstanceID, cfg.TokenSecret = "second", []byte("test secret")
		other, err := payment.New(cfg, payment.Deps{Ledger: w.ledger, Store: w.store, Pricer: mustPricer(t),
			Nonces: w.nonces, Limiter: w.nonces, V2: w.v2, V3: w.v3, Clock: w.clock})
		if err != nil {
			t.Fatal(err)
		}
		w.mustAccount("alice")
		res := w.mustOrder("alice", "plus")
		sc := w.sim.Config()
		var h http.Header
		var body []byte
		if w.mode.version == payment.APIv3 {
			body = v3Body(t, sc.APIv3Key, map[string]any{"appid": sc.AppID, "mchid": sc.MchID, "out_trade_no": res.OutTradeNo,
				"transaction_id": "4200000000000000000000000042", "trade_type": "NATIVE", "trade_state": "SUCCESS",
				"success_time": "2026-11-27T12:00:00+08:00", "amount": map[string]any{"total": int64(res.AmountFen), "currency": "CNY"}}, false)
			h = v3Headers(t, body, w.clock.Now(), "dup-nonce", sc.PlatformKeyID)
		} else {
			body = signedV2(t, v2Payment(sc, res.OutTradeNo, int64(res.AmountFen), "dup-nonce"), w.mode.signType, sc.APIKey)
		}
		const copies = 8
		start := make(chan struct{})
		statuses := make(chan int, copies)
		for i := range copies {
			s := []*payment.Service{w.svc, other}[i%2]
			go func() {
				<-start
				var st int
				if h != nil {
					st, _ = s.HandleV3Notification(w.ctx, h, body)
				} else {
					st, _ = s.HandleV2Notification(w.ctx, body)
				}
				statuses <- st
			}()
		}
		close(start)
		for range copies {
			if st := <-statuses; st != http.StatusOK {
				t.Errorf("a copy was answered %d", st)
			}
		}
		if ls := w.lots("alice"); len(ls) != 1 || ls[0].Fen != res.AmountFen {
			t.Fatalf("lots %+v", ls)
		}
		if o := w.order(res.OutTradeNo); o.Status != payment.StatusSuccess {
			t.Fatalf("order %s", o.Status)
		}
	})
}
