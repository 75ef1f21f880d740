package wxpay_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/wxpay"
)

func TestParseV3NotificationVectors(t *testing.T) {
	for _, v := range mustNotifyVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			n, err := wxpay.ParseV3Notification(v.header(), MustReadV3(t, v.BodyFile), v.keyring(t), v.APIv3Key, time.Unix(v.Now, 0))
			if len(v.APIv3Key) != 32 {
				// wechatpay-go's vector uses a 16-byte key: the signature
				// verifies (TestV3KeyringVerifyResponseVectors) but the
				// resource is refused, as AES-256 is the only algorithm.
				checkErrIs(t, err, wxpay.ErrV3KeyLength)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.ID != v.ID || n.EventType != v.EventType || string(n.Plaintext) != v.plaintext(t) || n.Serial != v.Headers["Wechatpay-Serial"] {
				t.Errorf("notification = %+v", n)
			}
		})
	}
}

func TestV3NotificationTransactionE(t *testing.T) {
	v := mustNotifyVectors(t)[0]
	n, err := wxpay.ParseV3Notification(v.header(), MustReadV3(t, v.BodyFile), v.keyring(t), v.APIv3Key, time.Unix(v.Now, 0))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := n.Transaction()
	if err != nil {
		t.Fatal(err)
	}
	if tx.MchID != "1230000109" || tx.AppID != "wxd678efh567hg6787" || tx.OutTradeNo != "1217752501201407033233368018" ||
		tx.TransactionID != "4200000001201407033233368018" || tx.TradeState != wxpay.V3TradeStateSuccess ||
		tx.Amount.Total != 100 || tx.Amount.PayerTotal != 100 || tx.Payer.OpenID != "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" {
		t.Errorf("transaction = %+v", tx)
	}
	if _, err := n.Refund(); !errors.Is(err, wxpay.ErrMalformed) {
		t.Errorf("Refund() of a payment notification: %v", err)
	}
}

// v3Envelope builds notifications signed by the test WeChat Pay key.
type v3Envelope struct {
	ID           string            `json:"id"`
	CreateTime   string            `json:"create_time"`
	ResourceType string            `json:"resource_type"`
	EventType    string            `json:"event_type"`
	Summary      string            `json:"summary"`
	Resource     wxpay.V3Resource  `json:"resource"`
	Extra        map[string]string `json:"extra,omitempty"`
}

