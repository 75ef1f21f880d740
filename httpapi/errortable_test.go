package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
	"tollgate/httpapi"
	"tollgate/web"
	"tollgate/web/webfake"
)

// accessToken has a provisional access token's shape, so the server asks
// Payments to authenticate it.
var accessToken = "tgp_" + strings.Repeat("a", 43)

// walkPayments authenticates every access token as acct-1, or fails with
// err.
type walkPayments struct {
	httpapi.Payments
	err error
}

func (p walkPayments) AuthenticateAccessToken(context.Context, string) (tollgate.AccountID, string, error) {
	return "acct-1", "grant-1", p.err
}

// walkMeter refuses every hold with err.
type walkMeter struct{ err error }

func (m walkMeter) Reserve(context.Context, gateway.Hold) (string, error) { return "", m.err }
func (walkMeter) Settle(context.Context, string, gateway.Usage) error     { return nil }
func (walkMeter) Release(context.Context, string) error                   { return nil }

type walkPricer struct{}

func (walkPricer) Cost(string, tollgate.Tokens) (tollgate.Credits, error) { return 1, nil }

// walkCatalog fails every read with err.
type walkCatalog struct{ err error }

func (c walkCatalog) Packages(context.Context) ([]web.Package, error)       { return nil, c.err }
func (c walkCatalog) ModelPrices(context.Context) ([]web.ModelPrice, error) { return nil, c.err }

// TestEveryErrorCodeOnEverySurface walks every tollgate error code through
// every surface that shows errors — the service's own OpenAI-shaped JSON
// and its Anthropic-shaped answer for /v1/messages (httpapi), the
// gateway's /v1/chat/completions and /v1/messages, the web pages' JSON
// calls and HTML pages — and checks each shows the status and type of
// tollgate's one error table. tollgate.ErrorCodes is checked against the
// declared codes by the root package's tests, so a new code without a row
// fails there and a new code with one is walked here.
func TestEveryErrorCodeOnEverySurface(t *testing.T) {
	mock := httptest.NewServer(&mockllm.Server{OutputTokens: 4})
	t.Cleanup(mock.Close)
	now := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	secret := []byte("0123456789abcdef0123456789abcdef-walk")
	for _, code := range tollgate.ErrorCodes() {
		row, _ := tollgate.HTTPErrorOf(code)
		err := &tollgate.Error{Code: code, Message: "walked " + code, Op: "test"}
		wantMsg := err.Message
		if code == tollgate.EINTERNAL {
			wantMsg = "internal error"
		}
		gw, gerr := gateway.New(gateway.DefaultMockProviders(mock.URL), gateway.Options{Meter: walkMeter{err}, Pricer: walkPricer{}})
		if gerr != nil {
			t.Fatal(gerr)
		}
		refused := (&httpapi.Server{Payments: walkPayments{err: err}}).Handler()
		served := (&httpapi.Server{Payments: walkPayments{}, Gateway: gw.Handler()}).Handler()
		flow := &webfake.Flow{Clock: tollgate.ClockFunc(func() time.Time { return now })}
		wh := &web.Handler{
			Secret: secret, Orders: flow, Accounts: flow, Catalog: walkCatalog{err}, Clock: tollgate.ClockFunc(func() time.Time { return now }),
			Account: func(*http.Request) (tollgate.AccountID, error) { return "", err },
		}
		session := web.SignSession(secret, web.Session{Account: "acct-1", ExpiresAt: now.Add(time.Hour)})
		chat := `{"model":"mock-gpt","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
		messages := `{"model":"mock-claude","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`

		for _, s := range []struct {
			name         string
			h            http.Handler
			method, path string
			body         string
			anthropic    bool
			status       int
			typ, code    string // "" when the surface has none
		}{
			{"httpapi", refused, "GET", "/v1/balance", "", false, row.Status, row.OpenAIType, ""},
			{"httpapi messages", refused, "POST", "/v1/messages", messages, true, row.Status, row.AnthropicType, ""},
			{"gateway chat", served, "POST", "/v1/chat/completions", chat, false, row.Status, row.OpenAIType, row.ModelCode},
			{"gateway messages", served, "POST", "/v1/messages", messages, true, row.Status, row.AnthropicType, ""},
			{"web json", wh, "POST", "/v1/checkout/sessions", "", false, row.Status, row.OpenAIType, code},
			// A page that cannot be drawn is a server error, whatever failed.
			{"web page", wh, "GET", "/checkout/" + session, "", false, max(row.Status, 500), "", ""},
		} {
			req := httptest.NewRequest(s.method, s.path, strings.NewReader(s.body))
			req.Header.Set("Authorization", "Bearer "+accessToken)
			if s.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			rec := httptest.NewRecorder()
			s.h.ServeHTTP(rec, req)
			if rec.Code != s.status {
				t.Errorf("%s on %s: status %d, want %d: %s", code, s.name, rec.Code, s.status, rec.Body)
				continue
			}
			if s.name == "web page" {
				if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") || strings.Contains(rec.Body.String(), "walked") {
					t.Errorf("%s on %s: %s page shows the cause: %s", code, s.name, ct, rec.Body)
				}
				continue
			}
			var body struct {
				Type  string
				Error struct{ Type, Code, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Errorf("%s on %s: %v: %s", code, s.name, err, rec.Body)
				continue
			}
			if s.anthropic && body.Type != "error" {
				t.Errorf("%s on %s: not Anthropic's shape: %s", code, s.name, rec.Body)
			}
			msg := wantMsg
			if strings.HasPrefix(s.name, "httpapi") && code == tollgate.EUNAUTHORIZED {
				msg = "invalid API key" // one answer for every bad credential
			}
			if body.Error.Type != s.typ || (s.code != "" && body.Error.Code != s.code) || body.Error.Message != msg {
				t.Errorf("%s on %s: type %q code %q message %q, want %q %q %q", code, s.name,
					body.Error.Type, body.Error.Code, body.Error.Message, s.typ, s.code, msg)
			}
		}
	}
}

// A request its client abandoned (its context cancelled) whose handler
// then failed with the cancellation is logged as abandoned, not as an
// internal error: nothing broke. Any other internal error is an error.
func TestAbandonedRequestIsNotAnInternalError(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest(http.MethodPost, "/v1/payments/orders", nil).WithContext(ctx)
	httpapi.WriteError(httptest.NewRecorder(), r, log, fmt.Errorf("payment.CreateOrder: %w", context.Canceled))
	if out := logged.String(); !strings.Contains(out, "level=INFO") || !strings.Contains(out, "abandoned by its client") {
		t.Fatalf("abandoned request logged %q, want an INFO line saying the client abandoned it", out)
	}
	logged.Reset()
	r = httptest.NewRequest(http.MethodPost, "/v1/payments/orders", nil)
	httpapi.WriteError(httptest.NewRecorder(), r, log, fmt.Errorf("payment.CreateOrder: %w", context.Canceled))
	if out := logged.String(); !strings.Contains(out, "level=ERROR") {
		t.Fatalf("a cancellation of a live request logged %q, want an internal error", out)
	}
}
