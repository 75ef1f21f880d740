package wxpay_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/wxpay"
)

func TestV2Sandbox(t *testing.T) {
	const sandboxKey = "8d9f0c5b9e1a4c7f2b3d6e8a1c4f7b2e"
	var keyCalls atomic.Int32
	f := &fakeV2{Key: sandboxKey, Answer: func(path string, req map[string]string) map[string]string {
		if path == "/sandboxnew/pay/refund" {
			return map[string]string{"out_refund_no": req["out_refund_no"], "refund_id": "5000", "refund_fee": req["refund_fee"]}
		}
		return codeURLAnswer(path, req)
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sandboxnew/pay/getsignkey", func(w http.ResponseWriter, r *http.Request) {
		keyCalls.Add(1)
		req, err := wxpay.ReadV2XML(r.Body)
		// getsignkey is signed with MD5 and the real API key, and has no appid.
		if err != nil || wxpay.VerifyV2(req, wxpay.SignTypeMD5, v2Key) != nil || req["appid"] != "" || req["mch_id"] != testMchID {
			w.Write(wxpay.EncodeV2XML(map[string]string{"return_code": "FAIL", "return_msg": "签名错误"}))
			return
		}
		w.Write(wxpay.EncodeV2XML(map[string]string{
			"return_code": "SUCCESS", "return_msg": "ok", "mch_id": testMchID, "sandbox_signkey": sandboxKey,
		}))
	})
	mux.Handle("/", f)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := &wxpay.V2Client{BaseURL: srv.URL + "/", AppID: testAppID, MchID: testMchID, APIKey: v2Key, Sandbox: true}

	for range 2 {
		if _, err := c.UnifiedOrder(context.Background(), nativeOrder()); err != nil {
			t.Fatal(err)
		}
	}
	// Sandbox refunds need no certificate and skip /secapi.
	r, err := c.Refund(context.Background(), &wxpay.V2RefundRequest{OutTradeNo: "tg_1", OutRefundNo: "R1", TotalFee: 5000, RefundFee: 1000})
	if err != nil || r.RefundFee != 1000 {
		t.Fatalf("sandbox refund = %+v, %v", r, err)
	}
	if n := keyCalls.Load(); n != 1 {
		t.Errorf("getsignkey called %d times, want once (cached)", n)
	}
	var paths []string
	for _, r := range f.requests() {
		paths = append(paths, r.Path)
	}
	want := []string{"/sandboxnew/pay/unifiedorder", "/sandboxnew/pay/unifiedorder", "/sandboxnew/pay/refund"}
	if !slices.Equal(paths, want) {
		t.Errorf("paths = %q, want %q", paths, want)
	}
}

func TestV2SandboxKeyRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(wxpay.EncodeV2XML(map[string]string{"return_code": "FAIL", "return_msg": "签名错误"}))
	}))
	defer srv.Close()
	c := &wxpay.V2Client{BaseURL: srv.URL, AppID: testAppID, MchID: testMchID, APIKey: "wrong", Sandbox: true}
	var api *wxpay.APIError
	if err := c.CloseOrder(context.Background(), "tg_1"); !errors.As(err, &api) || !api.Communication {
		t.Errorf("err = %v, want a communication APIError from getsignkey", err)
	}
}

func TestV2DownloadBill(t *testing.T) {
	plain := MustReadFile(t, "bill_all.csv")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	f := &fakeV2{Raw: func(w http.ResponseWriter, _ string, req map[string]string) {
		switch {
		case req["bill_date"] != "20261126":
			w.Write(MustReadFile(t, "bill_fail_nobill.xml"))
		case req["tar_type"] == "GZIP":
			w.Write(gz.Bytes())
		default:
			w.Write(plain)
		}
	}}
	c := MustV2Client(t, f, wxpay.SignTypeHMACSHA256)
	// 2026-11-25 17:00 UTC is already 2026-11-26 in Beijing.
	day := time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)
	for _, gzipped := range []bool{false, true} {
		b, err := c.DownloadBill(context.Background(), wxpay.V2BillRequest{Date: day, Gzip: gzipped})
		if err != nil {
			t.Fatalf("gzip=%v: %v", gzipped, err)
		}
		if len(b.Records) != 3 || b.Summary.SettlementTotalFee != 5003 {
			t.Errorf("gzip=%v: bill = %d records, summary %+v", gzipped, len(b.Records), b.Summary)
		}
	}
	p := f.requests()[0].Params
	if f.requests()[0].Path != "/pay/downloadbill" || p["bill_type"] != "ALL" || p["sign_type"] != wxpay.SignTypeHMACSHA256 {
		t.Errorf("request = %v", p)
	}
	_, err := c.DownloadBill(context.Background(), wxpay.V2BillRequest{Date: day.AddDate(0, 0, -3)})
	var api *wxpay.APIError
	if !errors.As(err, &api) || !api.Communication || api.Code != "20002" || api.Message != "No Bill Exist" {
		t.Errorf("no bill: err = %#v", err)
	}
}

