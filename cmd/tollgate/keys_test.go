package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"tollgate/internal/testenv"
)

// keyCreated is the answer to the admin routes that make a key.
type keyCreated struct {
	AccountID string `json:"account_id"`
	APIKey    string `json:"api_key"`
	keyView
}

// keyView is a key as GET /admin/accounts/{id}/keys lists it.
type keyView struct {
	KeyID         string     `json:"key_id"`
	Prefix        string     `json:"key_prefix"`
	AllowedModels []string   `json:"allowed_models"`
	RPM           int        `json:"rpm"`
	TPM           int64      `json:"tpm"`
	MaxCredits    int64      `json:"max_credits_per_request"`
	MaxOutput     int64      `json:"max_output_tokens"`
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     *time.Time `json:"expires_at"`
	RevokedAt     *time.Time `json:"revoked_at"`
}

// mustKey makes an account (account "") or another key of account, with
// the limits of body, and checks the answer's shape.
func mustKey(c client, admin, account, body string) keyCreated {
	c.tb.Helper()
	path := "/admin/accounts"
	if account != "" {
		path += "/" + account + "/keys"
	}
	var k keyCreated
	c.must(201, "POST", path, admin, body, &k)
	if k.AccountID == "" || !strings.HasPrefix(k.APIKey, k.Prefix) || k.KeyID == "" || (account != "" && k.AccountID != account) {
		c.tb.Fatalf("POST %s: %+v", path, k)
	}
	return k
}

func mustKeys(c client, admin, account string) []keyView {
	c.tb.Helper()
	var l struct{ Data []keyView }
	c.must(200, "GET", "/admin/accounts/"+account+"/keys", admin, "", &l)
	return l.Data
}

// chat sends a small chat; the accounts here are unfunded, so 402 means
// the request passed every key limit and reached the hold.
func chat(c client, key, model string, maxTokens int) (int, string, string) {
	c.tb.Helper()
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_tokens":%d}`, model, maxTokens)
	st, b, h := c.call("POST", "/v1/chat/completions", key, body, nil)
	return st, string(b), h.Get("Retry-After")
}

func wantStatus(tb testing.TB, what string, st int, body string, want int, code string) {
	tb.Helper()
	if st != want || !strings.Contains(body, `"code":"`+code+`"`) {
		tb.Fatalf("%s: %d %s, want %d with code %s", what, st, body, want, code)
	}
}

