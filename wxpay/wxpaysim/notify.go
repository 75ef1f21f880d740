package wxpaysim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"tollgate"
	"tollgate/wxpay"
)

// retrySchedule is WeChat Pay's documented wait before each retry of an
// unacknowledged notification (v2 and v3, payment and refund): 15 retries
// after the first attempt, 24h4m in total.
var retrySchedule = []time.Duration{
	15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute, 10 * time.Minute,
	20 * time.Minute, 30 * time.Minute, 30 * time.Minute, 30 * time.Minute, 60 * time.Minute,
	3 * time.Hour, 3 * time.Hour, 3 * time.Hour, 6 * time.Hour, 6 * time.Hour,
}

// RetrySchedule returns the waits between notification attempts (virtual
// time, before TimeScale).
func RetrySchedule() []time.Duration { return append([]time.Duration(nil), retrySchedule...) }

// maxHandshakeFailures is how many failed HEAD handshakes in a row make the
// emulator stop calling a notify URL.
const maxHandshakeFailures = 3

// Outcomes of a Delivery.
const (
	OutcomeAcked          = "acked"          // the receiver acknowledged
	OutcomeFailed         = "failed"         // no acknowledgement; retried later
	OutcomeHandshakeOK    = "handshake_ok"   // HEAD answered 2xx
	OutcomeHandshakeFail  = "handshake_fail" // HEAD failed; the attempt counts as failed
	OutcomeBlacklisted    = "blacklisted"    // URL no longer called after failed handshakes
	OutcomeDropped        = "dropped"        // fault injection: never delivered
	OutcomeGaveUp         = "gave_up"        // the schedule is exhausted
	OutcomeProbeRefused   = "probe_refused"  // a SIGNTEST probe answered 4xx/5xx, as it should
	OutcomeProbeAccepted  = "probe_accepted" // a SIGNTEST probe answered 2xx: the receiver does not verify
	OutcomeDuplicateAcked = "duplicate_acked"
)

// Delivery is one notification delivery attempt (or a decision not to
// deliver), as returned by Notifications and GET /sim/notifications.
type Delivery struct {
	Seq            int    `json:"seq"`
	NotificationID string `json:"notification_id"`
	Kind           string `json:"kind"` // "payment" or "refund"
	APIVersion     int    `json:"api_version"`
	OutTradeNo     string `json:"out_trade_no"`
	OutRefundNo    string `json:"out_refund_no,omitempty"`
	URL            string `json:"url"`
	Method         string `json:"method,omitempty"` // HEAD or POST; empty when nothing was sent
	Attempt        int    `json:"attempt"`          // 1 for the first delivery, up to 16
	// ScheduledMS is the attempt's planned offset from the first attempt,
	// in virtual milliseconds (0, 15000, 30000, 60000, 240000, ...).
	ScheduledMS int64     `json:"scheduled_ms"`
	Time        time.Time `json:"time"` // real time the request was sent
	Status      int       `json:"status,omitempty"`
	Reply       string    `json:"reply,omitempty"` // first 1 KiB of the answer
	Err         string    `json:"error,omitempty"`
	Outcome     string    `json:"outcome"`
	Probe       bool      `json:"probe,omitempty"`
	Duplicate   bool      `json:"duplicate,omitempty"`
	// Lie is the kind of lie (Lie*) the body told, or empty for the truth.
	Lie string `json:"lie,omitempty"`
	// SignedBy is the certificate NotifySignedBy signed with.
	SignedBy string `json:"signed_by,omitempty"`
}

// notification is one logical notification being delivered.
type notification struct {
	id          string
	kind        string
	version     int
	url         string
	outTradeNo  string
	outRefundNo string
	body        []byte        // v2 XML or v3 envelope
	rebuild     func() []byte // v2: the same notification with a fresh nonce_str
	plan        plan

	// The truth the notification tells, and how to render any view of it
	// (a lie, lies.go) as a correctly signed body: order and paymentBody
	// for a payment, refund and refundBody for a refund.
	order       Order
	paymentBody func(Order) []byte
	// signer, when set, signs instead of the current key (NotifySignedBy).
	signer     *platformCert
	refund     Refund
	refundBody func(Refund) []byte
}

// lieWhere is where a lie in notification n is told.
func (n *notification) lieWhere() string {
	if n.kind == "refund" {
		return LieInRefundNotify
	}
	return LieInNotify
}

// Notifications returns every delivery attempt so far, in order.
func (s *Server) Notifications() []Delivery {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

func (s *Server) recordDelivery(d Delivery) Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	d.Seq = len(s.deliveries) + 1
	s.deliveries = append(s.deliveries, d)
	return d
}

