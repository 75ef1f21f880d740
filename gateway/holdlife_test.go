package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/gateway"
	"tollgate/internal/clocktest"
	"tollgate/internal/testenv"
	"tollgate/ledger"
	"tollgate/metering"
	"tollgate/store/postgres"
	"tollgate/store/sqlite"
)

// A hold lives as long as its request (docs/DESIGN.md §2.5): these run the
// gateway through metering.Meter on the real ledger, SQLite (memory holds,
// as serve runs it) and PostgreSQL, on one fake clock.

// ledgerEnv is a ledger on a fake clock with one funded account, acct-1
// (newEnv's caller).
type ledgerEnv struct {
	svc   *ledger.Service
	clock *clocktest.Clock
}

const ledgerFunds = 100_000

// forEachLedger runs f on SQLite and on PostgreSQL; the store is audited
// when f ends.
func forEachLedger(t *testing.T, f func(t *testing.T, l ledgerEnv)) {
	for _, name := range []string{"SQLite", "PostgreSQL"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clock := clocktest.New(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
			opt := ledger.Options{Clock: clock}
			var st ledger.Store
			var err error
			if name == "SQLite" {
				opt.MemoryHolds = true
				st, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), sqlite.FileName))
			} else {
				st, err = postgres.Open(ctx, testenv.MustPostgres(t))
			}
			if err != nil {
				t.Fatal(err)
			}
			svc := ledger.New(st, opt)
			t.Cleanup(func() {
				svc.Close()
				vs, err := ledger.Audit(ctx, st, ledger.AuditOptions{Now: clock.Now(), Grace: time.Minute})
				if err != nil || len(vs) > 0 {
					t.Errorf("audit: %v %v", vs, err)
				}
				st.Close()
			})
			if _, err := svc.CreateAccount(ctx, "acct-1"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := svc.CreditPayment(ctx, ledger.Payment{Account: "acct-1", OutTradeNo: "o1", TransactionID: "wx-o1",
				Fen: 100, Credits: ledgerFunds}); err != nil {
				t.Fatal(err)
			}
			f(t, ledgerEnv{svc: svc, clock: clock})
		})
	}
}

// stream is a streaming response read as it comes.
type stream struct {
	t     testing.TB
	ready chan struct{} // closed when the response's headers came, or the call failed
	err   error
	rd    *bufio.Reader
	data  []string // the data payloads read so far
}

// openStream posts a streaming request to path. It does not wait for the
// response: the gateway answers only once the upstream's first output came.
func (e *env) openStream(path, body string) *stream {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	s := &stream{t: e.t, ready: make(chan struct{})}
	go func() {
		defer close(s.ready)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			s.err = err
			return
		}
		e.t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			s.err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
			return
		}
		s.rd = bufio.NewReader(resp.Body)
	}()
	return s
}

// until reads data payloads until one contains sub, and returns it.
func (s *stream) until(sub string) string {
	s.t.Helper()
	<-s.ready
	if s.err != nil {
		s.t.Fatal(s.err)
	}
	for {
		line, err := s.rd.ReadString('\n')
		if d, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: "); ok {
			s.data = append(s.data, d)
			if strings.Contains(d, sub) {
				return d
			}
		}
		if err != nil {
			s.t.Fatalf("stream ended (%v) before %q; read %q", err, sub, s.data)
		}
	}
}

// armed waits until the gateway's watch of the request waits on the clock
// (after any renewal the last advance started has finished). It reports
// false, once, when no watch is armed.
func armed(t *testing.T, clock *clocktest.Clock, missing *bool) {
	t.Helper()
	if *missing {
		return
	}
	if !clock.WaitTimers(1, 5*time.Second) {
		t.Error("nothing keeps the hold alive: no renewal is waiting on the clock")
		*missing = true
	}
}

// twelveWords is an answer of twelve words, each a token of mockCounter.
func twelveWords() []string {
	words := strings.Fields("one two three four five six seven eight nine ten eleven twelve")
	for i := 1; i < len(words); i++ {
		words[i] = " " + words[i]
	}
	return words
}

