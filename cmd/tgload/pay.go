package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tollgate"
	"tollgate/internal/apiclient"
	"tollgate/wxpay"
)

// Payment modes (-mode). The chat mode is the default and the only one that
// uses -url; the others talk to serve at -base.
const (
	ModeChat         = "chat"
	ModeOrders       = "orders"       // POST /v1/payments/orders through serve
	ModeUnifiedOrder = "unifiedorder" // baseline: signed v2 unifiedorder straight to the emulator
	ModeNotify       = "notify"       // signed v2 notifications to /wxpay/notify: first (credited), then repeated
)

// validatePay checks the settings of the payment modes.
func (c Config) validatePay() error {
	if err := c.validateRun(); err != nil {
		return err
	}
	switch {
	case c.Mode != ModeUnifiedOrder && c.Key == "":
		return fmt.Errorf("-mode %s needs -key (an API key of serve)", c.Mode)
	case c.Mode != ModeOrders && (c.MchID == "" || c.AppID == "" || len(c.APIKey) != 32):
		return fmt.Errorf("-mode %s needs -mch-id, -appid and the 32-character -api-key serve's emulator runs with", c.Mode)
	case (c.Mode == ModeNotify || c.Mode == ModeWebhooks) && (c.Orders < 1 || c.Orders > 100000):
		return fmt.Errorf("-orders must be in 1..100000, got %d", c.Orders)
	case c.Mode == ModeWebhooks && c.Admin == "":
		return fmt.Errorf("-mode webhooks needs -admin (serve's admin token)")
	case c.Mode == ModeWebhooks && (c.Backlog < 1 || c.Backlog > 100000):
		return fmt.Errorf("-backlog must be in 1..100000, got %d", c.Backlog)
	}
	if err := c.validateBurst(); err != nil {
		return err
	}
	if c.Mode == ModeUnifiedOrder && c.Sim != "" {
		if err := CheckLoopback(c.Sim); err != nil {
			return err
		}
	}
	return CheckLoopback(c.Base)
}

// newClient is the loopback-only HTTP client of a run.
func newClient(cfg Config) (*http.Client, *http.Transport) {
	n := max(cfg.Clients, cfg.PrepClients)
	tr := &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n, DisableCompression: true, IdleConnTimeout: time.Minute,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, Control: loopbackOnly}).DialContext}
	return &http.Client{Transport: tr, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, tr
}

// opError is a failed operation: status 0 for a transport error.
type opError struct {
	status int
	msg    string
}

func (e *opError) Error() string { return fmt.Sprintf("status %d: %s", e.status, e.msg) }

// closedLoop runs op from clients workers until ctx ends (bounded by d),
// limit operations were started (0: no limit), or op reports done. It
// returns the measurements in a Result (ByStatus 200: ok).
func closedLoop(ctx context.Context, clients int, d time.Duration, limit int, op func(ctx context.Context, i int) (done bool, err error)) *Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var next atomic.Int64
	workers := make([]*worker, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for k := range workers {
		w := &worker{status: map[int]int{}}
		workers[k] = w
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if limit > 0 && i >= limit {
					return
				}
				t := time.Now()
				done, err := op(ctx, i)
				if done {
					return
				}
				if err != nil {
					if ctx.Err() != nil {
						return // cut by the end of the run: not counted
					}
					var oe *opError
					if errors.As(err, &oe) {
						w.fail(oe.status, oe.msg)
					} else {
						w.fail(0, err.Error())
					}
					continue
				}
				w.status[http.StatusOK]++
				w.lat = append(w.lat, time.Since(t))
			}
		})
	}
	wg.Wait()
	res := &Result{Elapsed: time.Since(start), ByStatus: map[int]int{}}
	for _, w := range workers {
		res.Latencies = append(res.Latencies, w.lat...)
		for s, n := range w.status {
			res.ByStatus[s] += n
		}
		if res.FirstErr == "" {
			res.FirstErr = w.firstErr
		}
	}
	return res
}

