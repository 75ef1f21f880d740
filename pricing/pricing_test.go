package pricing_test

import (
	"context"
	"errors"
	"math"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/clocktest"
	"tollgate/pricing"
)

var ctx = context.Background()

// newClock returns a manual clock.
func newClock() *clocktest.Clock { return clocktest.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) }

// fakeSource returns settable rates or an error, and counts fetches.
type fakeSource struct {
	mu    sync.Mutex
	rates pricing.PerUSD
	err   error
	calls int
}

func (s *fakeSource) FetchRates(context.Context) (pricing.PerUSD, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	return s.rates, nil
}

func (s *fakeSource) set(cny string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rates = pricing.PerUSD{pricing.USD: big.NewRat(1, 1), pricing.CNY: rat(cny), pricing.EUR: rat("0.92")}
	s.err = err
}

func rat(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		panic(s)
	}
	return r
}

// mustPricer builds a Pricer from the default config with base price base
// and a fake rate source with the given CNY rate.
func mustPricer(t *testing.T, base, cny string) (*pricing.Pricer, *fakeSource, *clocktest.Clock) {
	t.Helper()
	cfg := pricing.DefaultConfig()
	cfg.BasePrice = pricing.MustDecimal(base)
	src := &fakeSource{}
	src.set(cny, nil)
	clock := newClock()
	p, err := pricing.New(cfg, pricing.Options{Clock: clock, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	return p, src, clock
}

func mustCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := tollgate.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func TestCost(t *testing.T) {
	const max = math.MaxInt64
	type tokens = tollgate.Tokens
	tests := []struct {
		name     string
		model    string
		tokens   tokens
		want     tollgate.Credits
		wantCode string
	}{
		{"Zero", "gpt-4o-mini", tokens{}, 0, ""},
		{"AtBasePrice", "mock", tokens{Input: 1000}, 1000, ""},
		{"OneTokenRoundsUp", "gpt-4o-mini", tokens{Input: 1}, 1, ""},
		{"ExactNoRoundUp", "gpt-4o-mini", tokens{Input: 20}, 3, ""},
		{"JustOverRoundsUp", "gpt-4o-mini", tokens{Input: 7}, 2, ""},
		{"OneCeilOverTheSum", "gpt-4o-mini", tokens{Input: 1, CachedInput: 1, Output: 1}, 1, ""}, // 0.15+0.075+0.60 = 0.825
		{"CachedAtCacheRate", "claude-sonnet-4", tokens{CachedInput: 10}, 3, ""},
		{"CacheWriteAtItsRate", "claude-sonnet-4", tokens{CacheWrite: 1000}, 3750, ""},
		{"CacheWrite1hAtItsRate", "claude-sonnet-4", tokens{CacheWrite1h: 1000}, 6000, ""},
		{"EveryKindOneCeil", "claude-sonnet-4", tokens{Input: 1, CachedInput: 1, CacheWrite: 1, CacheWrite1h: 1, Output: 1}, 29, ""}, // 3+0.3+3.75+6+15 = 28.05
		{"NoCacheWritePriceIsInput", "gpt-4o", tokens{CacheWrite: 1000, CacheWrite1h: 1000}, 5000, ""},
		{"OutputPrice", "gpt-4o", tokens{Output: 1000}, 10000, ""},
		{"CNYConverted", "deepseek-chat", tokens{Input: 1_000_000}, 277778, ""},  // 2.00/7.20 M
		{"EURConverted", "mistral-small", tokens{Output: 1_000_000}, 326087, ""}, // 0.30/0.92 M
		{"HugeInputExact", "gpt-4o-mini", tokens{Input: max}, 1383505805528216372, ""},
		{"HugeAllThree", "gpt-4o-mini", tokens{Input: max, CachedInput: max, Output: max}, 7609281930405190041, ""},
		{"MaxFits", "mock", tokens{Input: max}, max, ""},
		{"Overflow", "mock", tokens{Output: max}, 0, tollgate.EINVALID},
		{"Negative", "mock", tokens{Input: -1}, 0, tollgate.EINVALID},
		{"NegativeCached", "mock", tokens{CachedInput: -1}, 0, tollgate.EINVALID},
		{"NegativeCacheWrite", "mock", tokens{CacheWrite1h: -1}, 0, tollgate.EINVALID},
		{"UnknownModel", "gpt-9", tokens{Input: 1}, 0, tollgate.ENOTFOUND},
	}
	p, _, _ := mustPricer(t, "1.00", "7.20")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Cost(ctx, tt.model, tt.tokens)
			if tt.wantCode != "" {
				mustCode(t, err, tt.wantCode)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("Cost = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestCostUnwrittenPricesAreInput: a prompt price the configuration
// leaves out is the input price, never zero, so a model written down
// without its cache prices bills cache reads and writes as ordinary input.
func TestCostUnwrittenPricesAreInput(t *testing.T) {
	cfg := pricing.DefaultConfig()
	cfg.Models = map[string]pricing.ModelPrice{
		"bare":    {Currency: pricing.USD, Input: pricing.MustDecimal("2"), Output: pricing.MustDecimal("8")},
		"write5m": {Currency: pricing.USD, Input: pricing.MustDecimal("2"), Output: pricing.MustDecimal("8"), CacheWriteInput: pricing.MustDecimal("2.5")},
		"free":    {Currency: pricing.USD, Input: pricing.MustDecimal("2"), Output: pricing.MustDecimal("8"), CachedInput: pricing.MustDecimal("0"), CacheWriteInput: pricing.MustDecimal("0")},
	}
	p, err := pricing.New(cfg, pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		model  string
		tokens tollgate.Tokens
		want   tollgate.Credits
	}{
		{"bare", tollgate.Tokens{CachedInput: 1000}, 2000},
		{"bare", tollgate.Tokens{CacheWrite: 1000}, 2000},
		{"bare", tollgate.Tokens{CacheWrite1h: 1000}, 2000},
		{"write5m", tollgate.Tokens{CacheWrite: 1000}, 2500},
		{"write5m", tollgate.Tokens{CacheWrite1h: 1000}, 2500},                                // the 1-hour price defaults to the 5-minute one
		{"free", tollgate.Tokens{CachedInput: 1000, CacheWrite: 1000, CacheWrite1h: 1000}, 0}, // written down as zero: zero
	} {
		if got, err := p.Cost(ctx, c.model, c.tokens); err != nil || got != c.want {
			t.Errorf("Cost(%s, %+v) = %d, %v; want %d", c.model, c.tokens, got, err, c.want)
		}
	}
}

func TestCostOtherBase(t *testing.T) {
	// A base of 0.30 USD: 1 token at 0.15 USD/M is half a credit.
	p, _, _ := mustPricer(t, "0.30", "7.20")
	for _, c := range []struct {
		in   int64
		want tollgate.Credits
	}{{1, 1}, {2, 1}, {3, 2}, {2_000_000, 1_000_000}} {
		if got, err := p.Cost(ctx, "gpt-4o-mini", tollgate.Tokens{Input: c.in}); err != nil || got != c.want {
			t.Errorf("Cost(%d) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestQuoteTopUp(t *testing.T) {
	tests := []struct {
		name      string
		base, cny string
		fen       tollgate.Fen
		wantPer   tollgate.Fen
		want      tollgate.Credits
	}{
		{"Default", "1.00", "7.20", 1000, 720, 1_388_888},
		{"OneMillion", "1.00", "7.20", 720, 720, 1_000_000},
		{"OneFen", "1.00", "7.20", 1, 720, 1388},
		{"RoundsDownBelowHalf", "1.00", "7.23499", 100, 723, 138_312},
		{"HalfRoundsUp", "1.00", "7.2350", 100, 724, 138_121},
		{"HalfRoundsUpSmallBase", "0.50", "7.21", 100, 361, 277_008},
		{"FeedPrecision", "1.00", "7.1234", 5000, 712, 7_022_471},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, _ := mustPricer(t, tt.base, tt.cny)
			per, err := p.FenPerMCredit(ctx)
			if err != nil || per != tt.wantPer {
				t.Fatalf("FenPerMCredit = %d, %v; want %d", per, err, tt.wantPer)
			}
			got, err := p.QuoteTopUp(ctx, tt.fen)
			if err != nil || got != tt.want {
				t.Fatalf("QuoteTopUp(%d) = %d, %v; want %d", tt.fen, got, err, tt.want)
			}
		})
	}
	p, _, _ := mustPricer(t, "1.00", "7.20")
	for _, fen := range []tollgate.Fen{0, -1} {
		_, err := p.QuoteTopUp(ctx, fen)
		mustCode(t, err, tollgate.EINVALID)
	}
	_, err := p.QuoteTopUp(ctx, math.MaxInt64)
	mustCode(t, err, tollgate.EINVALID)
}

// TestStaleness walks the rate's age up to the MaxStale bound and past it:
// at exactly the bound top-ups still quote, one nanosecond later they fail
// with EUNAVAILABLE while packages and metering keep working; a recovered
// feed re-enables them.
func TestStaleness(t *testing.T) {
	p, src, clock := mustPricer(t, "1.00", "7.20")
	if _, err := p.QuoteTopUp(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	src.set("9.99", errors.New("feed down"))
	clock.Advance(5 * time.Minute) // TTL over: a refresh fails, the cached rate serves
	if got, err := p.QuoteTopUp(ctx, 1000); err != nil || got != 1_388_888 {
		t.Fatalf("after a failed refresh QuoteTopUp = %d, %v; want the cached rate's 1388888", got, err)
	}
	clock.Advance(55 * time.Minute) // age exactly 1h
	if _, err := p.QuoteTopUp(ctx, 1000); err != nil {
		t.Fatalf("at exactly MaxStale: %v, want a quote", err)
	}
	clock.Advance(time.Nanosecond)
	_, err := p.QuoteTopUp(ctx, 1000)
	mustCode(t, err, tollgate.EUNAVAILABLE)
	if _, err := p.Package("plus"); err != nil {
		t.Fatalf("packages must sell with a stale rate: %v", err)
	}
	if got, err := p.Cost(ctx, "deepseek-chat", tollgate.Tokens{Input: 1_000_000}); err != nil || got != 277778 {
		t.Fatalf("metering with a stale rate = %d, %v; want 277778", got, err)
	}
	src.set("7.30", nil)
	clock.Advance(30 * time.Second) // past the retry back-off
	if got, err := p.QuoteTopUp(ctx, 730); err != nil || got != 1_000_000 {
		t.Fatalf("after the feed recovered QuoteTopUp = %d, %v; want 1000000", got, err)
	}
}

func TestNoRateEver(t *testing.T) {
	cfg := pricing.DefaultConfig()
	src := &fakeSource{err: errors.New("feed down")}
	p, err := pricing.New(cfg, pricing.Options{Clock: newClock(), Source: src})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.QuoteTopUp(ctx, 1000)
	mustCode(t, err, tollgate.EUNAVAILABLE)
	_, err = p.Cost(ctx, "deepseek-chat", tollgate.Tokens{Input: 1})
	mustCode(t, err, tollgate.EUNAVAILABLE)
	if got, err := p.Cost(ctx, "gpt-4o", tollgate.Tokens{Input: 1000}); err != nil || got != 2500 {
		t.Fatalf("a model in the base currency needs no rate: %d, %v", got, err)
	}
}

func TestBaseInCNYNeedsNoRate(t *testing.T) {
	cfg := pricing.DefaultConfig()
	cfg.BaseCurrency = pricing.CNY
	cfg.BasePrice = pricing.MustDecimal("7.20")
	src := &fakeSource{err: errors.New("feed down")}
	p, err := pricing.New(cfg, pricing.Options{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.QuoteTopUp(ctx, 1000); err != nil || got != 1_388_888 {
		t.Fatalf("QuoteTopUp = %d, %v; want 1388888", got, err)
	}
	if got, err := p.Cost(ctx, "qwen-plus", tollgate.Tokens{Input: 9}); err != nil || got != 1 {
		t.Fatalf("Cost = %d, %v; want 1", got, err)
	}
	if src.calls != 0 {
		t.Fatalf("%d fetches, want none", src.calls)
	}
}

func TestFee(t *testing.T) {
	p, _, _ := mustPricer(t, "1.00", "7.20")
	const threshold = 10_000_000
	tests := []struct {
		name           string
		amount, before tollgate.Fen
		want           tollgate.Fen
	}{
		{"Standard", 10000, 0, 60},
		{"BelowHalfDown", 83, 0, 0}, // 0.498
		{"AboveHalfUp", 84, 0, 1},   // 0.504
		{"ExactHalfUp", 250, 0, 2},  // 1.5
		{"ExactHalfUp2", 750, 0, 5}, // 4.5
		{"OneFen", 1, 0, 0},         // 0.006
		{"CrossingPaysStandard", 20000, threshold - 1, 120},
		{"AtThresholdReduced", 20000, threshold, 76},
		{"AfterThreshold", 10000, threshold + 1, 38},
		{"ReducedBelowHalf", 131, threshold, 0}, // 0.4978
		{"ReducedAboveHalf", 132, threshold, 1}, // 0.5016
		{"Zero", 0, 0, 0},
		{"Negative", -100, 0, 0},
		{"Huge", math.MaxInt64, 0, 55340232221128655}, // 0.6% of 2^63-1, half up
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Fee(tt.amount, tt.before); got != tt.want {
				t.Fatalf("Fee(%d, %d) = %d, want %d", tt.amount, tt.before, got, tt.want)
			}
		})
	}
}

func TestModels(t *testing.T) {
	p, _, _ := mustPricer(t, "1.00", "7.20")
	got := strings.Join(p.Models(), ",")
	if want := "claude-sonnet-4,deepseek-chat,gpt-4o,gpt-4o-mini,mistral-small,mock,mock-image,mock-tts,mock-whisper,qwen-plus"; got != want {
		t.Fatalf("Models() = %s, want %s", got, want)
	}
}

func TestPackages(t *testing.T) {
	p, _, _ := mustPricer(t, "1.00", "7.20")
	pks := p.Packages()
	if len(pks) != 3 {
		t.Fatalf("%d default packages, want 3", len(pks))
	}
	for _, pk := range pks {
		quote, err := p.QuoteTopUp(ctx, pk.Fen)
		if err != nil {
			t.Fatal(err)
		}
		if pk.Credits < quote {
			t.Errorf("package %s gives %d credits, less than pay-as-you-go's %d", pk.ID, pk.Credits, quote)
		}
	}
	_, err := p.Package("nope")
	mustCode(t, err, tollgate.ENOTFOUND)
	pks[0].Credits = 1 // a copy: the Pricer is unchanged
	if pk, _ := p.Package(pks[0].ID); pk.Credits == 1 {
		t.Fatal("Packages returned the Pricer's own slice")
	}
}

func TestLoadConfig(t *testing.T) {
	c, err := pricing.LoadConfig("testdata/prices.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.Rates.URL == "" || c.BasePrice.String() != "2.00" || c.Models["deepseek-chat"].Input.String() != "2" {
		t.Fatalf("unexpected config: %+v", c)
	}
	if _, err := pricing.LoadConfig("testdata/missing.json"); err == nil {
		t.Fatal("LoadConfig of a missing file succeeded")
	}
	if strings.Count(pricing.DefaultConfig().BasePrice.String(), ".") != 1 {
		t.Fatal("default base price not loaded")
	}
}

func TestDecimal(t *testing.T) {
	tests := []struct {
		in   string
		want string // as a fraction; "" means an error
	}{
		{"0.15", "3/20"},
		{"7.1234", "35617/5000"},
		{"100", "100/1"},
		{"0", "0/1"},
		{"-1", ""},
		{"1e2", ""},
		{"1/3", ""},
		{".5", ""},
		{"1.", ""},
		{"", ""},
		{" 1", ""},
		{"0x10", ""},
		{"1234567890123456789", ""},
	}
	for _, tt := range tests {
		d, err := pricing.ParseDecimal(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseDecimal(%q) = %v, want an error", tt.in, d)
			}
			continue
		}
		if err != nil || d.Rat().String() != tt.want {
			t.Errorf("ParseDecimal(%q) = %v, %v; want %s", tt.in, d.Rat(), err, tt.want)
		}
	}
}

func TestToFenConvertsAtTheLatestRate(t *testing.T) {
	p, err := pricing.New(pricing.DefaultConfig(), pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		amount string
		cur    pricing.Currency
		want   tollgate.Fen
	}{
		{"1", pricing.USD, 720},       // 7.20 CNY per USD in the default config
		{"0.000694", pricing.USD, 0},  // 0.49968 fen rounds down
		{"0.000695", pricing.USD, 1},  // 0.5004 fen rounds up
		{"12.345", pricing.CNY, 1235}, // half-up at .5 fen
		{"0", pricing.EUR, 0},
	} {
		got, err := p.ToFen(t.Context(), pricing.MustDecimal(tc.amount).Rat(), tc.cur)
		if err != nil || got != tc.want {
			t.Errorf("ToFen(%s %s) = %d, %v; want %d", tc.amount, tc.cur, got, err, tc.want)
		}
	}
}

// Replace swaps the price table for every caller at once; a Snapshot
// taken before keeps the prices it was taken at, and a bad table is
// refused with nothing changed.
func TestPricerReplaceAndSnapshot(t *testing.T) {
	ctx := context.Background()
	cfg := pricing.DefaultConfig()
	p, err := pricing.New(cfg, pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	held := p.Snapshot()
	before, _ := p.Cost(ctx, "mock", tollgate.Tokens{Input: 1_000_000})
	dearer := cfg
	dearer.Models = map[string]pricing.ModelPrice{"mock": {Currency: pricing.USD, Input: pricing.MustDecimal("3.00"), Output: pricing.MustDecimal("6.00")}}
	if err := p.Replace(dearer); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Cost(ctx, "mock", tollgate.Tokens{Input: 1_000_000}); got != 3_000_000 {
		t.Fatalf("after Replace: %d credits", got)
	}
	if got, _ := held.Cost(ctx, "mock", tollgate.Tokens{Input: 1_000_000}); got != before || before != 1_000_000 {
		t.Fatalf("snapshot: %d credits, want %d", got, before)
	}
	if _, err := p.Cost(ctx, "gpt-4o", tollgate.Tokens{Input: 1}); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("a model the new table drops: %v", err)
	}
	bad := dearer
	bad.BasePrice = pricing.Decimal{}
	if err := p.Replace(bad); err == nil {
		t.Fatal("a bad table was accepted")
	}
	if got, _ := p.Cost(ctx, "mock", tollgate.Tokens{Input: 1_000_000}); got != 3_000_000 {
		t.Fatalf("after a refused Replace: %d credits", got)
	}
}