// TestStreamLongerThanItsHoldIsBilled: a stream of 12 words, one a minute,
// outlives the 10-minute hold TTL. The hold is renewed while the stream
// runs, so the sweeper (run every minute) never expires it, and the answer
// is billed exactly: prompt 10 + 12 words × 2 = 34 credits.
func TestStreamLongerThanItsHoldIsBilled(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l ledgerEnv) {
		ctx := context.Background()
		words := twelveWords()
		up := &upstream{Step: make(chan struct{}), Words: words}
		meter := &metering.Meter{Ledger: l.svc, HoldTTL: 10 * time.Minute, SettleLater: true}
		e := newEnvWith(t, 0, func(o *gateway.Options) { o.Meter, o.Clock = meter, l.clock }, deploymentSpec{up: up})
		s := e.openStream("/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":20,"messages":[{"role":"user","content":"count"}]}`)
		var missing bool
		sweep := func(minute int) {
			if n, err := l.svc.ExpireHolds(ctx, l.clock.Now()); err != nil || n != 0 {
				t.Errorf("minute %d: the sweeper expired %d holds (%v) of a stream still running", minute, n, err)
			}
		}
		for i, w := range words {
			armed(t, l.clock, &missing)
			sweep(i)
			up.Step <- struct{}{}
			s.until(fmt.Sprintf("%q", w))
			l.clock.Advance(time.Minute)
		}
		armed(t, l.clock, &missing)
		sweep(len(words))
		up.Step <- struct{}{}
		last := s.until(`"cost_credits"`)
		s.until("[DONE]")
		if got := path(mustJSON(t, last), "usage", "cost_credits"); got != float64(34) {
			t.Errorf("the stream says it cost %v, want 34", got)
		}
		if err := l.svc.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		usage, err := l.svc.ListUsage(ctx, "acct-1", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(usage) != 1 || usage[0].Credits != 34 || usage[0].OutputTokens != 12 || usage[0].Status != "ok" {
			t.Fatalf("usage %+v; want one record of 34 credits, 12 output tokens, ok", usage)
		}
		b, err := l.svc.Balance(ctx, "acct-1")
		if err != nil || b.Credits != ledgerFunds-34 || b.Held != 0 || b.Debt != 0 {
			t.Fatalf("balance %+v, %v; want %d, nothing held, no debt", b, err, ledgerFunds-34)
		}
	})
}

// TestStreamEndsAtTheRequestTimeLimit: with MaxRequestDuration 5 minutes a
// stream of a word a minute is ended at 5 minutes: the client gets what
// was delivered, its cost, an error event naming the limit and [DONE];
// the ledger charges exactly that cost and holds nothing.
func TestStreamEndsAtTheRequestTimeLimit(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l ledgerEnv) {
		ctx := context.Background()
		words := twelveWords()
		up := &upstream{Step: make(chan struct{}), Words: words}
		meter := &metering.Meter{Ledger: l.svc, HoldTTL: 10 * time.Minute, SettleLater: true}
		e := newEnvWith(t, 0, func(o *gateway.Options) {
			o.Meter, o.Clock, o.Counter, o.MaxRequestDuration = meter, l.clock, mockCounter{}, 5*time.Minute
		}, deploymentSpec{up: up})
		s := e.openStream("/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":20,"messages":[{"role":"user","content":"count"}]}`)
		var missing bool
		for _, w := range words[:5] {
			armed(t, l.clock, &missing)
			up.Step <- struct{}{}
			s.until(fmt.Sprintf("%q", w))
			l.clock.Advance(time.Minute)
		}
		// The fifth minute has passed: the gateway ends the stream.
		cost := s.until(`"cost_credits"`)
		event := s.until(`"error"`)
		s.until("[DONE]")
		if code := path(mustJSON(t, event), "error", "code"); code != "request_timeout" {
			t.Errorf("the stream ended with %s; want a request_timeout error event", event)
		}
		credits, _ := path(mustJSON(t, cost), "usage", "cost_credits").(float64)
		if credits <= 0 {
			t.Fatalf("the stream's cost: %s", cost)
		}
		if err := l.svc.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		usage, err := l.svc.ListUsage(ctx, "acct-1", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(usage) != 1 || usage[0].Credits != tollgate.Credits(credits) || usage[0].OutputTokens != 5 || usage[0].Status != "deadline_exceeded" {
			t.Fatalf("usage %+v; want one record of %v credits for the 5 words delivered, deadline_exceeded", usage, credits)
		}
		b, err := l.svc.Balance(ctx, "acct-1")
		if err != nil || b.Credits != ledgerFunds-tollgate.Credits(credits) || b.Held != 0 {
			t.Fatalf("balance %+v, %v; want %v charged, nothing held", b, err, credits)
		}
	})
}

