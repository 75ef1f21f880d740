package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"
)

const demoSummary = "walk through the whole story on this machine: account, WeChat Pay order, payment, streamed chat, refund"

func init() {
	register("demo", demoSummary, runDemo)
}

const (
	// demoModel is the mock LLM model the demo chats with.
	demoModel = "mock-gpt"
	// demoDevice is the device fingerprint of the demo's "phone".
	demoDevice = "tollgate-demo-device"
	// demoRefundDelay is how long the emulator keeps the demo's refund
	// PROCESSING (WeChat Pay takes minutes to days; the emulator's
	// default, one minute, is too long to watch).
	demoRefundDelay = 2 * time.Second
	// demoWait bounds each wait for something asynchronous (a
	// notification, a settlement).
	demoWait = 30 * time.Second
)

// runDemo runs `tollgate serve`'s real wiring in-process on a throwaway
// data directory and walks through the story step by step, over HTTP like
// any client would.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", demoSummary+".\nEverything runs in-process: SQLite, the WeChat Pay emulator, the mock LLM.")
	fs.SetOutput(stderr)
	d := &demo{out: stdout, errOut: stderr, style: styleFor(stdout)}
	fs.BoolVar(&d.keep, "keep", false, "keep serving after the walk-through, printing the URLs, admin token and API key, until Ctrl-C")
	fs.StringVar(&d.dir, "dir", "", "data directory; empty: a temporary one, removed at exit unless --keep")
	fs.StringVar(&d.addr, "addr", "127.0.0.1:0", "listen address HOST:PORT (port 0 picks a free one)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return d.run(ctx)
}

// demo is one walk-through. Each step leaves what the next needs here.
type demo struct {
	out, errOut io.Writer
	style       demoStyle
	keep        bool
	dir, addr   string
	temp        bool // dir was made by the demo

	m       *Main
	logPath string
	logFile *os.File // the server's stdout and log, closed after it
	http    *http.Client
	started time.Time

	account  demoAccount
	pkg      demoPackage
	order    demoOrder
	checkout string    // checkout URL, "" when the server has no hosted checkout
	credited int64     // balance once the payment was credited
	chat     demoUsage // usage of the streamed answer
	after    int64     // balance after the chat
}

type demoAccount struct {
	AccountID string `json:"account_id"`
	APIKey    string `json:"api_key"`
}

type demoPackage struct {
	ID      string `json:"id"`
	Fen     int64  `json:"fen"`
	Credits int64  `json:"credits"`
	Label   string `json:"label"`
}

type demoOrder struct {
	OutTradeNo  string `json:"out_trade_no"`
	CodeURL     string `json:"code_url"`
	AmountFen   int64  `json:"amount_fen"`
	Credits     int64  `json:"credits"`
	Status      string `json:"status"`
	AccessToken *struct {
		Token   string `json:"token"`
		Credits int64  `json:"credits"`
	} `json:"access_token"`
}

type demoBalance struct {
	Credits     int64 `json:"credits"`
	Held        int64 `json:"held"`
	Provisional int64 `json:"provisional"`
	Debt        int64 `json:"debt"`
}

type demoUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	CostCredits      int64 `json:"cost_credits"`
}

// demoStep is one numbered step: run prints details as it goes and
// returns the summary shown after the mark.
type demoStep struct {
	title, api string
	run        func(ctx context.Context) (string, error)
}

func (d *demo) steps() []demoStep {
	return []demoStep{
		{"Start tollgate", "serve wiring, in-process", d.start},
		{"Create an account", "POST /admin/accounts", d.createAccount},
		{"Place an order", "POST /v1/payments/orders", d.placeOrder},
		{"Pay it in the WeChat Pay emulator", "POST /sandbox/wxpay/sim/orders/{no}/pay", d.pay},
		{"Notification verified, balance credited", "GET /v1/balance", d.waitCredited},
		{"Stream a chat completion from the mock model", "POST /v1/chat/completions", d.streamChat},
		{"Check the deduction", "GET /v1/balance", d.checkDeduction},
		{"Refund the unused part", "POST /v1/payments/orders/{no}/refund", d.refund},
	}
}

