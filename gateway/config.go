package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"tollgate"
	"tollgate/pricing"
)

// DefaultMaxOutputTokens is a deployment's output cap when the file gives none.
const DefaultMaxOutputTokens = 4096

// DefaultContextTokens is a deployment's context window when the file gives
// none: the largest in common use, so a hold never falls short of a prompt
// whose tokens only the upstream can count.
const DefaultContextTokens = 1_000_000

// Config is the providers file (--providers FILE): upstream providers and
// the public models routed to them.
type Config struct {
	Providers []ProviderConfig `json:"providers"`
	// Models maps a public model name to its ordered deployments.
	Models map[string][]DeploymentConfig `json:"models"`
}

// ProviderConfig is one upstream endpoint. The API key is never in the file:
// APIKeyEnv names the environment variable holding it. Kind is one of
// Kinds(): a wire format (openai, anthropic, azure-openai) or a preset of
// one provider (deepseek, dashscope, …), which gives the default base URL,
// the auth header and where usage reports cached and reasoning tokens.
// BaseURL is what an SDK would use, the kind's default when left out: for
// OpenAI-compatible kinds it includes the version
// ("https://api.openai.com/v1", requests go to BaseURL+"/chat/completions"),
// for kind anthropic it does not ("https://api.anthropic.com", requests go
// to BaseURL+"/v1/messages"), nor for kind gemini
// ("https://generativelanguage.googleapis.com", requests go to
// BaseURL+"/v1beta/models/{model}:generateContent"); for azure-openai it is the resource
// ("https://NAME.openai.azure.com", requests go to
// BaseURL+"/openai/deployments/MODEL/chat/completions?api-version=V", the
// deployment's model being the Azure deployment name).
type ProviderConfig struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	BaseURL   string `json:"base_url,omitempty"`
	APIKeyEnv string `json:"api_key_env,omitempty"`
	// APIVersion is azure-openai's api-version query parameter
	// (default DefaultAzureAPIVersion); other kinds have none.
	APIVersion string `json:"api_version,omitempty"`
	// Timeout bounds one attempt: a whole non-streaming call, and for a
	// stream the wait for the first chunk and for each chunk after it.
	Timeout Duration `json:"timeout,omitempty"`
	// APIKey is filled from APIKeyEnv by Resolve; it is never read from the
	// file nor written out.
	APIKey string `json:"-"`
}

