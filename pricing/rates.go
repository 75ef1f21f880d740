package pricing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"regexp"
	"sync"
	"time"

	"tollgate"
)

// Currency is an ISO 4217 code. Prices may be in USD, EUR or CNY.
type Currency string

// The currencies prices may be written in.
const (
	USD Currency = "USD"
	EUR Currency = "EUR"
	CNY Currency = "CNY"
)

func (c Currency) valid() bool { return c == USD || c == EUR || c == CNY }

// PerUSD maps a currency to how many units of it one US dollar buys
// (CNY: 7.20 means 1 USD = 7.20 CNY). USD itself maps to 1.
type PerUSD map[Currency]*big.Rat

// Source gives current exchange rates. Implementations are safe for
// concurrent use; the Feed calls them at most once at a time.
type Source interface {
	// FetchRates returns the current rates, including USD = 1, or an
	// error; ctx carries the Feed's timeout. The result must not be
	// modified afterwards: the Feed shares it with its callers.
	FetchRates(ctx context.Context) (PerUSD, error)
}

// StaticSource is a Source that always returns the same rates, from config.
type StaticSource PerUSD

// FetchRates implements Source; it returns a copy of s with USD = 1 added.
func (s StaticSource) FetchRates(context.Context) (PerUSD, error) {
	out := PerUSD{USD: big.NewRat(1, 1)}
	for c, r := range s {
		out[c] = new(big.Rat).Set(r)
	}
	return out, nil
}

// DefaultMaxBody bounds the body an HTTPSource reads.
const DefaultMaxBody = 64 << 10

// HTTPSource fetches rates with GET URL. The body must be JSON of the shape
//
//	{"base":"USD","rates":{"CNY":"7.1234","EUR":0.92}}
//
// where base is the currency the rates are quoted against and each value is
// a positive decimal, as a string or a JSON number (parsed exactly, never as
// a float; a two-digit exponent is allowed). If base is not USD, rates must
// contain USD and everything is converted to per-USD. Other currencies are
// ignored. A non-2xx status, a body over MaxBody or a malformed value is an
// error.
type HTTPSource struct {
	URL string
	// Client makes the request; a client with a 10 s timeout when nil.
	// The Feed also bounds each fetch with its own timeout.
	Client *http.Client
	// MaxBody is the largest body read, DefaultMaxBody when zero.
	MaxBody int64
}