// MustCert returns a certificate for cn signed by parent (self-signed when
// parent is nil) and its key.
func MustCert(tb testing.TB, cn string, isCA bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, tls.Certificate) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IsCA:         isCA, BasicConstraintsValid: true,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert, key, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
}

func TestV2RefundMutualTLS(t *testing.T) {
	ca, caKey, _ := MustCert(t, "WeChat Pay merchant CA (test)", true, nil, nil)
	_, _, merchant := MustCert(t, testMchID, false, ca, caKey)
	_, _, stranger := MustCert(t, "someone else", false, nil, nil)

	f := &fakeV2{Key: v2Key, Answer: func(_ string, req map[string]string) map[string]string {
		return map[string]string{
			"transaction_id": "4200000263202611260000000001", "out_trade_no": req["out_trade_no"],
			"out_refund_no": req["out_refund_no"], "refund_id": "50000408942026112600000000001",
			"refund_fee": req["refund_fee"], "total_fee": req["total_fee"], "cash_fee": req["total_fee"],
		}
	}}
	var peers atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peers.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		f.ServeHTTP(w, r)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()

	req := &wxpay.V2RefundRequest{OutTradeNo: "tg_1", OutRefundNo: "R_tg_1", TotalFee: 5000, RefundFee: 1000, RefundDesc: "unused credits"}
	newClient := func(cert *tls.Certificate) *wxpay.V2Client {
		return &wxpay.V2Client{BaseURL: srv.URL, AppID: testAppID, MchID: testMchID, APIKey: v2Key,
			HTTPClient: srv.Client(), Certificate: cert}
	}

	t.Run("merchant certificate", func(t *testing.T) {
		r, err := newClient(&merchant).Refund(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if r.RefundID == "" || r.RefundFee != 1000 || r.TotalFee != 5000 || r.OutRefundNo != "R_tg_1" {
			t.Errorf("refund = %+v", r)
		}
		got := f.requests()[0]
		if got.Path != "/secapi/pay/refund" || got.Params["refund_desc"] != "unused credits" || peers.Load() != testMchID {
			t.Errorf("request = %+v from %v", got, peers.Load())
		}
	})
	t.Run("no certificate configured", func(t *testing.T) {
		if _, err := newClient(nil).Refund(context.Background(), req); !errors.Is(err, wxpay.ErrV2Request) {
			t.Errorf("err = %v, want ErrV2Request", err)
		}
	})
	t.Run("certificate the server does not trust", func(t *testing.T) {
		var te *wxpay.TransportError
		if _, err := newClient(&stranger).Refund(context.Background(), req); !errors.As(err, &te) {
			t.Errorf("err = %v, want *TransportError", err)
		}
	})
	t.Run("transport that cannot carry a certificate", func(t *testing.T) {
		c := newClient(&merchant)
		c.HTTPClient = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			t.Error("request sent")
			return nil, errors.New("unreachable")
		})}
		if _, err := c.Refund(context.Background(), req); !errors.Is(err, wxpay.ErrV2Request) {
			t.Errorf("err = %v, want ErrV2Request", err)
		}
	})
	t.Run("amounts checked before sending", func(t *testing.T) {
		bad := *req
		bad.RefundFee = 5001
		if _, err := newClient(&merchant).Refund(context.Background(), &bad); !errors.Is(err, wxpay.ErrV2Request) {
			t.Errorf("err = %v, want ErrV2Request", err)
		}
	})
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d refunds reached the server, want 1", n)
	}
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip implements http.RoundTripper.
func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestV2DownloadBillBadAnswers(t *testing.T) {
	tests := map[string][]byte{
		"gzip header, garbage after": {0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02},
		"XML SUCCESS without a bill": []byte("<xml><return_code>SUCCESS</return_code></xml>"),
		"XML with a DOCTYPE":         []byte("<?xml version=\"1.0\"?><!DOCTYPE x><xml></xml>"),
		"text that is not a bill":    []byte("hello"),
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			c := MustV2Client(t, &fakeV2{Raw: func(w http.ResponseWriter, _ string, _ map[string]string) { w.Write(body) }}, "")
			var te *wxpay.TransportError
			if _, err := c.DownloadBill(context.Background(), wxpay.V2BillRequest{Date: time.Now()}); !errors.As(err, &te) {
				t.Errorf("err = %v, want *TransportError", err)
			}
		})
	}
	c := MustV2Client(t, &fakeV2{}, "")
	if _, err := c.DownloadBill(context.Background(), wxpay.V2BillRequest{}); !errors.Is(err, wxpay.ErrV2Request) {
		t.Errorf("no date: err = %v, want ErrV2Request", err)
	}
}
