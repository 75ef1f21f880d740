package wxpaysim_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"

	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// liar is an emulator at the root of a listener with merchant clients of
// both versions and a notify receiver that acknowledges everything.
type liar struct {
	t   testing.TB
	sim *wxpaysim.Server
	url string
	rcv *receiver
	v2  *wxpay.V2Client
	v3  *wxpay.V3Client
	cfg wxpaysim.Config
}

func mustLiar(t testing.TB) *liar {
	t.Helper()
	sim := &wxpaysim.Server{TimeScale: 0.0001, RefundDelay: -1, Logf: t.Logf}
	ts := httptest.NewServer(sim)
	rcv := newReceiver()
	t.Cleanup(func() {
		sim.Close()
		ts.Close()
		rcv.srv.Close()
	})
	v2, v3, err := sim.Config().Clients(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &liar{t: t, sim: sim, url: ts.URL, rcv: rcv, v2: v2, v3: v3, cfg: sim.Config()}
}

// place places an order of fee fen with API version v (2 or 3).
func (l *liar) place(v int, no string, fee int64) {
	l.t.Helper()
	ctx := context.Background()
	var err error
	if v == 2 {
		_, err = l.v2.UnifiedOrder(ctx, &wxpay.V2UnifiedOrderRequest{OutTradeNo: no, Body: "credits", TotalFee: fee,
			SpbillCreateIP: "127.0.0.1", NotifyURL: l.rcv.srv.URL + "/wxpay/notify", TradeType: wxpay.V2TradeTypeNative, ProductID: "p"})
	} else {
		_, err = l.v3.NativeOrder(ctx, &wxpay.V3NativeOrderRequest{OutTradeNo: no, Description: "credits", Total: fee,
			NotifyURL: l.rcv.srv.URL + "/wxpay/notify/v3"})
	}
	if err != nil {
		l.t.Fatalf("place %s: %v", no, err)
	}
}

// answer is what an order query reported, through the merchant client
// (which verified its signature).
type answer struct {
	state, appID, mchID, txID string
	total                     int64
}

func (l *liar) query(v int, no string) (answer, error) {
	ctx := context.Background()
	if v == 2 {
		o, err := l.v2.QueryOrder(ctx, wxpay.V2OrderQuery{OutTradeNo: no})
		if err != nil {
			return answer{}, err
		}
		return answer{o.TradeState, o.Raw["appid"], o.Raw["mch_id"], o.TransactionID, o.TotalFee}, nil
	}
	o, err := l.v3.QueryOrder(ctx, no)
	if err != nil {
		return answer{}, err
	}
	return answer{o.TradeState, o.AppID, o.MchID, o.TransactionID, o.Amount.Total}, nil
}

// checkOrderLie checks that a told a lie of kind about truth, and only it.
func checkOrderLie(t *testing.T, kind string, truth wxpaysim.Order, a answer) {
	t.Helper()
	want := answer{truth.State, truth.AppID, truth.MchID, truth.TransactionID, truth.Total}
	switch kind {
	case wxpaysim.LieAmount:
		if a.total == truth.Total || a.total < 1 {
			t.Fatalf("amount lie reported %d, the truth is %d", a.total, truth.Total)
		}
		want.total = a.total
	case wxpaysim.LieUnknown:
		want.state = wxpaysim.UnknownTradeState
	default:
		want.state = kind
	}
	paid := want.state == wxpaysim.StateSuccess || want.state == wxpaysim.StateRefund
	switch {
	case paid && truth.TransactionID == "":
		if a.txID == "" {
			t.Fatalf("a lie that an unpaid order is %s carries no transaction_id", want.state)
		}
		want.txID = a.txID
	case !paid:
		want.txID = ""
	}
	if a != want {
		t.Fatalf("lie %s: answered %+v, want %+v", kind, a, want)
	}
}

// TestLieAboutOrderQueries: with LieAbout, every order query answer about
// the order tells the lie, correctly signed (the merchant clients verify
// each answer; a foreign appid or mch_id is refused by them after the
// signature checked out), before and after payment, in both versions; the
// truth is unchanged and the lie recorded; LieAbout(no, "") ends it.
func TestLieAboutOrderQueries(t *testing.T) {
	for _, v := range []int{2, 3} {
		for _, paid := range []bool{false, true} {
			for _, kind := range wxpaysim.OrderLieKinds {
				t.Run(fmt.Sprintf("v%d/paid=%v/%s", v, paid, kind), func(t *testing.T) {
					l := mustLiar(t)
					no := fmt.Sprintf("T-LIE-%d-%s", v, strconv.FormatBool(paid)[:1])
					l.place(v, no, 500)
					if paid {
						if _, err := l.sim.Pay(no); err != nil {
							t.Fatal(err)
						}
						waitFor(t, "the true notification is acknowledged", acked(l.sim, 1))
					}
					truth, _ := l.sim.Order(no)
					if err := l.sim.LieAbout(no, kind); err != nil {
						t.Fatal(err)
					}
					for range 2 {
						a, err := l.query(v, no)
						switch kind {
						case wxpaysim.LieAppID, wxpaysim.LieMchID:
							var te *wxpay.TransportError
							if !errors.As(err, &te) || !errors.Is(err, wxpay.ErrNotOurs) {
								t.Fatalf("a foreign merchant's answer: %v; want a TransportError wrapping ErrNotOurs", err)
							}
						default:
							if err != nil {
								t.Fatalf("query: %v", err)
							}
							checkOrderLie(t, kind, truth, a)
						}
					}
					if now, _ := l.sim.Order(no); !reflect.DeepEqual(now, truth) {
						t.Fatalf("the truth changed:\n%+v\n%+v", now, truth)
					}
					lies := l.sim.LiesTold()
					if len(lies) != 2 || lies[1].Where != wxpaysim.LieInQuery || lies[1].Kind != kind || lies[1].OutTradeNo != no ||
						lies[1].Told == lies[1].Truth {
						t.Fatalf("lies told: %+v", lies)
					}
					if n := l.sim.Stats().Lies[wxpaysim.LieInQuery+":"+kind]; n != 2 {
						t.Fatalf("stats count %d lies", n)
					}
					if err := l.sim.LieAbout(no, ""); err != nil {
						t.Fatal(err)
					}
					a, err := l.query(v, no)
					if err != nil || a != (answer{truth.State, truth.AppID, truth.MchID, truth.TransactionID, truth.Total}) {
						t.Fatalf("after the lie ended: %+v, %v", a, err)
					}
				})
			}
		}
	}
}

// notified is a payment notification as the receiver got it, verified.
type notified struct {
	state, appID, mchID, txID string
	total                     int64
}

// parsePayment verifies and decodes a payment notification the way a
// merchant does; it fails the test when the signature does not check out.
func (l *liar) parsePayment(t *testing.T, v int, got received) notified {
	t.Helper()
	if v == 2 {
		n, m, err := wxpay.ParseV2PaymentNotification(got.Body, l.cfg.APIKey, "")
		if err != nil {
			t.Fatalf("v2 notification does not verify: %v", err)
		}
		st := wxpaysim.StateSuccess
		if n.ResultCode != "SUCCESS" {
			st = m["trade_state"]
			if n.ErrCode != st {
				t.Fatalf("result_code FAIL with err_code %q, trade_state %q", n.ErrCode, st)
			}
		}
		return notified{st, n.AppID, n.MchID, n.TransactionID, n.TotalFee}
	}
	n, err := l.v3.ParseNotification(got.Header, got.Body)
	if err != nil {
		t.Fatalf("v3 notification does not verify: %v", err)
	}
	tx, err := n.Transaction()
	if err != nil {
		t.Fatal(err)
	}
	return notified{tx.TradeState, tx.AppID, tx.MchID, tx.TransactionID, tx.Amount.Total}
}

// nextPost returns the next POST the receiver got.
func (l *liar) nextPost(t *testing.T) received {
	t.Helper()
	for {
		if got := l.rcv.next(t); got.Method == http.MethodPost {
			return got
		}
	}
}

// TestNotifyLie: NotifyLie sends, at any point of an order's life (before
// payment, after payment, after close), one correctly signed payment
// notification telling the lie, in both versions; the truth is unchanged.
func TestNotifyLie(t *testing.T) {
	for _, v := range []int{2, 3} {
		for _, phase := range []string{"unpaid", "paid", "closed"} {
			for _, kind := range wxpaysim.OrderLieKinds {
				t.Run(fmt.Sprintf("v%d/%s/%s", v, phase, kind), func(t *testing.T) {
					l := mustLiar(t)
					no := "T-NLIE-" + phase
					l.place(v, no, 700)
					switch phase {
					case "paid":
						if _, err := l.sim.Pay(no); err != nil {
							t.Fatal(err)
						}
						l.nextPost(t) // the true notification
					case "closed":
						closeOrder := l.v2.CloseOrder
						if v == 3 {
							closeOrder = l.v3.CloseOrder
						}
						if err := closeOrder(context.Background(), no); err != nil {
							t.Fatal(err)
						}
					}
					truth, _ := l.sim.Order(no)
					d, err := l.sim.NotifyLie(no, kind)
					if err != nil || d.Lie != kind || d.Outcome != wxpaysim.OutcomeAcked || d.Kind != "payment" {
						t.Fatalf("NotifyLie = %+v, %v", d, err)
					}
					n := l.parsePayment(t, v, l.nextPost(t))
					base := truth
					if truth.TransactionID == "" {
						base.State, base.TransactionID = wxpaysim.StateSuccess, n.txID
					}
					base.State = wxpaysim.StateSuccess
					switch kind {
					case wxpaysim.LieAppID:
						base.AppID = wxpaysim.LieOtherAppID
					case wxpaysim.LieMchID:
						base.MchID = wxpaysim.LieOtherMchID
					case wxpaysim.LieAmount:
						if n.total == truth.Total {
							t.Fatalf("amount lie told the true amount %d", n.total)
						}
						base.Total = n.total
					case wxpaysim.LieUnknown:
						base.State, base.TransactionID = wxpaysim.UnknownTradeState, ""
					default:
						base.State = kind
						if kind != wxpaysim.StateRefund {
							base.TransactionID = ""
						}
					}
					want := notified{base.State, base.AppID, base.MchID, base.TransactionID, base.Total}
					if n != want {
						t.Fatalf("notified %+v, want %+v", n, want)
					}
					if now, _ := l.sim.Order(no); !reflect.DeepEqual(now, truth) {
						t.Fatalf("the truth changed:\n%+v\n%+v", now, truth)
					}
					lies := l.sim.LiesTold()
					if len(lies) != 1 || lies[0].Where != wxpaysim.LieInNotify || lies[0].Kind != kind {
						t.Fatalf("lies told %+v", lies)
					}
					if n.state != wxpaysim.StateSuccess && lies[0].Truth != truth.State {
						t.Fatalf("a state lie recorded the truth %q; it is %q", lies[0].Truth, truth.State)
					}
				})
			}
		}
	}
}

// TestLieAboutRefunds: LieAbout(no, LieRefundAmount) makes the refund
// call's answer, refund queries and every refund notification attempt
// report another amount, signed (v2 refund notifications: encrypted with
// the key), in both versions; the refund recorded is the one asked for.
func TestLieAboutRefunds(t *testing.T) {
	for _, v := range []int{2, 3} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			l := mustLiar(t)
			no, rno := "T-RLIE-0001", "T-RLIE-0001R1"
			l.place(v, no, 1000)
			if _, err := l.sim.Pay(no); err != nil {
				t.Fatal(err)
			}
			l.nextPost(t)
			if err := l.sim.LieAbout(no, wxpaysim.LieRefundAmount); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var answered, queried int64
			if v == 2 {
				r, err := l.v2.Refund(ctx, &wxpay.V2RefundRequest{OutTradeNo: no, OutRefundNo: rno, TotalFee: 1000, RefundFee: 300})
				if err != nil {
					t.Fatal(err)
				}
				q, err := l.v2.QueryRefund(ctx, wxpay.V2RefundQuery{OutRefundNo: rno})
				if err != nil || len(q.Refunds) != 1 {
					t.Fatalf("refund query %+v, %v", q, err)
				}
				answered, queried = r.RefundFee, q.Refunds[0].RefundFee
			} else {
				r, err := l.v3.Refund(ctx, &wxpay.V3RefundRequest{OutTradeNo: no, OutRefundNo: rno, Total: 1000, Refund: 300})
				if err != nil {
					t.Fatal(err)
				}
				q, err := l.v3.QueryRefund(ctx, rno)
				if err != nil {
					t.Fatal(err)
				}
				answered, queried = r.Amount.Refund, q.Amount.Refund
			}
			if answered == 300 || queried == 300 {
				t.Fatalf("refund answers report %d and %d fen: the truth, not a lie", answered, queried)
			}
			if o, _ := l.sim.Order(no); len(o.Refunds) != 1 || o.Refunds[0].Amount != 300 || o.Refunded != 300 {
				t.Fatalf("the truth: %+v", o.Refunds)
			}
			if _, err := l.sim.CompleteRefund(rno); err != nil {
				t.Fatal(err)
			}
			if got := l.refundNotified(t, v, l.nextPost(t)); got == 300 {
				t.Fatal("the refund notification told the true amount")
			}
			if d, err := l.sim.NotifyLie(no, wxpaysim.LieRefundAmount); err != nil || d.Kind != "refund" || d.OutRefundNo != rno {
				t.Fatalf("NotifyLie = %+v, %v", d, err)
			}
			if got := l.refundNotified(t, v, l.nextPost(t)); got == 300 {
				t.Fatal("NotifyLie told the true amount")
			}
			st := l.sim.Stats().Lies
			if st["refund:refund_amount"] != 1 || st["refundquery:refund_amount"] != 1 || st["refund_notify:refund_amount"] != 2 {
				t.Fatalf("lies counted %v", st)
			}
		})
	}
}