var defaultClient = &http.Client{Timeout: 10 * time.Second}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// FetchRates implements Source.
func (h *HTTPSource) FetchRates(ctx context.Context) (PerUSD, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("rate feed: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	c := h.Client
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rate feed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("rate feed: GET %s: status %s", h.URL, resp.Status)
	}
	max := h.MaxBody
	if max <= 0 {
		max = DefaultMaxBody
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("rate feed: read body: %w", err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("rate feed: body larger than %d bytes", max)
	}
	return ParseRates(body)
}

// ParseRates decodes the HTTPSource JSON shape into per-USD rates.
func ParseRates(body []byte) (PerUSD, error) {
	var doc struct {
		Base  string                     `json:"base"`
		Rates map[string]json.RawMessage `json:"rates"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("rate feed: %w", err)
	}
	if !currencyCode.MatchString(doc.Base) {
		return nil, fmt.Errorf("rate feed: base %q is not a currency code", doc.Base)
	}
	in := map[Currency]*big.Rat{Currency(doc.Base): big.NewRat(1, 1)}
	for code, raw := range doc.Rates {
		if !currencyCode.MatchString(code) {
			return nil, fmt.Errorf("rate feed: %q is not a currency code", code)
		}
		d, err := decodeDecimal(raw, true)
		if err != nil {
			return nil, fmt.Errorf("rate feed: rates.%s: %w", code, err)
		}
		if d.Sign() == 0 {
			return nil, fmt.Errorf("rate feed: rates.%s is zero", code)
		}
		if Currency(code) != Currency(doc.Base) {
			in[Currency(code)] = d.Rat()
		}
	}
	usd, ok := in[USD]
	if !ok {
		return nil, fmt.Errorf("rate feed: base %s without a USD rate", doc.Base)
	}
	out := PerUSD{}
	for c, r := range in {
		out[c] = new(big.Rat).Quo(r, usd)
	}
	return out, nil
}

// Rates is a snapshot of exchange rates and the time they were fetched. A
// snapshot may be shared with other callers: treat PerUSD as read-only.
type Rates struct {
	PerUSD    PerUSD
	FetchedAt time.Time
}

// Convert returns amount (in from) expressed in to: amount · to/from. It
// fails if either rate is missing.
func (r Rates) Convert(amount *big.Rat, from, to Currency) (*big.Rat, error) {
	if from == to {
		return new(big.Rat).Set(amount), nil
	}
	f, t := r.PerUSD[from], r.PerUSD[to]
	if f == nil || t == nil || f.Sign() <= 0 || t.Sign() <= 0 {
		return nil, fmt.Errorf("no exchange rate between %s and %s", from, to)
	}
	out := new(big.Rat).Mul(amount, t)
	return out.Quo(out, f), nil
}

// FeedOptions configures a Feed; zero fields take the defaults.
type FeedOptions struct {
	// TTL is how long fetched rates are served without asking the source
	// again (default 5 minutes).
	TTL time.Duration
	// RetryEvery is the least time between two fetches after a failed one
	// (default 30 s), so a dead feed is not hammered.
	RetryEvery time.Duration
	// Timeout bounds one fetch (default 5 s).
	Timeout time.Duration
	// Clock is the clock (SystemClock when nil).
	Clock tollgate.Clock
}

// Feed caches a Source's rates. Concurrent callers share one fetch; when a
// fetch fails the last good rates are served, with their FetchedAt, and the
// caller decides whether they are too old (Pricer does). Safe for
// concurrent use.
type Feed struct {
	src  Source
	opts FeedOptions

	// mu guards the fields below.
	mu       sync.Mutex
	cur      Rates
	have     bool
	nextTry  time.Time // after a failure, no fetch before this
	lastErr  error
	inflight *fetch
}

type fetch struct {
	done chan struct{}
	err  error
}

// NewFeed returns a Feed over src; it fetches lazily on first use.
func NewFeed(src Source, opts FeedOptions) *Feed {
	if opts.TTL <= 0 {
		opts.TTL = 5 * time.Minute
	}
	if opts.RetryEvery <= 0 {
		opts.RetryEvery = 30 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	opts.Clock = tollgate.ClockOr(opts.Clock)
	return &Feed{src: src, opts: opts}
}

// errNoRates is wrapped by Get when no fetch has ever succeeded.
var errNoRates = errors.New("no exchange rates available")

// Get returns rates no older than TTL, fetching them if needed (one fetch
// shared by all concurrent callers), or the last good rates if the fetch
// fails. It returns an EUNAVAILABLE *tollgate.Error only when no fetch has
// ever succeeded, or when ctx ends while waiting and nothing is cached.
func (f *Feed) Get(ctx context.Context) (Rates, error) {
	f.mu.Lock()
	now := f.opts.Clock.Now()
	if f.have && now.Sub(f.cur.FetchedAt) < f.opts.TTL {
		r := f.cur
		f.mu.Unlock()
		return r, nil
	}
	if now.Before(f.nextTry) {
		r, err := f.cachedLocked(f.lastErr)
		f.mu.Unlock()
		return r, err
	}
	if f.inflight == nil {
		f.inflight = &fetch{done: make(chan struct{})}
		go f.refresh(f.inflight)
	}
	c := f.inflight
	f.mu.Unlock()

	select {
	case <-c.done:
	case <-ctx.Done():
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.cachedLocked(ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cachedLocked(c.err)
}

// Latest returns the cached rates at once, whatever their age, and starts
// a shared background refresh if they are older than TTL (and no failed
// fetch is backing off); the refreshed rates serve the next callers. With
// nothing cached yet it waits like Get. Metering uses it so that a request
// never waits on the feed. Errors are as for Get.
func (f *Feed) Latest(ctx context.Context) (Rates, error) {
	f.mu.Lock()
	if !f.have {
		f.mu.Unlock()
		return f.Get(ctx)
	}
	defer f.mu.Unlock()
	now := f.opts.Clock.Now()
	if now.Sub(f.cur.FetchedAt) >= f.opts.TTL && !now.Before(f.nextTry) && f.inflight == nil {
		f.inflight = &fetch{done: make(chan struct{})}
		go f.refresh(f.inflight)
	}
	return f.cur, nil
}

// cachedLocked returns the last good rates, or an error wrapping cause.
func (f *Feed) cachedLocked(cause error) (Rates, error) {
	if f.have {
		return f.cur, nil
	}
	if cause == nil {
		cause = errNoRates
	}
	return Rates{}, &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: "pricing.Feed",
		Message: "exchange rate unavailable", Err: fmt.Errorf("%w: %w", errNoRates, cause)}
}

// refresh runs one fetch, detached from any caller's context so that one
// caller giving up does not fail the others.
func (f *Feed) refresh(c *fetch) {
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.Timeout)
	defer cancel()
	rates, err := f.src.FetchRates(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.opts.Clock.Now()
	if err != nil {
		f.lastErr = err
		f.nextTry = now.Add(f.opts.RetryEvery)
	} else {
		f.cur = Rates{PerUSD: rates, FetchedAt: now}
		f.have = true
		f.lastErr = nil
		f.nextTry = time.Time{}
	}
	c.err = err
	f.inflight = nil
	close(c.done)
}
