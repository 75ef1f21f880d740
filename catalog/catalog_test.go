package catalog_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tollgate"
	"tollgate/catalog"
	"tollgate/gateway"
	"tollgate/pricing"
)

// The issue's example is a complete catalog: it routes house-model to
// the provider "up" and prices it at 1 CNY in, 2 CNY out per 1M tokens
// with the built-in credit value (1.00 USD per 1M credits at 7.20 CNY).
func TestIssueExampleIsComplete(t *testing.T) {
	c, err := catalog.Load("testdata/issue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "Harness AI" || !slices.Equal(c.Advertised, []string{"house-model"}) {
		t.Fatalf("name %q, advertised %v", c.Name(), c.Advertised)
	}
	if d := c.Gateway.Models["house-model"]; len(d) != 1 || d[0].Provider != "up" || d[0].Model != "gpt-4o-mini" {
		t.Fatalf("deployments %+v", d)
	}
	if len(c.Digest) != 64 {
		t.Fatalf("digest %q", c.Digest)
	}
	p, err := pricing.New(c.Pricing, pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 1M input tokens: 1 CNY = 1/7.2 USD = 138,889 credits (rounded up).
	if got, err := p.Cost(context.Background(), "house-model", tollgate.Tokens{Input: 1_000_000}); err != nil || got != 138_889 {
		t.Fatalf("cost %d, %v", got, err)
	}
	pk, err := p.Package("p1")
	if err != nil || pk.Fen != 1234 || pk.Credits != 100000 || pk.Labels["zh"] != "体验包" || pk.Label != "Trial" {
		t.Fatalf("package %+v, %v", pk, err)
	}
	if err := c.Gateway.Resolve(func(string) string { return "k" }); err != nil {
		t.Fatal(err)
	}
}

// The same catalog in JSON is read alike, digest aside.
func TestJSONCatalog(t *testing.T) {
	c, err := catalog.Parse("c.json", []byte(`{
  "providers": [{"name": "up", "kind": "openai", "base_url": "http://127.0.0.1:9101/v1", "timeout": "30s"}],
  "models": {"house-model": {"price": {"currency": "USD", "input": 1.5, "output": "3"},
     "deployments": [{"provider": "up", "model": "m", "input_cost_per_1m": "0.5"}], "context_window": 8000, "checkout": false},
     "b": {"price": {"currency": "USD", "input": "1", "output": "1"}, "deployments": [{"provider": "up", "model": "m"}]}},
  "packages": [{"id": "big", "fen": 5000, "credits": 9000000, "label": {"en": "Big"}, "order": 2},
               {"id": "small", "fen": 100, "credits": 100000, "label": {"zh": "小"}, "order": 1}],
  "credit": {"credits_per_cny": 100000, "rates": {"static": {"CNY": "7.20"}, "max_stale": "2h"}},
  "fee_tiers": [{"from_fen": 0, "percent": "0.38"}],
  "branding": {"name": "N", "accent": "#0a7d5a", "support": "help@example.com", "footer": "© N"}
}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Advertised, []string{"b"}) {
		t.Fatalf("advertised %v", c.Advertised)
	}
	if d := c.Gateway.Models["house-model"][0]; d.ContextTokens != 8000 || d.InputCostPer1M != "0.5" {
		t.Fatalf("deployment %+v", d)
	}
	if ps := c.Pricing.Packages; ps[0].ID != "small" || ps[0].Label != "小" || ps[1].Labels["zh"] != "Big" {
		t.Fatalf("packages %+v", ps)
	}
	p, err := pricing.New(c.Pricing, pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 100,000 credits per CNY: 1M credits cost 10 CNY = 1,000 fen.
	if fen, err := p.FenPerMCredit(context.Background()); err != nil || fen != 1000 {
		t.Fatalf("fen per 1M credits %d, %v", fen, err)
	}
}

// A logo is read beside the catalog and kept with its type.
func TestLogo(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "logo.png"), "\x89PNG")
	path := filepath.Join(dir, "c.yaml")
	write(t, path, strings.Replace(issue(t), `{name: "Harness AI"}`, `{name: "H", logo: logo.png}`, 1))
	c, err := catalog.Load(path)
	if err != nil || string(c.Logo) != "\x89PNG" || c.LogoType != "image/png" {
		t.Fatalf("logo %q %q, %v", c.Logo, c.LogoType, err)
	}
}

// The digest covers the logo's bytes: two instances with the same file
// but different logos do not agree; with the same logo they do; and a
// catalog without a logo keeps the plain SHA-256 of its file.
func TestDigestCoversLogo(t *testing.T) {
	load := func(logo string) *catalog.Catalog {
		t.Helper()
		dir := t.TempDir()
		if logo != "" {
			write(t, filepath.Join(dir, "logo.png"), logo)
		}
		path := filepath.Join(dir, "c.yaml")
		body := issue(t)
		if logo != "" {
			body = strings.Replace(body, `{name: "Harness AI"}`, `{name: "H", logo: logo.png}`, 1)
		}
		write(t, path, body)
		c, err := catalog.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b, a2 := load("\x89PNG one"), load("\x89PNG two"), load("\x89PNG one")
	if a.Digest == b.Digest {
		t.Fatalf("different logos, same digest %s", a.Digest)
	}
	if a.Digest != a2.Digest || len(a.Digest) != 64 {
		t.Fatalf("same catalog and logo: digests %s and %s", a.Digest, a2.Digest)
	}
	plain := load("")
	sum := sha256.Sum256([]byte(issue(t)))
	if plain.Digest != hex.EncodeToString(sum[:]) {
		t.Fatalf("without a logo the digest is %s, want the file's SHA-256", plain.Digest)
	}
}

// Every problem is named with its path in the file, all of them at once.
func TestProblems(t *testing.T) {
	for _, tc := range []struct {
		name, file string // file: YAML
		want       []string
	}{
		{"unknown top-level key", base + "bogus: 1\n", []string{`bogus: unknown key "bogus"; known keys: branding, credit`}},
		{"unknown nested key", strings.Replace(base, `output: "2"}`, `output: "2", outptu: "3"}`, 1), []string{`models.m.price.outptu: unknown key "outptu"`}},
		{"unknown package key", base + "packages: [{id: p, fen: 1, credits: 1, label: {en: x, fr: y}}]\n", []string{`packages[0].label.fr: unknown key "fr"`}},
		{"duplicate model", base + "  m: {}\n", nil}, // models is not last: see below
		{"wrong type", base + "packages: [{id: p, fen: ten, credits: 1, label: {en: x}}]\n", []string{`packages[0].fen: want a whole number, not "ten"`}},
		{"list where a mapping goes", "models: [a]\n", []string{"models: want a mapping of keys to values, not a list"}},
		{"missing price", "providers: [{name: up, kind: openai, base_url: 'http://x/v1'}]\nmodels:\n  m:\n    deployments: [{provider: up, model: u}]\n",
			[]string{"models.m.price: missing: a model that can be routed must have a price"}},
		{"missing input", strings.Replace(base, `input: "1", `, "", 1), []string{"models.m.price.input: missing"}},
		{"missing output", strings.Replace(base, `, output: "2"`, "", 1), []string{"models.m.price.output: missing"}},
		{"missing currency", strings.Replace(base, `currency: CNY, `, "", 1), []string{"models.m.price.currency: missing (USD, EUR or CNY)"}},
		{"bad currency", strings.Replace(base, `CNY`, `JPY`, 1), []string{`models.m.price.currency: want USD, EUR or CNY, not "JPY"`}},
		{"negative price", strings.Replace(base, `input: "1"`, `input: -1`, 1), []string{"models.m.price.input: -1 is negative"}},
		{"negative cached", strings.Replace(base, `input: "1"`, `input: "1", cached_input: "-0.5"`, 1), []string{"models.m.price.cached_input: -0.5 is negative"}},
		{"not a decimal", strings.Replace(base, `output: "2"`, `output: "2e3"`, 1), []string{`models.m.price.output: "2e3" is not a decimal number such as "1.50"`}},
		{"price a list", strings.Replace(base, `output: "2"`, `output: [2]`, 1), []string{`models.m.price.output: want a decimal number such as "1.50"`}},
		{"free model", strings.Replace(strings.Replace(base, `"1"`, `"0"`, 1), `"2"`, `"0"`, 1), []string{"models.m.price: input, output and per_call are all zero: the model would be free"}},
		{"negative per_call", strings.Replace(base, `output: "2"}`, `output: "2", per_call: "-0.01"}`, 1), []string{"models.m.price.per_call: -0.01 is negative"}},
		{"bad per_call", strings.Replace(base, `output: "2"}`, `output: "2", per_call: "1e-3"}`, 1), []string{`models.m.price.per_call: "1e-3" is not a decimal number`}},
		{"cached above input", strings.Replace(base, `input: "1"`, `input: "1", cached_input: "2"`, 1), []string{"models.m.price.cached_input: 2 is above input 1"}},
		{"no models", "providers: []\n", []string{"models: at least one model is required"}},
		{"model name with space", strings.Replace(base, "  m:", "  'a b':", 1), []string{"models.a b: a model name must not be empty nor hold spaces"}},
		{"no deployments", strings.Replace(base, "[{provider: up, model: u}]", "[]", 1), []string{"models.m.deployments: at least one deployment is required"}},
		{"unknown provider", strings.Replace(base, "provider: up", "provider: down", 1), []string{`models.m.deployments[0].provider: unknown provider "down"`}},
		{"deployment without model", strings.Replace(base, ", model: u", "", 1), []string{"models.m.deployments[0].model: missing (the upstream model name)"}},
		{"duplicate deployment", strings.Replace(base, "[{provider: up, model: u}]", "[{provider: up, model: u}, {provider: up, model: u}]", 1),
			[]string{"models.m.deployments[1]: duplicate deployment up/u (also deployments[0])"}},
		{"negative weight", strings.Replace(base, "model: u}", "model: u, weight: -1}", 1), []string{"models.m.deployments[0].weight: must not be negative"}},
		{"negative cost", strings.Replace(base, "model: u}", "model: u, input_cost_per_1m: '-1'}", 1), []string{"models.m.deployments[0].input_cost_per_1m: -1 is negative"}},
		{"negative context window", strings.Replace(base, "    deployments", "    context_window: -5\n    deployments", 1), []string{"models.m.context_window: must not be negative"}},
		{"checkout not a bool", strings.Replace(base, "    deployments", "    checkout: maybe\n    deployments", 1), []string{`models.m.checkout: want true or false, not "maybe"`}},
		{"provider without name", strings.Replace(base, "name: up, ", "", 1), []string{"providers[0].name: missing", `models.m.deployments[0].provider: unknown provider "up"`}},
		{"duplicate provider", strings.Replace(base, "providers: [", "providers: [{name: up, kind: openai, base_url: 'http://y/v1'}, ", 1), []string{`providers[1].name: duplicate provider name "up"`}},
		{"bad kind", strings.Replace(base, "kind: openai", "kind: palm", 1), []string{`providers[0].kind: want "openai", "anthropic" or "gemini", not "palm"`}},
		{"bad base_url", strings.Replace(base, "'http://x/v1'", "'x/v1'", 1), []string{`providers[0].base_url: want an absolute http(s) URL, not "x/v1"`}},
		{"bad timeout", strings.Replace(base, "base_url: 'http://x/v1'", "base_url: 'http://x/v1', timeout: soon", 1), []string{`providers[0].timeout: want a positive duration such as "60s", not "soon"`}},
		{"key in api_key_env", strings.Replace(base, "base_url: 'http://x/v1'", "base_url: 'http://x/v1', api_key_env: sk-abc", 1), []string{"providers[0].api_key_env: must name an environment variable, not hold the key"}},
		{"package below 1 fen", base + "packages: [{id: p, fen: 0, credits: 1, label: {en: x}}]\n", []string{"packages[0].fen: 0 is below 1 fen"}},
		{"negative fen", base + "packages: [{id: p, fen: -100, credits: 1, label: {en: x}}]\n", []string{"packages[0].fen: -100 is below 1 fen"}},
		{"no credits", base + "packages: [{id: p, fen: 1, credits: 0, label: {en: x}}]\n", []string{"packages[0].credits: 0: a package must buy at least 1 credit"}},
		{"duplicate package", base + "packages: [{id: p, fen: 1, credits: 1, label: {en: x}}, {id: p, fen: 2, credits: 2, label: {en: y}}]\n",
			[]string{`packages[1].id: duplicate package id "p" (also packages[0])`}},
		{"package without id", base + "packages: [{fen: 1, credits: 1, label: {en: x}}]\n", []string{"packages[0].id: missing"}},
		{"bad package id", base + "packages: [{id: 'a b', fen: 1, credits: 1, label: {en: x}}]\n", []string{`packages[0].id: want up to 64 letters, digits, - and _, not "a b"`}},
		{"package without label", base + "packages: [{id: p, fen: 1, credits: 1}]\n", []string{"packages[0].label: missing: give zh, en or both"}},
		{"label too long", base + "packages: [{id: p, fen: 1, credits: 1, label: {en: " + strings.Repeat("x", 81) + "}}]\n", []string{"packages[0].label: longer than 80 characters"}},
		{"credit both ways", base + "credit: {credits_per_cny: 1, currency: USD, price_per_1m: '1'}\n", []string{"credit: give credits_per_cny, or currency and price_per_1m, not both"}},
		{"credit negative", base + "credit: {credits_per_cny: -1}\n", []string{"credit.credits_per_cny: must be positive"}},
		{"credit currency", base + "credit: {currency: JPY, price_per_1m: '1'}\n", []string{`credit.currency: want USD, EUR or CNY, not "JPY"`}},
		{"credit zero price", base + "credit: {currency: USD, price_per_1m: '0'}\n", []string{"credit.price_per_1m: must be above zero"}},
		{"credit missing price", base + "credit: {currency: USD}\n", []string{"credit.price_per_1m: missing"}},
		{"rates both", base + "credit: {rates: {static: {CNY: '7'}, url: 'https://r'}}\n", []string{"credit.rates: give static or url, not both"}},
		{"rates neither", base + "credit: {rates: {ttl: 5m}}\n", []string{"credit.rates: give static rates or a url"}},
		{"rates bad url", base + "credit: {rates: {url: 'ftp://r'}}\n", []string{`credit.rates.url: want an http(s) URL, not "ftp://r"`}},
		{"rates bad code", base + "credit: {rates: {static: {cny: '7'}}}\n", []string{`credit.rates.static.cny: "cny" is not a currency code`}},
		{"rates zero", base + "credit: {rates: {static: {CNY: '0'}}}\n", []string{"credit.rates.static.CNY: must be above zero"}},
		{"rates bad ttl", base + "credit: {rates: {static: {CNY: '7'}, ttl: -1m}}\n", []string{`credit.rates.ttl: want a positive duration such as "5m", not "-1m"`}},
		{"no rate for a currency", strings.Replace(base, "CNY", "EUR", 1) + "credit: {rates: {static: {CNY: '7'}}}\n", []string{"models.m: no static rate for EUR"}},
		{"no rate for the credit's currency", base + "credit: {currency: EUR, price_per_1m: '1', rates: {static: {CNY: '7'}}}\n", []string{"credit.rates.static: no rate for the base currency EUR"}},
		{"fee tier", base + "fee_tiers: [{from_fen: 5, percent: '0.6'}]\n", []string{"fee_tiers[0].from_fen must be 0"}},
		{"fee percent", base + "fee_tiers: [{from_fen: 0, percent: '-1'}]\n", []string{"fee_tiers[0].percent: -1 is negative"}},
		{"branding accent", base + "branding: {accent: green}\n", []string{`branding.accent: want a colour such as "#0a7d5a", not "green"`}},
		{"branding name long", base + "branding: {name: " + strings.Repeat("n", 81) + "}\n", []string{"branding.name: longer than 80 characters"}},
		{"branding footer control", base + "branding: {footer: \"a\\u0007b\"}\n", []string{"branding.footer: holds control characters"}},
		{"branding logo type", base + "branding: {logo: logo.gif}\n", []string{`branding.logo: want a .png, .jpg, .svg or .webp file, not "logo.gif"`}},
		{"branding logo missing", base + "branding: {logo: none.png}\n", []string{"branding.logo: none.png: open"}},
		{"empty file", "", []string{"the file is empty"}},
		{"bad yaml", "models: [\n", []string{"not valid YAML: line"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			write(t, path, tc.file)
			_, err := catalog.Load(path)
			if tc.want == nil {
				return
			}
			mustProblems(t, err, tc.want...)
		})
	}
}

// A per_call fee is carried into pricing and billed once a call, in the
// model's currency converted like its token prices; a model priced by the
// call alone is not free.
func TestPerCall(t *testing.T) {
	c, err := catalog.Parse("c.yaml", []byte(strings.Replace(base, `output: "2"}`, `output: "2", per_call: "0.072"}`, 1)+
		"  n:\n    price: {currency: USD, input: \"0\", output: \"0\", per_call: \"0.001\"}\n    deployments: [{provider: up, model: u}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Pricing.Models["m"].PerCall.String(); got != "0.072" {
		t.Fatalf("per_call %q", got)
	}
	p, err := pricing.New(c.Pricing, pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 0.072 CNY = 0.01 USD = 10,000 credits; 1M input tokens at 1 CNY =
	// 138,888.9 credits: one ceiling over both.
	for _, tc := range []struct {
		model string
		tok   tollgate.Tokens
		want  tollgate.Credits
	}{{"m", tollgate.Tokens{}, 10_000}, {"m", tollgate.Tokens{Input: 1_000_000}, 148_889}, {"n", tollgate.Tokens{Input: 5000, Output: 5000}, 1000}} {
		if got, err := p.Cost(context.Background(), tc.model, tc.tok); err != nil || got != tc.want {
			t.Errorf("Cost(%s, %+v) = %d, %v; want %d", tc.model, tc.tok, got, err, tc.want)
		}
	}
}

// base is a valid catalog the cases above break in one place.
const base = `providers: [{name: up, kind: openai, base_url: 'http://x/v1'}]
models:
  m:
    price: {currency: CNY, input: "1", output: "2"}
    deployments: [{provider: up, model: u}]