// run does every step, then exits or, with --keep, serves until ctx ends.
func (d *demo) run(ctx context.Context) (err error) {
	d.started = time.Now()
	d.http = &http.Client{}
	cleanup, err := d.prepareDir()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer cleanup()
	defer func() {
		if d.m != nil {
			if cerr := d.m.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("demo: stopping the server: %w", cerr)
			}
		}
		if d.logFile != nil {
			d.logFile.Close()
		}
	}()
	fmt.Fprintf(d.out, "%s\n\n", d.style.bold("tollgate demo: sell LLM access paid with WeChat Pay, start to finish, on this machine"))
	steps := d.steps()
	for i, s := range steps {
		if err := d.step(ctx, i+1, len(steps), s); err != nil {
			d.showLogTail()
			return err
		}
	}
	fmt.Fprintf(d.out, "\n%s every step passed in %s.\n", d.style.ok(), d.style.dim(roundDuration(time.Since(d.started))))
	if !d.keep {
		fmt.Fprintf(d.out, "Run `tollgate demo --keep` to keep the server running and try it by hand.\n")
		return nil
	}
	return d.serveUntilDone(ctx)
}

// prepareDir makes the data directory (a temporary one unless --dir) and
// returns what removes it at exit.
func (d *demo) prepareDir() (func(), error) {
	if d.dir != "" {
		if err := os.MkdirAll(d.dir, 0o700); err != nil {
			return nil, err
		}
		return func() {}, nil
	}
	dir, err := os.MkdirTemp("", "tollgate-demo-")
	if err != nil {
		return nil, err
	}
	d.dir, d.temp = dir, true
	return func() {
		if !d.keep {
			os.RemoveAll(dir)
		}
	}, nil
}

// step runs one step between its numbered title and its mark and timing.
func (d *demo) step(ctx context.Context, n, total int, s demoStep) error {
	fmt.Fprintf(d.out, "%s %s %s\n", d.style.bold(fmt.Sprintf("[%d/%d]", n, total)), d.style.bold(s.title), d.style.dim("("+s.api+")"))
	t := time.Now()
	summary, err := s.run(ctx)
	took := d.style.dim("(" + roundDuration(time.Since(t)) + ")")
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintf(d.out, "  %s %v %s\n", d.style.fail(), err, took)
		return fmt.Errorf("demo: step %d/%d (%s) failed: %w", n, total, s.title, err)
	}
	fmt.Fprintf(d.out, "  %s %s %s\n", d.style.ok(), summary, took)
	return nil
}

// detail prints one indented line under the current step.
func (d *demo) detail(format string, args ...any) {
	fmt.Fprintf(d.out, "    "+format+"\n", args...)
}

// start runs the real `tollgate serve` wiring with everything embedded:
// explicit flags so that no TOLLGATE_* variable or config file points the
// demo at a real database, Redis, WeChat Pay or LLM provider.
func (d *demo) start(ctx context.Context) (string, error) {
	d.logPath = filepath.Join(d.dir, "tollgate.log")
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("server log: %w", err)
	}
	d.logFile = logf
	d.m = NewMain(logf, logf)
	args := []string{"--config=", "--addr", d.addr, "--data", d.dir, "--admin-token", "", "--public-url", "",
		"--database-url", "", "--redis-url", "", "--wxpay-url", "", "--wxpay-mch-id", "", "--wxpay-appid", "",
		"--wxpay-api-key", "", "--wxpay-cert", "", "--wxpay-cert-key", "", "--providers", "",
		"--wxpay-api-version", "v2", "--log-format", "text"}
	if err := d.m.ParseFlags(args); err != nil {
		return "", err
	}
	if err := d.m.Run(ctx); err != nil {
		return "", err
	}
	if d.m.Sim == nil {
		return "", errors.New("the server did not start the WeChat Pay emulator")
	}
	// The emulator's knobs may be set until its first request: none was
	// made yet.
	if d.m.Sim.RefundDelay == 0 {
		d.m.Sim.RefundDelay = demoRefundDelay
	}
	kept := "kept"
	if d.temp && !d.keep {
		kept = "temporary, removed at exit"
	}
	d.detail("data      %s %s", d.dir, d.style.dim("(SQLite, admin token, server log; "+kept+")"))
	d.detail("payments  WeChat Pay emulator at %s/sandbox/wxpay/", d.m.URL)
	d.detail("models    mock LLM at %s/mockllm/", d.m.URL)
	return "serving on " + d.m.URL, nil
}

