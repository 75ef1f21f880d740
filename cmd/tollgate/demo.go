package main

import (
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

	"tollgate/internal/apiclient"
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
		{"The operator refunds the unused part", "POST /admin/orders/{no}/refund", d.refund},
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

// send makes one request to the server: body, when not nil, as JSON;
// auth as the bearer credential.
func (d *demo) send(ctx context.Context, method, path, auth string, body any, hdr map[string]string) (*http.Response, error) {
	resp, err := apiclient.Send(ctx, d.http, apiclient.Request{Method: method, URL: d.m.URL + path, Bearer: auth, Header: hdr, Body: body})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp, nil
}

// call sends a request, wants the status and decodes the JSON answer
// into out (when not nil). A refusal is an *apiclient.Error.
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
	return apiclient.ParseError(resp.Request.Method, resp.Request.URL.RequestURI(), resp.StatusCode, b)
}
