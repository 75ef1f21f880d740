package catalog

import (
	"cmp"
	"fmt"
	"math/big"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"tollgate"
	"tollgate/gateway"
	"tollgate/pricing"
)

// Bounds on the branding's texts, in characters.
const (
	maxName    = 80
	maxSupport = 200
	maxFooter  = 500
	maxLabel   = 80
)

var (
	codeRE     = regexp.MustCompile(`^[A-Z]{3}$`)
	accentRE   = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)
	logoTypes  = map[string]string{".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml", ".webp": "image/webp"}
	currencies = []string{"CNY", "EUR", "USD"}
)

// check validates c.File, naming every problem, and builds c's
// configurations from it when there is none.
func (c *Catalog) check(order []string, readFile func(string) ([]byte, error), ps *problems) {
	f := &c.File
	providers := checkProviders(f.Providers, ps)
	def := pricing.DefaultConfig()
	pc := pricing.Config{BaseCurrency: def.BaseCurrency, BasePrice: def.BasePrice, Rates: def.Rates,
		FeeTiers: def.FeeTiers, Models: map[string]pricing.ModelPrice{}}
	gc := &gateway.Config{Models: map[string][]gateway.DeploymentConfig{}}
	for _, p := range f.Providers {
		gc.Providers = append(gc.Providers, gateway.ProviderConfig{Name: p.Name, Kind: p.Kind, BaseURL: p.BaseURL,
			APIKeyEnv: p.APIKeyEnv, Timeout: gateway.Duration(duration(p.Timeout))})
	}
	if len(f.Models) == 0 {
		ps.add("models", "at least one model is required")
	}
	for _, name := range order {
		m := f.Models[name]
		at := "models." + name
		if strings.TrimSpace(name) == "" || strings.ContainsFunc(name, unicode.IsSpace) {
			ps.add(at, "a model name must not be empty nor hold spaces")
		}
		if price, ok := checkPrice(m.Price, at+".price", ps); ok {
			pc.Models[name] = price
		}
		gc.Models[name] = checkDeployments(m, at, providers, ps)
		if m.Checkout == nil || *m.Checkout {
			c.Advertised = append(c.Advertised, name)
		}
	}
	if pk := checkPackages(f.Packages, ps); pk != nil {
		pc.Packages = pk
	}
	if f.Credit != nil {
		checkCredit(f.Credit, &pc, ps)
	}
	if f.FeeTiers != nil {
		pc.FeeTiers = nil
		for i, t := range f.FeeTiers {
			pc.FeeTiers = append(pc.FeeTiers, pricing.FeeTier{FromFen: tollgate.Fen(t.FromFen),
				Percent: decimal(t.Percent, fmt.Sprintf("fee_tiers[%d].percent", i), true, ps)})
		}
	}
	c.checkBranding(readFile, ps)
	if len(*ps) > 0 {
		return
	}
	// The domain packages' own checks: they hold rules that span
	// sections (a currency without a rate, the fee tiers' order).
	if err := pc.Validate(); err != nil {
		msg := strings.TrimPrefix(tollgate.ErrorMessage(err), "pricing config: ")
		if strings.HasPrefix(msg, "rates") {
			msg = "credit." + msg
		}
		ps.add("", "%s", msg)
	}
	if err := gc.Validate(); err != nil {
		ps.add("", "%v", err)
	}
	c.Gateway, c.Pricing = gc, pc
}

