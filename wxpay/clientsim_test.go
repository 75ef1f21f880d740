package wxpay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// This file runs one test body against the emulator for every way tollgate
// talks to WeChat Pay: API v2, API v2 in the sandbox profile (/sandboxnew,
// getsignkey) and API v3. The clients speak real HTTP to the emulator
// mounted under /sandbox/wxpay/ with http.StripPrefix, as `tollgate serve`
// mounts it, so a disagreement between client, emulator and mount shows up
// here. A small adapter (simClient) gives both clients one face; the body
// asserts on error codes, and after every refused request on the
// emulator's unchanged ground truth.

// simMount is where `tollgate serve` mounts the emulator.
const simMount = "/sandbox/wxpay"

// Identifiers of the order and refund each case works on.
const (
	simNo    = "tg_clientsim_0001"
	simRNo   = "R_tg_clientsim_0001"
	simTotal = 5000 // fen
)

// clientMode is one way of calling the emulator.
type clientMode struct {
	name    string
	version int  // 2 or 3
	sandbox bool // v2 only: the /sandboxnew profile with its getsignkey
}

var clientModes = []clientMode{
	{name: "v2", version: 2},
	{name: "v2-sandbox", version: 2, sandbox: true},
	{name: "v3", version: 3},
}

// runClientSim runs f once per mode, like net/http's run(t, f, modes).
func runClientSim(t *testing.T, f func(t *testing.T, m clientMode)) {
	for _, m := range clientModes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

// simOrder, simTx, simRefundReq and simRefund are the version-neutral
// shapes of what the adapter sends and returns.
type simOrder struct {
	OutTradeNo string
	Total      int64
	NotifyURL  string
	DeviceID   string
	TimeExpire time.Time
}

type simTx struct {
	OutTradeNo    string
	TransactionID string
	State         string
	Total         int64
}

type simRefundReq struct {
	OutRefundNo   string
	Refund, Total int64
	NotifyURL     string
}

type simRefund struct {
	OutTradeNo  string
	OutRefundNo string
	RefundID    string
	Status      string // empty for a v2 refund answer, which carries none
	Refund      int64
}

// simClient is a V2Client or V3Client behind one face: one function per
// endpoint, every order a Native order. Errors are the client's own,
// unwrapped, so the body asserts on them directly.
type simClient struct {
	order       func(ctx context.Context, o simOrder) (codeURL string, err error)
	query       func(ctx context.Context, outTradeNo string) (simTx, error)
	queryTx     func(ctx context.Context, transactionID string) (simTx, error)
	close       func(ctx context.Context, outTradeNo string) error
	refund      func(ctx context.Context, outTradeNo string, r simRefundReq) (simRefund, error)
	queryRefund func(ctx context.Context, outRefundNo string) (simRefund, error)
	bill        func(ctx context.Context, day time.Time) (*wxpay.Bill, error)
}

func v2SimClient(c *wxpay.V2Client) simClient {
	tx := func(o *wxpay.V2Order, err error) (simTx, error) {
		if err != nil {
			return simTx{}, err
		}
		return simTx{OutTradeNo: o.OutTradeNo, TransactionID: o.TransactionID, State: o.TradeState, Total: o.TotalFee}, nil
	}
	return simClient{
		order: func(ctx context.Context, o simOrder) (string, error) {
			r, err := c.UnifiedOrder(ctx, &wxpay.V2UnifiedOrderRequest{
				OutTradeNo: o.OutTradeNo, Body: "tollgate credits", TotalFee: o.Total, SpbillCreateIP: "127.0.0.1",
				NotifyURL: o.NotifyURL, TradeType: wxpay.V2TradeTypeNative, ProductID: "credits", DeviceInfo: o.DeviceID,
				TimeExpire: o.TimeExpire,
			})
			if err != nil {
				return "", err
			}
			return r.CodeURL, nil
		},
		query: func(ctx context.Context, no string) (simTx, error) {
			return tx(c.QueryOrder(ctx, wxpay.V2OrderQuery{OutTradeNo: no}))
		},
		queryTx: func(ctx context.Context, id string) (simTx, error) {
			return tx(c.QueryOrder(ctx, wxpay.V2OrderQuery{TransactionID: id}))
		},
		close: c.CloseOrder,
		refund: func(ctx context.Context, no string, r simRefundReq) (simRefund, error) {
			a, err := c.Refund(ctx, &wxpay.V2RefundRequest{
				OutTradeNo: no, OutRefundNo: r.OutRefundNo, TotalFee: r.Total, RefundFee: r.Refund, NotifyURL: r.NotifyURL,
			})
			if err != nil {
				return simRefund{}, err
			}
			return simRefund{OutTradeNo: a.OutTradeNo, OutRefundNo: a.OutRefundNo, RefundID: a.RefundID, Refund: a.RefundFee}, nil
		},
		queryRefund: func(ctx context.Context, rno string) (simRefund, error) {
			a, err := c.QueryRefund(ctx, wxpay.V2RefundQuery{OutRefundNo: rno})
			if err != nil {
				return simRefund{}, err
			}
			if len(a.Refunds) != 1 {
				return simRefund{}, fmt.Errorf("refundquery by out_refund_no answered %d refunds", len(a.Refunds))
			}
			r := a.Refunds[0]
			return simRefund{OutTradeNo: a.OutTradeNo, OutRefundNo: r.OutRefundNo, RefundID: r.RefundID, Status: r.RefundStatus, Refund: r.RefundFee}, nil
		},
		bill: func(ctx context.Context, day time.Time) (*wxpay.Bill, error) {
			return c.DownloadBill(ctx, wxpay.V2BillRequest{Date: day, Gzip: true})
		},
	}
}

func v3SimClient(c *wxpay.V3Client) simClient {
	tx := func(t *wxpay.V3Transaction, err error) (simTx, error) {
		if err != nil {
			return simTx{}, err
		}
		return simTx{OutTradeNo: t.OutTradeNo, TransactionID: t.TransactionID, State: t.TradeState, Total: t.Amount.Total}, nil
	}
	refund := func(r *wxpay.V3Refund, err error) (simRefund, error) {
		if err != nil {
			return simRefund{}, err
		}
		return simRefund{OutTradeNo: r.OutTradeNo, OutRefundNo: r.OutRefundNo, RefundID: r.RefundID, Status: r.Status, Refund: r.Amount.Refund}, nil
	}
	return simClient{
		order: func(ctx context.Context, o simOrder) (string, error) {
			return c.NativeOrder(ctx, &wxpay.V3NativeOrderRequest{
				Description: "tollgate credits", OutTradeNo: o.OutTradeNo, NotifyURL: o.NotifyURL, Total: o.Total,
				PayerClientIP: "127.0.0.1", DeviceID: o.DeviceID, TimeExpire: o.TimeExpire,
			})
		},
		query: func(ctx context.Context, no string) (simTx, error) { return tx(c.QueryOrder(ctx, no)) },
		queryTx: func(ctx context.Context, id string) (simTx, error) {
			return tx(c.QueryOrderByTransactionID(ctx, id))
		},
		close: c.CloseOrder,
		refund: func(ctx context.Context, no string, r simRefundReq) (simRefund, error) {
			return refund(c.Refund(ctx, &wxpay.V3RefundRequest{
				OutTradeNo: no, OutRefundNo: r.OutRefundNo, NotifyURL: r.NotifyURL, Refund: r.Refund, Total: r.Total,
			}))
		},
		queryRefund: func(ctx context.Context, rno string) (simRefund, error) { return refund(c.QueryRefund(ctx, rno)) },
		bill: func(ctx context.Context, day time.Time) (*wxpay.Bill, error) {
			return c.Bill(ctx, wxpay.V3BillRequest{Date: day, Gzip: true})
		},
	}
}

// simEnv is one emulator behind its mount, a notify URL whose handler
// parses notifications with the client's own parser, and the clients.
type simEnv struct {
	mode      clientMode
	sim       *wxpaysim.Server
	c         simClient // the merchant, with the emulator's keys
	bad       simClient // the same merchant with a wrong key
	notifyURL string

	requests   atomic.Int64 // requests that reached the emulator's mount
	getSignKey atomic.Int64 // of which /sandboxnew/pay/getsignkey

	mu      sync.Mutex
	methods []string // methods the notify URL received, in order; guarded by mu

	payments chan simTx
	refunds  chan simRefund
}

// MustSimEnv starts an emulator configured by knobs (may be nil) for m.
func MustSimEnv(t *testing.T, m clientMode, knobs func(*wxpaysim.Server)) *simEnv {
	t.Helper()
	e := &simEnv{mode: m, payments: make(chan simTx, 8), refunds: make(chan simRefund, 8)}
	e.sim = &wxpaysim.Server{RefundDelay: -1, Logf: t.Logf}
	if knobs != nil {
		knobs(e.sim)
	}
	cfg := e.sim.Config()

	mux := http.NewServeMux()
	mux.Handle(simMount+"/", http.StripPrefix(simMount, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.requests.Add(1)
		if r.URL.Path == "/sandboxnew/pay/getsignkey" {
			e.getSignKey.Add(1)
		}
		e.sim.ServeHTTP(w, r)
	})))
	api := httptest.NewServer(mux)
	base := api.URL + simMount

	var notify http.HandlerFunc
	switch m.version {
	case 2:
		_, _, cert := MustCert(t, cfg.MchID, false, nil, nil)
		client := func(key string) *wxpay.V2Client {
			return &wxpay.V2Client{
				BaseURL: base, AppID: cfg.AppID, MchID: cfg.MchID, APIKey: key, SignType: wxpay.SignTypeMD5,
				HTTPClient: api.Client(), Sandbox: m.sandbox, Certificate: &cert,
			}
		}
		good := client(cfg.APIKey)
		e.c, e.bad = v2SimClient(good), v2SimClient(client(strings.Repeat("0", 32)))
		notify = e.v2Notify(t, good)
	case 3:
		keyring := wxpay.NewV3Keyring()
		if err := keyring.AddPublicKeyPEM(cfg.PlatformKeyID, []byte(cfg.PlatformPublicKeyPEM)); err != nil {
			t.Fatal(err)
		}
		client := func(pemKey string) *wxpay.V3Client {
			key, err := wxpay.LoadRSAPrivateKeyPEM([]byte(pemKey))
			if err != nil {
				t.Fatal(err)
			}
			return &wxpay.V3Client{
				BaseURL: base, MchID: cfg.MchID, AppID: cfg.AppID, MerchantSerialNo: cfg.MerchantSerial,
				MerchantKey: key, APIv3Key: cfg.APIv3Key, Keyring: keyring, HTTPClient: api.Client(),
			}
		}
		good := client(cfg.MerchantPrivateKeyPEM)
		if err := good.Validate(); err != nil {
			t.Fatal(err)
		}
		// Another RSA key than the merchant's: the platform's own.
		e.c, e.bad = v3SimClient(good), v3SimClient(client(wxpaysim.TestPlatformPrivateKeyPEM))
		notify = e.v3Notify(t, good)
	}
	ns := httptest.NewServer(notify)
	e.notifyURL = ns.URL + "/notify/wxpay"

	t.Cleanup(ns.Close)
	t.Cleanup(api.Close)
	t.Cleanup(func() { e.sim.Close() }) // runs first: no delivery outlives the test
	return e
}

