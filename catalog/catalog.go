// Package catalog reads the operator's catalog (serve --catalog FILE):
// what tollgate sells and at what price. One file, YAML or JSON by its
// extension, holds the upstream providers, the models sold under their
// public names with their prices and deployments, the packages, what a
// credit is worth and how exchange rates apply, and the branding of the
// pages. It is decoded strictly (an unknown key is an error) and checked
// whole: every problem is named with its path in the file
// ("models.house-model.price.input: missing"), so a file that parses is
// one where every routable model has a price.
//
// A Catalog turns into the configurations the domain packages already
// take: gateway.Config (routing) and pricing.Config (prices, packages,
// credit value, fee tiers). It imports gateway and pricing, nothing else
// of tollgate's.
package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"tollgate/gateway"
	"tollgate/pricing"
)

// MaxFileBytes bounds a catalog file; MaxLogoBytes its logo.
const (
	MaxFileBytes = 1 << 20
	MaxLogoBytes = 256 << 10
)

// DefaultName is the merchant name shown when the branding gives none.
const DefaultName = "tollgate"

// File is the catalog as written. Keys are the JSON tags; YAML uses the
// same names. Sections left out take the built-in defaults of
// pricing/default.json (credit, fee_tiers) or nothing (packages).
type File struct {
	// Providers are the upstream endpoints, as in a --providers file.
	Providers []Provider `json:"providers"`
	// Models maps a public model name to what it costs and where it runs.
	Models map[string]Model `json:"models"`
	// Packages are the fixed offers (shown by "order", then file order).
	Packages []Package `json:"packages,omitempty"`
	// Credit is what a credit is worth and how exchange rates apply.
	Credit *Credit `json:"credit,omitempty"`
	// FeeTiers are WeChat Pay's merchant fee tiers, for the revenue report.
	FeeTiers []FeeTier `json:"fee_tiers,omitempty"`
	// Branding is what the pages show of the merchant.
	Branding Branding `json:"branding"`
}

// Provider is one upstream endpoint (gateway.ProviderConfig). The API key
// is never in the file: APIKeyEnv names the variable holding it.
type Provider struct {
	Name string `json:"name"`
	// Kind is one of gateway.Kinds(): openai, anthropic, azure-openai or
	// a provider's preset (deepseek, dashscope, moonshot, …).
	Kind string `json:"kind"`
	// BaseURL is the kind's default (gateway.DefaultBaseURL) when left
	// out; azure-openai and vllm have none.
	BaseURL    string `json:"base_url,omitempty"`
	APIKeyEnv  string `json:"api_key_env,omitempty"`
	APIVersion string `json:"api_version,omitempty"` // azure-openai only
	Timeout    string `json:"timeout,omitempty"`     // a duration such as "60s"
}

// Model is one public model: its price, where it runs, and whether the
// checkout page advertises it.
type Model struct {
	// Price is per 1M tokens of each kind, like pricing/default.json.
	Price *Price `json:"price"`
	// Deployments are tried in priority order, weighted within a tier.
	Deployments []Deployment `json:"deployments"`
	// ContextWindow is the most prompt tokens the model takes; a
	// deployment's own context_tokens wins (default: the gateway's).
	ContextWindow int64 `json:"context_window,omitempty"`
	// MaxOutputTokens caps a request's output; a deployment's own wins.
	MaxOutputTokens int64 `json:"max_output_tokens,omitempty"`
	// Checkout is whether the checkout page advertises the model (what
	// a package buys of it); true when left out.
	Checkout *bool `json:"checkout,omitempty"`
}

// Price is a model's selling price per 1M tokens in Currency (USD, EUR or
// CNY). A prompt price left out is the input price (pricing.ModelPrice).
type Price struct {
	Currency          string `json:"currency"`
	Input             Amount `json:"input"`
	CachedInput       Amount `json:"cached_input,omitempty"`
	CacheWriteInput   Amount `json:"cache_write_input,omitempty"`
	CacheWrite1hInput Amount `json:"cache_write_1h_input,omitempty"`
	Output            Amount `json:"output"`
	// PerCall is a fixed fee on every call, in Currency (not per 1M
	// tokens): billed once per call with the tokens, and held with them.
	PerCall Amount `json:"per_call,omitempty"`
	// What the model sells beyond text tokens (pricing.ModelPrice): audio
	// tokens per 1M, speech per 1M characters, transcription per minute,
	// an image by size or size/quality, a web search or fetch call, and
	// the priority tier's multiplier. One left out is not sold: a request
	// for it is refused. A model priced only by these needs no input or
	// output price.
	AudioInput         Amount            `json:"audio_input,omitempty"`
	AudioOutput        Amount            `json:"audio_output,omitempty"`
	Per1MCharacters    Amount            `json:"per_1m_characters,omitempty"`
	PerAudioMinute     Amount            `json:"per_audio_minute,omitempty"`
	PerImage           map[string]Amount `json:"per_image,omitempty"`
	PerWebSearch       Amount            `json:"per_web_search,omitempty"`
	PerWebFetch        Amount            `json:"per_web_fetch,omitempty"`
	PriorityMultiplier Amount            `json:"priority_multiplier,omitempty"`
}