// checkProviders names the problems of the providers and returns the
// names known.
func checkProviders(list []Provider, ps *problems) map[string]bool {
	names := map[string]bool{}
	for i, p := range list {
		at := fmt.Sprintf("providers[%d]", i)
		switch {
		case p.Name == "":
			ps.add(at+".name", "missing")
		case names[p.Name]:
			ps.add(at+".name", "duplicate provider name %q", p.Name)
		}
		names[p.Name] = true
		if p.Kind != gateway.KindOpenAI && p.Kind != gateway.KindAnthropic && p.Kind != gateway.KindGemini {
			ps.add(at+".kind", "want %q, %q or %q, not %q", gateway.KindOpenAI, gateway.KindAnthropic, gateway.KindGemini, p.Kind)
		}
		if u, err := url.Parse(p.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add(at+".base_url", "want an absolute http(s) URL, not %q", p.BaseURL)
		}
		if p.Timeout != "" {
			if d, err := time.ParseDuration(p.Timeout); err != nil || d <= 0 {
				ps.add(at+".timeout", "want a positive duration such as \"60s\", not %q", p.Timeout)
			}
		}
		if strings.HasPrefix(p.APIKeyEnv, "sk-") || strings.ContainsAny(p.APIKeyEnv, " -.:/") {
			ps.add(at+".api_key_env", "must name an environment variable, not hold the key")
		}
	}
	return names
}

// checkPrice names the problems of a model's price; ok is false when
// there are any.
func checkPrice(p *Price, at string, ps *problems) (pricing.ModelPrice, bool) {
	if p == nil {
		ps.add(at, "missing: a model that can be routed must have a price")
		return pricing.ModelPrice{}, false
	}
	n := len(*ps)
	if !slices.Contains(currencies, p.Currency) {
		if p.Currency == "" {
			ps.add(at+".currency", "missing (USD, EUR or CNY)")
		} else {
			ps.add(at+".currency", "want USD, EUR or CNY, not %q", p.Currency)
		}
	}
	mp := pricing.ModelPrice{Currency: pricing.Currency(p.Currency),
		Input: decimal(p.Input, at+".input", true, ps), Output: decimal(p.Output, at+".output", true, ps),
		CachedInput: decimal(p.CachedInput, at+".cached_input", false, ps), CacheWriteInput: decimal(p.CacheWriteInput, at+".cache_write_input", false, ps),
		CacheWrite1hInput: decimal(p.CacheWrite1hInput, at+".cache_write_1h_input", false, ps),
		PerCall:           decimal(p.PerCall, at+".per_call", false, ps)}
	if len(*ps) > n {
		return mp, false
	}
	if mp.Input.Sign() == 0 && mp.Output.Sign() == 0 && mp.PerCall.Sign() == 0 {
		ps.add(at, "input, output and per_call are all zero: the model would be free")
	}
	if p.CachedInput != "" && mp.CachedInput.Rat().Cmp(mp.Input.Rat()) > 0 {
		ps.add(at+".cached_input", "%s is above input %s", p.CachedInput, p.Input)
	}
	return mp, len(*ps) == n
}

// decimal parses a price; a missing one is a problem when required.
func decimal(a Amount, at string, required bool, ps *problems) pricing.Decimal {
	if a == "" {
		if required {
			ps.add(at, "missing")
		}
		return pricing.Decimal{}
	}
	if strings.HasPrefix(string(a), "-") {
		ps.add(at, "%s is negative", a)
		return pricing.Decimal{}
	}
	d, err := pricing.ParseDecimal(string(a))
	if err != nil {
		ps.add(at, "%q is not a decimal number such as \"1.50\"", a)
	}
	return d
}

