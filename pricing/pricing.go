// Package pricing turns tokens into credits and money into credits: the
// model price table, the exchange-rate feed with its staleness bound, the
// pay-as-you-go top-up quote, the fixed packages and the merchant fee
// tiers. It is pure domain code: exact rational arithmetic, no floats, no
// storage; it imports only tollgate and the standard library.
package pricing

import (
	"context"
	"math"
	"math/big"
	"math/bits"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"tollgate"
)

// Options are the run-time dependencies of a Pricer; the zero value is
// ready to use.
type Options struct {
	// Clock is the clock (SystemClock when nil).
	Clock tollgate.Clock
	// HTTPClient fetches a URL rate feed (a client with a timeout when nil).
	HTTPClient *http.Client
	// Source, if set, replaces the source the config names (for tests).
	Source Source
}

// Pricer answers pricing questions from one price table at a time:
// Replace swaps in another atomically (a catalog reload), and Snapshot
// returns a Pricer fixed to the table in force, for work that must keep
// the prices it started with (a request's hold and settle). It is safe
// for concurrent use.
type Pricer struct {
	t    atomic.Pointer[table]
	opts Options
}

// table is one configuration's prices; it never changes once built.
type table struct {
	rates    RatesConfig // what the feed was built from, to keep it across a Replace
	baseCur  Currency
	base     *big.Rat
	models   map[string]model
	packages []Package
	tiers    []tier
	feed     *Feed
	maxStale time.Duration
	clock    tollgate.Clock
}

type model struct {
	cur    Currency
	prices [kinds]*big.Rat // per unit of each kind, in the order of counts; nil: not sold
	call   *big.Rat        // the per-call fee × 1M, in weigh's units
	images map[string]*big.Rat
	// priority multiplies the token kinds' prices at the priority tier;
	// nil: the model is not sold at that tier.
	priority *big.Rat
	fixed    fixedPrice // for a model priced in the base currency
}

// newModel builds m's prices in weigh's units (currency per 1M of a kind).
func newModel(m ModelPrice) model {
	pm := model{cur: m.Currency, prices: m.prices(), call: m.call()}
	if len(m.PerImage) > 0 {
		pm.images = make(map[string]*big.Rat, len(m.PerImage))
		for k, d := range m.PerImage {
			pm.images[k] = new(big.Rat).Mul(d.Rat(), big.NewRat(1_000_000, 1))
		}
	}
	if m.PriorityMultiplier.r != nil {
		pm.priority = m.PriorityMultiplier.Rat()
	}
	return pm
}

// Kinds of counts: the first tokenKinds are tokens (the priority tier
// multiplies their prices), the rest units priced per unit.
const (
	tokenKinds = 7
	kinds      = 11
)

// kindNames name the kinds in an error about a kind a model does not sell.
var kindNames = [kinds]string{"input tokens", "cached input tokens", "cache writes", "1-hour cache writes", "output tokens",
	"audio input tokens", "audio output tokens", "speech characters", "audio minutes", "web search calls", "web fetch calls"}

// counts returns t's counts in the order of model.prices: input, cached
// input, cache writes (5 minutes, 1 hour), output, audio in and out; then
// characters, audio seconds, web searches and web fetches.
func counts(t tollgate.Tokens) [kinds]int64 {
	return [kinds]int64{t.Input, t.CachedInput, t.CacheWrite, t.CacheWrite1h, t.Output, t.AudioInput, t.AudioOutput,
		t.Characters, t.AudioSeconds, t.WebSearches, t.WebFetches}
}

// weigh is Σ n·price over the kinds: what the counts cost, exactly, in
// the prices' currency per 1M tokens. A kind not sold (nil) counts nothing.
func weigh(prices [kinds]*big.Rat, n [kinds]int64) *big.Rat {
	sum := new(big.Rat)
	for i, price := range prices {
		if price == nil || n[i] == 0 {
			continue
		}
		sum.Add(sum, new(big.Rat).Mul(new(big.Rat).SetInt64(n[i]), price))
	}
	return sum
}

