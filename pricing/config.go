package pricing

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"regexp"
	"sort"
	"time"

	"tollgate"
)

// Config is the pricing configuration, read from JSON (see
// testdata/prices.json). Every price is per 1M tokens and every decimal is
// exact (a JSON string such as "0.15", or a number parsed without floats).
type Config struct {
	// BaseCurrency is the currency of BasePrice, USD when empty.
	BaseCurrency Currency `json:"base_currency"`
	// BasePrice is what 1M credits are worth: 1 credit is 1 token at this
	// price per 1M tokens.
	BasePrice Decimal `json:"base_price"`
	// Rates configures the exchange-rate feed.
	Rates RatesConfig `json:"rates"`
	// Models maps a model id to its prices.
	Models map[string]ModelPrice `json:"models"`
	// Packages are the fixed offers, in display order.
	Packages []Package `json:"packages"`
	// FeeTiers are the merchant fee tiers, ascending by FromFen; the first
	// must start at 0.
	FeeTiers []FeeTier `json:"fee_tiers"`
}

// RatesConfig says where exchange rates come from: Static or URL, not both.
type RatesConfig struct {
	// Static maps a currency to units per 1 USD, e.g. {"CNY": "7.20"}.
	Static map[Currency]Decimal `json:"static,omitempty"`
	// URL is an HTTP(S) JSON feed in the HTTPSource shape.
	URL string `json:"url,omitempty"`
	// TTL is how long fetched rates are reused (default "5m").
	TTL Duration `json:"ttl,omitempty"`
	// MaxStale is the oldest rate pay-as-you-go top-ups may use (default
	// "1h"); past it they fail with EUNAVAILABLE, packages still sell.
	MaxStale Duration `json:"max_stale,omitempty"`
	// Timeout bounds one feed request (default "5s").
	Timeout Duration `json:"timeout,omitempty"`
}

// ModelPrice is one model's prices per 1M tokens in Currency. A prompt
// price left out is the input price: a cache discount or surcharge
// applies only where it is written down, and a missing one never bills a
// token below what the provider charges for ordinary input.
type ModelPrice struct {
	Currency Currency `json:"currency"`
	Input    Decimal  `json:"input"`
	// CachedInput prices prompt tokens read from the provider's cache;
	// it may not be above Input.
	CachedInput Decimal `json:"cached_input,omitzero"`
	// CacheWriteInput prices prompt tokens the provider writes to its
	// cache (Anthropic's cache_creation_input_tokens: 1.25× input for its
	// 5-minute cache), and CacheWrite1hInput those written to a 1-hour
	// cache (2× input); the latter defaults to CacheWriteInput.
	CacheWriteInput   Decimal `json:"cache_write_input,omitzero"`
	CacheWrite1hInput Decimal `json:"cache_write_1h_input,omitzero"`
	Output            Decimal `json:"output"`
	// PerCall is a fixed fee on every call, in Currency (not per 1M),
	// added to the tokens' price before the one rounding of Cost; the
	// hold's worst case includes it. Left out, a call has no fee.
	PerCall Decimal `json:"per_call,omitzero"`

	// What the model sells beyond text tokens, each left out when it does
	// not: a request using an unpriced one is refused before anything is
	// held (Cost answers EINVALID naming it).
	//
	// AudioInput and AudioOutput price audio tokens per 1M (chat with
	// audio in or out).
	AudioInput  Decimal `json:"audio_input,omitzero"`
	AudioOutput Decimal `json:"audio_output,omitzero"`
	// Per1MCharacters prices text to speech per 1M input characters.
	Per1MCharacters Decimal `json:"per_1m_characters,omitzero"`
	// PerAudioMinute prices transcription per minute of audio (billed by
	// the second: a second costs a sixtieth).
	PerAudioMinute Decimal `json:"per_audio_minute,omitzero"`
	// PerImage prices one generated image by size ("1024x1024") or by
	// size and quality ("1024x1024/hd"); the latter wins when both match.
	PerImage map[string]Decimal `json:"per_image,omitempty"`
	// PerWebSearch and PerWebFetch price one call of the provider's web
	// search or web fetch tool.
	PerWebSearch Decimal `json:"per_web_search,omitzero"`
	PerWebFetch  Decimal `json:"per_web_fetch,omitzero"`
	// PriorityMultiplier (at least 1) multiplies every token price of a
	// request served at the priority tier (OpenAI's service_tier
	// "priority").
	PriorityMultiplier Decimal `json:"priority_multiplier,omitzero"`
}

// imageSize is a per_image key: a size ("1024x1024", "auto"), optionally
// with a quality ("/hd", "/high").
var imageSize = regexp.MustCompile(`^([0-9]{2,5}x[0-9]{2,5}|auto)(/[a-z]{1,16})?$`)