func checkDeployments(m Model, at string, providers map[string]bool, ps *problems) []gateway.DeploymentConfig {
	if m.ContextWindow < 0 {
		ps.add(at+".context_window", "must not be negative")
	}
	if m.MaxOutputTokens < 0 {
		ps.add(at+".max_output_tokens", "must not be negative")
	}
	if len(m.Deployments) == 0 {
		ps.add(at+".deployments", "at least one deployment is required")
	}
	var out []gateway.DeploymentConfig
	seen := map[string]int{}
	for j, d := range m.Deployments {
		dat := fmt.Sprintf("%s.deployments[%d]", at, j)
		switch {
		case d.Provider == "":
			ps.add(dat+".provider", "missing")
		case !providers[d.Provider]:
			ps.add(dat+".provider", "unknown provider %q", d.Provider)
		}
		if d.Model == "" {
			ps.add(dat+".model", "missing (the upstream model name)")
		}
		if k, dup := seen[d.Provider+"/"+d.Model]; dup {
			ps.add(dat, "duplicate deployment %s/%s (also deployments[%d])", d.Provider, d.Model, k)
		}
		seen[d.Provider+"/"+d.Model] = j
		for _, n := range []struct {
			key string
			v   int64
		}{{"weight", int64(d.Weight)}, {"priority", int64(d.Priority)}, {"max_output_tokens", d.MaxOutputTokens}, {"context_tokens", d.ContextTokens}} {
			if n.v < 0 {
				ps.add(dat+"."+n.key, "must not be negative")
			}
		}
		for _, cost := range []struct {
			key string
			v   Amount
		}{{"input_cost_per_1m", d.InputCostPer1M}, {"cached_input_cost_per_1m", d.CachedInputCostPer1M},
			{"cache_write_cost_per_1m", d.CacheWriteCostPer1M}, {"cache_write_1h_cost_per_1m", d.CacheWrite1hCostPer1M},
			{"output_cost_per_1m", d.OutputCostPer1M}} {
			decimal(cost.v, dat+"."+cost.key, false, ps)
		}
		dc := gateway.DeploymentConfig{Provider: d.Provider, Model: d.Model, Weight: d.Weight, Priority: d.Priority,
			InputCostPer1M: string(d.InputCostPer1M), CachedInputCostPer1M: string(d.CachedInputCostPer1M),
			CacheWriteCostPer1M: string(d.CacheWriteCostPer1M), CacheWrite1hCostPer1M: string(d.CacheWrite1hCostPer1M),
			OutputCostPer1M: string(d.OutputCostPer1M), MaxOutputTokens: cmp.Or(d.MaxOutputTokens, m.MaxOutputTokens),
			ContextTokens: cmp.Or(d.ContextTokens, m.ContextWindow)}
		out = append(out, dc)
	}
	return out
}

// checkPackages names the packages' problems and returns them in display
// order.
func checkPackages(list []Package, ps *problems) []pricing.Package {
	ids := map[string]int{}
	var out []pricing.Package
	orders := map[string]int{}
	for i, p := range list {
		at := fmt.Sprintf("packages[%d]", i)
		switch k, dup := ids[p.ID]; {
		case p.ID == "":
			ps.add(at+".id", "missing")
		case dup:
			ps.add(at+".id", "duplicate package id %q (also packages[%d])", p.ID, k)
		case strings.ContainsFunc(p.ID, func(r rune) bool {
			return !(r == '-' || r == '_' || r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)))
		}) || len(p.ID) > 64:
			ps.add(at+".id", "want up to 64 letters, digits, - and _, not %q", p.ID)
		}
		ids[p.ID] = i
		if p.Fen < 1 {
			ps.add(at+".fen", "%d is below 1 fen", p.Fen)
		}
		if p.Credits < 1 {
			ps.add(at+".credits", "%d: a package must buy at least 1 credit", p.Credits)
		}
		zh, en := cmp.Or(p.Label.ZH, p.Label.EN), cmp.Or(p.Label.EN, p.Label.ZH)
		switch {
		case zh == "":
			ps.add(at+".label", "missing: give zh, en or both")
		case len([]rune(zh)) > maxLabel || len([]rune(en)) > maxLabel:
			ps.add(at+".label", "longer than %d characters", maxLabel)
		case strings.ContainsFunc(zh+en, unicode.IsControl):
			ps.add(at+".label", "holds control characters")
		}
		orders[p.ID] = p.Order
		out = append(out, pricing.Package{ID: p.ID, Fen: tollgate.Fen(p.Fen), Credits: tollgate.Credits(p.Credits),
			Label: en, Labels: map[string]string{"zh": zh, "en": en}})
	}
	sort.SliceStable(out, func(i, j int) bool { return orders[out[i].ID] < orders[out[j].ID] })
	return out
}