// startLocked launches the delivery of n.
func (s *Server) startLocked(n *notification) {
	if s.closed {
		return
	}
	s.notifySeq++
	n.plan = s.planLocked(n.version)
	if l, ok := s.drawLieLocked(n.lieWhere()); ok {
		n.plan.lie = &l
	}
	// The first wait starts now, on the caller's goroutine: once Pay (or a
	// refund) returns, a test advancing a fake Clock fires it.
	var first tollgate.Timer
	if d := s.scaled(n.plan.delay); d > 0 {
		first = tollgate.ClockOr(s.Clock).NewTimer(d)
	}
	s.wg.Add(1)
	go s.deliver(n, first)
}

// deliver runs the schedule of one notification until it is acknowledged,
// blacklisted, exhausted or the server is closed. first, when set, is the
// timer of the planned delay before the first attempt.
func (s *Server) deliver(n *notification, first tollgate.Timer) {
	defer s.wg.Done()
	if first != nil {
		defer first.Stop()
		select {
		case <-s.ctx.Done():
			return
		case <-first.C():
		}
	}
	if s.ctx.Err() != nil {
		return
	}
	base := Delivery{NotificationID: n.id, Kind: n.kind, APIVersion: n.version, OutTradeNo: n.outTradeNo, OutRefundNo: n.outRefundNo, URL: n.url}
	if n.plan.drop {
		d := base
		d.Attempt, d.Time, d.Outcome = 1, time.Now(), OutcomeDropped
		s.recordDelivery(d)
		return
	}
	if n.plan.probe {
		s.sendProbe(n, base)
	}
	var offset time.Duration
	for attempt := 1; attempt <= len(retrySchedule)+1; attempt++ {
		if attempt > 1 {
			gap := retrySchedule[attempt-2]
			offset += gap
			if !s.sleep(s.scaled(gap)) {
				return
			}
		}
		d := base
		d.Attempt, d.ScheduledMS = attempt, offset.Milliseconds()
		if s.blacklisted(n.url) {
			d.Time, d.Outcome = time.Now(), OutcomeBlacklisted
			s.recordDelivery(d)
			return
		}
		if s.wantHandshake(n.version) && !s.handshake(n.url, d) {
			continue
		}
		body := n.body
		if attempt > 1 && s.FreshNonceOnRetry && n.rebuild != nil {
			body = n.rebuild()
		}
		if b, kind := s.lyingBody(n, attempt); b != nil {
			body, d.Lie = b, kind
		}
		if attempt == 1 {
			s.sendDuplicates(n, body, d)
		}
		if _, ok := s.post(n, body, d); ok {
			return
		}
	}
	d := base
	d.Attempt, d.Time, d.Outcome = len(retrySchedule)+1, time.Now(), OutcomeGaveUp
	s.recordDelivery(d)
	s.logf("wxpaysim: gave up notifying %s for %s after %d attempts", n.url, n.outTradeNo, len(retrySchedule)+1)
}

// lyingBody returns the body of attempt of n when it lies, and the lie's
// kind: every attempt for an order LieAbout targets, the first one when
// Faults.Lies drew a lie for n. Otherwise it returns nil.
func (s *Server) lyingBody(n *notification, attempt int) ([]byte, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.targetedLieLocked(n.outTradeNo, n.lieWhere())
	if !ok && attempt == 1 && n.plan.lie != nil {
		l, ok = *n.plan.lie, true
	}
	if !ok {
		return nil, ""
	}
	return s.lieBodyLocked(n, l), l.kind
}

// sleep waits d, or returns false when the server is closed.
func (s *Server) sleep(d time.Duration) bool {
	if d <= 0 {
		return s.ctx.Err() == nil
	}
	return tollgate.Sleep(s.ctx, tollgate.ClockOr(s.Clock), d) == nil
}

func (s *Server) blacklisted(url string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.urls[url]
	return u != nil && u.blacklisted
}

// wantHandshake reports whether a notification of the given API version is
// preceded by the HEAD handshake.
func (s *Server) wantHandshake(version int) bool {
	return !s.NoHandshake && (version == 2 || s.HandshakeV3)
}

// handshake sends the HEAD request that precedes each POST and records it.
// Three failures in a row blacklist the URL.
func (s *Server) handshake(url string, d Delivery) bool {
	d.Method, d.Time = http.MethodHead, time.Now()
	status, reply, err := s.send(http.MethodHead, url, nil, nil)
	d.Status, d.Reply = status, reply
	ok := err == nil && status >= 200 && status < 300
	if err != nil {
		d.Err = err.Error()
	}
	s.mu.Lock()
	u := s.urls[url]
	if u == nil {
		u = &urlState{}
		s.urls[url] = u
	}
	if ok {
		u.handshakeFailures = 0
		d.Outcome = OutcomeHandshakeOK
	} else {
		u.handshakeFailures++
		d.Outcome = OutcomeHandshakeFail
		if u.handshakeFailures >= maxHandshakeFailures && !u.blacklisted {
			u.blacklisted = true
			s.logf("wxpaysim: %s failed %d HEAD handshakes in a row; no longer calling it", url, u.handshakeFailures)
		}
	}
	s.mu.Unlock()
	s.recordDelivery(d)
	return ok
}

