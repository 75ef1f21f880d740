package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Bounds on a run, so that a typo cannot turn the tool into a flood.
const (
	MaxClients  = 1024
	MaxDuration = 10 * time.Minute
)

// Config is one run's settings.
type Config struct {
	URL       string
	Key       string
	Clients   int
	Duration  time.Duration
	Requests  int // stop after this many requests in total; 0: only Duration bounds the run
	Stream    bool
	Model     string
	MaxTokens int
	Prompt    string
	Timeout   time.Duration // per request
	Row       bool          // print one table row instead of the report

	// Payment modes (pay.go); Mode "" or "chat" is the chat load above.
	Mode        string
	Base        string // serve's base URL
	MchID       string // merchant of serve's emulator
	AppID       string
	APIKey      string // its 32-character v2 key, to sign as WeChat Pay does
	Package     string
	Fingerprint string
	Orders      int    // notify: orders pre-created and notified
	PrepClients int    // notify: clients pre-creating and checking orders
	Admin       string // webhooks: serve's admin token
	Backlog     int    // webhooks: orders paid while the receiver hangs; backlog: unpaid orders pending
	BurstConfig        // burst, backlog (burst.go)
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("tgload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c Config
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080/v1/chat/completions", "Chat Completions URL, or a Responses one (…/v1/responses) to load that API (loopback only)")
	fs.StringVar(&c.Key, "key", "", "API key, sent as Authorization: Bearer")
	fs.IntVar(&c.Clients, "c", 16, fmt.Sprintf("concurrent closed-loop clients (1..%d)", MaxClients))
	fs.DurationVar(&c.Duration, "d", 10*time.Second, fmt.Sprintf("duration (at most %s)", MaxDuration))
	fs.IntVar(&c.Requests, "n", 0, "stop after this many requests (0: duration only)")
	fs.BoolVar(&c.Stream, "stream", false, "ask for SSE streams and measure time to first token")
	fs.StringVar(&c.Model, "model", "mock-gpt", "model name")
	fs.IntVar(&c.MaxTokens, "max-tokens", 16, "max_tokens of each request")
	fs.StringVar(&c.Prompt, "prompt", "Say hello in a few words.", "user message")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.BoolVar(&c.Row, "row", false, "print one Markdown table row: ok/s | p50 | p90 | p99 | TTFT p50 | TTFT p99 | errors")
	fs.StringVar(&c.Mode, "mode", ModeChat, "chat (Chat Completions at -url), orders (POST /v1/payments/orders at -base), unifiedorder (signed v2 unifiedorder to the emulator under -base), notify (signed v2 notifications to -base/wxpay/notify), webhooks (payment.succeeded delivery: delay after each payment, backlog events/s; needs -admin), burst (-orders notified within -within, open loop, WeChat Pay's timeout and retries), backlog (-backlog unpaid orders pending, then the notify load; the poller's queries at the emulator)")
	fs.StringVar(&c.Base, "base", "http://127.0.0.1:8080", "payment modes: tollgate serve's base URL (loopback only)")
	fs.StringVar(&c.MchID, "mch-id", "", "unifiedorder, notify: mch_id of serve's emulator (serve --wxpay-mch-id)")
	fs.StringVar(&c.AppID, "appid", "", "unifiedorder, notify: appid (serve --wxpay-appid)")
	fs.StringVar(&c.APIKey, "api-key", "", "unifiedorder, notify: the 32-character v2 API key (serve --wxpay-api-key)")
	fs.StringVar(&c.Package, "package", "starter", "orders, notify: package_id of the orders")
	fs.StringVar(&c.Fingerprint, "fingerprint", "bench-fingerprint-0001", "orders, notify: device_fingerprint of the orders")
	fs.IntVar(&c.Orders, "orders", 1000, "notify: orders to pre-create, notify once each, then notify again")
	fs.IntVar(&c.PrepClients, "prep-c", 16, "notify: clients that pre-create and afterwards check the orders")
	fs.StringVar(&c.Admin, "admin", "", "webhooks: serve's admin token (registers the receiver with POST /admin/webhooks)")
	fs.IntVar(&c.Backlog, "backlog", 2000, "webhooks: orders paid while the receiver hangs, then drained; backlog: unpaid orders left pending while the notify load runs")
	addBurstFlags(fs, &c.BurstConfig)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch c.Mode {
	case ModeChat:
		return c, c.Validate()
	case ModeOrders, ModeUnifiedOrder, ModeNotify, ModeWebhooks, ModeBurst, ModeBacklog:
		return c, c.validatePay()
	}
	return c, fmt.Errorf("unknown -mode %q (chat, orders, unifiedorder, notify, webhooks, burst, backlog)", c.Mode)
}

// Validate checks the bounds and that the target is a loopback address.
func (c Config) Validate() error {
	if err := c.validateRun(); err != nil {
		return err
	}
	if c.MaxTokens < 1 {
		return fmt.Errorf("-max-tokens must be positive")
	}
	return CheckLoopback(c.URL)
}

// validateRun checks the bounds every mode shares: clients, duration,
// request count and timeout.
func (c Config) validateRun() error {
	switch {
	case c.Clients < 1 || c.Clients > MaxClients:
		return fmt.Errorf("-c must be in 1..%d, got %d", MaxClients, c.Clients)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("-d must be in (0, %s], got %s", MaxDuration, c.Duration)
	case c.Requests < 0:
		return fmt.Errorf("-n must not be negative")
	case c.Timeout <= 0:
		return fmt.Errorf("-timeout must be positive")
	}
	return nil
}

// CheckLoopback refuses any URL whose host is not a loopback IP literal or
// "localhost": tgload only measures this machine.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url must be an http(s) URL, got %q", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url host %q is not a loopback address: tgload only loads this machine (127.0.0.1, ::1, localhost)", host)
}