// refundNotified decrypts a refund notification and returns its amount.
func (l *liar) refundNotified(t *testing.T, v int, got received) int64 {
	t.Helper()
	if v == 2 {
		n, _, err := wxpay.ParseV2RefundNotification(got.Body, l.cfg.APIKey)
		if err != nil {
			t.Fatalf("v2 refund notification: %v", err)
		}
		return n.RefundFee
	}
	n, err := l.v3.ParseNotification(got.Header, got.Body)
	if err != nil {
		t.Fatalf("v3 refund notification: %v", err)
	}
	r, err := n.Refund()
	if err != nil {
		t.Fatal(err)
	}
	return r.Amount.Refund
}

// TestLieRateFirstAttemptOnly: a lie drawn by Faults.Lies is told by a
// notification's first POST; the retry tells the truth.
func TestLieRateFirstAttemptOnly(t *testing.T) {
	l := mustLiar(t)
	if err := l.sim.SetFaults(wxpaysim.Faults{Seed: 3, Lies: map[string]float64{wxpaysim.LieAmount: 1}}); err != nil {
		t.Fatal(err)
	}
	l.rcv.mu.Lock()
	l.rcv.failPosts = 1
	l.rcv.mu.Unlock()
	l.place(2, "T-FIRST-0001", 400)
	if _, err := l.sim.Pay("T-FIRST-0001"); err != nil {
		t.Fatal(err)
	}
	first, second := l.parsePayment(t, 2, l.nextPost(t)), l.parsePayment(t, 2, l.nextPost(t))
	if first.total == 400 || second.total != 400 {
		t.Fatalf("first POST %d fen, retry %d fen; want a lie, then the truth", first.total, second.total)
	}
	waitFor(t, "the retry is acknowledged", acked(l.sim, 1))
	var lies []string
	for _, d := range l.sim.Notifications() {
		if d.Method == http.MethodPost {
			lies = append(lies, d.Lie)
		}
	}
	if fmt.Sprint(lies) != "[amount ]" {
		t.Fatalf("deliveries' lies %q", lies)
	}
}