func (d *demo) createAccount(ctx context.Context) (string, error) {
	if err := d.call(ctx, "POST", "/admin/accounts", d.m.AdminToken, nil, nil, http.StatusCreated, &d.account); err != nil {
		return "", err
	}
	if d.account.AccountID == "" || d.account.APIKey == "" {
		return "", errors.New("the answer lacks account_id or api_key")
	}
	d.detail("the admin token authorised it; the API key is what an app calls the API with")
	return fmt.Sprintf("account %s, API key %s", d.account.AccountID, d.account.APIKey), nil
}

// placeOrder buys the first package (starter when offered) and shows the
// QR code a user would scan, and the hosted checkout link if offered.
func (d *demo) placeOrder(ctx context.Context) (string, error) {
	var pkgs struct{ Data []demoPackage }
	if err := d.call(ctx, "GET", "/v1/packages", "", nil, nil, http.StatusOK, &pkgs); err != nil {
		return "", err
	}
	if len(pkgs.Data) == 0 {
		return "", errors.New("GET /v1/packages: no package on sale")
	}
	d.pkg = pkgs.Data[0]
	for _, p := range pkgs.Data {
		if p.ID == "starter" {
			d.pkg = p
		}
	}
	body := map[string]string{"package_id": d.pkg.ID, "device_fingerprint": demoDevice}
	hdr := map[string]string{"Idempotency-Key": "demo-order-1"}
	if err := d.call(ctx, "POST", "/v1/payments/orders", d.account.APIKey, body, hdr, http.StatusCreated, &d.order); err != nil {
		return "", err
	}
	o := d.order
	if o.OutTradeNo == "" || o.CodeURL == "" {
		return "", fmt.Errorf("the answer lacks out_trade_no or code_url: %+v", o)
	}
	d.detail("order %s: package %q, %s (amount_fen %d) for %d credits, status %s",
		o.OutTradeNo, d.pkg.ID, d.style.yuan(o.AmountFen), o.AmountFen, o.Credits, o.Status)
	if err := d.printQR(o.CodeURL); err != nil {
		return "", err
	}
	d.detail("code_url  %s", o.CodeURL)
	if err := d.openCheckout(ctx); err != nil {
		return "", err
	}
	if t := o.AccessToken; t != nil {
		d.detail("the app may already spend up to %d credits with the provisional token %s...", t.Credits, prefix(t.Token, 12))
	}
	return fmt.Sprintf("order %s placed, %s", o.OutTradeNo, o.Status), nil
}

// printQR draws the order's code_url as a QR code, as a user would scan it
// with WeChat.
func (d *demo) printQR(codeURL string) error {
	q, err := qrcode.New(codeURL, qrcode.Low)
	if err != nil {
		return fmt.Errorf("QR code: %w", err)
	}
	d.detail("scan with WeChat %s:", d.style.dim("(sandbox: the emulator pays it in the next step)"))
	var art string
	if d.style.fancy {
		art = q.ToSmallString(false)
	} else {
		var b strings.Builder
		bits := q.Bitmap()
		// Keep 2 of the 4 modules of quiet zone: enough to scan, and 4
		// fewer lines.
		bits = bits[2 : len(bits)-2]
		for _, row := range bits {
			for _, dark := range row[2 : len(row)-2] {
				if dark {
					b.WriteString("##")
				} else {
					b.WriteString("  ")
				}
			}
			b.WriteString("\n")
		}
		art = b.String()
	}
	for _, line := range strings.Split(strings.TrimRight(art, "\n"), "\n") {
		fmt.Fprintf(d.out, "    %s\n", line)
	}
	return nil
}

// openCheckout asks for a hosted checkout link, when the server offers
// POST /v1/checkout/sessions; a server without it is not an error.
func (d *demo) openCheckout(ctx context.Context) error {
	var s struct {
		URL string `json:"url"`
	}
	err := d.call(ctx, "POST", "/v1/checkout/sessions", d.account.APIKey, map[string]string{"package_id": d.pkg.ID}, nil, http.StatusCreated, &s)
	var ae *apiError
	if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusMethodNotAllowed) {
		return nil
	}
	if err != nil {
		return err
	}
	d.checkout = s.URL
	d.detail("checkout  %s %s", s.URL, d.style.dim("(the same purchase as a web page)"))
	return nil
}

