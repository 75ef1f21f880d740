package wxpay_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// TestV2ClientAgainstEmulator runs a whole order's life through V2Client
// against the emulator (wxpaysim), so a signing or format disagreement
// between the two shows up here: order, query, pay, payment notification,
// close of a paid order, refund over TLS with a client certificate, refund
// notification, refund query and the day's bill, for both sign types, in
// production and sandbox modes.
func TestV2ClientAgainstEmulator(t *testing.T) {
	for _, sandbox := range []bool{false, true} {
		for _, st := range []string{wxpay.SignTypeMD5, wxpay.SignTypeHMACSHA256} {
			name := st
			if sandbox {
				name = "sandbox/" + st
			}
			t.Run(name, func(t *testing.T) { runV2Lifecycle(t, sandbox, st) })
		}
	}
}

func runV2Lifecycle(t *testing.T, sandbox bool, signType string) {
	ctx := context.Background()
	var c *wxpay.V2Client
	payments := make(chan *wxpay.V2PaymentNotification, 16)
	refunds := make(chan *wxpay.V2RefundNotification, 16)
	notify := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			return // the emulator's optional HEAD handshake
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, wxpay.MaxBodyBytes+1))
		if err != nil {
			return
		}
		if n, _, err := c.ParsePaymentNotification(r.Context(), body, signType); err == nil {
			payments <- n
		} else if rn, _, rerr := c.ParseRefundNotification(r.Context(), body); rerr == nil {
			refunds <- rn
		} else {
			t.Errorf("notification refused (payment: %v; refund: %v)", err, rerr)
			w.Write(wxpay.V2NotifyAck(false, "refused"))
			return
		}
		w.Write(wxpay.V2NotifyAck(true, ""))
	}))
	t.Cleanup(notify.Close)

	sim := &wxpaysim.Server{RefundDelay: -1, Logf: t.Logf}
	var secapiCalls atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Like WeChat Pay, only /secapi/ demands the merchant certificate.
		if strings.HasPrefix(r.URL.Path, "/secapi/") {
			if len(r.TLS.PeerCertificates) == 0 {
				http.Error(w, "client certificate required", http.StatusForbidden)
				return
			}
			secapiCalls.Add(1)
		}
		sim.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { sim.Close() }) // runs first: no delivery outlives the test

	_, _, cert := MustCert(t, wxpaysim.DefaultMchID, false, nil, nil)
	c = &wxpay.V2Client{
		BaseURL: srv.URL, AppID: wxpaysim.DefaultAppID, MchID: wxpaysim.DefaultMchID,
		APIKey: wxpaysim.DefaultAPIKey, SignType: signType, Sandbox: sandbox,
		HTTPClient: srv.Client(), Certificate: &cert,
	}
	const no = "tg_20261127_0001"
	order, err := c.UnifiedOrder(ctx, &wxpay.V2UnifiedOrderRequest{
		OutTradeNo: no, Body: "tollgate credits", TotalFee: 5000, SpbillCreateIP: "127.0.0.1",
		NotifyURL: notify.URL, TradeType: wxpay.V2TradeTypeNative, ProductID: "credits-5000",
		DeviceInfo: "WEB", Attach: "acct_1",
	})
	if err != nil {
		t.Fatal("unifiedorder: ", err)
	}
	if order.CodeURL == "" {
		t.Fatalf("no code_url: %+v", order)
	}
	if o, err := c.QueryOrder(ctx, wxpay.V2OrderQuery{OutTradeNo: no}); err != nil || o.TradeState != wxpay.V2TradeStateNotPay {
		t.Fatalf("orderquery before paying = %+v, %v", o, err)
	}
	if _, err := sim.Pay(no); err != nil {
		t.Fatal(err)
	}
	n := mustReceive(t, payments)
	if n.OutTradeNo != no || n.TotalFee != 5000 || n.ResultCode != "SUCCESS" || n.Attach != "acct_1" {
		t.Errorf("payment notification = %+v", n)
	}
	o, err := c.QueryOrder(ctx, wxpay.V2OrderQuery{TransactionID: n.TransactionID})
	if err != nil || o.TradeState != wxpay.V2TradeStateSuccess || o.TotalFee != 5000 || o.OutTradeNo != no {
		t.Fatalf("orderquery after paying = %+v, %v", o, err)
	}
	if err := c.CloseOrder(ctx, no); wxpay.ErrorCode(err) != "ORDERPAID" {
		t.Errorf("closeorder of a paid order: err = %v, want ORDERPAID", err)
	}

	refund := &wxpay.V2RefundRequest{OutTradeNo: no, OutRefundNo: "R" + no, TotalFee: 5000, RefundFee: 1000, NotifyURL: notify.URL}
	for range 2 { // the same out_refund_no twice refunds once
		if r, err := c.Refund(ctx, refund); err != nil || r.RefundFee != 1000 {
			t.Fatalf("refund = %+v, %v", r, err)
		}
	}
	if want := map[bool]int32{false: 2, true: 0}[sandbox]; secapiCalls.Load() != want {
		t.Errorf("%d refunds over /secapi/, want %d", secapiCalls.Load(), want)
	}
	if _, err := sim.CompleteRefund(refund.OutRefundNo); err != nil {
		t.Fatal(err)
	}
	rn := mustReceive(t, refunds)
	if rn.OutRefundNo != refund.OutRefundNo || rn.RefundFee != 1000 || rn.RefundStatus != wxpay.V2RefundStatusSuccess {
		t.Errorf("refund notification = %+v", rn)
	}
	rq, err := c.QueryRefund(ctx, wxpay.V2RefundQuery{OutTradeNo: no})
	if err != nil || len(rq.Refunds) != 1 || rq.Refunds[0].RefundStatus != wxpay.V2RefundStatusSuccess || rq.Refunds[0].RefundFee != 1000 {
		t.Fatalf("refundquery = %+v, %v", rq, err)
	}

	bill, err := c.DownloadBill(ctx, wxpay.V2BillRequest{Date: time.Now(), Gzip: true})
	if err != nil {
		t.Fatal("downloadbill: ", err)
	}
	var paid, refunded int64
	for _, r := range bill.Records {
		if r.OutTradeNo == no {
			paid += r.SettlementTotalFee
			refunded += r.RefundFee
		}
	}
	if paid != 5000 || refunded != 1000 || bill.Summary.RefundFee != 1000 {
		t.Errorf("bill: paid %d, refunded %d fen; summary %+v", paid, refunded, bill.Summary)
	}
}

// mustReceive waits for one value from ch; the deadline only guards
// against a hang, it asserts nothing about speed.
func mustReceive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("no notification arrived")
		panic("unreachable")
	}
}