// loopbackOnly refuses to connect to a resolved address that is not
// loopback (a "localhost" that resolves elsewhere).
func loopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("tgload: refusing to connect to %s: not a loopback address", address)
	}
	return nil
}

// Result is a run's measurements.
type Result struct {
	Elapsed   time.Duration
	Latencies []time.Duration // successful requests
	TTFTs     []time.Duration // successful streams: first data event
	ByStatus  map[int]int     // every request; 0 is a transport error
	FirstErr  string
}

// worker is one client's measurements, merged at the end.
type worker struct {
	lat, ttft []time.Duration
	status    map[int]int
	firstErr  string
}

// Load runs cfg and returns what it measured.
func Load(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	body := requestBody(cfg)
	tr := &http.Transport{MaxIdleConns: cfg.Clients, MaxIdleConnsPerHost: cfg.Clients, DisableCompression: true, IdleConnTimeout: time.Minute,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, Control: loopbackOnly}).DialContext}
	defer tr.CloseIdleConnections()
	// No proxy (Proxy is nil) and no redirects: a redirect could lead
	// off this machine.
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()

	budget := &atomic.Int64{} // requests left when -n is set
	budget.Store(int64(cfg.Requests))
	workers := make([]*worker, cfg.Clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &worker{status: map[int]int{}}
		workers[i] = w
		wg.Go(func() { w.loop(ctx, client, cfg, body, budget) })
	}
	wg.Wait()
	res := &Result{Elapsed: time.Since(start), ByStatus: map[int]int{}}
	for _, w := range workers {
		res.Latencies = append(res.Latencies, w.lat...)
		res.TTFTs = append(res.TTFTs, w.ttft...)
		for s, n := range w.status {
			res.ByStatus[s] += n
		}
		if res.FirstErr == "" {
			res.FirstErr = w.firstErr
		}
	}
	return res, nil
}

// responsesURL reports whether the target is the Responses API
// (…/v1/responses) rather than Chat Completions.
func responsesURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && strings.HasSuffix(u.Path, "/responses")
}

// requestBody is the request every client sends: a Chat Completions one,
// or the same prompt as a Responses one when the URL is …/v1/responses.
func requestBody(cfg Config) []byte {
	var b bytes.Buffer
	if responsesURL(cfg.URL) {
		fmt.Fprintf(&b, `{"model":%q,"max_output_tokens":%d,"input":%q`, cfg.Model, cfg.MaxTokens, cfg.Prompt)
	} else {
		fmt.Fprintf(&b, `{"model":%q,"max_tokens":%d,"messages":[{"role":"user","content":%q}]`, cfg.Model, cfg.MaxTokens, cfg.Prompt)
	}
	if cfg.Stream {
		b.WriteString(`,"stream":true`)
	}
	b.WriteString("}")
	return b.Bytes()
}

func (w *worker) loop(ctx context.Context, client *http.Client, cfg Config, body []byte, budget *atomic.Int64) {
	for ctx.Err() == nil {
		if cfg.Requests > 0 && budget.Add(-1) < 0 {
			return
		}
		w.one(ctx, client, cfg, body)
	}
}