// weighAll is what t costs at m's prices, per-call fee aside, in weigh's
// units: the token kinds (times the priority multiplier when t is served
// at that tier), the per-unit kinds and the images. What m does not sell
// counts nothing: check refuses it first where that matters.
func (m model) weighAll(t tollgate.Tokens) *big.Rat {
	n := counts(t)
	var tok, units [kinds]int64
	copy(tok[:tokenKinds], n[:tokenKinds])
	copy(units[tokenKinds:], n[tokenKinds:])
	sum := weigh(m.prices, tok)
	if t.Priority && m.priority != nil {
		sum.Mul(sum, m.priority)
	}
	sum.Add(sum, weigh(m.prices, units))
	if t.Images > 0 {
		if price := m.images[t.ImageSize]; price != nil {
			sum.Add(sum, new(big.Rat).Mul(new(big.Rat).SetInt64(t.Images), price))
		}
	}
	return sum
}

// check refuses counts m cannot price: negative ones, a kind m does not
// sell, images of a size it has no price for, the priority tier without a
// multiplier. Errors are EINVALID, their message fit for the caller.
func (m model) check(id string, t tollgate.Tokens) error {
	const op = "pricing.Cost"
	n := counts(t)
	for i, c := range n {
		if c < 0 {
			return &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "token counts must not be negative"}
		}
		if c > 0 && m.prices[i] == nil {
			return &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "model " + id + " has no price for " + kindNames[i]}
		}
	}
	switch {
	case t.Images < 0:
		return &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "token counts must not be negative"}
	case t.Images > 0 && m.images[t.ImageSize] == nil:
		msg := "model " + id + " has no price for images of size " + strconv.Quote(t.ImageSize)
		if len(m.images) > 0 {
			msg += " (priced: " + strings.Join(sortedKeys(m.images), ", ") + ")"
		}
		return &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: msg}
	case t.Priority && m.priority == nil:
		return &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "model " + id + " is not sold at the priority tier"}
	}
	return nil
}

// plain reports whether t is only counts of kinds, at the standard tier:
// what fixedPrice computes.
func plain(t tollgate.Tokens) bool { return t.Images == 0 && !t.Priority }

// fixedPrice is a model's price per token in credits as integers over one
// denominator, and its per-call fee over the same one, so
// Cost = ceil((Σ count·per + call) / den) in 128-bit integer
// arithmetic: the same exact result as the rational sum, without its
// allocations on every request. ok is false when the integers do not fit
// in 64 bits (Cost then uses the rationals).
type fixedPrice struct {
	per [kinds + 1]uint64 // the last is the per-call fee, counted once
	den uint64
	ok  bool
}

// newFixedPrice expresses the prices and the per-call fee (in weigh's
// units) divided by base over their least common denominator.
func newFixedPrice(base *big.Rat, prices [kinds]*big.Rat, call *big.Rat) fixedPrice {
	all := append(prices[:], call)
	per := make([]*big.Rat, len(all))
	den := big.NewInt(1)
	for i, p := range all {
		if p == nil { // a kind not sold: check refuses any count of it
			p = new(big.Rat)
		}
		per[i] = new(big.Rat).Quo(p, base)
		d := per[i].Denom()
		g := new(big.Int).GCD(nil, nil, den, d)
		den.Mul(den, new(big.Int).Quo(d, g))
	}
	if !den.IsUint64() {
		return fixedPrice{}
	}
	f := fixedPrice{den: den.Uint64(), ok: true}
	for i, r := range per {
		n := new(big.Int).Mul(r.Num(), new(big.Int).Quo(den, r.Denom()))
		if n.Sign() < 0 || !n.IsUint64() {
			return fixedPrice{}
		}
		f.per[i] = n.Uint64()
	}
	return f
}

// cost is the ceiling of the sum, the per-call fee included once, over
// den for non-negative counts; false when the credits would not fit in an
// int64.
func (f fixedPrice) cost(n [kinds]int64) (int64, bool) {
	var hi, lo uint64
	for i, per := range f.per {
		c := uint64(1) // the per-call fee's count
		if i < kinds {
			c = uint64(n[i])
		}
		h, l := bits.Mul64(c, per)
		var carry uint64
		lo, carry = bits.Add64(lo, l, 0)
		hi, carry = bits.Add64(hi, h, carry)
		if carry != 0 {
			return 0, false
		}
	}
	if hi >= f.den { // the quotient needs more than 64 bits
		return 0, false
	}
	q, r := bits.Div64(hi, lo, f.den)
	if q > math.MaxInt64 || (r > 0 && q == math.MaxInt64) {
		return 0, false
	}
	if r > 0 {
		q++
	}
	return int64(q), true
}

type tier struct {
	from    tollgate.Fen
	percent *big.Rat
}

