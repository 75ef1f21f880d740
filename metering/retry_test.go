package metering_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
	"tollgate/internal/testenv"
	"tollgate/ledger"
	"tollgate/metering"
	"tollgate/pricing"
	"tollgate/store/postgres"
	"tollgate/store/storetest"
)

// failingStore is a ledger.Store whose commits fail while fail is set, as
// on a full disk: each transaction runs, then rolls back with errDiskFull.
// With usageOnly, only the transactions that record usage fail (settles),
// so that a hold can still be taken. Reads keep working.
type failingStore struct {
	ledger.Store
	fail      atomic.Bool
	usageOnly bool
}

var errDiskFull = errors.New("disk is full (injected)")

func (s *failingStore) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	return s.Store.Update(ctx, func(tx ledger.Tx) error {
		w := &watchTx{Tx: tx}
		if err := fn(w); err != nil {
			return err
		}
		if s.fail.Load() && (w.usage || !s.usageOnly) {
			return errDiskFull
		}
		return nil
	})
}

// watchTx notes whether its transaction records usage.
type watchTx struct {
	ledger.Tx
	usage bool
}

func (t *watchTx) Apply(ctx context.Context, c *ledger.Changes) error {
	t.usage = t.usage || len(c.NewUsage) > 0
	return t.Tx.Apply(ctx, c)
}

// backend is a store the way serve runs it: SQLite with the holds in
// memory, PostgreSQL with stored holds and four committers.
type backend struct {
	name string
	open storetest.OpenFunc
	opt  ledger.Options
}

var backends = []backend{
	{"SQLite", openSQLite, ledger.Options{MemoryHolds: true}},
	{"PostgreSQL", openPostgres, ledger.Options{Committers: 4}},
}

func openPostgres(tb testing.TB) ledger.Store {
	tb.Helper()
	st, err := postgres.Open(tb.Context(), testenv.MustPostgres(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// failingEnv is a ledger over b's store wrapped in a failingStore, with
// account alice holding 100,000 credits, and a Meter over it on the
// ledger's manual clock, closed (with no settle left) when t ends.
func failingEnv(t *testing.T, b backend, settleLater, usageOnly bool) (*storetest.Env, *failingStore, *metering.Meter) {
	t.Helper()
	st := &failingStore{usageOnly: usageOnly}
	e := storetest.NewEnvWith(t, func(tb testing.TB) ledger.Store { st.Store = b.open(tb); return st }, b.opt)
	storetest.MustAccount(t, e, "alice")
	storetest.MustCredit(t, e, "alice", "order-1", 1000, 100_000)
	m := &metering.Meter{Ledger: e.Svc, SettleLater: settleLater, Clock: e.Clock, Logger: testLogger(t)}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("meter close: %v", err)
		}
	})
	return e, st, m
}

// testLogger logs to t.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) { w.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

// retry moves the clock past the meter's next retry and waits until the
// retry loop has its timer again (the store still fails) or has ended.
func retry(t *testing.T, e *storetest.Env, m *metering.Meter, failing bool) {
	t.Helper()
	if !e.Clock.WaitTimers(1, 10*time.Second) {
		t.Fatal("no retry is scheduled")
	}
	e.Clock.Advance(metering.RetryMax)
	if failing {
		if !e.Clock.WaitTimers(1, 10*time.Second) {
			t.Fatal("no retry was scheduled after a failed one")
		}
		return
	}
	ctx, cancel := context.WithTimeout(e.Ctx, 10*time.Second)
	defer cancel()
	if err := metering.WaitRetried(ctx, m); err != nil {
		t.Fatalf("retries did not end: %v", err)
	}
}

// usageOf returns alice's usage records.
func usageOf(t *testing.T, e *storetest.Env) []ledger.Usage {
	t.Helper()
	var out []ledger.Usage
	if err := e.Svc.View(e.Ctx, func(tx ledger.ReadTx) (err error) {
		out, err = tx.ListUsage(e.Ctx, "alice", 10_000)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSettlesTheStoreFailedAreRetried: answered requests whose settles the
// store fails to commit (a full disk) are all charged once it recovers,
// each exactly once; meanwhile new requests are refused with EUNAVAILABLE
// and Ready says why; afterwards both work again. Through both of the
// Meter's paths: settles handed over without waiting (serve) and waited
// for.
func TestSettlesTheStoreFailedAreRetried(t *testing.T) {
	for _, b := range backends {
		for _, later := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/SettleLater=%v", b.name, later), func(t *testing.T) {
				testSettlesRetried(t, b, later)
			})
		}
	}
}