// post sends the notification body once and records whether it was
// acknowledged.
func (s *Server) post(n *notification, body []byte, d Delivery) (Delivery, bool) {
	hdr := s.notifyHeaders(n, body, "")
	d.Method, d.Time = http.MethodPost, time.Now()
	status, reply, err := s.send(http.MethodPost, n.url, hdr, body)
	d.Status, d.Reply = status, reply
	if err != nil {
		d.Err = err.Error()
	}
	ok := err == nil && acked(n.version, status, reply)
	d.Outcome = OutcomeFailed
	if ok {
		d.Outcome = OutcomeAcked
		if d.Duplicate {
			d.Outcome = OutcomeDuplicateAcked
		}
	}
	return s.recordDelivery(d), ok
}

// acked reports whether a reply acknowledges a notification: v2 needs HTTP
// 200 and an XML body whose return_code is SUCCESS; v3 any 2xx.
func acked(version, status int, reply string) bool {
	if version == 3 {
		return status >= 200 && status < 300
	}
	if status != http.StatusOK {
		return false
	}
	m, err := wxpay.DecodeV2XML([]byte(reply))
	return err == nil && m["return_code"] == "SUCCESS"
}

// sendDuplicates fires the planned concurrent copies of the first POST.
func (s *Server) sendDuplicates(n *notification, body []byte, d Delivery) {
	if n.plan.duplicates == 0 {
		return
	}
	var wg sync.WaitGroup
	for range n.plan.duplicates {
		wg.Add(1)
		dd := d
		dd.Duplicate = true
		go func() {
			defer wg.Done()
			s.post(n, body, dd)
		}()
	}
	// The copies race the original; they are not waited for here, but
	// Close waits for them through the delivery goroutine.
	s.wg.Add(1)
	go func() { defer s.wg.Done(); wg.Wait() }()
}

// sendProbe sends a v3 notification with a WECHATPAY/SIGNTEST/ signature.
func (s *Server) sendProbe(n *notification, d Delivery) {
	hdr := s.notifyHeaders(n, n.body, wxpay.V3SignatureProbePrefix+randAlnum(32))
	d.Method, d.Time, d.Probe = http.MethodPost, time.Now(), true
	status, reply, err := s.send(http.MethodPost, n.url, hdr, n.body)
	d.Status, d.Reply = status, reply
	d.Outcome = OutcomeProbeRefused
	if err != nil {
		d.Err = err.Error()
	} else if status >= 200 && status < 300 {
		d.Outcome = OutcomeProbeAccepted
		s.logf("wxpaysim: %s ACCEPTED a WECHATPAY/SIGNTEST probe: the receiver does not verify signatures", n.url)
	}
	s.recordDelivery(d)
}

// notifyHeaders returns the request headers of a notification. For v3 the
// signature is fresh each time (or the probe value when probe is set).
func (s *Server) notifyHeaders(n *notification, body []byte, probe string) http.Header {
	h := http.Header{}
	h.Set("User-Agent", "Mozilla/4.0 (wxpaysim)")
	if n.version == 2 {
		h.Set("Content-Type", "text/xml")
		return h
	}
	h.Set("Content-Type", "application/json")
	ts := strconv.FormatInt(s.wallNow().Unix(), 10)
	nonce := randAlnum(32)
	key, serial := s.signer()
	if n.signer != nil {
		key, serial = n.signer.key, n.signer.serial
	}
	sig := probe
	if sig == "" {
		var err error
		sig, err = wxpay.SignV3(key, wxpay.V3ResponseMessage(ts, nonce, body))
		if err != nil {
			s.logf("wxpaysim: signing notification: %v", err)
		}
	}
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Serial", serial)
	h.Set("Wechatpay-Signature-Type", wxpay.V3AuthScheme)
	h.Set("Wechatpay-Signature", sig)
	return h
}

// send makes one request with the answer deadline and returns the status
// and the first 1 KiB of the reply.
func (s *Server) send(method, url string, hdr http.Header, body []byte) (int, string, error) {
	deadline := s.AnswerDeadline
	if deadline <= 0 {
		deadline = DefaultAnswerDeadline
	}
	ctx, cancel := context.WithTimeout(s.ctx, deadline)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, "", fmt.Errorf("build request: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := s.notifyClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err != nil {
		return resp.StatusCode, string(b), fmt.Errorf("read reply: %w", err)
	}
	return resp.StatusCode, string(b), nil
}