func (e *simEnv) noteMethod(method string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.methods = append(e.methods, method)
}

func (e *simEnv) notifyMethods() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.methods)
}

func sendSim[T any](t *testing.T, ch chan T, v T) {
	select {
	case ch <- v:
	default:
		t.Errorf("unexpected notification %+v", v)
	}
}

// v2Notify parses v2 notifications with the client's parsers: a refund
// notification carries req_info, a payment one does not.
func (e *simEnv) v2Notify(t *testing.T, c *wxpay.V2Client) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e.noteMethod(r.Method)
		if r.Method == http.MethodHead {
			return // the handshake: 200, empty body
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, wxpay.MaxBodyBytes+1))
		var m map[string]string
		if err == nil {
			m, err = wxpay.DecodeV2XML(body)
		}
		switch {
		case err != nil:
		case m["req_info"] != "":
			var n *wxpay.V2RefundNotification
			if n, _, err = c.ParseRefundNotification(r.Context(), body); err == nil {
				sendSim(t, e.refunds, simRefund{OutTradeNo: n.OutTradeNo, OutRefundNo: n.OutRefundNo, RefundID: n.RefundID, Status: n.RefundStatus, Refund: n.RefundFee})
			}
		default:
			var n *wxpay.V2PaymentNotification
			if n, _, err = c.ParsePaymentNotification(r.Context(), body, c.SignType); err == nil {
				sendSim(t, e.payments, simTx{OutTradeNo: n.OutTradeNo, TransactionID: n.TransactionID, State: n.ResultCode, Total: n.TotalFee})
			}
		}
		if err != nil {
			t.Errorf("v2 notification refused: %v", err)
			_, _ = w.Write(wxpay.V2NotifyAck(false, "refused"))
			return
		}
		_, _ = w.Write(wxpay.V2NotifyAck(true, ""))
	}
}

