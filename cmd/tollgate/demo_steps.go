package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"tollgate"
	"tollgate/internal/apiclient"
	"tollgate/ledger"
)

// The steps of the walk-through, in order (demo.steps). Each calls the
// server over HTTP like any client would, and checks what it answers.

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
	var ae *apiclient.Error
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

// refund has the operator refund the unused part (the default
// --refund-policy admin keeps refunds in the operator's hands), checks the amount against
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
	body := map[string]string{"reason": "demo: the user asked for the unused credit back"}
	if err := d.call(ctx, "POST", "/admin/orders/"+o.OutTradeNo+"/refund", d.m.AdminToken, body,
		map[string]string{"Idempotency-Key": "demo-refund-1"}, http.StatusOK, &r); err != nil {
		return "", err
	}
	if d.after < 0 || d.after > o.Credits {
		return "", fmt.Errorf("%d credits left of the %d the order granted", d.after, o.Credits)
	}
	want := int64(ledger.RefundFen(tollgate.Fen(o.AmountFen), tollgate.Credits(d.after), tollgate.Credits(o.Credits)))
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