func newV3Envelope(tb testing.TB, event, originalType string, plaintext []byte) v3Envelope {
	tb.Helper()
	e := v3Envelope{
		ID: "EV-2026010100000000001", CreateTime: "2026-01-01T08:00:00+08:00", ResourceType: "encrypt-resource",
		EventType: event, Summary: "通知",
		Resource: wxpay.V3Resource{OriginalType: originalType, Algorithm: wxpay.V3Algorithm, AssociatedData: originalType, Nonce: "fGhIjKlMnOpQ"},
	}
	var err error
	e.Resource.Ciphertext, err = wxpay.EncryptV3Resource(v3TestAPIKey, e.Resource.Nonce, e.Resource.AssociatedData, plaintext)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// signed returns the body and headers WeChat Pay would send at v3TestNow.
func (e v3Envelope) signed(tb testing.TB) (http.Header, []byte) {
	tb.Helper()
	body, err := json.Marshal(e)
	if err != nil {
		tb.Fatal(err)
	}
	return signV3Body(tb, body), body
}

func signV3Body(tb testing.TB, body []byte) http.Header {
	tb.Helper()
	ts := strconv.FormatInt(v3TestNow.Unix(), 10)
	sig, err := wxpay.SignV3(MustV3PrivateKey(tb, "wechatpay_key.pem"), wxpay.V3ResponseMessage(ts, "n0nce", body))
	if err != nil {
		tb.Fatal(err)
	}
	h := http.Header{}
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", "n0nce")
	h.Set("Wechatpay-Serial", v3TestPubKeyID)
	h.Set("Wechatpay-Signature-Type", wxpay.V3AuthScheme)
	h.Set("Wechatpay-Signature", sig)
	return h
}

// TestParseV3NotificationMutations: every forged, tampered or stale
// notification is refused with its sentinel, and the signature headers
// are judged before the body.
func TestParseV3NotificationMutations(t *testing.T) {
	plain := MustReadV3(t, "notify_v3-e_plaintext.json")
	good := newV3Envelope(t, wxpay.V3EventTransactionSuccess, "transaction", plain)
	resigned := func(m func(*v3Envelope)) func(tb testing.TB) (http.Header, []byte) {
		return func(tb testing.TB) (http.Header, []byte) {
			e := good
			m(&e)
			return e.signed(tb)
		}
	}
	headers := func(m func(http.Header)) func(tb testing.TB) (http.Header, []byte) {
		return func(tb testing.TB) (http.Header, []byte) {
			h, b := good.signed(tb)
			m(h)
			return h, b
		}
	}
	flipTag := func(e *v3Envelope) {
		raw, _ := base64.StdEncoding.DecodeString(e.Resource.Ciphertext)
		raw[len(raw)-1] ^= 1
		e.Resource.Ciphertext = base64.StdEncoding.EncodeToString(raw)
	}
	tests := []struct {
		name string
		make func(tb testing.TB) (http.Header, []byte)
		key  string
		want error
	}{
		{"OK", resigned(func(*v3Envelope) {}), v3TestAPIKey, nil},
		{"GCMTagFlipped", resigned(flipTag), v3TestAPIKey, wxpay.ErrBadSignature},
		{"AssociatedDataChanged", resigned(func(e *v3Envelope) { e.Resource.AssociatedData = "refund" }), v3TestAPIKey, wxpay.ErrBadSignature},
		{"WrongAlgorithm", resigned(func(e *v3Envelope) { e.Resource.Algorithm = "AEAD_AES_128_GCM" }), v3TestAPIKey, wxpay.ErrMalformed},
		{"WrongResourceType", resigned(func(e *v3Envelope) { e.ResourceType = "plain" }), v3TestAPIKey, wxpay.ErrMalformed},
		{"NoID", resigned(func(e *v3Envelope) { e.ID = "" }), v3TestAPIKey, wxpay.ErrMalformed},
		{"UnknownFieldsAreFine", resigned(func(e *v3Envelope) { e.Extra = map[string]string{"new": "field"} }), v3TestAPIKey, nil},
		{"Key16Refused", resigned(func(*v3Envelope) {}), v3TestAPIKey[:16], wxpay.ErrV3KeyLength},
		{"OtherAPIv3Key", resigned(func(*v3Envelope) {}), "0123456789abcdefghijklmnopqrstuw", wxpay.ErrBadSignature},
		{"BodyChangedAfterSigning", func(tb testing.TB) (http.Header, []byte) {
			h, b := good.signed(tb)
			return h, []byte(strings.Replace(string(b), `"通知"`, `"通芝"`, 1))
		}, v3TestAPIKey, wxpay.ErrBadSignature},
		{"SignedNotJSON", func(tb testing.TB) (http.Header, []byte) {
			b := []byte(`{"id":`)
			return signV3Body(tb, b), b
		}, v3TestAPIKey, wxpay.ErrMalformed},
		{"ProbeBeforeBody", func(tb testing.TB) (http.Header, []byte) {
			h := signV3Body(tb, nil)
			h.Set("Wechatpay-Signature", "WECHATPAY/SIGNTEST/xyz")
			return h, []byte(`not even json`)
		}, v3TestAPIKey, wxpay.ErrSignatureProbe},
		{"UnsignedGarbage", func(tb testing.TB) (http.Header, []byte) {
			return http.Header{}, []byte(`<xml>`)
		}, v3TestAPIKey, wxpay.ErrNotSigned},
		{"Stale", headers(func(h http.Header) { h.Set("Wechatpay-Timestamp", strconv.FormatInt(v3TestNow.Unix()-300, 10)) }), v3TestAPIKey, wxpay.ErrTooOld},
		{"Future", headers(func(h http.Header) { h.Set("Wechatpay-Timestamp", strconv.FormatInt(v3TestNow.Unix()+300, 10)) }), v3TestAPIKey, wxpay.ErrTooOld},
		{"OtherSerial", headers(func(h http.Header) { h.Set("Wechatpay-Serial", "D7CE59D1F522D701") }), v3TestAPIKey, wxpay.ErrUnknownSerial},
		{"TooLarge", func(tb testing.TB) (http.Header, []byte) {
			b := []byte(strings.Repeat(" ", wxpay.MaxBodyBytes+1))
			return signV3Body(tb, b), b
		}, v3TestAPIKey, wxpay.ErrBodyTooLarge},
	}
	keyring := MustV3Keyring(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, body := tt.make(t)
			n, err := wxpay.ParseV3Notification(h, body, keyring, tt.key, v3TestNow)
			checkErrIs(t, err, tt.want)
			if err != nil && n != nil {
				t.Error("a refused notification was returned")
			}
			if err == nil && string(n.Plaintext) != string(plain) {
				t.Errorf("plaintext = %s", n.Plaintext)
			}
		})
	}
}