// v3Notify parses v3 notifications with the client's parser.
func (e *simEnv) v3Notify(t *testing.T, c *wxpay.V3Client) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e.noteMethod(r.Method)
		n, err := c.ParseNotificationRequest(r)
		if err == nil {
			if strings.HasPrefix(n.EventType, "REFUND.") {
				var rf *wxpay.V3Refund
				if rf, err = n.Refund(); err == nil {
					sendSim(t, e.refunds, simRefund{OutTradeNo: rf.OutTradeNo, OutRefundNo: rf.OutRefundNo, RefundID: rf.RefundID, Status: rf.Status, Refund: rf.Amount.Refund})
				}
			} else {
				var tx *wxpay.V3Transaction
				if tx, err = n.Transaction(); err == nil {
					sendSim(t, e.payments, simTx{OutTradeNo: tx.OutTradeNo, TransactionID: tx.TransactionID, State: tx.TradeState, Total: tx.Amount.Total})
				}
			}
		}
		if err != nil {
			t.Errorf("v3 notification refused: %v", err)
		}
		wxpay.WriteV3NotifyAck(w, err)
	}
}

// orderArgs is the order every case places: simTotal fen to the notify URL.
func (e *simEnv) orderArgs(no string) simOrder {
	return simOrder{OutTradeNo: no, Total: simTotal, NotifyURL: e.notifyURL}
}

func (e *simEnv) refundArgs(rno string, amount int64) simRefundReq {
	return simRefundReq{OutRefundNo: rno, Refund: amount, Total: simTotal, NotifyURL: e.notifyURL}
}

// Setup steps; each must succeed.

func (e *simEnv) MustOrder(t *testing.T) {
	t.Helper()
	if _, err := e.c.order(t.Context(), e.orderArgs(simNo)); err != nil {
		t.Fatal("setup: order: ", err)
	}
}

