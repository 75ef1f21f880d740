package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"tollgate"
	"tollgate/webhook"
)

// specVerify checks a delivery as the Standard Webhooks specification
// describes it, written from the spec rather than from webhook's code:
// the secret is whsec_ + base64 key; the signed content is
// "{id}.{timestamp}.{body}"; webhook-signature is a space-separated list
// of "v1,{base64 HMAC-SHA256}", any of which may match; the timestamp
// must be within tolerance of now.
func specVerify(secret string, h http.Header, body []byte, now time.Time) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil || sigs == "" {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		v, sig, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func header(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

func TestSignVerifiesWithReferenceLibrary(t *testing.T) {
	secret := webhook.NewSecret()
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q lacks whsec_", secret)
	}
	if k, err := webhook.SecretKey(secret); err != nil || len(k) != 32 {
		t.Fatalf("secret key = %d bytes, %v; want 32", len(k), err)
	}
	ev, err := webhook.NewEvent(webhook.PaymentSucceeded, "acct-1", time.Now(), map[string]any{"out_trade_no": "T1", "credits": 100})
	if err != nil {
		t.Fatal(err)
	}
	ev.Seq = 7
	body, err := ev.Body()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m, err := webhook.SignHeaders([]string{secret}, ev.ID, now, body)
	if err != nil {
		t.Fatal(err)
	}
	h := header(m)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, h); err != nil {
		t.Fatalf("reference library refuses the delivery: %v", err)
	}
	if !specVerify(secret, h, body, now) {
		t.Fatal("the spec's verifier refuses the delivery")
	}
	// A changed body, another secret, another id: refused by both.
	if wh.Verify(append(body[:len(body):len(body)], ' '), h) == nil || specVerify(secret, h, append(body[:len(body):len(body)], ' '), now) {
		t.Fatal("a changed body verified")
	}
	other := webhook.NewSecret()
	wo, _ := standardwebhooks.NewWebhook(other)
	if wo.Verify(body, h) == nil || specVerify(other, h, body, now) {
		t.Fatal("another secret verified")
	}
	h2 := h.Clone()
	h2.Set("webhook-id", "evt_other")
	if wh.Verify(body, h2) == nil || specVerify(secret, h2, body, now) {
		t.Fatal("another id verified")
	}
	// The body is the envelope.
	var env map[string]any
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "object", "type", "created_at", "account", "seq", "data"} {
		if _, ok := env[k]; !ok {
			t.Errorf("envelope lacks %q: %s", k, body)
		}
	}
	if env["id"] != ev.ID || env["type"] != "payment.succeeded" || env["seq"] != float64(7) || env["object"] != "event" {
		t.Errorf("envelope = %s", body)
	}
}

func TestSignDuringRotation(t *testing.T) {
	old, cur := webhook.NewSecret(), webhook.NewSecret()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ep := webhook.Endpoint{Secret: cur, PreviousSecret: old, PreviousUntil: now.Add(webhook.RotationOverlap)}
	body := []byte(`{"id":"evt_1"}`)
	for _, tc := range []struct {
		at       time.Time
		oldValid bool
	}{{now, true}, {now.Add(23 * time.Hour), true}, {now.Add(24 * time.Hour), false}} {
		m, err := webhook.SignHeaders(ep.Secrets(tc.at), "evt_1", tc.at, body)
		if err != nil {
			t.Fatal(err)
		}
		h := header(m)
		if n := len(strings.Fields(h.Get("webhook-signature"))); tc.oldValid && n != 2 || !tc.oldValid && n != 1 {
			t.Fatalf("at %v: %d signatures", tc.at, n)
		}
		for _, s := range []struct {
			secret string
			want   bool
		}{{cur, true}, {old, tc.oldValid}} {
			wh, _ := standardwebhooks.NewWebhook(s.secret)
			if got := wh.VerifyIgnoringTimestamp(body, h) == nil; got != s.want {
				t.Errorf("at %v: reference verify with %s = %v, want %v", tc.at, s.secret[:10], got, s.want)
			}
			if got := specVerify(s.secret, h, body, tc.at); got != s.want {
				t.Errorf("at %v: spec verify = %v, want %v", tc.at, got, s.want)
			}
		}
	}
}