func TestV3NotificationRefund(t *testing.T) {
	const refundPlain = `{"mchid":"1230000109","out_trade_no":"1217752501201407033233368018","transaction_id":"4200000001201407033233368018","out_refund_no":"R1217752501201407033233368018","refund_id":"50000000382019052709732678859","refund_status":"SUCCESS","success_time":"2026-01-01T09:01:00+08:00","user_received_account":"支付用户零钱","amount":{"total":5000,"refund":2500,"payer_total":4900,"payer_refund":2450}}`
	tests := []struct {
		name      string
		event     string
		origType  string
		plaintext string
		want      error
		status    string
	}{
		{"Success", wxpay.V3EventRefundSuccess, "refund", refundPlain, nil, wxpay.V3RefundStatusSuccess},
		{"Abnormal", wxpay.V3EventRefundAbnormal, "refund", strings.Replace(refundPlain, `"SUCCESS"`, `"ABNORMAL"`, 1), nil, wxpay.V3RefundStatusAbnormal},
		{"Closed", wxpay.V3EventRefundClosed, "refund", strings.Replace(refundPlain, `"SUCCESS"`, `"CLOSED"`, 1), nil, wxpay.V3RefundStatusClosed},
		{"UnknownState", wxpay.V3EventRefundSuccess, "refund", strings.Replace(refundPlain, `"SUCCESS"`, `"DONE"`, 1), wxpay.ErrMalformed, ""},
		{"NoRefundNo", wxpay.V3EventRefundSuccess, "refund", strings.Replace(refundPlain, `"R1217752501201407033233368018"`, `""`, 1), wxpay.ErrMalformed, ""},
		{"TransactionEvent", wxpay.V3EventTransactionSuccess, "refund", refundPlain, wxpay.ErrMalformed, ""},
		{"TransactionType", wxpay.V3EventRefundSuccess, "transaction", refundPlain, wxpay.ErrMalformed, ""},
		{"TrailingData", wxpay.V3EventRefundSuccess, "refund", refundPlain + `{}`, wxpay.ErrMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, body := newV3Envelope(t, tt.event, tt.origType, []byte(tt.plaintext)).signed(t)
			c := &wxpay.V3Client{Keyring: MustV3Keyring(t), APIv3Key: v3TestAPIKey, Clock: tollgate.ClockFunc(func() time.Time { return v3TestNow })}
			n, err := c.ParseNotification(h, body)
			if err != nil {
				t.Fatal(err)
			}
			r, err := n.Refund()
			checkErrIs(t, err, tt.want)
			if err != nil {
				return
			}
			if r.Status != tt.status || r.OutRefundNo != "R1217752501201407033233368018" || r.Amount.Refund != 2500 || r.Amount.PayerRefund != 2450 || r.RefundID == "" {
				t.Errorf("refund = %+v", r)
			}
			if _, err := n.Transaction(); !errors.Is(err, wxpay.ErrMalformed) {
				t.Errorf("Transaction() of a refund notification: %v", err)
			}
		})
	}
}