// TestKeyAdminLifecycle: keys made with and without limits, listed
// without secrets, a second key per account, revocation idempotent and
// effective on every route while the other key keeps working.
func TestKeyAdminLifecycle(t *testing.T) {
	m := MustRunMain(t)
	c, admin := client{t, m.URL}, m.AdminToken
	plain := mustKey(c, admin, "", "")
	if plain.RPM != 0 || plain.TPM != 0 || len(plain.AllowedModels) != 0 || plain.ExpiresAt != nil || plain.MaxCredits != 0 || plain.MaxOutput != 0 {
		t.Fatalf("a key made without a body has limits: %+v", plain)
	}
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	limited := mustKey(c, admin, plain.AccountID,
		`{"allowed_models":["mock-gpt","mock-claude"],"rpm":5,"tpm":9000,"expires_at":"`+exp.Format(time.RFC3339)+
			`","max_credits_per_request":20000,"max_output_tokens":256}`)
	if limited.RPM != 5 || limited.TPM != 9000 || strings.Join(limited.AllowedModels, ",") != "mock-gpt,mock-claude" ||
		limited.ExpiresAt == nil || !limited.ExpiresAt.Equal(exp) || limited.MaxCredits != 20000 || limited.MaxOutput != 256 {
		t.Fatalf("limited key %+v", limited)
	}
	first := mustKey(c, admin, "", `{"rpm":3,"max_credits_per_request":500,"max_output_tokens":64}`)
	if first.RPM != 3 || first.MaxCredits != 500 || first.MaxOutput != 64 {
		t.Fatalf("account's first key %+v", first)
	}
	if ks := mustKeys(c, admin, first.AccountID); len(ks) != 1 || ks[0].MaxCredits != 500 || ks[0].MaxOutput != 64 {
		t.Fatalf("account's first key listed %+v", ks)
	}

	_, raw, _ := c.call("GET", "/admin/accounts/"+plain.AccountID+"/keys", admin, "", nil)
	if strings.Contains(string(raw), plain.APIKey) || strings.Contains(string(raw), limited.APIKey) || strings.Contains(string(raw), "hash") {
		t.Fatalf("the key list reveals a key: %s", raw)
	}
	ks := mustKeys(c, admin, plain.AccountID)
	if len(ks) != 2 || ks[0].KeyID != plain.KeyID || ks[1].KeyID != limited.KeyID || ks[1].RPM != 5 || ks[0].RevokedAt != nil ||
		ks[1].MaxCredits != 20000 || ks[1].MaxOutput != 256 || ks[0].MaxCredits != 0 || ks[0].MaxOutput != 0 {
		t.Fatalf("keys %+v", ks)
	}

	mustBalance(c, limited.APIKey)
	var rv keyView
	c.must(200, "DELETE", "/admin/accounts/"+plain.AccountID+"/keys/"+limited.KeyID, admin, "", &rv)
	if rv.KeyID != limited.KeyID || rv.RevokedAt == nil {
		t.Fatalf("revoked %+v", rv)
	}
	var again keyView
	c.must(200, "DELETE", "/admin/accounts/"+plain.AccountID+"/keys/"+limited.KeyID, admin, "", &again)
	if again.RevokedAt == nil || !again.RevokedAt.Equal(*rv.RevokedAt) {
		t.Fatalf("revoking again moved the time: %v then %v", rv.RevokedAt, again.RevokedAt)
	}
	for _, path := range []string{"/v1/balance", "/v1/models"} {
		st, b, _ := c.call("GET", path, limited.APIKey, "", nil)
		wantStatus(t, "revoked key on "+path, st, string(b), 401, "invalid_api_key")
	}
	st, b, _ := chat(c, limited.APIKey, "mock-gpt", 8)
	wantStatus(t, "revoked key chats", st, b, 401, "invalid_api_key")
	mustBalance(c, plain.APIKey)
	if ks := mustKeys(c, admin, plain.AccountID); len(ks) != 2 || ks[1].RevokedAt == nil || ks[0].RevokedAt != nil {
		t.Fatalf("keys after revoking %+v", ks)
	}
}