// TestMessagesStreamEndsAtTheRequestTimeLimit: the same limit on the
// Anthropic Messages API, relayed from an Anthropic upstream or translated
// from an OpenAI one: an error event of type timeout_error ends the stream,
// and what was delivered is billed.
func TestMessagesStreamEndsAtTheRequestTimeLimit(t *testing.T) {
	for _, kind := range []string{gateway.KindAnthropic, gateway.KindOpenAI} {
		t.Run(kind, func(t *testing.T) {
			clock := clocktest.New(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
			words := twelveWords()
			up := &upstream{Step: make(chan struct{}), Words: words}
			e := newEnvWith(t, 10_000, func(o *gateway.Options) {
				o.Clock, o.Counter, o.MaxRequestDuration = clock, mockCounter{}, 5*time.Minute
			}, deploymentSpec{up: up, kind: kind})
			s := e.openStream("/v1/messages", `{"model":"m","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"count"}]}`)
			var missing bool
			for _, w := range words[:5] {
				armed(t, clock, &missing)
				up.Step <- struct{}{}
				s.until(fmt.Sprintf("%q", w))
				clock.Advance(time.Minute)
			}
			s.until(`"timeout_error"`)
			_, holds, usages, _ := e.meter.state()
			if holds != 0 || len(usages) != 1 || usages[0].Status != "deadline_exceeded" || usages[0].OutputTokens != 5 || usages[0].Credits == 0 {
				t.Fatalf("%d holds open, usages %+v; want one, deadline_exceeded, for the 5 words delivered", holds, usages)
			}
		})
	}
}

// goneMeter is a Meter whose Reserve waits for its caller to go away, then
// fails as the ledger does when a reserve's caller stops waiting.
type goneMeter struct {
	*fakeMeter
	waiting chan struct{}
}

func (m *goneMeter) Reserve(ctx context.Context, h gateway.Hold) (string, error) {
	close(m.waiting)
	<-ctx.Done()
	return "", fmt.Errorf("meter: reserve: wait for ledger operation: %w", ctx.Err())
}

// TestClientGoneWhileReservingIsNoError: a client that disconnects while
// its hold is being made is not a failure of ours: no ERROR is logged, and
// the request is counted as 499 (client closed request), not 500.
func TestClientGoneWhileReservingIsNoError(t *testing.T) {
	var logs bytes.Buffer
	meter := &goneMeter{fakeMeter: newFakeMeter(t, 1000), waiting: make(chan struct{})}
	e := newEnvWith(t, 1000, func(o *gateway.Options) {
		o.Meter = meter
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}, deploymentSpec{up: &upstream{}})
	ctx, cancel := context.WithCancel(tollgate.WithCaller(context.Background(), e.caller))
	go func() { <-meter.waiting; cancel() }()
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/chat/completions", strings.NewReader(simpleChat))
	rec := httptest.NewRecorder()
	e.gw.Handler().ServeHTTP(rec, r)
	if rec.Code != gateway.StatusClientClosed {
		t.Errorf("status %d, want %d (client closed request)", rec.Code, gateway.StatusClientClosed)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a client going away was logged as an error:\n%s", logs.String())
	}
}

// TestClientGoneDuringUpstreamCallIsNoError: the same for a client that
// goes away while the upstream is called: the hold is released, and the
// outcome is client_canceled.
func TestClientGoneDuringUpstreamCallIsNoError(t *testing.T) {
	var logs bytes.Buffer
	up := &upstream{Hang: true, Arrived: make(chan struct{}, 1)}
	e := newEnvWith(t, 1000, func(o *gateway.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}, deploymentSpec{up: up})
	ctx, cancel := context.WithCancel(tollgate.WithCaller(context.Background(), e.caller))
	go func() { <-up.Arrived; cancel() }()
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/chat/completions", strings.NewReader(simpleChat))
	rec := httptest.NewRecorder()
	e.gw.Handler().ServeHTTP(rec, r)
	if rec.Code != gateway.StatusClientClosed {
		t.Errorf("status %d, want %d (client closed request): %s", rec.Code, gateway.StatusClientClosed, rec.Body)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a client going away was logged as an error:\n%s", logs.String())
	}
	e.checkNoHolds()
}