// one sends a request and reads the whole answer. A request cut by the end
// of the run is not counted.
func (w *worker) one(ctx context.Context, client *http.Client, cfg Config, body []byte) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		w.fail(0, err.Error())
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.Key != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Key)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			w.fail(0, err.Error())
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if ctx.Err() == nil {
			w.fail(resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return
	}
	var ttft time.Duration
	if cfg.Stream {
		ttft, err = readStream(resp.Body, start, responsesURL(cfg.URL))
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			w.fail(0, err.Error())
		}
		return
	}
	w.status[http.StatusOK]++
	w.lat = append(w.lat, time.Since(start))
	if cfg.Stream {
		w.ttft = append(w.ttft, ttft)
	}
}

// readStream reads an SSE body to its end and returns the time from start
// to the first data event. A chat stream ends with [DONE], a Responses
// one (responses) with response.completed.
func readStream(r io.Reader, start time.Time, responses bool) (time.Duration, error) {
	var ttft time.Duration
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	done := false
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("data:")) {
			continue
		}
		if ttft == 0 {
			ttft = time.Since(start)
		}
		if responses {
			done = done || bytes.Contains(line, []byte(`"type":"response.completed"`))
		} else if bytes.Equal(bytes.TrimSpace(line[5:]), []byte("[DONE]")) {
			done = true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !done && responses {
		return 0, errors.New("stream ended without response.completed")
	}
	if !done {
		return 0, errors.New("stream ended without [DONE]")
	}
	return ttft, nil
}

func (w *worker) fail(status int, msg string) {
	w.status[status]++
	if w.firstErr == "" {
		w.firstErr = fmt.Sprintf("status %d: %s", status, msg)
	}
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted d,
// nearest-rank; zero for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Write prints the report, or one table row with cfg.Row.
func (r *Result) Write(w io.Writer, cfg Config) {
	slices.Sort(r.Latencies)
	slices.Sort(r.TTFTs)
	total := 0
	for _, n := range r.ByStatus {
		total += n
	}
	if cfg.Row {
		ttft50, ttft99 := "–", "–"
		if cfg.Stream {
			ttft50, ttft99 = ms(Percentile(r.TTFTs, 50)), ms(Percentile(r.TTFTs, 99))
		}
		fmt.Fprintf(w, "| %.0f | %s | %s | %s | %s | %s | %d |\n", float64(len(r.Latencies))/r.Elapsed.Seconds(),
			ms(Percentile(r.Latencies, 50)), ms(Percentile(r.Latencies, 90)), ms(Percentile(r.Latencies, 99)), ttft50, ttft99, total-len(r.Latencies))
		return
	}
	mode := "non-streaming"
	if cfg.Stream {
		mode = "streaming"
	}
	fmt.Fprintf(w, "target      %s (%s, model %s, max_tokens %d)\n", cfg.URL, mode, cfg.Model, cfg.MaxTokens)
	fmt.Fprintf(w, "clients     %d for %s\n", cfg.Clients, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "requests    %d ok of %d, %.0f ok/s\n", len(r.Latencies), total, float64(len(r.Latencies))/r.Elapsed.Seconds())
	fmt.Fprintf(w, "latency     p50 %s  p90 %s  p99 %s  max %s\n", ms(Percentile(r.Latencies, 50)), ms(Percentile(r.Latencies, 90)),
		ms(Percentile(r.Latencies, 99)), ms(Percentile(r.Latencies, 100)))
	if cfg.Stream {
		fmt.Fprintf(w, "ttft        p50 %s  p90 %s  p99 %s\n", ms(Percentile(r.TTFTs, 50)), ms(Percentile(r.TTFTs, 90)), ms(Percentile(r.TTFTs, 99)))
	}
	statuses := make([]int, 0, len(r.ByStatus))
	for s := range r.ByStatus {
		if s != http.StatusOK {
			statuses = append(statuses, s)
		}
	}
	sort.Ints(statuses)
	if len(statuses) == 0 {
		fmt.Fprintf(w, "errors      none\n")
		return
	}
	parts := make([]string, len(statuses))
	for i, s := range statuses {
		name := fmt.Sprint(s)
		if s == 0 {
			name = "transport"
		}
		parts[i] = fmt.Sprintf("%s: %d", name, r.ByStatus[s])
	}
	fmt.Fprintf(w, "errors      %s (first: %.200s)\n", strings.Join(parts, ", "), r.FirstErr)
}

// ms formats d in milliseconds with three decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond)) }