// ImagePrice returns the price of one image of size (and quality, when
// not empty) at m's prices: size/quality if priced, else size.
func (m ModelPrice) ImagePrice(size, quality string) (Decimal, bool) {
	if quality != "" {
		if d, ok := m.PerImage[size+"/"+quality]; ok {
			return d, true
		}
	}
	d, ok := m.PerImage[size]
	return d, ok
}

// ImageKey is the Tokens.ImageSize of an image of size and quality at
// m's prices: the per_image key ImagePrice used, "" when neither is priced.
func (m ModelPrice) ImageKey(size, quality string) string {
	if quality != "" {
		if _, ok := m.PerImage[size+"/"+quality]; ok {
			return size + "/" + quality
		}
	}
	if _, ok := m.PerImage[size]; ok {
		return size
	}
	return ""
}

// sellsBeyondTokens reports whether m prices anything but tokens and
// calls.
func (m ModelPrice) sellsBeyondTokens() bool {
	return len(m.PerImage) > 0 || m.Per1MCharacters.r != nil || m.PerAudioMinute.r != nil ||
		m.AudioInput.r != nil || m.AudioOutput.r != nil || m.PerWebSearch.r != nil || m.PerWebFetch.r != nil
}

// Amount is what t costs at m's prices, exactly, in m's currency (t's
// counts must not be negative), without PerCall: it prices tokens, such
// as what a provider charges for them. The defaults of ModelPrice apply, so m can
// price other things than sales too, such as what a provider charges;
// what m does not price counts nothing here.
func (m ModelPrice) Amount(t tollgate.Tokens) *big.Rat {
	pm := newModel(m)
	sum := pm.weighAll(t)
	return sum.Quo(sum, big.NewRat(1_000_000, 1))
}

// prices returns m's price per 1M tokens for each kind, in the order of
// counts, with the defaults of ModelPrice filled in.
func (m ModelPrice) prices() [kinds]*big.Rat {
	or := func(d Decimal, def *big.Rat) *big.Rat {
		if d.r == nil {
			return def
		}
		return d.Rat()
	}
	input := m.Input.Rat()
	write := or(m.CacheWriteInput, input)
	million := big.NewRat(1_000_000, 1)
	each := func(d Decimal, per *big.Rat) *big.Rat { // a per-unit price in weigh's units
		if d.r == nil {
			return nil
		}
		return new(big.Rat).Mul(d.Rat(), per)
	}
	return [kinds]*big.Rat{input, or(m.CachedInput, input), write, or(m.CacheWrite1hInput, write), m.Output.Rat(),
		or(m.AudioInput, nil), or(m.AudioOutput, nil), or(m.Per1MCharacters, nil),
		each(m.PerAudioMinute, big.NewRat(1_000_000, 60)), each(m.PerWebSearch, million), each(m.PerWebFetch, million)}
}

// call is m's per-call fee in the units of weigh (currency per 1M
// tokens × tokens): PerCall × 1M, zero when there is none.
func (m ModelPrice) call() *big.Rat {
	if m.PerCall.r == nil {
		return new(big.Rat)
	}
	return new(big.Rat).Mul(m.PerCall.Rat(), big.NewRat(1_000_000, 1))
}

// Package is a fixed offer: Fen buys Credits.
type Package struct {
	ID      string           `json:"id"`
	Fen     tollgate.Fen     `json:"fen"`
	Credits tollgate.Credits `json:"credits"`
	Label   string           `json:"label"`
	// Labels are the label in each language of the pages ("zh", "en"),
	// from a catalog; Label is the one shown where no language is chosen.
	Labels map[string]string `json:"labels,omitempty"`
}

// FeeTier is a merchant fee rate that applies once the calendar month's
// volume before a payment is at least FromFen.
type FeeTier struct {
	FromFen tollgate.Fen `json:"from_fen"`
	// Percent is the fee in percent of the amount, e.g. "0.6" or "0.38".
	Percent Decimal `json:"percent"`
}

// Duration is a time.Duration written in JSON as a Go duration string ("5m").
type Duration time.Duration

// UnmarshalJSON parses a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"5m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

//go:embed default.json
var defaultJSON []byte

// DefaultConfig returns the embedded configuration used when no file is
// given: popular models at public list prices, a base price of 1.00 USD per
// 1M tokens, a static rate of 7.20 CNY per USD and three packages.
func DefaultConfig() Config {
	c, err := ParseConfig(defaultJSON)
	if err != nil {
		panic("pricing: embedded default.json: " + err.Error())
	}
	return c
}

// LoadConfig reads and validates a JSON configuration file.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("pricing: read config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes and validates JSON configuration; unknown fields are
// errors, so a misspelt key is not silently ignored.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, invalid("decode: %v", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func invalid(format string, args ...any) error {
	e := tollgate.Errorf(tollgate.EINVALID, "pricing config: "+format, args...)
	e.Op = "pricing.Config"
	return e
}