func (e *simEnv) MustPaid(t *testing.T) {
	t.Helper()
	e.MustOrder(t)
	if _, err := e.sim.Pay(simNo); err != nil {
		t.Fatal("setup: pay: ", err)
	}
	mustReceive(t, e.payments)
}

func (e *simEnv) MustRefunded(t *testing.T, amount int64) {
	t.Helper()
	e.MustPaid(t)
	if _, err := e.c.refund(t.Context(), simNo, e.refundArgs(simRNo, amount)); err != nil {
		t.Fatal("setup: refund: ", err)
	}
}

func (e *simEnv) MustClosed(t *testing.T) {
	t.Helper()
	e.MustOrder(t)
	if err := e.c.close(t.Context(), simNo); err != nil {
		t.Fatal("setup: close: ", err)
	}
}

// Setup steps as table values.
func setupOrder(t *testing.T, e *simEnv)  { e.MustOrder(t) }
func setupPaid(t *testing.T, e *simEnv)   { e.MustPaid(t) }
func setupClosed(t *testing.T, e *simEnv) { e.MustClosed(t) }

func setupRefunded(amount int64) func(*testing.T, *simEnv) {
	return func(t *testing.T, e *simEnv) { e.MustRefunded(t, amount) }
}

// simWant is the expected outcome of one call in one API version. The zero
// value is success.
type simWant struct {
	code      string // APIError.Code (v2 err_code or downloadbill error_code; v3 code)
	status    int    // v3 HTTP status
	comm      bool   // v2 return_code FAIL
	msg       string // APIError.Message, when the protocol fixes it
	field     string // v3 detail.field, when given
	retryable bool
	preSend   bool // refused by the client (ErrV2Request/ErrV3Request); nothing sent
}

func (w simWant) ok() bool { return w.code == "" && !w.comm && !w.preSend }

// simOp is one call of an endpoint and the state it needs.
type simOp struct {
	name  string
	setup func(t *testing.T, e *simEnv)
	call  func(ctx context.Context, c simClient, e *simEnv) error
}

// simOps is every endpoint, called the way a retry would call it again.
var simOps = []simOp{
	{"order", nil, func(ctx context.Context, c simClient, e *simEnv) error {
		_, err := c.order(ctx, e.orderArgs(simNo))
		return err
	}},
	{"query", setupOrder, func(ctx context.Context, c simClient, e *simEnv) error {
		_, err := c.query(ctx, simNo)
		return err
	}},
	{"close", setupOrder, func(ctx context.Context, c simClient, e *simEnv) error {
		return c.close(ctx, simNo)
	}},
	{"refund", setupPaid, func(ctx context.Context, c simClient, e *simEnv) error {
		_, err := c.refund(ctx, simNo, e.refundArgs(simRNo, 1000))
		return err
	}},
	{"refundquery", setupRefunded(1000), func(ctx context.Context, c simClient, e *simEnv) error {
		_, err := c.queryRefund(ctx, simRNo)
		return err
	}},
	{"bill", setupPaid, func(ctx context.Context, c simClient, e *simEnv) error {
		_, err := c.bill(ctx, time.Now())
		return err
	}},
}

// clientSimCase is one refused (or, for one version, accepted) request.
type clientSimCase struct {
	name  string
	knobs func(*wxpaysim.Server)
	setup func(t *testing.T, e *simEnv)
	do    func(ctx context.Context, e *simEnv) error
	want  map[int]simWant // by API version
	then  func(t *testing.T, e *simEnv)
	// unverified: the emulator must not count the call among the verified
	// ones (Stats.Calls), as it fails the signature check.
	unverified bool
}

func both(w simWant) map[int]simWant { return map[int]simWant{2: w, 3: w} }

func perVersion(v2, v3 simWant) map[int]simWant { return map[int]simWant{2: v2, 3: v3} }