// TestKeyAdminRefusesBadInput: every bad input is a clear 4xx and changes
// nothing: no key is made, none revoked, the account's list unchanged.
func TestKeyAdminRefusesBadInput(t *testing.T) {
	m := MustRunMain(t)
	c, admin := client{t, m.URL}, m.AdminToken
	a := mustKey(c, admin, "", "")
	other := mustKey(c, admin, "", "")
	keys := "/admin/accounts/" + a.AccountID + "/keys"
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name, method, path, auth, body string
		status                         int
		code, says                     string
	}{
		{"UnknownField", "POST", keys, admin, `{"rpm":1,"burst":2}`, 400, "invalid", "unknown field"},
		{"NegativeRPM", "POST", keys, admin, `{"rpm":-1}`, 400, "invalid", "rpm"},
		{"NegativeTPM", "POST", keys, admin, `{"tpm":-5}`, 400, "invalid", "tpm"},
		{"HugeRPM", "POST", keys, admin, `{"rpm":1000000000000}`, 400, "invalid", "rpm"},
		{"FractionalRPM", "POST", keys, admin, `{"rpm":1.5}`, 400, "invalid", "rpm"},
		{"NegativeMaxCredits", "POST", keys, admin, `{"max_credits_per_request":-1}`, 400, "invalid", "max_credits_per_request must be 0 (no limit) or more"},
		{"NegativeMaxOutput", "POST", keys, admin, `{"max_output_tokens":-8}`, 400, "invalid", "max_output_tokens must be 0 (no limit) or more"},
		{"FractionalMaxCredits", "POST", keys, admin, `{"max_credits_per_request":99.5}`, 400, "invalid", "max_credits_per_request"},
		{"MaxOutputAsString", "POST", keys, admin, `{"max_output_tokens":"64"}`, 400, "invalid", "max_output_tokens"},
		{"HugeMaxCredits", "POST", keys, admin, `{"max_credits_per_request":1e30}`, 400, "invalid", "max_credits_per_request"},
		{"AccountNegativeMaxOutput", "POST", "/admin/accounts", admin, `{"max_output_tokens":-1}`, 400, "invalid", "max_output_tokens"},
		{"AccountNegativeMaxCredits", "POST", "/admin/accounts", admin, `{"max_credits_per_request":-5}`, 400, "invalid", "max_credits_per_request"},
		{"UnknownModel", "POST", keys, admin, `{"allowed_models":["mock-gpt","gpt-9"]}`, 400, "invalid", `unknown model \"gpt-9\"`},
		{"EmptyModel", "POST", keys, admin, `{"allowed_models":[""]}`, 400, "invalid", "allowed_models"},
		{"ModelsNotAList", "POST", keys, admin, `{"allowed_models":"mock-gpt"}`, 400, "invalid", "allowed_models"},
		{"BadTime", "POST", keys, admin, `{"expires_at":"tomorrow"}`, 400, "invalid", "RFC 3339"},
		{"DateOnly", "POST", keys, admin, `{"expires_at":"2030-01-01"}`, 400, "invalid", "RFC 3339"},
		{"PastTime", "POST", keys, admin, `{"expires_at":"` + past + `"}`, 400, "invalid", "not in the future"},
		{"NotJSON", "POST", keys, admin, `rpm=1`, 400, "invalid", "not valid JSON"},
		{"TrailingData", "POST", keys, admin, `{"rpm":1}{}`, 400, "invalid", "after the JSON"},
		{"AccountBadBody", "POST", "/admin/accounts", admin, `{"rpm":-1}`, 400, "invalid", "rpm"},
		{"AccountUnknownModel", "POST", "/admin/accounts", admin, `{"allowed_models":["nope"]}`, 400, "invalid", "unknown model"},
		{"UnknownAccountNewKey", "POST", "/admin/accounts/acct_nobody/keys", admin, `{"rpm":1}`, 404, "not_found", "no such account"},
		{"UnknownAccountList", "GET", "/admin/accounts/acct_nobody/keys", admin, "", 404, "not_found", "no such account"},
		{"UnknownAccountRevoke", "DELETE", "/admin/accounts/acct_nobody/keys/" + a.KeyID, admin, "", 404, "not_found", "no such API key"},
		{"UnknownKey", "DELETE", keys + "/key_0000000000000000", admin, "", 404, "not_found", "no such API key"},
		{"WrongOwner", "DELETE", "/admin/accounts/" + other.AccountID + "/keys/" + a.KeyID, admin, "", 404, "not_found", "no such API key"},
		{"RevokeWithBody", "DELETE", keys + "/" + a.KeyID, admin, `{"now":true}`, 400, "invalid", "no request body"},
		{"NoAdminToken", "POST", keys, "", `{"rpm":1}`, 401, "invalid_admin_token", "admin token"},
		{"APIKeyIsNotAdmin", "GET", keys, a.APIKey, "", 401, "invalid_admin_token", "admin token"},
		{"AdminTokenWrong", "DELETE", keys + "/" + a.KeyID, admin + "x", "", 401, "invalid_admin_token", "admin token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, b, _ := c.call(tc.method, tc.path, tc.auth, tc.body, nil)
			var e struct {
				Error struct{ Message, Code string }
			}
			if err := json.Unmarshal(b, &e); err != nil || st != tc.status || e.Error.Code != tc.code || !strings.Contains(string(b), tc.says) {
				t.Fatalf("%s %s %s: %d %s; want %d, code %s, saying %q", tc.method, tc.path, tc.body, st, b, tc.status, tc.code, tc.says)
			}
		})
	}
	for _, acct := range []keyCreated{a, other} {
		if ks := mustKeys(c, admin, acct.AccountID); len(ks) != 1 || ks[0].KeyID != acct.KeyID || ks[0].RevokedAt != nil {
			t.Fatalf("a refused request changed %s's keys: %+v", acct.AccountID, ks)
		}
		mustBalance(c, acct.APIKey)
	}
}