// DefaultMaxStale is the default age past which a rate is too old for
// pay-as-you-go top-ups.
const DefaultMaxStale = time.Hour

// New validates cfg and returns a Pricer. Nothing is fetched until a
// price needs a rate.
func New(cfg Config, opts Options) (*Pricer, error) {
	t, err := newTable(cfg, opts, nil)
	if err != nil {
		return nil, err
	}
	p := &Pricer{opts: opts}
	p.t.Store(t)
	return p, nil
}

// Replace validates cfg and makes it the price table in force, at once
// for every caller; a Snapshot taken before keeps the old one. The rate
// feed, with the rates it fetched, is kept when cfg's rates section is
// the same. On error nothing changes. It is Next then Set.
func (p *Pricer) Replace(cfg Config) error {
	q, err := p.Next(cfg)
	if err != nil {
		return err
	}
	p.Set(q)
	return nil
}

// Next validates cfg and returns a Pricer of its own for it, sharing p's
// rate feed when cfg's rates are configured alike; p is unchanged. A
// reload builds what depends on the new prices on it, then Sets it.
func (p *Pricer) Next(cfg Config) (*Pricer, error) {
	t, err := newTable(cfg, p.opts, p.t.Load())
	if err != nil {
		return nil, err
	}
	q := &Pricer{opts: p.opts}
	q.t.Store(t)
	return q, nil
}

// Set makes q's table the one in force in p, atomically.
func (p *Pricer) Set(q *Pricer) { p.t.Store(q.t.Load()) }

// Snapshot returns a Pricer fixed to the table in force now: a later
// Replace of p does not change it (Replace on the snapshot itself does
// not change p).
func (p *Pricer) Snapshot() *Pricer {
	s := &Pricer{opts: p.opts}
	s.t.Store(p.t.Load())
	return s
}

// newTable builds cfg's table; it shares old's feed when the rates are
// configured alike.
func newTable(cfg Config, opts Options, old *table) (*table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &table{
		rates:    cfg.Rates,
		baseCur:  cfg.baseCurrency(),
		base:     cfg.BasePrice.Rat(),
		models:   make(map[string]model, len(cfg.Models)),
		packages: append([]Package(nil), cfg.Packages...),
		maxStale: time.Duration(cfg.Rates.MaxStale),
		clock:    tollgate.ClockOr(opts.Clock),
	}
	if p.maxStale == 0 {
		p.maxStale = DefaultMaxStale
	}
	for id, m := range cfg.Models {
		pm := newModel(m)
		if pm.cur == p.baseCur {
			pm.fixed = newFixedPrice(p.base, pm.prices, pm.call)
		}
		p.models[id] = pm
	}
	for _, t := range cfg.FeeTiers {
		p.tiers = append(p.tiers, tier{from: t.FromFen, percent: t.Percent.Rat()})
	}
	if old != nil && reflect.DeepEqual(old.rates, cfg.Rates) {
		p.feed = old.feed
		return p, nil
	}
	src := opts.Source
	if src == nil {
		if cfg.Rates.URL != "" {
			src = &HTTPSource{URL: cfg.Rates.URL, Client: opts.HTTPClient}
		} else {
			static := StaticSource{}
			for c, d := range cfg.Rates.Static {
				static[c] = d.Rat()
			}
			src = static
		}
	}
	p.feed = NewFeed(src, FeedOptions{
		TTL: time.Duration(cfg.Rates.TTL), Timeout: time.Duration(cfg.Rates.Timeout), Clock: p.clock,
	})
	return p, nil
}

// Cost returns the credits a request costs:
//
//	ceil((input·in + cached_input·cached + cache_write_input·written
//	      + cache_write_1h_input·written_1h + output·out
//	      + per_call·1M) / base)
//
// with every price converted to the base currency, computed exactly with
// one ceiling over the exact sum: the per-call fee is part of that sum,
// counted once, so a call costs it even with no tokens, and the gateway's
// hold (the most of Cost over the worst cases) always covers it. The counts do not overlap (the gateway
// normalises provider usage first: t.Input excludes the tokens read from
// or written to a cache). A model priced in the base currency needs no
// rate; another uses the feed's latest rate at once (Feed.Latest), even
// past the top-up staleness bound, so metering never waits or stops for a
// slow or dead feed.
//
// Errors: ENOTFOUND for an unknown model; EINVALID for negative counts or a
// cost beyond int64; EUNAVAILABLE if a rate is needed and none was ever
// fetched. Safe for concurrent use.
func (p *table) Cost(ctx context.Context, modelID string, t tollgate.Tokens) (tollgate.Credits, error) {
	return p.cost(ctx, modelID, t, true)
}