func clientSimCases() []clientSimCase {
	var cases []clientSimCase
	for _, op := range simOps {
		cases = append(cases, clientSimCase{
			name:  "BadSignature/" + op.name,
			setup: op.setup,
			do:    func(ctx context.Context, e *simEnv) error { return op.call(ctx, e.bad, e) },
			want:  perVersion(simWant{comm: true, msg: "签名错误"}, simWant{code: "SIGN_ERROR", status: 401}),

			unverified: true,
		})
	}
	for _, op := range simOps {
		v2 := simWant{code: "SYSTEMERROR", retryable: true, comm: op.name == "bill"} // downloadbill fails as return_code FAIL + error_code
		cases = append(cases, clientSimCase{
			name: "SystemError/" + op.name,
			setup: func(t *testing.T, e *simEnv) {
				if op.setup != nil {
					op.setup(t, e)
				}
				if err := e.sim.SetFaults(wxpaysim.Faults{SystemError: map[string]float64{op.name: 1}}); err != nil {
					t.Fatal(err)
				}
			},
			do:   func(ctx context.Context, e *simEnv) error { return op.call(ctx, e.c, e) },
			want: perVersion(v2, simWant{code: "SYSTEM_ERROR", status: 500, retryable: true}),
			then: func(t *testing.T, e *simEnv) { retryAfterSystemError(t, e, op) },
		})
	}
	return append(cases, []clientSimCase{
		{
			name: "AmountZero",
			do: func(ctx context.Context, e *simEnv) error {
				o := e.orderArgs(simNo)
				o.Total = 0
				_, err := e.c.order(ctx, o)
				return err
			},
			want: both(simWant{preSend: true}),
		},
		{
			name:  "RefundAmountZero",
			setup: setupPaid,
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.refund(ctx, simNo, e.refundArgs(simRNo, 0))
				return err
			},
			want: both(simWant{preSend: true}),
		},
		{
			name:  "RefundAboveTotal",
			setup: setupPaid,
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.refund(ctx, simNo, e.refundArgs(simRNo, simTotal+1))
				return err
			},
			want: both(simWant{preSend: true}),
		},
		{
			name: "NotifyURLWithQuery",
			do: func(ctx context.Context, e *simEnv) error {
				o := e.orderArgs(simNo)
				o.NotifyURL += "?account=1"
				_, err := e.c.order(ctx, o)
				return err
			},
			want: perVersion(simWant{code: "PARAM_ERROR"}, simWant{code: "PARAM_ERROR", status: 400, field: "/notify_url"}),
		},
		{
			// v2's client leaves the format to WeChat Pay; v3's checks it.
			name: "OutTradeNoTooShort",
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.order(ctx, e.orderArgs("tg_1"))
				return err
			},
			want: perVersion(simWant{code: "PARAM_ERROR"}, simWant{preSend: true}),
		},
		{
			name:  "SameOrderOtherAmount",
			setup: setupOrder,
			do: func(ctx context.Context, e *simEnv) error {
				o := e.orderArgs(simNo)
				o.Total++
				_, err := e.c.order(ctx, o)
				return err
			},
			want: perVersion(simWant{code: "INVALID_REQUEST", msg: "201 商户订单号重复"},
				simWant{code: "INVALID_REQUEST", status: 400, msg: "201 商户订单号重复"}),
		},
		{
			name:  "SameOrderPaid",
			setup: setupPaid,
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.order(ctx, e.orderArgs(simNo))
				return err
			},
			want: perVersion(simWant{code: "ORDERPAID"}, simWant{code: "ORDERPAID", status: 400}),
		},
		{
			name:  "SameOrderClosed",
			setup: setupClosed,
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.order(ctx, e.orderArgs(simNo))
				return err
			},
			want: perVersion(simWant{code: "ORDERCLOSED"}, simWant{code: "ORDER_CLOSED", status: 400}),
		},
		{
			name:  "ClosePaid",
			setup: setupPaid,
			do:    func(ctx context.Context, e *simEnv) error { return e.c.close(ctx, simNo) },
			want:  perVersion(simWant{code: "ORDERPAID"}, simWant{code: "ORDERPAID", status: 400}),
		},
		{
			// v2 refuses a second close; v3 answers 204 again.
			name:  "CloseClosed",
			setup: setupClosed,
			do:    func(ctx context.Context, e *simEnv) error { return e.c.close(ctx, simNo) },
			want:  perVersion(simWant{code: "ORDERCLOSED"}, simWant{}),
		},
		{
			name: "CloseUnknown",
			do:   func(ctx context.Context, e *simEnv) error { return e.c.close(ctx, simNo) },
			want: perVersion(simWant{code: "ORDERNOTEXIST"}, simWant{code: "ORDER_NOT_EXIST", status: 404}),
		},
		{
			name: "QueryUnknown",
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.query(ctx, simNo)
				return err
			},
			want: perVersion(simWant{code: "ORDERNOTEXIST"}, simWant{code: "ORDER_NOT_EXIST", status: 404}),
		},
		{
			name: "QueryUnknownTransactionID",
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.queryTx(ctx, "4200002026112700000000000000")
				return err
			},
			want: perVersion(simWant{code: "ORDERNOTEXIST"}, simWant{code: "ORDER_NOT_EXIST", status: 404}),
		},
		{
			name:  "QueryRateLimited",
			knobs: func(s *wxpaysim.Server) { s.QueryLimitPerMinute = 1 },
			setup: func(t *testing.T, e *simEnv) {
				e.MustOrder(t)
				if _, err := e.c.query(t.Context(), simNo); err != nil {
					t.Fatal("setup: first query: ", err)
				}
			},
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.query(ctx, simNo)
				return err
			},
			want: perVersion(simWant{code: "FREQUENCY_LIMITED", retryable: true}, simWant{code: "FREQUENCY_LIMITED", status: 429, retryable: true}),
		},
		{
			name:  "RefundUnpaid",
			setup: setupOrder,
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.refund(ctx, simNo, e.refundArgs(simRNo, 1000))
				return err
			},
			want: perVersion(simWant{code: "ORDERNOTEXIST"}, simWant{code: "RESOURCE_NOT_EXISTS", status: 404}),
		},
		{
			name:  "RefundOtherTotal",
			setup: setupPaid,
			do: func(ctx context.Context, e *simEnv) error {
				r := e.refundArgs(simRNo, 1000)
				r.Total++
				_, err := e.c.refund(ctx, simNo, r)
				return err
			},
			want: perVersion(simWant{code: "PARAM_ERROR"}, simWant{code: "PARAM_ERROR", status: 400, field: "/amount/total"}),
		},
		{
			name:  "RefundBeyondPaid",
			setup: setupRefunded(3000),
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.refund(ctx, simNo, e.refundArgs(simRNo+"_2", 2001))
				return err
			},
			want: perVersion(simWant{code: "NOTENOUGH"}, simWant{code: "INVALID_REQUEST", status: 400}),
			then: func(t *testing.T, e *simEnv) { // exactly what remains is accepted
				if _, err := e.c.refund(t.Context(), simNo, e.refundArgs(simRNo+"_2", 2000)); err != nil {
					t.Fatal("refund of the remaining 2000 fen: ", err)
				}
				if o, err := e.sim.Order(simNo); err != nil || o.Refunded != simTotal || len(o.Refunds) != 2 {
					t.Errorf("order after refunding everything = %+v, %v", o, err)
				}
			},
		},
		{
			name:  "SameRefundOtherAmount",
			setup: setupRefunded(1000),
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.refund(ctx, simNo, e.refundArgs(simRNo, 1001))
				return err
			},
			want: perVersion(simWant{code: "INVALID_REQUEST"}, simWant{code: "INVALID_REQUEST", status: 400}),
		},
		{
			name:  "RefundQueryUnknown",
			setup: setupPaid,
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.queryRefund(ctx, simRNo)
				return err
			},
			want: perVersion(simWant{code: "REFUNDNOTEXIST"}, simWant{code: "RESOURCE_NOT_EXISTS", status: 404}),
		},
		{
			name: "BillWithoutPayments",
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.bill(ctx, time.Now())
				return err
			},
			want: perVersion(simWant{code: "20002", comm: true, msg: "No Bill Exist"}, simWant{code: "NO_STATEMENT_EXIST", status: 400}),
		},
		{
			name:  "DeviceFingerprintRequired",
			knobs: func(s *wxpaysim.Server) { s.RequireDeviceFingerprint = true },
			do: func(ctx context.Context, e *simEnv) error {
				_, err := e.c.order(ctx, e.orderArgs(simNo))
				return err
			},
			want: perVersion(simWant{code: "PARAM_ERROR"}, simWant{code: "PARAM_ERROR", status: 400, field: "/scene_info/device_id"}),
			then: func(t *testing.T, e *simEnv) {
				o := e.orderArgs(simNo)
				o.DeviceID = "fp_7c1e9a"
				if _, err := e.c.order(t.Context(), o); err != nil {
					t.Fatal("order with a device fingerprint: ", err)
				}
				if got := e.sim.Orders(); len(got) != 1 || got[0].DeviceInfo != o.DeviceID {
					t.Errorf("orders = %+v, want one with device %q", got, o.DeviceID)
				}
			},
		},
	}...)
}