// TestKeyExpires: a key works until its expires_at, then is refused like a
// revoked key on every route.
func TestKeyExpires(t *testing.T) {
	m := MustRunMain(t)
	c := client{t, m.URL}
	exp := time.Now().Add(2 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	k := mustKey(c, m.AdminToken, "", `{"expires_at":"`+exp.Format(time.RFC3339)+`"}`)
	mustBalance(c, k.APIKey)
	if st, b, _ := chat(c, k.APIKey, "mock-gpt", 8); st != 402 {
		t.Fatalf("chat before expiry: %d %s", st, b)
	}
	time.Sleep(time.Until(exp) + 50*time.Millisecond)
	st, b, _ := c.call("GET", "/v1/balance", k.APIKey, "", nil)
	wantStatus(t, "balance after expiry", st, string(b), 401, "invalid_api_key")
	st, bs, _ := chat(c, k.APIKey, "mock-gpt", 8)
	wantStatus(t, "chat after expiry", st, bs, 401, "invalid_api_key")
	if ks := mustKeys(c, m.AdminToken, k.AccountID); len(ks) != 1 || ks[0].ExpiresAt == nil || !ks[0].ExpiresAt.Equal(exp) {
		t.Fatalf("listed %+v", ks)
	}
}

// TestKeyAllowedModels: a key limited to some models sees only those in
// GET /v1/models and gets 403 for any other; a key without a list sees all.
func TestKeyAllowedModels(t *testing.T) {
	m := MustRunMain(t)
	c := client{t, m.URL}
	all := mustKey(c, m.AdminToken, "", "")
	k := mustKey(c, m.AdminToken, all.AccountID, `{"allowed_models":["mock-gpt"]}`)
	models := func(key string) []string {
		var l struct{ Data []struct{ ID string } }
		c.must(200, "GET", "/v1/models", key, "", &l)
		var ids []string
		for _, d := range l.Data {
			ids = append(ids, d.ID)
		}
		return ids
	}
	if got := models(k.APIKey); strings.Join(got, ",") != "mock-gpt" {
		t.Fatalf("limited key lists %v", got)
	}
	if got := models(all.APIKey); len(got) < 3 {
		t.Fatalf("unlimited key lists %v", got)
	}
	if st, b, _ := chat(c, k.APIKey, "mock-gpt", 8); st != 402 {
		t.Fatalf("allowed model: %d %s", st, b)
	}
	st, b, _ := chat(c, k.APIKey, "mock-claude", 8)
	if st != 403 || !strings.Contains(b, "permission_error") {
		t.Fatalf("model outside the list: %d %s", st, b)
	}
	st, bb, _ := c.call("POST", "/v1/embeddings", k.APIKey, `{"model":"mock-embedding","input":"hi"}`, nil)
	if st != 403 {
		t.Fatalf("embedding model outside the list: %d %s", st, bb)
	}
	if st, b, _ := chat(c, all.APIKey, "mock-claude", 8); st != 402 {
		t.Fatalf("unlimited key: %d %s", st, b)
	}
}

// TestKeyRequestsPerMinute: a key's own rpm overrides --rate-limit, in
// both directions, and a key without one gets --rate-limit.
func TestKeyRequestsPerMinute(t *testing.T) {
	m := MustRunMain(t, "--rate-limit", "2")
	c := client{t, m.URL}
	def := mustKey(c, m.AdminToken, "", "")
	three := mustKey(c, m.AdminToken, def.AccountID, `{"rpm":3}`)
	one := mustKey(c, m.AdminToken, def.AccountID, `{"rpm":1}`)
	for _, tc := range []struct {
		name string
		key  string
		n    int
	}{{"Default", def.APIKey, 2}, {"Own3", three.APIKey, 3}, {"Own1", one.APIKey, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.n {
				if st, b, _ := chat(c, tc.key, "mock-gpt", 8); st != 402 {
					t.Fatalf("request %d of %d: %d %s", i+1, tc.n, st, b)
				}
			}
			st, b, retry := chat(c, tc.key, "mock-gpt", 8)
			wantStatus(t, "over the rpm", st, b, 429, "rate_limit_exceeded")
			if retry == "" {
				t.Fatalf("429 without Retry-After: %s", b)
			}
		})
	}
}