// DeploymentConfig is one way to serve a public model.
type DeploymentConfig struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`              // upstream model name
	Weight   int    `json:"weight,omitempty"`   // relative weight within the tier, default 1
	Priority int    `json:"priority,omitempty"` // tier: lower is tried first
	// Provider cost in USD per 1M tokens, as decimal strings, for the
	// revenue report. A prompt cost left out (cached input, a cache write
	// for 5 minutes, for an hour) is the input cost; a 1-hour write's is
	// the 5-minute one's when only that is given.
	InputCostPer1M        string `json:"input_cost_per_1m,omitempty"`
	CachedInputCostPer1M  string `json:"cached_input_cost_per_1m,omitempty"`
	CacheWriteCostPer1M   string `json:"cache_write_cost_per_1m,omitempty"`
	CacheWrite1hCostPer1M string `json:"cache_write_1h_cost_per_1m,omitempty"`
	OutputCostPer1M       string `json:"output_cost_per_1m,omitempty"`
	MaxOutputTokens       int64  `json:"max_output_tokens,omitempty"`
	// ContextTokens is the most prompt tokens the upstream model accepts
	// (default DefaultContextTokens). A request with parts whose tokens
	// cannot be counted from their bytes (images, files, PDF documents:
	// a few bytes may be thousands of tokens) holds this many prompt
	// tokens, since a prompt can never be longer.
	ContextTokens int64 `json:"context_tokens,omitempty"`
}

// Duration is a time.Duration written as "30s" in JSON.
type Duration time.Duration

// UnmarshalJSON accepts "1.5s" style strings or integer seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\" or seconds: %s", b)
	}
	*d = Duration(time.Duration(n) * time.Second)
	return nil
}

// MarshalJSON writes d as a string like "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// LoadConfig reads and validates a providers file, YAML or JSON by its
// extension (ParseConfigFile), and resolves API keys from the environment
// with os.Getenv.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("providers file: %w", err)
	}
	c, err := ParseConfigFile(path, b)
	if err != nil {
		return nil, fmt.Errorf("providers file %s: %w", path, err)
	}
	if err := c.Resolve(os.Getenv); err != nil {
		return nil, fmt.Errorf("providers file %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a JSON providers file strictly and validates it.
func ParseConfig(b []byte) (*Config, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Resolve fills each provider's APIKey from its APIKeyEnv variable. A named
// variable that is unset or empty is an error; the key is never logged.
func (c *Config) Resolve(getenv func(string) string) error {
	for i := range c.Providers {
		p := &c.Providers[i]
		if p.APIKeyEnv == "" {
			continue
		}
		p.APIKey = getenv(p.APIKeyEnv)
		if p.APIKey == "" {
			return fmt.Errorf("provider %q: environment variable %s is not set", p.Name, p.APIKeyEnv)
		}
	}
	return nil
}

// Validate checks the whole file and returns every problem found, joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	names := map[string]bool{}
	for i, p := range c.Providers {
		switch {
		case p.Name == "":
			bad("providers[%d]: name is required", i)
		case names[p.Name]:
			bad("providers[%d]: duplicate name %q", i, p.Name)
		}
		names[p.Name] = true
		for _, fp := range p.Check() {
			bad("provider %q: %s: %s", p.Name, fp.Field, fp.Message)
		}
	}
	if len(c.Models) == 0 {
		bad("models: at least one model is required")
	}
	for _, model := range sortedKeys(c.Models) {
		deps := c.Models[model]
		if strings.TrimSpace(model) == "" {
			bad("models: empty model name")
		}
		if len(deps) == 0 {
			bad("model %q: at least one deployment is required", model)
		}
		for j, d := range deps {
			where := fmt.Sprintf("model %q deployment %d", model, j)
			if !names[d.Provider] {
				bad("%s: unknown provider %q", where, d.Provider)
			}
			if d.Model == "" {
				bad("%s: model (the upstream name) is required", where)
			}
			if d.Weight < 0 || d.Priority < 0 || d.MaxOutputTokens < 0 || d.ContextTokens < 0 {
				bad("%s: weight, priority, max_output_tokens and context_tokens must not be negative", where)
			}
			for _, price := range []string{d.InputCostPer1M, d.CachedInputCostPer1M, d.CacheWriteCostPer1M, d.CacheWrite1hCostPer1M, d.OutputCostPer1M} {
				if price != "" && !isDecimal(price) {
					bad("%s: cost %q is not a decimal number", where, price)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// looksLikeKey catches a secret pasted where an environment variable name belongs.
func looksLikeKey(s string) bool {
	return strings.HasPrefix(s, "sk-") || strings.ContainsAny(s, " -.:/")
}

func isDecimal(s string) bool {
	dot := false
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
		case r == '.' && !dot && i > 0 && i < len(s)-1:
			dot = true
		default:
			return false
		}
	}
	return s != ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// DefaultMockProviders is the configuration used when no provider is
// configured: an in-process mockllm at baseURL (for example
// "http://127.0.0.1:8080/mockllm") serving an OpenAI-compatible, an
// Anthropic-compatible and a Gemini model, with failover between two mock
// deployments, and mock-image, mock-tts and mock-whisper for images,
// speech and transcriptions.
func DefaultMockProviders(baseURL string) *Config {
	const mockContextTokens = 128_000 // as the models the mock stands in for
	base := strings.TrimRight(baseURL, "/")
	return &Config{
		Providers: []ProviderConfig{
			{Name: "mock-openai", Kind: KindOpenAI, BaseURL: base + "/v1", Timeout: Duration(30 * time.Second)},
			{Name: "mock-anthropic", Kind: KindAnthropic, BaseURL: base, Timeout: Duration(30 * time.Second)},
			{Name: "mock-gemini", Kind: KindGemini, BaseURL: base, Timeout: Duration(30 * time.Second)},
		},
		Models: map[string][]DeploymentConfig{
			"mock-gpt": {
				{Provider: "mock-openai", Model: "gpt-4o-mini", Weight: 1, MaxOutputTokens: DefaultMaxOutputTokens, ContextTokens: mockContextTokens},
				{Provider: "mock-anthropic", Model: "claude-haiku-4-5", Weight: 1, Priority: 1, MaxOutputTokens: DefaultMaxOutputTokens, ContextTokens: mockContextTokens},
			},
			"mock-claude": {
				{Provider: "mock-anthropic", Model: "claude-sonnet-4-5", Weight: 1, MaxOutputTokens: DefaultMaxOutputTokens, ContextTokens: mockContextTokens},
			},
			"mock-gemini": {
				{Provider: "mock-gemini", Model: "gemini-2.5-flash", Weight: 1, MaxOutputTokens: DefaultMaxOutputTokens, ContextTokens: mockContextTokens},
			},
			"mock-embedding": {
				{Provider: "mock-openai", Model: "text-embedding-3-small", Weight: 1, MaxOutputTokens: 1},
			},
			// Images, speech and transcriptions, priced per image, per 1M
			// characters and per audio minute.
			"mock-image":   {{Provider: "mock-openai", Model: "dall-e-3", Weight: 1, MaxOutputTokens: 1}},
			"mock-tts":     {{Provider: "mock-openai", Model: "tts-1", Weight: 1, MaxOutputTokens: 1}},
			"mock-whisper": {{Provider: "mock-openai", Model: "whisper-1", Weight: 1, MaxOutputTokens: 1}},
		},
	}
}

// CostPrice returns the provider cost prices (USD per 1M tokens) of the
// deployment whose id is id, for the revenue report (payment.CostPrices),
// with the defaults of pricing.ModelPrice: a deployment without cost
// prices, or one c does not know (or a nil c), costs nothing, and a prompt
// cost left out is its input cost. Errors: EINTERNAL (a cost that does
// not parse; Validate refuses those).
func (c *Config) CostPrice(id string) (pricing.ModelPrice, error) {
	var cost pricing.ModelPrice
	if c == nil {
		return cost, nil
	}
	d, ok := c.Deployment(id)
	if !ok {
		return cost, nil
	}
	for _, f := range []struct {
		price string
		dst   *pricing.Decimal
	}{
		{d.InputCostPer1M, &cost.Input}, {d.CachedInputCostPer1M, &cost.CachedInput},
		{d.CacheWriteCostPer1M, &cost.CacheWriteInput}, {d.CacheWrite1hCostPer1M, &cost.CacheWrite1hInput},
		{d.OutputCostPer1M, &cost.Output},
	} {
		if f.price == "" {
			continue
		}
		var err error
		if *f.dst, err = pricing.ParseDecimal(f.price); err != nil {
			return pricing.ModelPrice{}, &tollgate.Error{Code: tollgate.EINTERNAL, Op: "revenue", Message: "bad cost price of " + id, Err: err}
		}
	}
	return cost, nil
}

// Deployment returns the deployment whose id (as in Usage.Deployment,
// "provider/upstream-model") is id, so the revenue report can find its
// provider cost prices.
func (c *Config) Deployment(id string) (DeploymentConfig, bool) {
	for _, name := range sortedKeys(c.Models) {
		for _, d := range c.Models[name] {
			if d.Provider+"/"+d.Model == id {
				return d, true
			}
		}
	}
	return DeploymentConfig{}, false
}