func (d *demo) pay(ctx context.Context) (string, error) {
	var sim struct {
		State         string `json:"trade_state"`
		TransactionID string `json:"transaction_id"`
	}
	if err := d.call(ctx, "POST", "/sandbox/wxpay/sim/orders/"+d.order.OutTradeNo+"/pay", "", nil, nil, http.StatusOK, &sim); err != nil {
		return "", err
	}
	if sim.State != "SUCCESS" {
		return "", fmt.Errorf("the emulator says trade_state %s, want SUCCESS", sim.State)
	}
	d.detail("WeChat Pay now notifies tollgate at %s/wxpay/notify", d.m.URL)
	return fmt.Sprintf("the user paid %s, transaction_id %s", d.style.yuan(d.order.AmountFen), sim.TransactionID), nil
}

// waitCredited polls the balance and the order until the payment is
// credited and the order reads SUCCESS.
func (d *demo) waitCredited(ctx context.Context) (string, error) {
	var b demoBalance
	var status string
	err := d.poll(ctx, "the payment to be credited", demoWait, func() (bool, string, error) {
		if err := d.call(ctx, "GET", "/v1/balance", d.account.APIKey, nil, nil, http.StatusOK, &b); err != nil {
			return false, "", err
		}
		var o demoOrder
		if err := d.call(ctx, "GET", "/v1/payments/orders/"+d.order.OutTradeNo, d.account.APIKey, nil, nil, http.StatusOK, &o); err != nil {
			return false, "", err
		}
		status = o.Status
		seen := fmt.Sprintf("balance %d credits, order %s", b.Credits, status)
		return b.Credits == d.order.Credits && b.Provisional == 0 && status == "SUCCESS", seen, nil
	})
	if err != nil {
		return "", err
	}
	if dl, ok := d.delivery(ctx, "payment", ""); ok {
		d.detail("notification %s %s: signature verified, answered %d (%s)", dl.Method, dl.URL, dl.Status, dl.Outcome)
	}
	d.credited = b.Credits
	return fmt.Sprintf("order %s, balance 0 -> %d credits", status, b.Credits), nil
}

// demoDelivery is a notification delivery as the emulator logs it.
type demoDelivery struct {
	Kind        string `json:"kind"`
	OutTradeNo  string `json:"out_trade_no"`
	OutRefundNo string `json:"out_refund_no"`
	URL         string `json:"url"`
	Method      string `json:"method"`
	Status      int    `json:"status"`
	Outcome     string `json:"outcome"`
}

// delivery finds the acknowledged notification of the demo's order (of
// the refund when refundNo is set) in the emulator's delivery log.
func (d *demo) delivery(ctx context.Context, kind, refundNo string) (demoDelivery, bool) {
	var log []demoDelivery
	if err := d.call(ctx, "GET", "/sandbox/wxpay/sim/notifications", "", nil, nil, http.StatusOK, &log); err != nil {
		return demoDelivery{}, false
	}
	for _, dl := range log {
		if dl.Kind == kind && dl.OutTradeNo == d.order.OutTradeNo && dl.OutRefundNo == refundNo && dl.Outcome == "acked" {
			return dl, true
		}
	}
	return demoDelivery{}, false
}

// streamChat asks the mock model for a streamed answer, prints it as it
// arrives and keeps the usage of the final chunk.
func (d *demo) streamChat(ctx context.Context) (string, error) {
	const prompt = "Say hello to a newcomer to tollgate."
	body := map[string]any{
		"model": demoModel, "stream": true, "max_tokens": 24,
		"stream_options": map[string]bool{"include_usage": true},
		"messages":       []map[string]string{{"role": "user", "content": prompt}},
	}
	resp, err := d.send(ctx, "POST", "/v1/chat/completions", d.account.APIKey, body, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", readAPIError(resp)
	}
	d.detail("you:      %s", prompt)
	fmt.Fprintf(d.out, "    %s ", d.style.bold(demoModel+":"))
	deltas, usage, err := d.relayStream(resp.Body)
	fmt.Fprintln(d.out)
	if err != nil {
		return "", err
	}
	if usage == nil {
		return "", errors.New("the stream ended without a usage chunk")
	}
	if usage.CostCredits <= 0 {
		return "", fmt.Errorf("usage.cost_credits is %d, want > 0", usage.CostCredits)
	}
	d.chat = *usage
	return fmt.Sprintf("%d chunks streamed; %d prompt + %d completion tokens, cost_credits %d",
		deltas, usage.PromptTokens, usage.CompletionTokens, usage.CostCredits), nil
}