// beyondTokens reports whether p prices a unit other than tokens.
func (p Price) beyondTokens() bool {
	return p.AudioInput != "" || p.AudioOutput != "" || p.Per1MCharacters != "" || p.PerAudioMinute != "" ||
		len(p.PerImage) > 0 || p.PerWebSearch != "" || p.PerWebFetch != ""
}

// Deployment is one way to serve a model (gateway.DeploymentConfig): the
// provider, the model's upstream name, and what the provider charges (USD
// per 1M tokens, for the revenue report).
type Deployment struct {
	Provider              string `json:"provider"`
	Model                 string `json:"model"`
	Weight                int    `json:"weight,omitempty"`
	Priority              int    `json:"priority,omitempty"`
	InputCostPer1M        Amount `json:"input_cost_per_1m,omitempty"`
	CachedInputCostPer1M  Amount `json:"cached_input_cost_per_1m,omitempty"`
	CacheWriteCostPer1M   Amount `json:"cache_write_cost_per_1m,omitempty"`
	CacheWrite1hCostPer1M Amount `json:"cache_write_1h_cost_per_1m,omitempty"`
	OutputCostPer1M       Amount `json:"output_cost_per_1m,omitempty"`
	MaxOutputTokens       int64  `json:"max_output_tokens,omitempty"`
	ContextTokens         int64  `json:"context_tokens,omitempty"`
}

// Package is a fixed offer: Fen buys Credits.
type Package struct {
	ID      string `json:"id"`
	Fen     int64  `json:"fen"`
	Credits int64  `json:"credits"`
	Label   Label  `json:"label"`
	// Order places the package on the page: ascending, then file order.
	Order int `json:"order,omitempty"`
}

// Label is a text in the pages' two languages; one left out is the other.
type Label struct {
	ZH string `json:"zh,omitempty"`
	EN string `json:"en,omitempty"`
}

// Credit is what a credit is worth: either CreditsPerCNY, or PricePer1M
// in Currency (what 1M credits are worth, pricing's base price). Rates
// say where exchange rates come from: a model priced in another currency
// than the credit's is converted at the latest rate (metering never waits
// for the feed), and a pay-as-you-go top-up is quoted at a rate at most
// max_stale old; packages sell whatever the feed does.
type Credit struct {
	CreditsPerCNY int64  `json:"credits_per_cny,omitempty"`
	Currency      string `json:"currency,omitempty"`
	PricePer1M    Amount `json:"price_per_1m,omitempty"`
	Rates         *Rates `json:"rates,omitempty"`
}

// Rates is pricing.RatesConfig: Static or URL.
type Rates struct {
	Static   map[string]Amount `json:"static,omitempty"`
	URL      string            `json:"url,omitempty"`
	TTL      string            `json:"ttl,omitempty"`
	MaxStale string            `json:"max_stale,omitempty"`
	Timeout  string            `json:"timeout,omitempty"`
}

// FeeTier is pricing.FeeTier.
type FeeTier struct {
	FromFen int64  `json:"from_fen"`
	Percent Amount `json:"percent"`
}

// Branding is what the pages show of the merchant.
type Branding struct {
	Name string `json:"name,omitempty"`
	// Logo is an image file (.png, .jpg, .jpeg, .svg, .webp), relative
	// to the catalog's directory, at most MaxLogoBytes.
	Logo string `json:"logo,omitempty"`
	// Accent is the pages' accent colour, "#rrggbb" or "#rgb".
	Accent  string `json:"accent,omitempty"`
	Support string `json:"support,omitempty"` // how to reach the merchant
	Footer  string `json:"footer,omitempty"`
}

// Amount is a decimal as written in the file: a string ("1.00") or a
// number (1.00), kept as its text so no float ever touches a price.
type Amount string