// retryAfterSystemError clears the fault and sends op again with the same
// out_trade_no / out_refund_no: it must now succeed, and take effect once
// however often it is repeated (except close: a second v2 close is
// ORDERCLOSED, as CloseClosed shows).
func retryAfterSystemError(t *testing.T, e *simEnv, op simOp) {
	if err := e.sim.SetFaults(wxpaysim.Faults{}); err != nil {
		t.Fatal(err)
	}
	retries := 2
	if op.name == "close" {
		retries = 1
	}
	for range retries {
		if err := op.call(t.Context(), e.c, e); err != nil {
			t.Fatalf("%s retried after SYSTEMERROR: %v", op.name, err)
		}
	}
	o, err := e.sim.Order(simNo)
	switch {
	case err != nil:
		t.Fatal(err)
	case op.name == "order" && (o.State != wxpaysim.StateNotPay || o.Total != simTotal):
		t.Errorf("order after retry = %+v", o)
	case op.name == "close" && o.State != wxpaysim.StateClosed:
		t.Errorf("order after retried close = %+v", o)
	case op.name == "refund" && (o.Refunded != 1000 || len(o.Refunds) != 1):
		t.Errorf("refunded %d fen in %d refunds after retries, want 1000 in 1", o.Refunded, len(o.Refunds))
	}
}