// TestKeyTokensPerMinute: holds count against the key's tpm at their
// estimate (prompt plus max_tokens); over the budget is 429 with
// Retry-After, and a request bigger than the whole minute is 429 at once.
func TestKeyTokensPerMinute(t *testing.T) {
	m := MustRunMain(t)
	c := client{t, m.URL}
	k := mustKey(c, m.AdminToken, "", `{"tpm":3000}`)
	st, b, retry := chat(c, k.APIKey, "mock-gpt", 4000)
	wantStatus(t, "bigger than the minute", st, b, 429, "rate_limit_exceeded")
	if retry != "" || !strings.Contains(b, "lower max_tokens") {
		t.Fatalf("a request that can never pass says retry after %q: %s", retry, b)
	}
	for i := range 2 {
		if st, b, _ := chat(c, k.APIKey, "mock-gpt", 1000); st != 402 {
			t.Fatalf("request %d within the budget: %d %s", i+1, st, b)
		}
	}
	st, b, retry = chat(c, k.APIKey, "mock-gpt", 1000)
	wantStatus(t, "over the tpm", st, b, 429, "rate_limit_exceeded")
	if retry == "" {
		t.Fatalf("429 without Retry-After: %s", b)
	}
	if st, b, _ := chat(c, k.APIKey, "mock-gpt", 100); st != 402 {
		t.Fatalf("a small request fits what is left: %d %s", st, b)
	}
}