// do sends a request and returns the body of a 2xx answer; any other status
// is an *opError.
func do(ctx context.Context, client *http.Client, method, url string, body []byte, h map[string]string) ([]byte, error) {
	req := apiclient.Request{Method: method, URL: url, Header: h}
	if body != nil {
		req.Body = body
	}
	r, err := apiclient.Do(ctx, client, req, 1<<20)
	if err != nil {
		return nil, &opError{0, err.Error()}
	}
	if !r.OK() {
		return r.Body, &opError{r.Status, strings.TrimSpace(string(r.Body))}
	}
	return r.Body, nil
}

// createdOrder is what the load keeps of POST /v1/payments/orders.
type createdOrder struct {
	OutTradeNo string `json:"out_trade_no"`
	AmountFen  int64  `json:"amount_fen"`
	Credits    int64  `json:"credits"`
}

// runID makes idempotency keys, order numbers, nonces and transaction ids
// of one run unique across runs.
func runID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// createOrder places one order through serve with a fresh Idempotency-Key.
func createOrder(ctx context.Context, client *http.Client, cfg Config, idem string) (createdOrder, error) {
	body := fmt.Sprintf(`{"package_id":%q,"device_fingerprint":%q}`, cfg.Package, cfg.Fingerprint)
	b, err := do(ctx, client, http.MethodPost, cfg.Base+"/v1/payments/orders", []byte(body), map[string]string{
		"Authorization": "Bearer " + cfg.Key, "Idempotency-Key": idem, "Content-Type": "application/json"})
	var o createdOrder
	if err != nil {
		return o, err
	}
	if err := json.Unmarshal(b, &o); err != nil || o.OutTradeNo == "" || o.AmountFen <= 0 {
		return o, &opError{200, fmt.Sprintf("unexpected answer %.200s", b)}
	}
	return o, nil
}

// NotificationBody is a v2 SUCCESS payment notification for order o, as
// WeChat Pay sends it (no sign_type; every field signed with MD5 and the
// merchant key), with the given nonce_str and transaction_id.
func NotificationBody(cfg Config, o createdOrder, nonce, transactionID string, paidAt time.Time) ([]byte, error) {
	fen := strconv.FormatInt(o.AmountFen, 10)
	m := map[string]string{
		"return_code": "SUCCESS", "return_msg": "OK", "result_code": "SUCCESS",
		"appid": cfg.AppID, "mch_id": cfg.MchID, "nonce_str": nonce,
		"openid": "oBenchUser0000000000000000001", "is_subscribe": "N", "trade_type": wxpay.V2TradeTypeNative, "bank_type": "OTHERS",
		"total_fee": fen, "fee_type": "CNY", "cash_fee": fen,
		"transaction_id": transactionID, "out_trade_no": o.OutTradeNo,
		"time_end": paidAt.In(tollgate.Beijing).Format("20060102150405"),
	}
	sig, err := wxpay.SignV2(m, wxpay.SignTypeMD5, cfg.APIKey)
	if err != nil {
		return nil, err
	}
	m["sign"] = sig
	return wxpay.EncodeV2XML(m), nil
}

// checkAck returns an error unless b is the v2 SUCCESS acknowledgement.
func checkAck(b []byte) error {
	m, err := wxpay.DecodeV2XML(b)
	if err != nil || m["return_code"] != "SUCCESS" {
		return &opError{200, fmt.Sprintf("not a SUCCESS ack: %.200s", b)}
	}
	return nil
}

// PayReport is what a payment mode prints: one row per measured phase, and
// the post-run check of the notify mode.
type PayReport struct {
	Rows  []PayRow
	Check string
}

// PayRow is one measured phase.
type PayRow struct {
	Name string
	Res  *Result
}