// TestClientSimErrors sends every refused request of the table in every
// mode and checks the typed error, and that the emulator's orders did not
// change (nor, for a request the client refuses, did anything reach it).
func TestClientSimErrors(t *testing.T) {
	runClientSim(t, func(t *testing.T, m clientMode) {
		for _, tc := range clientSimCases() {
			t.Run(tc.name, func(t *testing.T) {
				want, ok := tc.want[m.version]
				if !ok {
					t.Fatalf("no expectation for v%d", m.version)
				}
				e := MustSimEnv(t, m, tc.knobs)
				if tc.setup != nil {
					tc.setup(t, e)
				}
				before, sent, calls := e.sim.Orders(), e.requests.Load(), e.sim.Stats().Calls
				err := tc.do(t.Context(), e)
				checkSimErr(t, m.version, err, want)
				if after := e.sim.Orders(); !reflect.DeepEqual(before, after) {
					t.Errorf("the emulator's orders changed:\nbefore %+v\nafter  %+v", before, after)
				}
				if n := e.requests.Load() - sent; want.preSend && n != 0 {
					t.Errorf("%d requests reached the emulator, want none", n)
				} else if !want.preSend && n == 0 {
					t.Errorf("no request reached the emulator")
				}
				if after := e.sim.Stats().Calls; tc.unverified && !maps.Equal(calls, after) {
					t.Errorf("verified calls went from %v to %v on a bad signature", calls, after)
				}
				if tc.then != nil {
					tc.then(t, e)
				}
			})
		}
	})
}

// checkSimErr checks err against want: its type, version and code.
func checkSimErr(t *testing.T, version int, err error, want simWant) {
	t.Helper()
	switch {
	case want.preSend:
		sentinel := map[int]error{2: wxpay.ErrV2Request, 3: wxpay.ErrV3Request}[version]
		if !errors.Is(err, sentinel) {
			t.Fatalf("err = %v, want %v (refused before sending)", err, sentinel)
		}
		return
	case want.ok():
		if err != nil {
			t.Fatalf("err = %v, want success", err)
		}
		return
	}
	var api *wxpay.APIError
	if !errors.As(err, &api) {
		t.Fatalf("err = %T %v, want *wxpay.APIError %q", err, err, want.code)
	}
	got := simWant{code: api.Code, status: api.HTTPStatus, comm: api.Communication, retryable: api.Retryable(), msg: want.msg, field: want.field}
	if want.msg != "" {
		got.msg = api.Message
	}
	if want.field != "" && strings.Contains(api.Detail, `"`+want.field+`"`) {
		got.field = want.field
	} else if want.field != "" {
		got.field = api.Detail
	}
	if got != want || api.Version != version || wxpay.ErrorCode(err) != want.code || wxpay.IsRetryable(err) != want.retryable {
		t.Errorf("err = %v (%+v)\n got %+v\nwant %+v", err, api, got, want)
	}
}

// TestClientSimLifecycle takes one order through every endpoint in every
// mode: order and its identical re-entry, query, payment and its
// notification (HEAD handshake first for v2), query by transaction id,
// refund and its repetition, refund query, refund notification, the bill.
func TestClientSimLifecycle(t *testing.T) {
	runClientSim(t, func(t *testing.T, m clientMode) {
		e := MustSimEnv(t, m, nil)
		ctx := t.Context()

		args := e.orderArgs(simNo)
		args.DeviceID = "fp_7c1e9a"
		args.TimeExpire = time.Now().Add(30 * time.Minute).Truncate(time.Second)
		code, err := e.c.order(ctx, args)
		if err != nil || code == "" {
			t.Fatalf("order = %q, %v", code, err)
		}
		if again, err := e.c.order(ctx, args); err != nil || again != code {
			t.Fatalf("identical re-entry = %q, %v; want %q", again, err, code)
		}
		if o, err := e.sim.Order(simNo); err != nil || !o.ExpiresAt.Equal(args.TimeExpire) || o.DeviceInfo != args.DeviceID || o.Total != simTotal {
			t.Errorf("emulator order = %+v, %v; want expiry %v, device %q", o, err, args.TimeExpire, args.DeviceID)
		}
		if tx, err := e.c.query(ctx, simNo); err != nil || tx.State != wxpaysim.StateNotPay || tx.Total != simTotal {
			t.Fatalf("query before paying = %+v, %v", tx, err)
		}

		paid, err := e.sim.Pay(simNo)
		if err != nil {
			t.Fatal(err)
		}
		want := simTx{OutTradeNo: simNo, TransactionID: paid.TransactionID, State: "SUCCESS", Total: simTotal}
		if n := mustReceive(t, e.payments); n != want {
			t.Errorf("payment notification = %+v, want %+v", n, want)
		}
		checkHandshake(t, e, "payment")
		if tx, err := e.c.query(ctx, simNo); err != nil || tx != want {
			t.Errorf("query after paying = %+v, %v; want %+v", tx, err, want)
		}
		if tx, err := e.c.queryTx(ctx, paid.TransactionID); err != nil || tx != want {
			t.Errorf("query by transaction_id = %+v, %v; want %+v", tx, err, want)
		}

		var refundID string
		for i := range 2 { // the same out_refund_no twice refunds once
			r, err := e.c.refund(ctx, simNo, e.refundArgs(simRNo, 1000))
			if err != nil || r.OutRefundNo != simRNo || r.Refund != 1000 || (i == 1 && r.RefundID != refundID) {
				t.Fatalf("refund #%d = %+v, %v (first refund_id %q)", i+1, r, err, refundID)
			}
			refundID = r.RefundID
		}
		if o, err := e.sim.Order(simNo); err != nil || o.Refunded != 1000 || len(o.Refunds) != 1 || o.State != wxpaysim.StateRefund {
			t.Errorf("emulator order after two identical refunds = %+v, %v", o, err)
		}
		if r, err := e.c.queryRefund(ctx, simRNo); err != nil || r.Status != wxpaysim.RefundProcessing || r.RefundID != refundID {
			t.Errorf("refund query before completion = %+v, %v", r, err)
		}
		if _, err := e.sim.CompleteRefund(simRNo); err != nil {
			t.Fatal(err)
		}
		wantRefund := simRefund{OutTradeNo: simNo, OutRefundNo: simRNo, RefundID: refundID, Status: "SUCCESS", Refund: 1000}
		if n := mustReceive(t, e.refunds); n != wantRefund {
			t.Errorf("refund notification = %+v, want %+v", n, wantRefund)
		}
		checkHandshake(t, e, "refund")
		if r, err := e.c.queryRefund(ctx, simRNo); err != nil || r != wantRefund {
			t.Errorf("refund query after completion = %+v, %v; want %+v", r, err, wantRefund)
		}
		if tx, err := e.c.query(ctx, simNo); err != nil || tx.State != wxpaysim.StateRefund {
			t.Errorf("query after refund = %+v, %v", tx, err)
		}

		bill, err := e.c.bill(ctx, time.Now())
		if err != nil {
			t.Fatal("bill: ", err)
		}
		var settled, refunded int64
		for _, r := range bill.Records {
			if r.OutTradeNo == simNo {
				settled += r.SettlementTotalFee
				refunded += r.RefundFee
			}
		}
		if settled != simTotal || refunded != 1000 || bill.Summary.RefundFee != 1000 {
			t.Errorf("bill: settled %d, refunded %d fen; summary %+v", settled, refunded, bill.Summary)
		}

		orders := e.sim.Orders()
		if len(orders) != 1 || orders[0].Sandbox != m.sandbox || orders[0].APIVersion != m.version {
			t.Errorf("emulator orders = %+v, want one v%d order (sandbox %v)", orders, m.version, m.sandbox)
		}
		wantKeys := map[bool]int64{false: 0, true: 1}[m.sandbox]
		if n := e.getSignKey.Load(); n != wantKeys {
			t.Errorf("getsignkey called %d times, want %d", n, wantKeys)
		}
	})
}