func TestEventCheck(t *testing.T) {
	at := time.Now()
	if _, err := webhook.NewEvent("payment.refunded", "a", at, nil); tollgate.ErrorCode(err) != tollgate.EINVALID {
		t.Fatalf("unknown type: %v", err)
	}
	if _, err := webhook.NewEvent(webhook.BalanceLow, "", at, nil); tollgate.ErrorCode(err) != tollgate.EINVALID {
		t.Fatalf("no account: %v", err)
	}
	if _, err := webhook.NewEvent(webhook.BalanceLow, "a", at, json.RawMessage(`[1]`)); tollgate.ErrorCode(err) != tollgate.EINVALID {
		t.Fatalf("array data: %v", err)
	}
	if _, err := webhook.NewEvent(webhook.BalanceLow, "a", at, json.RawMessage(`{"x":"`+strings.Repeat("y", webhook.MaxData)+`"}`)); tollgate.ErrorCode(err) != tollgate.EINVALID {
		t.Fatalf("huge data: %v", err)
	}
	if len(webhook.Types()) != 8 {
		t.Fatalf("catalogue = %v", webhook.Types())
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		p    webhook.URLPolicy
		want bool
	}{
		{"https://example.com/hook", webhook.URLPolicy{HTTPSOnly: true}, true},
		{"http://example.com/hook", webhook.URLPolicy{}, true},
		{"http://example.com/hook", webhook.URLPolicy{HTTPSOnly: true}, false},
		{"ftp://example.com/hook", webhook.URLPolicy{}, false},
		{"/hook", webhook.URLPolicy{}, false},
		{"https://user:pw@example.com/", webhook.URLPolicy{}, false},
		{"http://127.0.0.1:8080/", webhook.URLPolicy{}, false},
		{"http://127.0.0.1:8080/", webhook.URLPolicy{AllowPrivate: true}, true},
		{"http://localhost/", webhook.URLPolicy{}, false},
		{"http://10.1.2.3/", webhook.URLPolicy{}, false},
		{"http://172.16.0.1/", webhook.URLPolicy{}, false},
		{"http://192.168.1.1/", webhook.URLPolicy{}, false},
		{"http://169.254.169.254/latest/meta-data", webhook.URLPolicy{}, false},
		{"http://100.64.0.1/", webhook.URLPolicy{}, false},
		{"http://0.0.0.0/", webhook.URLPolicy{}, false},
		{"http://[::1]/", webhook.URLPolicy{}, false},
		{"http://[fd00::1]/", webhook.URLPolicy{}, false},
		{"http://[fe80::1]/", webhook.URLPolicy{}, false},
		{"http://[::ffff:127.0.0.1]/", webhook.URLPolicy{}, false},
		{"http://8.8.8.8/", webhook.URLPolicy{}, true},
		{"https://example.com/" + strings.Repeat("a", webhook.MaxURL), webhook.URLPolicy{}, false},
	} {
		err := tc.p.CheckURL(tc.url)
		if (err == nil) != tc.want {
			t.Errorf("CheckURL(%.60q, %+v) = %v, want ok=%v", tc.url, tc.p, err, tc.want)
		}
		if err != nil && tollgate.ErrorCode(err) != tollgate.EINVALID {
			t.Errorf("CheckURL(%.60q): code %q", tc.url, tollgate.ErrorCode(err))
		}
	}
}

func TestNewEndpoint(t *testing.T) {
	now := time.Now()
	p := webhook.URLPolicy{}
	e, err := webhook.NewEndpoint("", "https://example.com/h", []string{"refund.failed", "payment.succeeded", "refund.failed"}, "app", p, now)
	if err != nil || !strings.HasPrefix(e.ID, "we_") || !strings.HasPrefix(e.Secret, "whsec_") ||
		strings.Join(e.Events, ",") != "payment.succeeded,refund.failed" {
		t.Fatalf("NewEndpoint = %+v, %v", e, err)
	}
	for _, ev := range [][]string{nil, {"payment.nope"}} {
		if _, err := webhook.NewEndpoint("", "https://example.com/h", ev, "", p, now); tollgate.ErrorCode(err) != tollgate.EINVALID {
			t.Errorf("events %v: %v", ev, err)
		}
	}
}

func TestBackoff(t *testing.T) {
	top := func(n int64) int64 { return n - 1 }
	for n, want := range map[int64]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 3: 20 * time.Second, 11: time.Hour, 100: time.Hour} {
		if got := webhook.Backoff(n, top); got != want {
			t.Errorf("Backoff(%d) at the top = %v, want %v", n, got, want)
		}
	}
	if got := webhook.Backoff(5, func(int64) int64 { return 0 }); got != webhook.BackoffMin {
		t.Errorf("Backoff at the bottom = %v", got)
	}
}