// Validate reports the first bad value as an EINVALID *tollgate.Error whose
// message names the field.
func (c Config) Validate() error {
	base := c.baseCurrency()
	if !base.valid() {
		return invalid("base_currency %q: want USD, EUR or CNY", c.BaseCurrency)
	}
	if c.BasePrice.Sign() <= 0 {
		return invalid("base_price must be positive")
	}
	if err := c.Rates.validate(); err != nil {
		return err
	}
	if len(c.Models) == 0 {
		return invalid("models: at least one model is needed")
	}
	for _, id := range sortedKeys(c.Models) {
		m := c.Models[id]
		if id == "" {
			return invalid("models: empty model id")
		}
		if !m.Currency.valid() {
			return invalid("models.%s.currency %q: want USD, EUR or CNY", id, m.Currency)
		}
		if m.Input.Sign() == 0 && m.Output.Sign() == 0 && m.PerCall.Sign() == 0 && !m.sellsBeyondTokens() {
			return invalid("models.%s: input and output prices are both zero", id)
		}
		for _, k := range sortedKeys(m.PerImage) {
			if !imageSize.MatchString(k) {
				return invalid("models.%s.per_image: %q is not a size such as \"1024x1024\" or a size and quality such as \"1024x1024/hd\"", id, k)
			}
		}
		if m.PriorityMultiplier.r != nil && m.PriorityMultiplier.Rat().Cmp(big.NewRat(1, 1)) < 0 {
			return invalid("models.%s.priority_multiplier must be at least 1", id)
		}
		if m.CachedInput.r != nil && m.CachedInput.Rat().Cmp(m.Input.Rat()) > 0 {
			return invalid("models.%s.cached_input is above input", id)
		}
		if m.Currency != base && c.Rates.Static != nil && c.Rates.Static[m.Currency].Sign() == 0 && m.Currency != USD {
			return invalid("models.%s: no static rate for %s", id, m.Currency)
		}
	}
	if base != USD && c.Rates.Static != nil && c.Rates.Static[base].Sign() == 0 {
		return invalid("rates.static: no rate for the base currency %s", base)
	}
	if base != CNY && c.Rates.Static != nil && c.Rates.Static[CNY].Sign() == 0 {
		return invalid("rates.static: no CNY rate (needed for top-ups)")
	}
	if err := validatePackages(c.Packages); err != nil {
		return err
	}
	return validateTiers(c.FeeTiers)
}

func (c Config) baseCurrency() Currency {
	if c.BaseCurrency == "" {
		return USD
	}
	return c.BaseCurrency
}

func (r RatesConfig) validate() error {
	switch {
	case r.URL != "" && r.Static != nil:
		return invalid("rates: give static or url, not both")
	case r.URL == "" && r.Static == nil:
		return invalid("rates: give static rates or a url")
	case r.URL != "":
		u, err := url.Parse(r.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("rates.url %q: want an http(s) URL", r.URL)
		}
	}
	for cur, v := range r.Static {
		if !currencyCode.MatchString(string(cur)) {
			return invalid("rates.static: %q is not a currency code", cur)
		}
		if v.Sign() <= 0 {
			return invalid("rates.static.%s must be positive", cur)
		}
	}
	for name, d := range map[string]Duration{"ttl": r.TTL, "max_stale": r.MaxStale, "timeout": r.Timeout} {
		if d < 0 {
			return invalid("rates.%s must not be negative", name)
		}
	}
	return nil
}

func validatePackages(ps []Package) error {
	seen := map[string]bool{}
	for i, p := range ps {
		switch {
		case p.ID == "":
			return invalid("packages[%d].id is empty", i)
		case seen[p.ID]:
			return invalid("packages[%d].id %q is repeated", i, p.ID)
		case p.Fen <= 0:
			return invalid("packages.%s.fen must be positive", p.ID)
		case p.Credits <= 0:
			return invalid("packages.%s.credits must be positive", p.ID)
		case p.Label == "":
			return invalid("packages.%s.label is empty", p.ID)
		}
		seen[p.ID] = true
	}
	return nil
}

func validateTiers(ts []FeeTier) error {
	if len(ts) == 0 {
		return invalid("fee_tiers: at least one tier is needed")
	}
	if ts[0].FromFen != 0 {
		return invalid("fee_tiers[0].from_fen must be 0")
	}
	hundred := big.NewRat(100, 1)
	for i, t := range ts {
		if i > 0 && t.FromFen <= ts[i-1].FromFen {
			return invalid("fee_tiers[%d].from_fen must be above the previous tier's", i)
		}
		if t.Percent.r == nil || t.Percent.Rat().Cmp(hundred) > 0 {
			return invalid("fee_tiers[%d].percent must be between 0 and 100", i)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