// checkHandshake checks how the latest notification of kind arrived: for
// v2 a HEAD handshake answered, then the POST acknowledged; for v3 the POST
// alone (the emulator's HandshakeV3 is off by default).
func checkHandshake(t *testing.T, e *simEnv, kind string) {
	t.Helper()
	var ds []wxpaysim.Delivery
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ds = ds[:0]
		for _, d := range e.sim.Notifications() {
			if d.Kind == kind {
				ds = append(ds, d)
			}
		}
		if n := len(ds); n > 0 && ds[n-1].Method == http.MethodPost {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s POST recorded: %+v", kind, ds)
		}
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.Method+" "+d.Outcome)
	}
	want := []string{"POST " + wxpaysim.OutcomeAcked}
	if e.mode.version == 2 {
		want = []string{"HEAD " + wxpaysim.OutcomeHandshakeOK, "POST " + wxpaysim.OutcomeAcked}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s deliveries = %q, want %q", kind, got, want)
	}
	if methods := e.notifyMethods(); !slices.Equal(methods[len(methods)-len(want):], methodsOf(want)) {
		t.Errorf("the notify URL received %q, want it to end with %q", methods, methodsOf(want))
	}
}

func methodsOf(deliveries []string) []string {
	var out []string
	for _, d := range deliveries {
		out = append(out, strings.Fields(d)[0])
	}
	return out
}

// TestClientSimExpiry lets an unpaid order outlive its payable window (the
// emulator's OrderTTL, passed with Advance): it reads CLOSED, its re-entry
// is refused as closed, and the user can no longer pay it.
func TestClientSimExpiry(t *testing.T) {
	runClientSim(t, func(t *testing.T, m clientMode) {
		e := MustSimEnv(t, m, nil)
		ctx := t.Context()
		e.MustOrder(t)
		e.sim.Advance(wxpaysim.DefaultOrderTTL + time.Minute)

		if tx, err := e.c.query(ctx, simNo); err != nil || tx.State != wxpaysim.StateClosed {
			t.Fatalf("query after expiry = %+v, %v; want CLOSED", tx, err)
		}
		before := e.sim.Orders()
		_, err := e.c.order(ctx, e.orderArgs(simNo))
		checkSimErr(t, m.version, err, perVersion(simWant{code: "ORDERCLOSED"}, simWant{code: "ORDER_CLOSED", status: 400})[m.version])
		if after := e.sim.Orders(); !reflect.DeepEqual(before, after) {
			t.Errorf("the emulator's orders changed:\nbefore %+v\nafter  %+v", before, after)
		}
		if _, err := e.sim.Pay(simNo); !errors.Is(err, wxpaysim.ErrWrongState) {
			t.Errorf("paying an expired order: err = %v, want ErrWrongState", err)
		}
	})
}