// TokenCost is Cost without the model's per-call fee: what the tokens
// alone cost, for a price list (GET /v1/models). Never bill with it.
func (p *table) TokenCost(ctx context.Context, modelID string, t tollgate.Tokens) (tollgate.Credits, error) {
	return p.cost(ctx, modelID, t, false)
}

// cost is Cost, with the per-call fee when call is true.
func (p *table) cost(ctx context.Context, modelID string, t tollgate.Tokens, call bool) (tollgate.Credits, error) {
	const op = "pricing.Cost"
	m, ok := p.models[modelID]
	if !ok {
		return 0, &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "unknown model " + modelID}
	}
	if err := m.check(modelID, t); err != nil {
		return 0, err
	}
	if m.fixed.ok && call && plain(t) {
		if c, ok := m.fixed.cost(counts(t)); ok {
			return tollgate.Credits(c), nil
		}
	}
	sum := m.weighAll(t)
	if call {
		sum.Add(sum, m.call)
	}
	if m.cur != p.baseCur {
		rates, err := p.feed.Latest(ctx)
		if err != nil {
			return 0, err
		}
		if sum, err = rates.Convert(sum, m.cur, p.baseCur); err != nil {
			return 0, &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op, Message: "exchange rate unavailable", Err: err}
		}
	}
	credits := ceil(sum.Quo(sum, p.base))
	if !credits.IsInt64() {
		return 0, &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "cost is too large"}
	}
	return tollgate.Credits(credits.Int64()), nil
}

// FenPerMCredit returns what 1M credits cost in fen: base price × CNY per
// base currency × 100, rounded half-up to a whole fen (0.005 CNY rounds
// up). Errors are as for QuoteTopUp.
func (p *table) FenPerMCredit(ctx context.Context) (tollgate.Fen, error) {
	const op = "pricing.FenPerMCredit"
	cny := new(big.Rat).Set(p.base)
	if p.baseCur != CNY {
		rates, err := p.feed.Get(ctx)
		if err != nil {
			return 0, err
		}
		if age := p.clock.Now().Sub(rates.FetchedAt); age > p.maxStale {
			return 0, &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op,
				Message: "exchange rate is out of date; pay-as-you-go top-ups are paused, packages are still available"}
		}
		if cny, err = rates.Convert(cny, p.baseCur, CNY); err != nil {
			return 0, &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op, Message: "exchange rate unavailable", Err: err}
		}
	}
	fen := roundHalfUp(cny.Mul(cny, big.NewRat(100, 1)))
	if fen.Sign() <= 0 || !fen.IsInt64() {
		return 0, &tollgate.Error{Code: tollgate.EINTERNAL, Op: op, Message: "price of 1M credits is out of range: " + fen.String() + " fen"}
	}
	return tollgate.Fen(fen.Int64()), nil
}

// QuoteTopUp returns the credits a pay-as-you-go top-up of fen buys:
// floor(fen × 1e6 / FenPerMCredit). A rate is used while it is at most
// MaxStale old (exactly MaxStale is still accepted).
//
// Errors: EINVALID if fen is not positive; EUNAVAILABLE if the rate is
// older than MaxStale or was never fetched. Safe for concurrent use.
func (p *table) QuoteTopUp(ctx context.Context, fen tollgate.Fen) (tollgate.Credits, error) {
	if fen <= 0 {
		return 0, &tollgate.Error{Code: tollgate.EINVALID, Op: "pricing.QuoteTopUp", Message: "amount must be positive"}
	}
	per, err := p.FenPerMCredit(ctx)
	if err != nil {
		return 0, err
	}
	c := new(big.Int).Mul(big.NewInt(int64(fen)), big.NewInt(1_000_000))
	c.Quo(c, big.NewInt(int64(per)))
	if !c.IsInt64() {
		return 0, &tollgate.Error{Code: tollgate.EINVALID, Op: "pricing.QuoteTopUp", Message: "amount is too large"}
	}
	return tollgate.Credits(c.Int64()), nil
}

// Models returns the ids of the priced models, sorted.
func (p *table) Models() []string { return sortedKeys(p.models) }

// Packages returns the fixed offers in configured order. They need no
// exchange rate, so they sell even when the feed is stale.
func (p *table) Packages() []Package { return append([]Package(nil), p.packages...) }

