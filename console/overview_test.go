package console_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"tollgate/gateway"
	"tollgate/payment"
)

type fakeHourly struct{ from, to time.Time }

func (f *fakeHourly) HourlyOrders(_ context.Context, from, to time.Time) ([]payment.OrderHour, error) {
	f.from, f.to = from, to
	return []payment.OrderHour{
		{Hour: from.Add(2 * time.Hour), Placed: 5, Paid: 3, Failed: 2, Refused: 1},
		{Hour: from.Add(23 * time.Hour), Placed: 4, Paid: 4},
	}, nil
}

type fakeHealth []gateway.DeploymentHealth

func (f fakeHealth) Health() []gateway.DeploymentHealth { return f }

// TestOverviewHourlyAndHealth: the overview shows the last 24 hours'
// paid and failed orders (totals and an SVG bar per hour) and each
// deployment's breaker with its failures, in English and Chinese.
func TestOverviewHourlyAndHealth(t *testing.T) {
	e := newEnv(t)
	h := &fakeHourly{}
	e.c.Orders = h
	e.c.Health = fakeHealth{
		{Deployment: "up/gpt-4o-mini", Provider: "up", Breaker: "closed", Attempts: 200, Errors: 1},
		{Deployment: "down/deepseek-chat", Provider: "down", Breaker: "open", Attempts: 10, Errors: 10},
	}
	ck := e.login()
	w := e.do("GET", "/admin/?lang=en", nil, ck)
	body := w.Body.String()
	if w.Code != 200 {
		t.Fatalf("overview: %d\n%s", w.Code, body)
	}
	// The 24 whole hours up to the end of the current one (09:xx Beijing).
	if got := h.to.Sub(h.from); got != 24*time.Hour || !h.to.Equal(e.now.Truncate(time.Hour).Add(time.Hour)) {
		t.Errorf("asked for [%v, %v), want the 24 hours to %v", h.from, h.to, e.now.Add(time.Hour))
	}
	for _, want := range []string{
		"Payments and failures, last 24 hours",
		`<b class="paid">7</b>`, `<b class="failed">2</b>`, `<b class="refused">1</b>`, "Placed <b>9</b>",
		`fill="#52c41a"><title>12:00 Paid: 3</title>`,
		`<title>12:00 Failed or closed: 2 (Refused by WeChat Pay: 1)</title>`,
		`<title>09:00 Paid: 4</title>`,
		"Provider health",
		`<tr class="breaker-open"><td>down</td><td>down/deepseek-chat</td><td><b class="bad">open</b>`,
		"10 (100.0%)",
		`<tr class="breaker-closed"><td>up</td><td>up/gpt-4o-mini</td><td>closed</td><td class="r">200</td><td class="r">1 (0.5%)</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if n := strings.Count(body, "<rect "); n != 48 {
		t.Errorf("%d bars, want 48 (paid and failed for each of 24 hours)", n)
	}
	zh := e.do("GET", "/admin/?lang=zh", nil, ck).Body.String()
	for _, want := range []string{"近 24 小时的支付与失败", "被微信支付拒绝", "上游服务健康", "打开（暂停调用）"} {
		if !strings.Contains(zh, want) {
			t.Errorf("Chinese overview lacks %q", want)
		}
	}
}

// TestOverviewWithoutOrders: no order in the last 24 hours is said, not
// drawn as an empty chart; without reporters neither section shows.
func TestOverviewWithoutOrders(t *testing.T) {
	e := newEnv(t)
	ck := e.login()
	if body := e.do("GET", "/admin/?lang=en", nil, ck).Body.String(); strings.Contains(body, "Provider health") || strings.Contains(body, "last 24 hours") {
		t.Error("overview shows health or hourly sections without their reporters")
	}
	e.c.Orders = emptyHourly{}
	e.c.Health = fakeHealth{}
	body := e.do("GET", "/admin/?lang=en", nil, ck).Body.String()
	if !strings.Contains(body, "last 24 hours") || strings.Contains(body, "<svg") || !strings.Contains(body, "No provider is configured.") {
		t.Errorf("empty overview:\n%s", body)
	}
}

type emptyHourly struct{}

func (emptyHourly) HourlyOrders(context.Context, time.Time, time.Time) ([]payment.OrderHour, error) {
	return []payment.OrderHour{}, nil
}