// LoadPay runs a payment mode.
func LoadPay(ctx context.Context, cfg Config) (*PayReport, error) {
	if err := cfg.validatePay(); err != nil {
		return nil, err
	}
	client, tr := newClient(cfg)
	defer tr.CloseIdleConnections()
	id := runID()
	switch cfg.Mode {
	case ModeOrders:
		res := closedLoop(ctx, cfg.Clients, cfg.Duration, cfg.Requests, func(ctx context.Context, i int) (bool, error) {
			_, err := createOrder(ctx, client, cfg, fmt.Sprintf("tgload-%s-%d", id, i))
			return false, err
		})
		return &PayReport{Rows: []PayRow{{"orders through serve", res}}}, nil
	case ModeUnifiedOrder:
		sim := cfg.Base + "/sandbox/wxpay"
		if cfg.Sim != "" {
			sim = cfg.Sim // an emulator of its own (tollgate sandbox)
		}
		v2 := &wxpay.V2Client{BaseURL: sim, AppID: cfg.AppID, MchID: cfg.MchID, APIKey: cfg.APIKey, HTTPClient: client}
		res := closedLoop(ctx, cfg.Clients, cfg.Duration, cfg.Requests, func(ctx context.Context, i int) (bool, error) {
			_, err := v2.UnifiedOrder(ctx, &wxpay.V2UnifiedOrderRequest{
				OutTradeNo: fmt.Sprintf("TGL%s%d", id, i), Body: "tollgate bench", TotalFee: 100,
				SpbillCreateIP: "127.0.0.1", NotifyURL: cfg.Base + "/wxpay/notify", TradeType: wxpay.V2TradeTypeNative,
				ProductID: cfg.Package, DeviceInfo: "bench"})
			return false, err
		})
		return &PayReport{Rows: []PayRow{{"unifiedorder to the emulator", res}}}, nil
	case ModeNotify:
		return loadNotify(ctx, cfg, client, id)
	case ModeWebhooks:
		return loadWebhooks(ctx, cfg, client, id)
	case ModeBurst:
		return loadBurst(ctx, cfg, id)
	case ModeBacklog:
		return loadBacklog(ctx, cfg, client, id)
	}
	return nil, fmt.Errorf("unknown -mode %q (chat, orders, unifiedorder, notify, webhooks, burst, backlog)", cfg.Mode)
}

// loadNotify pre-creates cfg.Orders orders, posts one signed SUCCESS
// notification for each (each must be credited), checks that exactly those
// were credited, then re-posts the same notifications (each must be
// acknowledged without a change) and checks again.
func loadNotify(ctx context.Context, cfg Config, client *http.Client, id string) (*PayReport, error) {
	before, err := balance(ctx, client, cfg)
	if err != nil {
		return nil, fmt.Errorf("balance before: %w", err)
	}
	orders := make([]createdOrder, cfg.Orders)
	prep := closedLoop(ctx, max(cfg.PrepClients, 1), MaxDuration, cfg.Orders, func(ctx context.Context, i int) (bool, error) {
		o, err := createOrder(ctx, client, cfg, fmt.Sprintf("tgload-%s-%d", id, i))
		orders[i] = o
		return false, err
	})
	if len(prep.Latencies) != cfg.Orders {
		return nil, fmt.Errorf("pre-creating %d orders: %d created (first error: %s)", cfg.Orders, len(prep.Latencies), prep.FirstErr)
	}
	bodies := make([][]byte, cfg.Orders)
	var want int64
	now := time.Now()
	for i, o := range orders {
		var nb [16]byte
		rand.Read(nb[:])
		bodies[i], err = NotificationBody(cfg, o, hex.EncodeToString(nb[:]), fmt.Sprintf("4200%s%016d", id, i), now)
		if err != nil {
			return nil, err
		}
		want += o.Credits
	}
	post := func(ctx context.Context, i int) (bool, error) {
		b, err := do(ctx, client, http.MethodPost, cfg.Base+"/wxpay/notify", bodies[i], map[string]string{"Content-Type": "text/xml"})
		if err != nil {
			return false, err
		}
		return false, checkAck(b)
	}
	first := closedLoop(ctx, cfg.Clients, cfg.Duration, cfg.Orders, post)
	mid, err := balance(ctx, client, cfg)
	if err != nil {
		return nil, fmt.Errorf("balance after: %w", err)
	}
	paid, err := countPaid(ctx, client, cfg, orders)
	if err != nil {
		return nil, err
	}
	repeat := closedLoop(ctx, cfg.Clients, cfg.Duration, cfg.Orders, post)
	after, err := balance(ctx, client, cfg)
	if err != nil {
		return nil, fmt.Errorf("balance after repeat: %w", err)
	}
	check := fmt.Sprintf("%d/%d orders SUCCESS, balance +%d credits (want +%d), +%d after the repeats", paid, cfg.Orders, mid-before, want, after-mid)
	rep := &PayReport{Rows: []PayRow{{"notify, first (credited)", first}, {"notify, repeat (acked, nothing written)", repeat}}, Check: check}
	if paid != cfg.Orders || mid-before != want || after != mid {
		return rep, errors.New("credit check failed: " + check)
	}
	return rep, nil
}

