package reliability

// S11 (part): provisional grants whose payment fails. At quiescence a few
// fresh accounts each create an order, spend its provisional access token,
// and the emulator fails the payment (PAYERROR); the poller must close the
// order and revoke the grant, leaving debt = what the grant used.

import (
	"context"
	"fmt"
	"time"
)

// GrantCase is one S11 pay-fail account.
type GrantCase struct {
	APIKey, OutTradeNo, Status string
	Chats, ChatsOK             int
}

// S11PayFail runs n pay-fail cases and waits (bounded by wait) until each
// order reads closed locally (PAYERROR or CLOSED).
func S11PayFail(ctx context.Context, cl *Cluster, n int, seed int64, wait time.Duration) ([]GrantCase, error) {
	addr := cl.Addrs[0]
	var cases []GrantCase
	for i := range n {
		r := Call(ctx, "POST", addr+"/admin/accounts", cl.AdminToken, nil, nil)
		var acct struct {
			APIKey string `json:"api_key"`
		}
		if r.Status != 201 {
			return cases, fmt.Errorf("S11: create account: %s", r)
		}
		if err := r.Decode(&acct); err != nil {
			return cases, err
		}
		body := map[string]any{"amount_fen": 1000 + i, "device_fingerprint": fmt.Sprintf("s11fp%012d%03d", seed%1e12, i)}
		r = Call(ctx, "POST", addr+"/v1/payments/orders", acct.APIKey, nil, body)
		var o createdOrder
		if r.Status != 200 && r.Status != 201 {
			return cases, fmt.Errorf("S11: create order: %s", r)
		}
		if err := r.Decode(&o); err != nil {
			return cases, err
		}
		c := GrantCase{APIKey: acct.APIKey, OutTradeNo: o.OutTradeNo}
		if o.AccessToken == nil {
			return cases, fmt.Errorf("S11: order %s came without a provisional access token", o.OutTradeNo)
		}
		for k := range 3 {
			body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"s11 %d %d"}],"max_tokens":16}`, cl.ChatModel, i, k)
			r := Call(ctx, "POST", addr+"/v1/chat/completions", o.AccessToken.Token, nil, body)
			c.Chats++
			if r.Outcome == OK {
				c.ChatsOK++
			}
		}
		if r := Call(ctx, "POST", cl.Sim+"/sim/orders/"+o.OutTradeNo+"/fail", "", nil, nil); r.Outcome != OK {
			return cases, fmt.Errorf("S11: sim fail %s: %s", o.OutTradeNo, r)
		}
		cases = append(cases, c)
	}
	deadline := time.Now().Add(wait)
	for i := range cases {
		for {
			r := Call(ctx, "GET", addr+"/v1/payments/orders/"+cases[i].OutTradeNo, cases[i].APIKey, nil, nil)
			var o createdOrder
			if r.Outcome == OK && r.Decode(&o) == nil {
				cases[i].Status = o.Status
			}
			if cases[i].Status == "PAYERROR" || cases[i].Status == "CLOSED" || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return cases, nil
}

// Chat402 sends one chat with an account's API key and returns its status.
func Chat402(ctx context.Context, cl *Cluster, apiKey string) int {
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"s11 debt"}],"max_tokens":16}`, cl.ChatModel)
	return Call(ctx, "POST", cl.Addrs[0]+"/v1/chat/completions", apiKey, nil, body).Status
}

// S11LateSuccess creates an order on a fresh account, spends its
// provisional token, moves the emulator's clock past the order's expiry
// (advance, e.g. "1h": the emulator closes it; serve's poller then closes
// it locally), waits until the order reads CLOSED, then pays it at the
// emulator anyway (pay?late=1, the close-vs-pay race). It returns the
// order number and the API key; the caller checks the credit and the
// review flag.
func S11LateSuccess(ctx context.Context, cl *Cluster, seed int64, advance string, wait time.Duration) (GrantCase, error) {
	addr := cl.Addrs[0]
	r := Call(ctx, "POST", addr+"/admin/accounts", cl.AdminToken, nil, nil)
	var acct struct {
		APIKey string `json:"api_key"`
	}
	if r.Status != 201 {
		return GrantCase{}, fmt.Errorf("S11 late: create account: %s", r)
	}
	if err := r.Decode(&acct); err != nil {
		return GrantCase{}, err
	}
	body := map[string]any{"amount_fen": 1500, "device_fingerprint": fmt.Sprintf("s11late%012d", seed%1e12)}
	r = Call(ctx, "POST", addr+"/v1/payments/orders", acct.APIKey, nil, body)
	var o createdOrder
	if r.Status != 200 && r.Status != 201 {
		return GrantCase{}, fmt.Errorf("S11 late: create order: %s", r)
	}
	if err := r.Decode(&o); err != nil {
		return GrantCase{}, err
	}
	c := GrantCase{APIKey: acct.APIKey, OutTradeNo: o.OutTradeNo}
	if o.AccessToken != nil {
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"s11 late"}],"max_tokens":16}`, cl.ChatModel)
		c.Chats++
		if Call(ctx, "POST", addr+"/v1/chat/completions", o.AccessToken.Token, nil, body).Outcome == OK {
			c.ChatsOK++
		}
	}
	if r := Call(ctx, "POST", cl.Sim+"/sim/clock", "", nil, map[string]string{"advance": advance}); r.Outcome != OK {
		return c, fmt.Errorf("S11 late: sim clock: %s", r)
	}
	deadline := time.Now().Add(wait)
	for c.Status != "CLOSED" && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		r := Call(ctx, "GET", addr+"/v1/payments/orders/"+o.OutTradeNo, acct.APIKey, nil, nil)
		var x createdOrder
		if r.Outcome == OK && r.Decode(&x) == nil {
			c.Status = x.Status
		}
	}
	if c.Status != "CLOSED" {
		return c, fmt.Errorf("S11 late: order %s reads %s %v after the emulator's clock moved %s", o.OutTradeNo, c.Status, wait, advance)
	}
	if r := Call(ctx, "POST", cl.Sim+"/sim/orders/"+o.OutTradeNo+"/pay?late=1", "", nil, nil); r.Outcome != OK {
		return c, fmt.Errorf("S11 late: sim late pay %s: %s", o.OutTradeNo, r)
	}
	for time.Now().Before(deadline.Add(wait)) {
		r := Call(ctx, "GET", addr+"/v1/payments/orders/"+o.OutTradeNo, acct.APIKey, nil, nil)
		var x createdOrder
		if r.Outcome == OK && r.Decode(&x) == nil {
			c.Status = x.Status
		}
		if c.Status == "SUCCESS" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return c, nil
}
