package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"tollgate/internal/testenv"
	"tollgate/kv"
	kvredis "tollgate/kv/redis"
	"tollgate/ledger"
)

// TestSessionsShared checks the deployment shape: two instances behind a
// load balancer share one session store, so a login on one holds on the
// other and on an instance started afresh, expiry still applies, and a
// logout on either ends it everywhere. On the in-process store and Redis.
func TestSessionsShared(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testSessionsShared(t, kv.NewMemory(kv.MemoryOptions{}), nil)
	})
	t.Run("redis", func(t *testing.T) {
		u, prefix := testenv.MustRedis(t)
		o, err := goredis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		c := goredis.NewClient(o)
		t.Cleanup(func() { c.Close() })
		testSessionsShared(t, kvredis.New(c, kvredis.Options{Prefix: prefix}), func() []string {
			keys, err := c.Keys(context.Background(), prefix+"*").Result()
			if err != nil {
				t.Fatal(err)
			}
			return keys
		})
	})
}

func testSessionsShared(t *testing.T, store kv.Cache, keys func() []string) {
	a, b := newEnvWith(t, store), newEnvWith(t, store)
	ck := a.login()
	if w := b.do("GET", "/admin/", nil, ck); w.Code != http.StatusOK {
		t.Fatalf("a login on instance A, GET on B: %d, want 200", w.Code)
	}
	if keys != nil {
		ks := keys()
		if len(ks) != 1 {
			t.Fatalf("Redis keys after one login: %v, want one", ks)
		}
		if strings.Contains(ks[0], ck.Value) {
			t.Errorf("the session id itself is the store key %q; want only its hash", ks[0])
		}
	}
	// A restarted instance (a new Console on the same store) knows it.
	c := newEnvWith(t, store)
	if w := c.do("GET", "/admin/", nil, ck); w.Code != http.StatusOK {
		t.Fatalf("after a restart: %d, want 200", w.Code)
	}
	// A flash left by one instance's action shows on another's page.
	csrf := a.csrf(ck)
	if w := a.do("POST", "/admin/ui/accounts/acct_1/adjust", url.Values{"csrf": {csrf}, "credits": {"5"}, "reason": {"r"}, "idem": {strings.Repeat("A", 43)}}, ck); w.Code != http.StatusSeeOther {
		t.Fatalf("adjust: %d", w.Code)
	}
	if w := b.do("GET", "/admin/ui/accounts/acct_1", nil, ck); !strings.Contains(w.Body.String(), `id="flash"`) {
		t.Errorf("the action's outcome did not follow the session to instance B:\n%s", w.Body.String())
	}
	// Idle expiry holds on every instance's clock.
	a.advance(time.Hour)
	b.advance(time.Hour) // the instances' clocks agree
	if w := b.do("GET", "/admin/", nil, ck); w.Code != http.StatusSeeOther {
		t.Fatalf("after an idle hour on B: %d, want a redirect to the login", w.Code)
	}
	// Logout on B ends a session on A too.
	ck = a.login()
	csrf = a.csrf(ck)
	if w := b.do("POST", "/admin/logout", url.Values{"csrf": {csrf}}, ck); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/login" {
		t.Fatalf("logout on B: %d %q", w.Code, w.Header().Get("Location"))
	}
	if w := a.do("GET", "/admin/", nil, ck); w.Code != http.StatusSeeOther {
		t.Fatalf("after logout on B, GET on A: %d, want a redirect to the login", w.Code)
	}
	if keys != nil {
		if ks := keys(); len(ks) != 0 { // the expired session was forgotten when seen, the other at logout
			t.Errorf("keys left after expiry and logout: %v", ks)
		}
	}
}

// TestLoginThrottled checks that wrong admin tokens from one client IP are
// limited: ten in 15 minutes are answered 401, then every login from that
// IP, even with the right token, is 429 with a page saying why, while
// another IP logs in; after the lockout the right token works again.
func TestLoginThrottled(t *testing.T) {
	e := newEnv(t)
	from := func(ip, tok string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "https://console.example/admin/login", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		r.RemoteAddr = ip + ":40000"
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		return w
	}
	for i := range 10 {
		if w := from("203.0.113.7", "wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i+1, w.Code)
		}
		e.advance(time.Minute)
	}
	w := from("203.0.113.7", token)
	if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "Too many wrong admin tokens") || w.Header().Get("Retry-After") == "" {
		t.Fatalf("the right token after 10 wrong ones: %d %q, want 429 saying why, with Retry-After:\n%s", w.Code, w.Header().Get("Retry-After"), w.Body.String())
	}
	if len(w.Result().Cookies()) != 0 {
		t.Error("a throttled login set a cookie")
	}
	if w := from("198.51.100.1", token); w.Code != http.StatusSeeOther {
		t.Fatalf("another IP: %d, want 303", w.Code)
	}
	e.advance(15 * time.Minute)
	if w := from("203.0.113.7", token); w.Code != http.StatusSeeOther {
		t.Fatalf("after the lockout: %d, want 303", w.Code)
	}
}

type fakeDebt struct{ d ledger.DebtTotal }

func (f fakeDebt) DebtOutstanding(context.Context) (ledger.DebtTotal, error) { return f.d, nil }

// TestOverviewDebt checks that the overview shows the debt outstanding
// across accounts, as the store sums it.
func TestOverviewDebt(t *testing.T) {
	e := newEnv(t)
	e.c.Debt = fakeDebt{ledger.DebtTotal{Credits: 350, Accounts: 2}}
	ck := e.login()
	w := e.do("GET", "/admin/", nil, ck)
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, `id="debt"`) || !strings.Contains(body, "Debt outstanding") {
		t.Fatalf("overview: %d, no debt outstanding card:\n%s", w.Code, body)
	}
	m := regexp.MustCompile(`(?s)id="debt".*?class="debt"><b>([^<]*)</b>.*?<dd>(\d+)</dd>`).FindStringSubmatch(body)
	if m == nil || !strings.Contains(m[1], "350") || m[2] != "2" {
		t.Fatalf("debt card = %q, want 350 credits over 2 accounts", m)
	}
}