`

func TestDuplicateKeys(t *testing.T) {
	_, err := catalog.Parse("c.yaml", []byte(base+"  m:\n    price: {currency: CNY, input: '1', output: '1'}\n"), nil)
	mustProblems(t, err, `models.m: duplicate key "m"`)
	_, err = catalog.Parse("c.json", []byte(`{"models": {}, "models": {}}`), nil)
	mustProblems(t, err, `models: duplicate key "models"`)
}

func TestFileFormats(t *testing.T) {
	_, err := catalog.Parse("c.toml", []byte(base), nil)
	mustProblems(t, err, `the file name must end in .yaml, .yml or .json, not ".toml"`)
	_, err = catalog.Parse("c.json", []byte(base), nil)
	mustProblems(t, err, "not valid JSON: ")
	if _, err := catalog.Parse("c.YML", []byte(base), nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	write(t, path, base+"#"+strings.Repeat("x", catalog.MaxFileBytes))
	_, err = catalog.Load(path)
	mustProblems(t, err, "the file is larger than 1048576 bytes")
	if _, err := catalog.Load(filepath.Join(t.TempDir(), "none.yaml")); err == nil || errors.As(err, new(*catalog.Error)) {
		t.Fatalf("a missing file: %v", err)
	}
}

// Without a catalog, a routable model the built-in prices do not price is
// refused, named.
func TestBuiltinNeedsAPriceForEveryModel(t *testing.T) {
	gc := &gateway.Config{Models: map[string][]gateway.DeploymentConfig{"gpt-4o-mini": nil, "qwen-max": nil}}
	_, err := catalog.Builtin("providers.json", gc, pricing.DefaultConfig())
	mustProblems(t, err, `models.qwen-max: no price: the built-in prices (pricing/default.json) do not price "qwen-max"`)
	if !strings.Contains(err.Error(), "catalog providers.json: models.qwen-max") {
		t.Fatalf("error %q", err)
	}
	c, err := catalog.Builtin("", &gateway.Config{Models: map[string][]gateway.DeploymentConfig{"gpt-4o-mini": nil}}, pricing.DefaultConfig())
	if err != nil || !slices.Equal(c.Advertised, []string{"gpt-4o-mini"}) || c.Name() != "tollgate" {
		t.Fatalf("%+v, %v", c, err)
	}
}

// mustProblems checks err is an *catalog.Error with exactly the problems
// starting with want, in any order.
func mustProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	var ce *catalog.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want problems %q", err, want)
	}
	if len(ce.Problems) != len(want) {
		t.Fatalf("problems:\n%v\nwant %q", err, want)
	}
	for _, w := range want {
		if !slices.ContainsFunc(ce.Problems, func(p catalog.Problem) bool { return strings.HasPrefix(p.String(), w) }) {
			t.Fatalf("problems:\n%v\nwant one starting %q", err, w)
		}
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func issue(t *testing.T) string {
	b, err := os.ReadFile("testdata/issue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docs/catalog.example.yaml, the documented example, is a valid catalog.
func TestDocumentedExample(t *testing.T) {
	c, err := catalog.Load("../docs/catalog.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Advertised, []string{"house-chat", "gpt-4o-mini"}) || len(c.Gateway.Models["house-chat"]) != 3 ||
		c.Pricing.Packages[0].ID != "starter" || c.Name() != "Example AI" {
		t.Fatalf("%+v", c)
	}
}