// checkCredit sets pc's base price and rates from cr.
func checkCredit(cr *Credit, pc *pricing.Config, ps *problems) {
	switch {
	case cr.CreditsPerCNY != 0 && (cr.Currency != "" || cr.PricePer1M != ""):
		ps.add("credit", "give credits_per_cny, or currency and price_per_1m, not both")
	case cr.CreditsPerCNY < 0:
		ps.add("credit.credits_per_cny", "must be positive")
	case cr.CreditsPerCNY > 0:
		pc.BaseCurrency = pricing.CNY
		pc.BasePrice = pricing.DecimalOf(big.NewRat(1_000_000, cr.CreditsPerCNY))
	case cr.Currency != "" || cr.PricePer1M != "":
		if !slices.Contains(currencies, cr.Currency) {
			ps.add("credit.currency", "want USD, EUR or CNY, not %q", cr.Currency)
		}
		pc.BaseCurrency = pricing.Currency(cr.Currency)
		if pc.BasePrice = decimal(cr.PricePer1M, "credit.price_per_1m", true, ps); cr.PricePer1M != "" && pc.BasePrice.Sign() == 0 {
			ps.add("credit.price_per_1m", "must be above zero")
		}
	}
	if cr.Rates == nil {
		return
	}
	r := cr.Rates
	rc := pricing.RatesConfig{URL: r.URL}
	switch {
	case r.URL != "" && r.Static != nil:
		ps.add("credit.rates", "give static or url, not both")
	case r.URL == "" && r.Static == nil:
		ps.add("credit.rates", "give static rates or a url")
	case r.URL != "":
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add("credit.rates.url", "want an http(s) URL, not %q", r.URL)
		}
	}
	if r.Static != nil {
		rc.Static = map[pricing.Currency]pricing.Decimal{}
		for _, cur := range sortedStrings(keys(r.Static)) {
			at := "credit.rates.static." + cur
			if !codeRE.MatchString(cur) {
				ps.add(at, "%q is not a currency code", cur)
				continue
			}
			if d := decimal(r.Static[cur], at, true, ps); d.Sign() > 0 {
				rc.Static[pricing.Currency(cur)] = d
			} else if r.Static[cur] != "" && !strings.HasPrefix(string(r.Static[cur]), "-") {
				ps.add(at, "must be above zero")
			}
		}
	}
	for _, d := range []struct {
		key string
		v   string
		dst *pricing.Duration
	}{{"ttl", r.TTL, &rc.TTL}, {"max_stale", r.MaxStale, &rc.MaxStale}, {"timeout", r.Timeout, &rc.Timeout}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v <= 0 {
			ps.add("credit.rates."+d.key, "want a positive duration such as \"5m\", not %q", d.v)
		}
		*d.dst = pricing.Duration(v)
	}
	pc.Rates = rc
}

func (c *Catalog) checkBranding(readFile func(string) ([]byte, error), ps *problems) {
	b := c.File.Branding
	for _, t := range []struct {
		key, v string
		max    int
	}{{"name", b.Name, maxName}, {"support", b.Support, maxSupport}, {"footer", b.Footer, maxFooter}} {
		switch {
		case len([]rune(t.v)) > t.max:
			ps.add("branding."+t.key, "longer than %d characters", t.max)
		case strings.ContainsFunc(t.v, unicode.IsControl):
			ps.add("branding."+t.key, "holds control characters")
		}
	}
	if b.Accent != "" && !accentRE.MatchString(b.Accent) {
		ps.add("branding.accent", "want a colour such as \"#0a7d5a\", not %q", b.Accent)
	}
	if b.Logo == "" {
		return
	}
	typ, ok := logoTypes[strings.ToLower(filepath.Ext(b.Logo))]
	if !ok {
		ps.add("branding.logo", "want a .png, .jpg, .svg or .webp file, not %q", b.Logo)
		return
	}
	if readFile == nil {
		ps.add("branding.logo", "no file can be read here")
		return
	}
	logo, err := readFile(b.Logo)
	if err != nil {
		ps.add("branding.logo", "%s: %v", b.Logo, err)
		return
	}
	c.Logo, c.LogoType = logo, typ
}

// duration is d parsed, 0 when empty or bad (check names it).
func duration(d string) time.Duration {
	v, _ := time.ParseDuration(d)
	return v
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func sortedStrings(s []string) []string {
	sort.Strings(s)
	return s
}