func testSettlesRetried(t *testing.T, b backend, later bool) {
	e, st, m := failingEnv(t, b, later, false)
	const n, held = 40, 100 // held: reserveN's
	ids := reserveN(t, e, m, n)

	st.fail.Store(true)
	var charged tollgate.Credits
	for i, id := range ids {
		cost := tollgate.Credits(10 + i)
		charged += cost
		if err := m.Settle(e.Ctx, id, gateway.Usage{RequestID: fmt.Sprint("r", i), Account: "alice", Model: "m",
			InputTokens: 5, OutputTokens: int64(i), Credits: cost, Status: "ok"}); err != nil {
			t.Fatalf("settle %d on a failing store: %v, want it kept for retry", i, err)
		}
	}
	if err := e.Svc.Sync(e.Ctx); err != nil {
		t.Fatal(err)
	}
	wantRefusing(t, e, m)
	retry(t, e, m, true)
	wantRefusing(t, e, m)
	storetest.WantBalance(t, e, "alice", 100_000-n*held, n*held, 0) // every hold kept, nothing charged yet

	st.fail.Store(false)
	retry(t, e, m, false)
	if err := m.Ready(e.Ctx); err != nil {
		t.Fatalf("ready after the store recovered: %v", err)
	}
	us := usageOf(t, e)
	if len(us) != n {
		t.Fatalf("%d usage records for %d answered requests", len(us), n)
	}
	var sum tollgate.Credits
	for _, u := range us {
		sum += u.Credits
	}
	if sum != charged {
		t.Fatalf("usage records charge %d credits, want %d", sum, charged)
	}
	storetest.WantBalance(t, e, "alice", 100_000-charged, 0, 0)

	id, err := m.Reserve(e.Ctx, gateway.Hold{RequestID: "after", Account: "alice", Model: "m", Credits: held})
	if err != nil {
		t.Fatalf("reserve after the store recovered: %v", err)
	}
	if err := m.Settle(e.Ctx, id, gateway.Usage{RequestID: "after", Account: "alice", Model: "m", Credits: 7, Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Svc.Sync(e.Ctx); err != nil {
		t.Fatal(err)
	}
	storetest.WantBalance(t, e, "alice", 100_000-charged-7, 0, 0)
}

// wantRefusing checks that m refuses new holds with EUNAVAILABLE and that
// Ready names the store's failure.
func wantRefusing(t *testing.T, e *storetest.Env, m *metering.Meter) {
	t.Helper()
	err := m.Ready(e.Ctx)
	if tollgate.ErrorCode(err) != tollgate.EUNAVAILABLE || !errors.Is(err, errDiskFull) {
		t.Fatalf("ready while settles fail: %v, want EUNAVAILABLE naming the store's failure", err)
	}
	_, err = m.Reserve(e.Ctx, gateway.Hold{RequestID: "new", Account: "alice", Model: "m", Credits: 1})
	if tollgate.ErrorCode(err) != tollgate.EUNAVAILABLE || !strings.Contains(tollgate.ErrorMessage(err), "usage cannot be recorded") {
		t.Fatalf("reserve while settles fail: %v, want EUNAVAILABLE saying usage cannot be recorded", err)
	}
}

// TestChatRefusedWhileUsageCannotBeRecorded: through the gateway, a chat
// answered while the store fails is charged once it recovers, and the
// chat after it is refused with 503 and the error table's type, not
// served free.
func TestChatRefusedWhileUsageCannotBeRecorded(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			// Only settles fail: on PostgreSQL, where holds are stored, a
			// full disk refuses the hold itself (EUNAVAILABLE too).
			e, st, m := failingEnv(t, b, true, true)
			chat := chatter(t, m)

			st.fail.Store(true)
			if rec := chat(); rec.Code != http.StatusOK {
				t.Fatalf("chat as the store fails: %d %s", rec.Code, rec.Body)
			}
			if err := e.Svc.Sync(e.Ctx); err != nil {
				t.Fatal(err)
			}
			rec := chat()
			var body struct {
				Error struct{ Type, Message string }
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			want, _ := tollgate.HTTPErrorOf(tollgate.EUNAVAILABLE)
			if rec.Code != want.Status || body.Error.Type != want.OpenAIType || rec.Header().Get("Retry-After") == "" {
				t.Fatalf("chat while usage cannot be recorded: %d %s (Retry-After %q), want %d %s with Retry-After",
					rec.Code, rec.Body, rec.Header().Get("Retry-After"), want.Status, want.OpenAIType)
			}

			st.fail.Store(false)
			retry(t, e, m, false)
			if rec := chat(); rec.Code != http.StatusOK {
				t.Fatalf("chat after the store recovered: %d %s", rec.Code, rec.Body)
			}
			if err := e.Svc.Sync(e.Ctx); err != nil {
				t.Fatal(err)
			}
			if us := usageOf(t, e); len(us) != 2 {
				t.Fatalf("%d usage records for 2 answered chats", len(us))
			}
		})
	}
}

