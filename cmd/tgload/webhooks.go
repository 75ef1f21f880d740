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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tollgate/webhook"
)

// ModeWebhooks measures webhook delivery (issue 20): a receiver on a
// loopback port of this process, registered with POST /admin/webhooks for
// payment.succeeded (serve must run with --webhook-allow-private), then
//
//   - latency: -orders orders pre-created and paid (signed v2 SUCCESS
//     notifications, -c clients, as -mode notify); for each, the delay
//     from the notification's acknowledgment to its payment.succeeded
//     arriving at the receiver;
//   - throughput: -backlog orders paid while the receiver hangs (the
//     dispatcher holds a few attempts to it and leaves the rest due), then
//     the receiver answers: events delivered per second until the backlog
//     is drained.
//
// Every delivery's Standard Webhooks signature is verified; the endpoint
// is deleted at the end.
const ModeWebhooks = "webhooks"

// receiver records the payment.succeeded deliveries it accepts.
type receiver struct {
	key []byte
	// hang makes the receiver hold each delivery until hang is cleared
	// (then answer 204) or the sender gives up.
	hang     atomic.Bool
	released chan struct{} // closed when hang is cleared

	mu       sync.Mutex
	arrived  map[string]time.Time // out_trade_no -> first arrival
	cut      map[string]bool      // out_trade_no whose attempt the sender gave up while held
	dups     int                  // deliveries of an event already received (same webhook-id)
	ids      map[string]bool
	bad      int // deliveries refused: bad signature or body
	firstBad string
}

func newReceiver(secret string) (*receiver, error) {
	key, err := webhook.SecretKey(secret)
	if err != nil {
		return nil, err
	}
	return &receiver{key: key, released: make(chan struct{}), arrived: map[string]time.Time{}, cut: map[string]bool{},
		ids: map[string]bool{}}, nil
}