// TestLieRatesReplayWithSeed: the same seed and the same calls tell the
// same lies; a rate below 1 tells some truths too.
func TestLieRatesReplayWithSeed(t *testing.T) {
	rates := map[string]float64{}
	for _, k := range wxpaysim.OrderLieKinds {
		rates[k] = 0.05
	}
	run := func() []string {
		l := mustLiar(t)
		if err := l.sim.SetFaults(wxpaysim.Faults{Seed: 11, Lies: rates}); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			no := fmt.Sprintf("T-RATE-%04d", i)
			l.place(2+i%2, no, 100)
			for range 4 {
				_, _ = l.query(2+i%2, no)
			}
		}
		var out []string
		for _, lt := range l.sim.LiesTold() {
			out = append(out, lt.OutTradeNo+":"+lt.Kind)
		}
		return out
	}
	a, b := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("same seed, other lies:\n%v\n%v", a, b)
	}
	if len(a) == 0 || len(a) == 40 {
		t.Fatalf("a 45%% lie rate told %d lies in 40 answers", len(a))
	}
}

// TestLieSettingsRefused: unknown kinds and rates adding up past 1 are
// refused, by SetFaults, /sim/faults and the targeted helpers.
func TestLieSettingsRefused(t *testing.T) {
	l := mustLiar(t)
	for _, lies := range []map[string]float64{
		{"nonsense": 0.1},
		{wxpaysim.LieAmount: 1.5},
		{wxpaysim.LieAmount: 0.6, wxpaysim.LieClosed: 0.6},
	} {
		if err := l.sim.SetFaults(wxpaysim.Faults{Lies: lies}); err == nil {
			t.Errorf("lies %v accepted", lies)
		}
	}
	if err := l.sim.SetFaults(wxpaysim.Faults{Lies: map[string]float64{wxpaysim.LieAmount: 0.6, wxpaysim.LieRefundAmount: 0.6}}); err != nil {
		t.Errorf("order and refund kinds are drawn apart: %v", err)
	}
	l.place(2, "T-BAD-0001", 100)
	if err := l.sim.LieAbout("T-BAD-0001", "nonsense"); err == nil {
		t.Error("LieAbout accepted an unknown kind")
	}
	if err := l.sim.LieAbout("T-NONE-0001", wxpaysim.LieClosed); !errors.Is(err, wxpaysim.ErrNotFound) {
		t.Errorf("LieAbout an unknown order: %v", err)
	}
	if _, err := l.sim.NotifyLie("T-BAD-0001", wxpaysim.LieRefundAmount); !errors.Is(err, wxpaysim.ErrWrongState) {
		t.Errorf("a refund lie for an order without refunds: %v", err)
	}
	for path, want := range map[string]int{
		"/sim/orders/T-BAD-0001/lie?kind=nonsense":      http.StatusBadRequest,
		"/sim/orders/T-BAD-0001/lie?kind=CLOSED":        http.StatusOK,
		"/sim/orders/T-NONE-0001/lie?kind=CLOSED":       http.StatusNotFound,
		"/sim/orders/T-BAD-0001/notify-lie?kind=amount": http.StatusOK,
	} {
		resp, err := http.Post(l.url+path, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if a, err := l.query(2, "T-BAD-0001"); err != nil || a.state != wxpaysim.StateClosed {
		t.Errorf("after POST .../lie?kind=CLOSED the query answered %+v, %v", a, err)
	}
}