// chatter returns a function that sends alice's chat to a gateway metered
// by m, in front of an in-process mock LLM.
func chatter(t *testing.T, m *metering.Meter) func() *httptest.ResponseRecorder {
	t.Helper()
	mock := httptest.NewServer(&mockllm.Server{})
	t.Cleanup(mock.Close)
	cfg := gateway.DefaultMockProviders(mock.URL)
	pricer, err := pricing.New(pricing.DefaultConfig().PriceLike("mock", slices.Collect(maps.Keys(cfg.Models))), pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(cfg, gateway.Options{Meter: m, Pricer: metering.Pricer{P: pricer}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := gw.Handler()
	return func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/v1/chat/completions",
			strings.NewReader(`{"model":"mock-gpt","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`))
		r = r.WithContext(tollgate.WithCaller(r.Context(), tollgate.Caller{Account: "alice"}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
}

// TestReserveOnAFailingStoreIsUnavailable: a hold the store fails to write
// (PostgreSQL's holds, and on SQLite a provisional grant's) is refused as
// EUNAVAILABLE, a 503, not as an internal error; nothing waits, so the
// meter stays ready.
func TestReserveOnAFailingStoreIsUnavailable(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e, st, m := failingEnv(t, b, true, false)
			if _, err := e.Svc.IssueGrant(e.Ctx, ledger.GrantRequest{ID: "order-2", Account: "alice", Cap: 1000, TTL: 5 * time.Minute}); err != nil {
				t.Fatal(err)
			}
			st.fail.Store(true)
			_, err := m.Reserve(e.Ctx, gateway.Hold{RequestID: "r", Account: "alice", Model: "m", Credits: 100, GrantID: "order-2"})
			if tollgate.ErrorCode(err) != tollgate.EUNAVAILABLE || !errors.Is(err, errDiskFull) {
				t.Fatalf("reserve on a failing store: %v, want EUNAVAILABLE", err)
			}
			if err := m.Ready(e.Ctx); err != nil {
				t.Fatalf("ready with no settle waiting: %v", err)
			}
			st.fail.Store(false)
		})
	}
}

// TestCloseSettlesWhatWaits: Close tries the waiting settles a last time,
// without waiting for the next retry: a store back by then charges them.
func TestCloseSettlesWhatWaits(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e, st, m := failingEnv(t, b, true, false)
			ids := reserveN(t, e, m, 3)
			st.fail.Store(true)
			settleAll(t, e, m, ids, 10)
			st.fail.Store(false)
			if err := m.Close(); err != nil {
				t.Fatalf("close with the store back: %v", err)
			}
			if us := usageOf(t, e); len(us) != 3 {
				t.Fatalf("%d usage records after close, want 3", len(us))
			}
		})
	}
}

// TestCloseReportsWhatIsLeft: settles the store still fails at Close are
// logged with their request ids and credits, and Close's error counts them.
func TestCloseReportsWhatIsLeft(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e, st, m := failingEnv(t, b, true, false)
			var logs strings.Builder
			m.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			ids := reserveN(t, e, m, 2)
			st.fail.Store(true)
			settleAll(t, e, m, ids, 10)
			err := m.Close()
			if err == nil || !strings.Contains(err.Error(), "2 answered requests (20 credits) left unbilled") {
				t.Fatalf("close with the store failing: %v, want 2 requests, 20 credits left", err)
			}
			for _, rid := range []string{"request_id=r0", "request_id=r1"} {
				if !strings.Contains(logs.String(), "settle lost: the store did not commit it before shutdown") || !strings.Contains(logs.String(), rid) {
					t.Fatalf("close did not log the lost settle of %s:\n%s", rid, logs.String())
				}
			}
			st.fail.Store(false)
		})
	}
}

func reserveN(t *testing.T, e *storetest.Env, m *metering.Meter, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		id, err := m.Reserve(e.Ctx, gateway.Hold{RequestID: fmt.Sprint("r", i), Account: "alice", Model: "m", Credits: 100})
		if err != nil {
			t.Fatalf("reserve %d: %v", i, err)
		}
		ids[i] = id
	}
	return ids
}

// settleAll settles each hold at cost and waits for the ledger's answers.
func settleAll(t *testing.T, e *storetest.Env, m *metering.Meter, ids []string, cost tollgate.Credits) {
	t.Helper()
	for i, id := range ids {
		if err := m.Settle(e.Ctx, id, gateway.Usage{RequestID: fmt.Sprint("r", i), Account: "alice", Model: "m", Credits: cost, Status: "ok"}); err != nil {
			t.Fatalf("settle %d: %v", i, err)
		}
	}
	if err := e.Svc.Sync(e.Ctx); err != nil {
		t.Fatal(err)
	}
}