// release ends the hang: held deliveries and later ones are answered.
func (rc *receiver) release() {
	if rc.hang.CompareAndSwap(true, false) {
		close(rc.released)
	}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	no, err := rc.verify(r.Header, body)
	if err != nil {
		rc.mu.Lock()
		rc.bad++
		if rc.firstBad == "" {
			rc.firstBad = err.Error()
		}
		rc.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if rc.hang.Load() {
		select {
		case <-rc.released:
			at = time.Now()
		case <-r.Context().Done():
			rc.mu.Lock()
			rc.cut[no] = true
			rc.mu.Unlock()
			return
		}
	}
	rc.mu.Lock()
	id := r.Header.Get("webhook-id")
	if rc.ids[id] {
		rc.dups++
	} else if _, ok := rc.arrived[no]; !ok {
		rc.arrived[no] = at
	}
	rc.ids[id] = true
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// verify checks a delivery's signature as a receiver does and returns the
// paid order's out_trade_no.
func (rc *receiver) verify(h http.Header, body []byte) (string, error) {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || id == "" {
		return "", fmt.Errorf("webhook-id %q, webhook-timestamp %q", id, ts)
	}
	want := webhook.Signature(rc.key, id, time.Unix(sec, 0), body)
	ok := false
	for _, s := range strings.Fields(sigs) {
		ok = ok || s == want
	}
	if !ok {
		return "", errors.New("no valid signature")
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			OutTradeNo string `json:"out_trade_no"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.Type != webhook.PaymentSucceeded || ev.Data.OutTradeNo == "" {
		return "", fmt.Errorf("not a payment.succeeded with an out_trade_no: %.200s", body)
	}
	return ev.Data.OutTradeNo, nil
}

func (rc *receiver) arrival(no string) (time.Time, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	t, ok := rc.arrived[no]
	return t, ok
}

// waitAll waits until every order in nos has arrived, or ctx ends.
func (rc *receiver) waitAll(ctx context.Context, nos []string) int {
	for {
		n := 0
		for _, no := range nos {
			if _, ok := rc.arrival(no); ok {
				n++
			}
		}
		if n == len(nos) || ctx.Err() != nil {
			return n
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// registerEndpoint registers url for payment.succeeded and returns its id
// and secret.
func registerEndpoint(ctx context.Context, client *http.Client, cfg Config, url string) (string, string, error) {
	body, _ := json.Marshal(map[string]any{"url": url, "events": []string{webhook.PaymentSucceeded}, "description": "tgload -mode webhooks"})
	b, err := do(ctx, client, http.MethodPost, cfg.Base+"/admin/webhooks", body, map[string]string{
		"Authorization": "Bearer " + cfg.Admin, "Content-Type": "application/json"})
	if err != nil {
		return "", "", fmt.Errorf("POST /admin/webhooks (serve needs --webhook-allow-private): %w", err)
	}
	var v struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.ID == "" || v.Secret == "" {
		return "", "", fmt.Errorf("POST /admin/webhooks answered %.200s", b)
	}
	return v.ID, v.Secret, nil
}

// payOrders pre-creates n orders, then posts one signed SUCCESS
// notification for each from cfg.Clients clients. It returns the orders,
// when each one's notification was sent and acknowledged, and the
// notification phase's Result.
func payOrders(ctx context.Context, cfg Config, client *http.Client, id string, n int) ([]createdOrder, [][]time.Time, *Result, error) {
	orders := make([]createdOrder, n)
	prep := closedLoop(ctx, max(cfg.PrepClients, 1), MaxDuration, n, func(ctx context.Context, i int) (bool, error) {
		o, err := createOrder(ctx, client, cfg, fmt.Sprintf("tgload-%s-%d", id, i))
		orders[i] = o
		return false, err
	})
	if len(prep.Latencies) != n {
		return nil, nil, nil, fmt.Errorf("pre-creating %d orders: %d created (first error: %s)", n, len(prep.Latencies), prep.FirstErr)
	}
	bodies := make([][]byte, n)
	now := time.Now()
	for i, o := range orders {
		var nb [16]byte
		rand.Read(nb[:])
		var err error
		if bodies[i], err = NotificationBody(cfg, o, hex.EncodeToString(nb[:]), fmt.Sprintf("4200%s%016d", id, i), now); err != nil {
			return nil, nil, nil, err
		}
	}
	acked := make([]time.Time, n)
	sent := make([]time.Time, n)
	res := closedLoop(ctx, cfg.Clients, cfg.Duration, n, func(ctx context.Context, i int) (bool, error) {
		sent[i] = time.Now()
		b, err := do(ctx, client, http.MethodPost, cfg.Base+"/wxpay/notify", bodies[i], map[string]string{"Content-Type": "text/xml"})
		if err == nil {
			err = checkAck(b)
		}
		acked[i] = time.Now()
		return false, err
	})
	if len(res.Latencies) != n {
		return nil, nil, nil, fmt.Errorf("notifying %d orders: %d acknowledged (first error: %s)", n, len(res.Latencies), res.FirstErr)
	}
	return orders, [][]time.Time{sent, acked}, res, nil
}

// loadWebhooks runs ModeWebhooks.
func loadWebhooks(ctx context.Context, cfg Config, client *http.Client, id string) (rep *PayReport, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var rc atomic.Pointer[receiver]
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := rc.Load(); p != nil {
			p.ServeHTTP(w, r)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	ep, secret, err := registerEndpoint(ctx, client, cfg, "http://"+ln.Addr().String()+"/hooks")
	if err != nil {
		return nil, err
	}
	defer func() {
		_, derr := do(context.WithoutCancel(ctx), client, http.MethodDelete, cfg.Base+"/admin/webhooks/"+ep, nil,
			map[string]string{"Authorization": "Bearer " + cfg.Admin})
		err = errors.Join(err, derr)
	}()
	r, err := newReceiver(secret)
	if err != nil {
		return nil, err
	}
	rc.Store(r)

	// Latency under the payment load.
	begin := time.Now()
	orders, times, notify, err := payOrders(ctx, cfg, client, id+"a", cfg.Orders)
	if err != nil {
		return nil, err
	}
	nos := make([]string, len(orders))
	for i, o := range orders {
		nos[i] = o.OutTradeNo
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	got := r.waitAll(wctx, nos)
	cancel()
	// From the notification's sending (WeChat Pay telling serve of the
	// payment) and from its acknowledgment; most deliveries beat the
	// acknowledgment back to the sender.
	fromSent, fromAck := &Result{ByStatus: map[int]int{}}, &Result{ByStatus: map[int]int{}}
	var last time.Time
	early := 0
	for i, no := range nos {
		at, ok := r.arrival(no)
		if !ok {
			fromSent.ByStatus[0]++
			fromAck.ByStatus[0]++
			continue
		}
		fromSent.ByStatus[http.StatusOK]++
		fromAck.ByStatus[http.StatusOK]++
		if at.Before(times[1][i]) {
			early++
		}
		fromSent.Latencies = append(fromSent.Latencies, max(0, at.Sub(times[0][i])))
		fromAck.Latencies = append(fromAck.Latencies, max(0, at.Sub(times[1][i])))
		if at.After(last) {
			last = at
		}
	}
	fromSent.Elapsed, fromAck.Elapsed = last.Sub(begin), last.Sub(begin)
	if got < len(nos) {
		fromSent.FirstErr = fmt.Sprintf("%d of %d payment.succeeded not received within -d %s", len(nos)-got, len(nos), cfg.Duration)
	}
	rep = &PayReport{Rows: []PayRow{{"notify, first (credited)", notify},
		{"payment.succeeded: delay after the notification was sent", fromSent},
		{"payment.succeeded: delay after the ack (0 when first)", fromAck}}}

	// Throughput: a backlog built while the receiver hangs, then drained.
	b, err := newReceiver(secret)
	if err != nil {
		return rep, err
	}
	b.hang.Store(true)
	rc.Store(b)
	borders, _, _, err := payOrders(ctx, cfg, client, id+"b", cfg.Backlog)
	if err != nil {
		return rep, err
	}
	released := time.Now()
	b.release()
	bnos := make([]string, len(borders))
	for i, o := range borders {
		bnos[i] = o.OutTradeNo
	}
	wctx, cancel = context.WithTimeout(ctx, cfg.Duration)
	bgot := b.waitAll(wctx, bnos)
	cancel()
	drain := &Result{ByStatus: map[int]int{}}
	b.mu.Lock()
	var end time.Time
	for _, no := range bnos {
		at, ok := b.arrived[no]
		switch {
		case !ok:
			drain.ByStatus[0]++
		case b.cut[no]:
			// Attempted while the receiver hung and timed out: retried
			// after its backoff, not part of the drain.
		default:
			drain.ByStatus[http.StatusOK]++
			drain.Latencies = append(drain.Latencies, at.Sub(released))
			if at.After(end) {
				end = at
			}
		}
	}
	bad, firstBad, dups := r.bad+b.bad, r.firstBad+b.firstBad, r.dups+b.dups
	cut := len(b.cut)
	b.mu.Unlock()
	drain.Elapsed = end.Sub(released)
	if bgot < len(bnos) {
		drain.FirstErr = fmt.Sprintf("%d of %d backlog events not received within -d %s", len(bnos)-bgot, len(bnos), cfg.Duration)
	}
	rep.Rows = append(rep.Rows, PayRow{"backlog drained (ok/s = events/s; latency from the receiver's recovery)", drain})
	rep.Check = fmt.Sprintf("%d/%d and %d/%d events received, signatures verified (%d refused), %d duplicate deliveries, "+
		"%d delivered before the ack, %d backlog attempts cut while the receiver hung (left out of the drain)",
		got, len(nos), bgot, len(bnos), bad, dups, early, cut)
	if bad > 0 {
		return rep, fmt.Errorf("%d deliveries refused: %s", bad, firstBad)
	}
	if got < len(nos) || bgot < len(bnos) {
		return rep, errors.New("not every event was delivered: " + rep.Check)
	}
	return rep, nil
}