// TestKeyLimitsSharedAcrossInstances: two instances on one PostgreSQL and
// one Redis draw on one budget per key, for requests and for tokens.
func TestKeyLimitsSharedAcrossInstances(t *testing.T) {
	dbURL := testenv.MustPostgres(t)
	redisURL, prefix := testenv.MustRedis(t)
	const admin = "shared-admin-token-for-key-limits"
	args := []string{"--database-url", dbURL, "--redis-url", redisURL, "--redis-prefix", prefix, "--admin-token", admin}
	m1, m2 := MustRunMain(t, args...), MustRunMain(t, args...)
	c1, c2 := client{t, m1.URL}, client{t, m2.URL}

	rpm := mustKey(c1, admin, "", `{"rpm":4}`)
	for i, c := range []client{c1, c2, c1, c2} {
		if st, b, _ := chat(c, rpm.APIKey, "mock-gpt", 8); st != 402 {
			t.Fatalf("request %d of 4: %d %s", i+1, st, b)
		}
	}
	for _, c := range []client{c1, c2} {
		st, b, retry := chat(c, rpm.APIKey, "mock-gpt", 8)
		wantStatus(t, "fifth request on "+c.base, st, b, 429, "rate_limit_exceeded")
		if retry == "" {
			t.Fatalf("429 without Retry-After: %s", b)
		}
	}

	tpm := mustKey(c2, admin, rpm.AccountID, `{"tpm":3000}`)
	if st, b, _ := chat(c1, tpm.APIKey, "mock-gpt", 1000); st != 402 {
		t.Fatalf("first hold: %d %s", st, b)
	}
	if st, b, _ := chat(c2, tpm.APIKey, "mock-gpt", 1000); st != 402 {
		t.Fatalf("second hold: %d %s", st, b)
	}
	st, b, _ := chat(c1, tpm.APIKey, "mock-gpt", 1000)
	wantStatus(t, "third hold across instances", st, b, 429, "rate_limit_exceeded")

	// Revoked on one instance: refused there at once, on the other once
	// its key cache entry ages out (apiKeyCacheTTL, 1 s; polled up to 5 s).
	c2.must(200, "DELETE", "/admin/accounts/"+rpm.AccountID+"/keys/"+rpm.KeyID, admin, "", nil)
	st, raw, _ := c2.call("GET", "/v1/balance", rpm.APIKey, "", nil)
	wantStatus(t, "key revoked on this instance", st, string(raw), 401, "invalid_api_key")
	revoked := time.Now()
	for {
		st, raw, _ = c1.call("GET", "/v1/balance", rpm.APIKey, "", nil)
		if st != 200 || time.Since(revoked) > 5*time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantStatus(t, "key revoked on the other instance", st, string(raw), 401, "invalid_api_key")
}

// TestProvisionalTokensBudgetPerAccount: provisional access tokens get
// --rate-limit per account, not one budget shared by every token.
func TestProvisionalTokensBudgetPerAccount(t *testing.T) {
	m := MustRunMain(t, "--rate-limit", "1")
	c := client{t, m.URL}
	var tokens []string
	for i := range 2 {
		a := mustAccount(c, m.AdminToken)
		o := mustOrder(c, a.APIKey, fmt.Sprintf("prov-%d", i))
		if o.AccessToken == nil {
			t.Fatalf("order %s came without a provisional token", o.OutTradeNo)
		}
		tokens = append(tokens, o.AccessToken.Token)
	}
	for i, tok := range tokens {
		if st, b, _ := chat(c, tok, "mock-gpt", 8); st != 200 {
			t.Fatalf("token %d's first chat: %d %s", i, st, b)
		}
	}
	st, b, retry := chat(c, tokens[0], "mock-gpt", 8)
	wantStatus(t, "second chat of one account", st, b, 429, "rate_limit_exceeded")
	if retry == "" {
		t.Fatalf("429 without Retry-After: %s", b)
	}
}

// mustFundedAccount makes an account and pays a starter order for it
// through the emulator; it returns once the credits are on the balance.
func mustFundedAccount(c client, admin string) (account, balance) {
	c.tb.Helper()
	a := mustAccount(c, admin)
	o := mustOrder(c, a.APIKey, "fund-"+a.AccountID)
	c.must(200, "POST", "/sandbox/wxpay/sim/orders/"+o.OutTradeNo+"/pay", "", "", nil)
	var b balance
	eventually(c.tb, "the paid order is credited", func() bool {
		b = mustBalance(c, a.APIKey)
		return b.Credits == o.Credits && b.Provisional == 0
	})
	return a, b
}

// usageCount is how many usage records the key's account has.
func usageCount(c client, key string) int {
	c.tb.Helper()
	var u struct{ Data []json.RawMessage }
	c.must(200, "GET", "/v1/usage", key, "", &u)
	return len(u.Data)
}

// TestKeyMaxCreditsPerRequest: a key's max_credits_per_request refuses,
// on every endpoint, a request whose hold would cost more, with a clear
// 403 and nothing held or charged; a request within it is served and
// charged as usual.
func TestKeyMaxCreditsPerRequest(t *testing.T) {
	m := MustRunMain(t)
	c := client{t, m.URL}
	a, before := mustFundedAccount(c, m.AdminToken)
	k := mustKey(c, m.AdminToken, a.AccountID, `{"max_credits_per_request":1000}`)

	st, b, _ := chat(c, k.APIKey, "mock-gpt", 4000)
	wantStatus(t, "a hold above the key's bound", st, b, 403, "max_credits_per_request_exceeded")
	if !strings.Contains(b, "limit of 1000 credits per request") || !strings.Contains(b, "lower max_tokens") {
		t.Fatalf("the refusal does not say why: %s", b)
	}
	st, raw, _ := c.call("POST", "/v1/messages", k.APIKey,
		`{"model":"mock-claude","max_tokens":4000,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if st != 403 || !strings.Contains(string(raw), `"type":"permission_error"`) || !strings.Contains(string(raw), "1000 credits per request") {
		t.Fatalf("/v1/messages above the bound: %d %s", st, raw)
	}
	if got := mustBalance(c, k.APIKey); got != before || usageCount(c, k.APIKey) != 0 {
		t.Fatalf("refused requests changed the account: balance %+v (was %+v), %d usage records", got, before, usageCount(c, k.APIKey))
	}
	// The bound is the key's: the account's other key is not bounded.
	if st, b, _ := chat(c, a.APIKey, "mock-gpt", 4000); st != 200 {
		t.Fatalf("the account's unbounded key: %d %s", st, b)
	}

	var res struct {
		Usage struct {
			CostCredits int64 `json:"cost_credits"`
		}
	}
	c.must(200, "POST", "/v1/chat/completions", k.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}],"max_tokens":8}`, &res)
	if res.Usage.CostCredits <= 0 || res.Usage.CostCredits > 1000 {
		t.Fatalf("a request within the bound cost %d credits", res.Usage.CostCredits)
	}
}

// TestKeyMaxOutputTokens: a key's max_output_tokens caps every request's
// output, asked for or not, on chat and messages; another key of the same
// account is not capped.
func TestKeyMaxOutputTokens(t *testing.T) {
	m := MustRunMain(t)
	c := client{t, m.URL}
	a, _ := mustFundedAccount(c, m.AdminToken)
	k := mustKey(c, m.AdminToken, a.AccountID, `{"max_output_tokens":5}`)
	type chatUsage struct {
		Choices []struct {
			FinishReason string `json:"finish_reason"`
		}
		Usage struct {
			CompletionTokens int64 `json:"completion_tokens"`
		}
	}
	for _, tc := range []struct {
		name, key, body string
		want            int64
	}{
		{"Capped", k.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}],"max_tokens":100}`, 5},
		{"CappedWithoutMaxTokens", k.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}`, 5},
		{"BelowTheCap", k.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`, 3},
		{"OtherKey", a.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}],"max_tokens":100}`, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r chatUsage
			c.must(200, "POST", "/v1/chat/completions", tc.key, tc.body, &r)
			if r.Usage.CompletionTokens != tc.want || len(r.Choices) != 1 || (tc.want < 16 && r.Choices[0].FinishReason != "length") {
				t.Fatalf("%d completion tokens, choices %+v; want %d", r.Usage.CompletionTokens, r.Choices, tc.want)
			}
		})
	}
	var msg struct {
		StopReason string `json:"stop_reason"`
		Usage      struct {
			OutputTokens int64 `json:"output_tokens"`
		}
	}
	c.must(200, "POST", "/v1/messages", k.APIKey, `{"model":"mock-claude","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`, &msg)
	if msg.Usage.OutputTokens != 5 || msg.StopReason != "max_tokens" {
		t.Fatalf("/v1/messages: %d output tokens, stop reason %q; want 5, max_tokens", msg.Usage.OutputTokens, msg.StopReason)
	}
}