// balance is the account's credits (GET /v1/balance).
func balance(ctx context.Context, client *http.Client, cfg Config) (int64, error) {
	b, err := do(ctx, client, http.MethodGet, cfg.Base+"/v1/balance", nil, map[string]string{"Authorization": "Bearer " + cfg.Key})
	if err != nil {
		return 0, err
	}
	var v struct {
		Credits int64 `json:"credits"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return 0, fmt.Errorf("balance answer %.200s: %w", b, err)
	}
	return v.Credits, nil
}

// countPaid asks serve for each order's status and counts SUCCESS.
func countPaid(ctx context.Context, client *http.Client, cfg Config, orders []createdOrder) (int, error) {
	var paid atomic.Int64
	res := closedLoop(ctx, max(cfg.PrepClients, 1), MaxDuration, len(orders), func(ctx context.Context, i int) (bool, error) {
		b, err := do(ctx, client, http.MethodGet, cfg.Base+"/v1/payments/orders/"+orders[i].OutTradeNo, nil, map[string]string{"Authorization": "Bearer " + cfg.Key})
		if err != nil {
			return false, err
		}
		var v struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return false, err
		}
		if v.Status == "SUCCESS" {
			paid.Add(1)
		}
		return false, nil
	})
	if len(res.Latencies) != len(orders) {
		return 0, fmt.Errorf("reading %d orders: %d read (first error: %s)", len(orders), len(res.Latencies), res.FirstErr)
	}
	return int(paid.Load()), nil
}

// Write prints the report: with cfg.Row one Markdown row per phase
// (name | ok/s | p50 | p99 | errors), else a few lines per phase.
func (r *PayReport) Write(w io.Writer, cfg Config) {
	for _, row := range r.Rows {
		res := row.Res
		slices.Sort(res.Latencies)
		total := 0
		for _, n := range res.ByStatus {
			total += n
		}
		rate := float64(len(res.Latencies)) / res.Elapsed.Seconds()
		if cfg.Row {
			fmt.Fprintf(w, "| %s | %.0f | %s | %s | %d |\n", row.Name, rate, ms(Percentile(res.Latencies, 50)), ms(Percentile(res.Latencies, 99)), total-len(res.Latencies))
			continue
		}
		fmt.Fprintf(w, "%s: %d ok of %d in %s, %.0f ok/s, p50 %s p99 %s max %s\n", row.Name, len(res.Latencies), total,
			res.Elapsed.Round(time.Millisecond), rate, ms(Percentile(res.Latencies, 50)), ms(Percentile(res.Latencies, 99)), ms(Percentile(res.Latencies, 100)))
		if res.FirstErr != "" {
			fmt.Fprintf(w, "  first error: %.200s\n", res.FirstErr)
		}
	}
	if r.Check != "" && !cfg.Row {
		fmt.Fprintf(w, "check: %s\n", r.Check)
	}
}