func TestV3NotifyAck(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantFile   string
		wantCode   string
	}{
		{"Success", nil, 200, "ack_success.json", "SUCCESS"},
		{"Forged", wxpay.ErrBadSignature, 400, "", "FAIL"},
		{"Probe", wxpay.ErrSignatureProbe, 400, "", "FAIL"},
		{"Stale", wxpay.ErrTooOld, 400, "", "FAIL"},
		{"OurFailure", errors.New("database is down: password=hunter2"), 500, "ack_fail.json", "FAIL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			wxpay.WriteV3NotifyAck(rec, tt.err)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			var got struct{ Code, Message string }
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Code != tt.wantCode || got.Message == "" {
				t.Errorf("body = %s (%v)", rec.Body, err)
			}
			if strings.Contains(rec.Body.String(), "hunter2") {
				t.Error("the ack leaks the error text")
			}
			if tt.wantFile != "" && rec.Body.String() != strings.TrimSuffix(string(MustReadV3(t, tt.wantFile)), "\n") {
				t.Errorf("body = %s, want testdata/v3/%s", rec.Body, tt.wantFile)
			}
		})
	}
	if got := string(wxpay.V3NotifyAckFail("失败")); got != strings.TrimSuffix(string(MustReadV3(t, "ack_fail.json")), "\n") {
		t.Errorf("V3NotifyAckFail = %s", got)
	}
}

func TestV3ClientParseNotificationRequest(t *testing.T) {
	plain := MustReadV3(t, "notify_v3-e_plaintext.json")
	h, body := newV3Envelope(t, wxpay.V3EventTransactionSuccess, "transaction", plain).signed(t)
	big := append(append([]byte(nil), body...), strings.Repeat(" ", wxpay.MaxBodyBytes)...)
	tests := []struct {
		name   string
		method string
		body   []byte
		want   error
	}{
		{"POST", http.MethodPost, body, nil},
		{"GET", http.MethodGet, body, wxpay.ErrMalformed},
		{"TooLarge", http.MethodPost, big, wxpay.ErrBodyTooLarge},
	}
	c := &wxpay.V3Client{Keyring: MustV3Keyring(t), APIv3Key: v3TestAPIKey, Clock: tollgate.ClockFunc(func() time.Time { return v3TestNow })}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "https://merchant.example/wxpay/notify", strings.NewReader(string(tt.body)))
			for k, v := range h {
				r.Header[k] = v
			}
			n, err := c.ParseNotificationRequest(r)
			checkErrIs(t, err, tt.want)
			if err == nil && string(n.Plaintext) != string(plain) {
				t.Errorf("plaintext = %s", n.Plaintext)
			}
		})
	}
}

// TestV3ParseNotificationContextEndsWithTheRequest: a notification naming
// a new certificate serial waits for the re-download only as long as its
// request lasts. Gone (ctx cancelled), it is refused as unknown at once,
// WeChat Pay delivering it again; the download goes on, and the next
// delivery verifies.
func TestV3ParseNotificationContextEndsWithTheRequest(t *testing.T) {
	f, c := newV3CertFake(t)
	if err := c.Certificates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	// From now on GET /v3/certificates hangs until release.
	release := make(chan struct{})
	gated := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v3/certificates" {
			<-release
		}
		f.ServeHTTP(w, r)
	}))
	t.Cleanup(gated.Close)
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open)
	c.BaseURL = gated.URL
	f.set([]string{v3CertA, v3CertB}, v3CertB)
	h, body := f.notification(t, v3CertB)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { _, err := c.ParseNotificationContext(ctx, h, body); done <- err }()
	select {
	case err := <-done:
		checkUnknownSerial(t, err)
	case <-time.After(10 * time.Second): // a hang, not a timing: the download waits for release
		open()
		t.Fatal("ParseNotificationContext waited for the download after its context ended")
	}

	open()
	f.clock.Advance(wxpay.V3CertificateRefetchInterval)
	n, err := c.ParseNotificationContext(context.Background(), h, body)
	if err != nil {
		t.Fatalf("the next delivery: %v", err)
	}
	if n.Serial != v3CertB {
		t.Errorf("serial %s, want %s", n.Serial, v3CertB)
	}
}