// UnmarshalJSON accepts a JSON string or number.
func (a *Amount) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	*a = Amount(s)
	return nil
}

// Catalog is a checked catalog: the file as decoded, its digest, and the
// configurations built from it.
type Catalog struct {
	// Source is the file it was read from ("" when built in).
	Source string
	// Digest is the SHA-256 of the file's bytes, hex ("" when built in);
	// with a logo, the SHA-256 of the file's SHA-256 followed by the
	// logo's (see digest), so a changed logo file changes it too:
	// instances agree on the catalog when their digests do.
	Digest string
	File   File
	// Gateway routes the models; its providers' API keys are not
	// resolved (Resolve does).
	Gateway *gateway.Config
	// Pricing prices them and holds the packages and the credit's value.
	Pricing pricing.Config
	// Advertised are the models the checkout shows, in file order.
	Advertised []string
	// Logo is the logo file's bytes and LogoType its media type.
	Logo     []byte
	LogoType string
}

// Name is the merchant's name to show.
func (c *Catalog) Name() string {
	if c.File.Branding.Name != "" {
		return c.File.Branding.Name
	}
	return DefaultName
}

// Problem is one thing wrong in a catalog, at Path ("packages[0].fen";
// "" for the whole file).
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Error is a catalog refused: every problem found.
type Error struct {
	Source   string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	name := e.Source
	if name == "" {
		name = "catalog"
	} else {
		name = "catalog " + name
	}
	if len(e.Problems) == 1 {
		return name + ": " + e.Problems[0].String()
	}
	fmt.Fprintf(&b, "%s: %d problems:", name, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// Load reads and checks the catalog at path; the logo is read relative to
// path's directory. Errors: *Error (the file's problems), or the file
// cannot be read.
func Load(path string) (*Catalog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if len(b) > MaxFileBytes {
		return nil, &Error{Source: path, Problems: []Problem{{Message: fmt.Sprintf("the file is larger than %d bytes", MaxFileBytes)}}}
	}
	dir := filepath.Dir(path)
	return Parse(path, b, func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return readBounded(name, MaxLogoBytes)
	})
}

// readBounded reads at most max bytes of name; a longer file is an error.
func readBounded(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return b, nil
}

// Parse checks b, the contents of a catalog file named name (its
// extension, .yaml, .yml or .json, says the format). readFile reads the
// logo; nil refuses a catalog that names one. Errors: *Error.
func Parse(name string, b []byte, readFile func(string) ([]byte, error)) (*Catalog, error) {
	c := &Catalog{Source: name}
	var ps problems
	order := decode(name, b, &c.File, &ps)
	if len(ps) == 0 {
		c.check(order, readFile, &ps)
	}
	if len(ps) > 0 {
		return nil, &Error{Source: name, Problems: ps}
	}
	c.Digest = digest(b, c.Logo)
	return c, nil
}

// digest is a catalog's Digest: the hex SHA-256 of file, or, with a logo,
// of SHA-256(file) || SHA-256(logo) (raw, 64 bytes). A catalog without a
// logo keeps the plain file hash that sha256sum shows.
func digest(file, logo []byte) string {
	sum := sha256.Sum256(file)
	if logo == nil {
		return hex.EncodeToString(sum[:])
	}
	l := sha256.Sum256(logo)
	sum = sha256.Sum256(append(sum[:], l[:]...))
	return hex.EncodeToString(sum[:])
}

// problems collects Problems.
type problems []Problem

func (ps *problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Builtin is the catalog of a serve without --catalog: gc routes (a
// --providers file named source, or the mock LLM), priced by pc (the
// built-in pricing/default.json), with the default branding. Every
// routable model must have a price in pc: each one without is a problem
// of the *Error returned, so such a server never starts.
func Builtin(source string, gc *gateway.Config, pc pricing.Config) (*Catalog, error) {
	var ps problems
	names := make([]string, 0, len(gc.Models))
	for name := range gc.Models {
		names = append(names, name)
	}
	for _, name := range sortedStrings(names) {
		if _, ok := pc.Models[name]; !ok {
			ps.add("models."+name, "no price: the built-in prices (pricing/default.json) do not price %q; give its price in a --catalog file", name)
		}
	}
	if len(ps) > 0 {
		return nil, &Error{Source: source, Problems: ps}
	}
	return &Catalog{Source: source, Gateway: gc, Pricing: pc, Advertised: names}, nil
}