// relayStream prints the content deltas of an OpenAI-style SSE stream as
// they arrive and returns how many there were and the last usage seen.
func (d *demo) relayStream(r io.Reader) (int, *demoUsage, error) {
	var (
		deltas int
		usage  *demoUsage
		col    = len(demoModel) + 6
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			return deltas, usage, nil
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *demoUsage `json:"usage"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return deltas, usage, fmt.Errorf("bad chunk %q: %w", data, err)
		}
		if chunk.Error != nil {
			return deltas, usage, fmt.Errorf("the stream reported an error: %s", chunk.Error.Message)
		}
		if chunk.Usage != nil {
			usage = chunk.Usage
		}
		for _, c := range chunk.Choices {
			if c.Delta.Content == "" {
				continue
			}
			deltas++
			text := c.Delta.Content
			if col+len(text) > 78 && strings.HasPrefix(text, " ") {
				fmt.Fprintf(d.out, "\n%*s", len(demoModel)+6, "")
				col, text = len(demoModel)+6, strings.TrimPrefix(text, " ")
			}
			fmt.Fprint(d.out, text)
			col += len(text)
		}
	}
	if err := sc.Err(); err != nil {
		return deltas, usage, fmt.Errorf("reading the stream: %w", err)
	}
	return deltas, usage, errors.New("the stream ended without [DONE]")
}

// checkDeduction checks that the balance went down by exactly the cost
// the answer reported, once nothing is held any more.
func (d *demo) checkDeduction(ctx context.Context) (string, error) {
	var b demoBalance
	err := d.poll(ctx, "the request to be settled", demoWait, func() (bool, string, error) {
		if err := d.call(ctx, "GET", "/v1/balance", d.account.APIKey, nil, nil, http.StatusOK, &b); err != nil {
			return false, "", err
		}
		return b.Held == 0, fmt.Sprintf("%d credits held", b.Held), nil
	})
	if err != nil {
		return "", err
	}
	if got := d.credited - b.Credits; got != d.chat.CostCredits {
		return "", fmt.Errorf("balance %d -> %d credits is -%d, but the answer said cost_credits %d", d.credited, b.Credits, got, d.chat.CostCredits)
	}
	d.after = b.Credits
	var usage struct {
		Data []struct {
			Model   string `json:"model"`
			Credits int64  `json:"credits"`
		} `json:"data"`
	}
	if err := d.call(ctx, "GET", "/v1/usage?limit=1", d.account.APIKey, nil, nil, http.StatusOK, &usage); err != nil {
		return "", err
	}
	if len(usage.Data) == 1 {
		d.detail("GET /v1/usage records it too: %s, %d credits", usage.Data[0].Model, usage.Data[0].Credits)
	}
	return fmt.Sprintf("balance %d -> %d credits: -%d, exactly cost_credits", d.credited, b.Credits, d.chat.CostCredits), nil
}

// refund asks for the unused part back, checks the amount against
// floor(fen × left / granted), and waits for WeChat Pay to finish it and
// for tollgate to acknowledge the refund notification.
func (d *demo) refund(ctx context.Context) (string, error) {
	o := d.order
	var r struct {
		OutRefundNo string `json:"out_refund_no"`
		RefundFen   int64  `json:"refund_fen"`
		Credits     int64  `json:"credits"`
		Status      string `json:"status"`
	}
	if err := d.call(ctx, "POST", "/v1/payments/orders/"+o.OutTradeNo+"/refund", d.account.APIKey, nil, nil, http.StatusOK, &r); err != nil {
		return "", err
	}
	want := o.AmountFen * d.after / o.Credits
	d.detail("refund %s of the %d unused credits: refund_fen = floor(%d x %d / %d) = %d",
		r.OutRefundNo, r.Credits, o.AmountFen, d.after, o.Credits, want)
	if r.RefundFen != want || r.Credits != d.after {
		return "", fmt.Errorf("refund of %d credits for %d fen, want %d credits for %d fen", r.Credits, r.RefundFen, d.after, want)
	}
	d.detail("status %s: the emulator completes refunds after %s (WeChat Pay: minutes to days)", r.Status, d.m.Sim.RefundDelay)
	t := time.Now()
	if err := d.waitRefunded(ctx, r.OutRefundNo); err != nil {
		return "", err
	}
	var b demoBalance
	if err := d.call(ctx, "GET", "/v1/balance", d.account.APIKey, nil, nil, http.StatusOK, &b); err != nil {
		return "", err
	}
	if b.Credits != d.after-r.Credits {
		return "", fmt.Errorf("balance %d credits after refunding %d of %d", b.Credits, r.Credits, d.after)
	}
	var after demoOrder
	if err := d.call(ctx, "GET", "/v1/payments/orders/"+o.OutTradeNo, d.account.APIKey, nil, nil, http.StatusOK, &after); err != nil {
		return "", err
	}
	if after.Status != "REFUND" {
		return "", fmt.Errorf("order status %s after the refund, want REFUND", after.Status)
	}
	return fmt.Sprintf("refund_fen %d (%s) back to the payer after %s; order %s, balance %d credits",
		r.RefundFen, d.style.yuan(r.RefundFen), roundDuration(time.Since(t)), after.Status, b.Credits), nil
}

// waitRefunded waits until the emulator says the refund succeeded and
// tollgate acknowledged its notification.
func (d *demo) waitRefunded(ctx context.Context, refundNo string) error {
	timeout := demoWait + d.m.Sim.RefundDelay
	if d.m.Sim.TimeScale > 0 {
		timeout = demoWait + time.Duration(float64(d.m.Sim.RefundDelay)*d.m.Sim.TimeScale)
	}
	var dl demoDelivery
	err := d.poll(ctx, "the refund to finish", timeout, func() (bool, string, error) {
		var sim struct {
			Refunds []struct {
				OutRefundNo string `json:"out_refund_no"`
				Status      string `json:"status"`
			} `json:"refunds"`
		}
		if err := d.call(ctx, "GET", "/sandbox/wxpay/sim/orders/"+d.order.OutTradeNo, "", nil, nil, http.StatusOK, &sim); err != nil {
			return false, "", err
		}
		status := "unknown to WeChat Pay"
		for _, r := range sim.Refunds {
			if r.OutRefundNo == refundNo {
				status = r.Status
			}
		}
		var ok bool
		dl, ok = d.delivery(ctx, "refund", refundNo)
		return status == "SUCCESS" && ok, "WeChat Pay refund status " + status + ", notification acknowledged: " + fmt.Sprint(ok), nil
	})
	if err != nil {
		return err
	}
	d.detail("refund notification %s %s: verified, answered %d (%s)", dl.Method, dl.URL, dl.Status, dl.Outcome)
	return nil
}

// serveUntilDone keeps the server running for trying things by hand.
func (d *demo) serveUntilDone(ctx context.Context) error {
	u, key := d.m.URL, d.account.APIKey
	w := d.out
	fmt.Fprintf(w, "\n%s (--keep); Ctrl-C stops it.\n", d.style.bold("tollgate keeps serving on "+u))
	fmt.Fprintf(w, "  admin token  %s\n", d.m.AdminToken)
	fmt.Fprintf(w, "  API key      %s  (OpenAI base URL %s/v1)\n", key, u)
	fmt.Fprintf(w, "  data         %s  (kept; server log in %s)\n", d.dir, d.logPath)
	fmt.Fprintf(w, "  emulator     %s/sandbox/wxpay/sim/orders  (what WeChat Pay saw)\n", u)
	fmt.Fprintf(w, "  health       %s/healthz  %s/readyz  %s/metrics\n", u, u, u)
	if d.checkout != "" {
		fmt.Fprintf(w, "  checkout     %s\n", d.checkout)
	}
	fmt.Fprintf(w, "Try:\n")
	fmt.Fprintf(w, "  curl -H 'Authorization: Bearer %s' %s/v1/balance\n", key, u)
	fmt.Fprintf(w, "  curl -X POST -H 'Authorization: Bearer %s' -H 'Idempotency-Key: try-1' -H 'Content-Type: application/json' \\\n"+
		"    -d '{\"package_id\":\"%s\",\"device_fingerprint\":\"%s\"}' %s/v1/payments/orders\n", key, d.pkg.ID, demoDevice, u)
	fmt.Fprintf(w, "  curl -X POST %s/sandbox/wxpay/sim/orders/OUT_TRADE_NO/pay\n", u)
	fmt.Fprintf(w, "  curl -N -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \\\n"+
		"    -d '{\"model\":\"%s\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}' %s/v1/chat/completions\n", key, demoModel, u)
	select {
	case <-ctx.Done():
		fmt.Fprintf(w, "\nstopping; the data stays in %s\n", d.dir)
		return nil
	case err := <-d.m.serveErr:
		return fmt.Errorf("demo: the server stopped: %w", err)
	}
}

// showLogTail prints the end of the server log after a failed step.
func (d *demo) showLogTail() {
	if d.logPath == "" {
		return
	}
	b, err := os.ReadFile(d.logPath)
	if err != nil || len(b) == 0 {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	fmt.Fprintf(d.errOut, "last lines of the server log (%s):\n", d.logPath)
	for _, l := range lines {
		fmt.Fprintf(d.errOut, "  %s\n", l)
	}
}

// poll calls check until it reports done, fails, ctx ends or timeout
// passes; the error then says what was last seen.
func (d *demo) poll(ctx context.Context, what string, timeout time.Duration, check func() (bool, string, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, seen, err := check()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up waiting %s for %s (last seen: %s)", timeout, what, seen)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// apiError is a refused API call, with the server's OpenAI-style error.
type apiError struct {
	Method, Path  string
	Status        int
	Code, Message string
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	return s
}

// send makes one request to the server: body, when not nil, as JSON;
// auth as the bearer credential.
func (d *demo) send(ctx context.Context, method, path, auth string, body any, hdr map[string]string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.m.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp, nil
}

// call sends a request, wants the status and decodes the JSON answer
// into out (when not nil).
func (d *demo) call(ctx context.Context, method, path, auth string, body any, hdr map[string]string, want int, out any) error {
	ctx, cancel := context.WithTimeout(ctx, demoWait)
	defer cancel()
	resp, err := d.send(ctx, method, path, auth, body, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return readAPIError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// readAPIError reads a refusal: OpenAI's {"error":{...}} shape or the
// emulator's {"error":"..."}.
func readAPIError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	e := &apiError{Method: resp.Request.Method, Path: resp.Request.URL.RequestURI(), Status: resp.StatusCode}
	var openai struct {
		Error struct {
			Message string `json:"message"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	var sim struct {
		Error string `json:"error"`
	}
	switch {
	case json.Unmarshal(b, &openai) == nil && openai.Error.Message != "":
		e.Message, e.Code = openai.Error.Message, openai.Error.Code
	case json.Unmarshal(b, &sim) == nil && sim.Error != "":
		e.Message = sim.Error
	default:
		e.Message = strings.TrimSpace(prefix(string(b), 200))
	}
	return e
}

// demoStyle renders marks and emphasis: colours and Unicode on a
// terminal, plain ASCII when NO_COLOR is set or the output is not a
// terminal.
type demoStyle struct{ fancy bool }

// styleFor picks the style for w.
func styleFor(w io.Writer) demoStyle {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return demoStyle{}
	}
	fi, err := f.Stat()
	return demoStyle{fancy: err == nil && fi.Mode()&os.ModeCharDevice != 0}
}

func (s demoStyle) sgr(code, text string) string {
	if !s.fancy {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (s demoStyle) bold(text string) string { return s.sgr("1", text) }
func (s demoStyle) dim(text string) string  { return s.sgr("2", text) }

func (s demoStyle) ok() string {
	if s.fancy {
		return s.sgr("32", "✓")
	}
	return "[ok]"
}

func (s demoStyle) fail() string {
	if s.fancy {
		return s.sgr("31", "✗")
	}
	return "[FAILED]"
}

// yuan formats fen as an amount: ¥9.90, or 9.90 CNY in plain ASCII.
func (s demoStyle) yuan(fen int64) string {
	amount := fmt.Sprintf("%d.%02d", fen/100, fen%100)
	if s.fancy {
		return "¥" + amount
	}
	return amount + " CNY"
}

// roundDuration shows a duration to a useful precision: 12ms, 1.3s.
func roundDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// prefix returns the first n bytes of s.
func prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