// Package returns the package with id, or an ENOTFOUND *tollgate.Error.
func (p *table) Package(id string) (Package, error) {
	for _, pk := range p.packages {
		if pk.ID == id {
			return pk, nil
		}
	}
	return Package{}, &tollgate.Error{Code: tollgate.ENOTFOUND, Op: "pricing.Package", Message: "unknown package " + id}
}

// Fee returns the merchant fee on a payment of amount fen, given the
// calendar month's successful volume before this payment. The tier is the
// one with the largest FromFen <= monthVolumeBefore, so the payment that
// crosses a threshold pays the lower tier's rate on its whole amount and
// the next payment the new rate (no split). The fee is amount × percent /
// 100 rounded half-up to a whole fen (0.5 fen rounds up), as WeChat Pay
// rounds its service fee. A non-positive amount has no fee.
func (p *table) Fee(amount, monthVolumeBefore tollgate.Fen) tollgate.Fen {
	if amount <= 0 {
		return 0
	}
	i := sort.Search(len(p.tiers), func(i int) bool { return p.tiers[i].from > monthVolumeBefore }) - 1
	if i < 0 {
		i = 0
	}
	f := new(big.Rat).Mul(new(big.Rat).SetInt64(int64(amount)), p.tiers[i].percent)
	f.Quo(f, big.NewRat(100, 1))
	fee := roundHalfUp(f)
	if !fee.IsInt64() {
		return math.MaxInt64 // unreachable: percent <= 100
	}
	return tollgate.Fen(fee.Int64())
}

// ToFen converts amount in currency cur to fen at the feed's latest rate
// (even past the top-up staleness bound: it is for reports), rounded half-up
// to a whole fen. Errors: EUNAVAILABLE if a rate is needed and none was ever
// fetched; EINVALID if the result does not fit in int64.
func (p *table) ToFen(ctx context.Context, amount *big.Rat, cur Currency) (tollgate.Fen, error) {
	const op = "pricing.ToFen"
	cny := new(big.Rat).Set(amount)
	if cur != CNY {
		rates, err := p.feed.Latest(ctx)
		if err != nil {
			return 0, err
		}
		if cny, err = rates.Convert(cny, cur, CNY); err != nil {
			return 0, &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op, Message: "exchange rate unavailable", Err: err}
		}
	}
	fen := roundHalfUp(cny.Mul(cny, big.NewRat(100, 1)))
	if !fen.IsInt64() {
		return 0, &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "amount is too large"}
	}
	return tollgate.Fen(fen.Int64()), nil
}

// Cost is the table in force's Cost (see table.Cost).
func (p *Pricer) Cost(ctx context.Context, modelID string, t tollgate.Tokens) (tollgate.Credits, error) {
	return p.t.Load().Cost(ctx, modelID, t)
}

// TokenCost is the table in force's TokenCost.
func (p *Pricer) TokenCost(ctx context.Context, modelID string, t tollgate.Tokens) (tollgate.Credits, error) {
	return p.t.Load().TokenCost(ctx, modelID, t)
}

// FenPerMCredit is the table in force's FenPerMCredit.
func (p *Pricer) FenPerMCredit(ctx context.Context) (tollgate.Fen, error) {
	return p.t.Load().FenPerMCredit(ctx)
}

// QuoteTopUp is the table in force's QuoteTopUp.
func (p *Pricer) QuoteTopUp(ctx context.Context, fen tollgate.Fen) (tollgate.Credits, error) {
	return p.t.Load().QuoteTopUp(ctx, fen)
}

// Models returns the ids of the priced models, sorted.
func (p *Pricer) Models() []string { return p.t.Load().Models() }

// Packages returns the fixed offers in configured order.
func (p *Pricer) Packages() []Package { return p.t.Load().Packages() }

// Package returns the package with id, or an ENOTFOUND *tollgate.Error.
func (p *Pricer) Package(id string) (Package, error) { return p.t.Load().Package(id) }

// Fee is the table in force's Fee.
func (p *Pricer) Fee(amount, monthVolumeBefore tollgate.Fen) tollgate.Fen {
	return p.t.Load().Fee(amount, monthVolumeBefore)
}

// ToFen is the table in force's ToFen.
func (p *Pricer) ToFen(ctx context.Context, amount *big.Rat, cur Currency) (tollgate.Fen, error) {
	return p.t.Load().ToFen(ctx, amount, cur)
}
