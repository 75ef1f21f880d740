package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"tollgate/catalog"
	"tollgate/gateway"
	"tollgate/httpapi"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/webhook"
)

// ServeConfig is every setting of `tollgate serve`. Flag names (docs/DESIGN.md
// §5.2) are fixed; each is also TOLLGATE_<NAME> and a key of --config FILE.
type ServeConfig struct {
	// Mode is ModeDev (the default: emulator, mock model, nothing real)
	// or ModeProduction (Validate's productionProblems).
	Mode       string
	Addr       string
	Data       string
	AdminToken string
	// AdminTokenFile is a file holding the admin token (a mounted secret).
	AdminTokenFile  string
	PublicURL       string
	DatabaseURL     string
	RedisURL        string
	RedisPrefix     string // in front of every Redis key; one per deployment
	WxpayAPIVersion string
	WxpayURL        string
	WxpayMchID      string
	WxpayAppID      string
	WxpayAPIKey     string
	// WxpayCert and WxpayCertKey are PEM files of the merchant API
	// certificate v2 refunds present over mutual TLS (production only).
	WxpayCert    string
	WxpayCertKey string
	// WxpayV3 are API v3's key settings with --wxpay-url: the merchant API
	// private key file and its certificate's serial, the file of the APIv3
	// key, and WeChat Pay's public key file with its id (public key mode;
	// neither: platform certificates). See merchantV3.
	WxpayV3 v3Keys
	// WeChat's web authorisation (OAuth snsapi_base), which gives the
	// checkout opened inside WeChat the payer's openid for JSAPI: the file
	// of the official account's AppSecret and the two hosts.
	WechatAppSecretFile string
	WechatOAuthURL      string
	WechatAPIURL        string
	Providers           string
	// Catalog is the catalog file (YAML or JSON): providers, priced
	// models, packages, the credit's value, branding. It holds the
	// providers, so it is given instead of --providers.
	Catalog string
	// RateLimit is the gateway requests per minute allowed per API key,
	// shared through Redis when configured; 0 is no limit.
	RateLimit int
	// WxpayRolloutPercent is the share of accounts (0–100, sticky by
	// account) offered WeChat Pay; WxpayGuardFailureRate pauses WeChat Pay
	// for 5 minutes when at least 20 order placements in the last 5 minutes
	// failed at that rate (0 disables the guard).
	WxpayRolloutPercent   int
	WxpayGuardFailureRate float64
	LogFormat             string
	// MaxRequestDuration bounds a metered gateway request, streams
	// included (gateway.Options.MaxRequestDuration); 0: no bound.
	MaxRequestDuration time.Duration
	// Slow and idle clients: how long a client may take to send a
	// request's headers, and its body on the service's own routes, on
	// WeChat Pay's notifications and on the model routes; how long an
	// idle connection stays open; and how long a stream may wait for its
	// client to read.
	ReadHeaderTimeout  time.Duration
	BodyTimeout        time.Duration
	NotifyBodyTimeout  time.Duration
	ModelBodyTimeout   time.Duration
	IdleTimeout        time.Duration
	StreamWriteTimeout time.Duration
	// TrustedProxyHeader names the header the reverse proxy in front puts
	// the client's address in (httpapi.Server.TrustedProxyHeader); "": the
	// connection's peer.
	TrustedProxyHeader string
	// RefundPolicy is admin (only the operator refunds, through the admin
	// API) or self (users may refund the unused part of a payment through
	// /v1 within RefundWindow of paying).
	RefundPolicy string
	RefundWindow time.Duration
	// WebhookAllowPrivate lets webhook endpoints be loopback, link-local
	// or private addresses (a receiver on the operator's own network).
	WebhookAllowPrivate bool
	// WebhookRetention is how long finished webhook events (every
	// delivery delivered or failed) are kept before the pruner deletes
	// them with their deliveries; 0 keeps them forever.
	WebhookRetention time.Duration
	// UsageRetention is how long per-call usage records are kept once
	// their day is rolled up (ledger.UsageRoller); 0 keeps them forever.
	// The reports sum deleted ones from the daily rollup.
	UsageRetention time.Duration
}

// DefaultServeConfig is serve's configuration when nothing is set: one
// machine, SQLite under ./tollgate-data, the emulator and the mock LLM.
func DefaultServeConfig() ServeConfig {
	t := httpapi.DefaultTimeouts
	return ServeConfig{
		Mode: ModeDev, Addr: "127.0.0.1:8080", Data: "./tollgate-data", LogFormat: "text",
		WechatOAuthURL: DefaultWechatOAuthURL, WechatAPIURL: DefaultWechatAPIURL,
		WxpayRolloutPercent: 100, WxpayGuardFailureRate: 0.5, MaxRequestDuration: 30 * time.Minute,
		ReadHeaderTimeout: t.ReadHeader, BodyTimeout: t.Body, NotifyBodyTimeout: t.NotifyBody,
		ModelBodyTimeout: t.ModelBody, IdleTimeout: t.Idle, StreamWriteTimeout: gateway.DefaultStreamWriteTimeout,
		RefundPolicy: payment.RefundPolicyAdmin, RefundWindow: 168 * time.Hour,
		WebhookRetention: webhook.DefaultRetention,
	}
}

// serveFlagSet declares every setting of c as a flag of serve.
func serveFlagSet(c *ServeConfig) *flag.FlagSet {
	fs := newFlagSet("serve", serveSummary)
	fs.StringVar(&c.Mode, "mode", c.Mode, "dev (emulator, mock model, no real money) or production (refuses every dev-only piece and generated secret)")
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address HOST:PORT (port 0 picks a free one)")
	fs.StringVar(&c.Data, "data", c.Data, "data directory: the SQLite database and the generated admin token")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "admin token for /admin/*; empty: generated once and kept in DATA/admin-token")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", c.AdminTokenFile, "file holding the admin token (instead of --admin-token)")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "URL clients and WeChat Pay reach this server at (notify URLs); default http://ADDR")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "PostgreSQL URL (postgres://...); empty: SQLite under --data")
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL for the nonce store and rate limiter; empty: in-process")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", c.RedisPrefix, "prefix of every Redis key (nonces, limiter, circuit breakers); every instance of one deployment must use the same; empty: \"tollgate:\"")
	fs.StringVar(&c.WxpayAPIVersion, "wxpay-api-version", c.WxpayAPIVersion, "WeChat Pay API orders are placed with: v2 or v3; empty: v3 in --mode production, v2 in dev")
	fs.StringVar(&c.WxpayURL, "wxpay-url", c.WxpayURL, "WeChat Pay API base URL; empty: the emulator in-process under /sandbox/wxpay/")
	fs.StringVar(&c.WxpayMchID, "wxpay-mch-id", c.WxpayMchID, "merchant id (mch_id); empty with the emulator: its default")
	fs.StringVar(&c.WxpayAppID, "wxpay-appid", c.WxpayAppID, "app id bound to the merchant")
	fs.StringVar(&c.WxpayAPIKey, "wxpay-api-key", c.WxpayAPIKey, "v2 API key (32 characters)")
	fs.StringVar(&c.WxpayCert, "wxpay-cert", c.WxpayCert, "merchant API certificate (apiclient_cert.pem) for v2 refunds with --wxpay-url")
	fs.StringVar(&c.WxpayCertKey, "wxpay-cert-key", c.WxpayCertKey, "its private key (apiclient_key.pem)")
	addV3KeyFlags(fs, &c.WxpayV3, false)
	fs.StringVar(&c.WechatAppSecretFile, "wechat-app-secret-file", c.WechatAppSecretFile, "file holding the AppSecret of --wxpay-appid: the checkout inside WeChat gets the payer's openid (JSAPI) through WeChat's OAuth")
	fs.StringVar(&c.WechatOAuthURL, "wechat-oauth-url", c.WechatOAuthURL, "WeChat's OAuth authorize host (the payer's browser is sent there)")
	fs.StringVar(&c.WechatAPIURL, "wechat-api-url", c.WechatAPIURL, "WeChat's API host (OAuth codes are exchanged for openids there)")
	fs.StringVar(&c.Providers, "providers", c.Providers, "providers file (.json, .yaml or .yml); empty: the mock LLM in-process under /mockllm/")
	fs.StringVar(&c.Catalog, "catalog", c.Catalog, "catalog file (.yaml or .json): providers, priced models, packages, credit value, branding; reloaded on SIGHUP and POST /admin/catalog/reload; empty: built-in prices (pricing/default.json)")
	fs.IntVar(&c.RateLimit, "rate-limit", c.RateLimit, "gateway requests per minute per API key (shared through Redis); 0: no limit")
	fs.IntVar(&c.WxpayRolloutPercent, "wxpay-rollout-percent", c.WxpayRolloutPercent, "percent of accounts (sticky) offered WeChat Pay, 0-100")
	fs.Float64Var(&c.WxpayGuardFailureRate, "wxpay-guard-failure-rate", c.WxpayGuardFailureRate,
		"pause WeChat Pay for 5m when this share of >= 20 order placements in 5m failed (0 disables)")
	fs.DurationVar(&c.MaxRequestDuration, "max-request-duration", c.MaxRequestDuration,
		"longest a model request may run, streams included: then the stream is ended and billed for what it delivered (0: no limit)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", c.ReadHeaderTimeout, "time a client may take to send a request's headers")
	fs.DurationVar(&c.BodyTimeout, "body-timeout", c.BodyTimeout, "time a client may take to send a request's body to the service's own routes (payments, admin, checkout)")
	fs.DurationVar(&c.NotifyBodyTimeout, "notify-body-timeout", c.NotifyBodyTimeout, "time WeChat Pay may take to send a notification's body")
	fs.DurationVar(&c.ModelBodyTimeout, "model-body-timeout", c.ModelBodyTimeout, "time a client may take to send a model request's body (up to 8 MiB)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "time an idle keep-alive connection is kept open")
	fs.DurationVar(&c.StreamWriteTimeout, "stream-write-timeout", c.StreamWriteTimeout, "time a stream waits for its client to read before it is cut off (and settled)")
	fs.StringVar(&c.TrustedProxyHeader, "trusted-proxy-header", c.TrustedProxyHeader,
		"header the reverse proxy in front sets to the client's IP (X-Forwarded-For: its right-most entry; X-Real-IP etc.: the whole value); empty: the connection's peer. Set it only behind such a proxy: clients can send any header")
	fs.StringVar(&c.RefundPolicy, "refund-policy", c.RefundPolicy,
		"who refunds: admin (only the operator, through POST /admin/orders/{no}/refund) or self (users too, through /v1, within --refund-window of paying)")
	fs.DurationVar(&c.RefundWindow, "refund-window", c.RefundWindow, "with --refund-policy self: how long after paying a user may refund the unused part")
	fs.BoolVar(&c.WebhookAllowPrivate, "webhook-allow-private", c.WebhookAllowPrivate,
		"let webhook endpoints be loopback, link-local or private addresses (refused by default, at registration and when connecting)")
	fs.DurationVar(&c.WebhookRetention, "webhook-retention", c.WebhookRetention,
		"how long finished webhook events (every delivery delivered or failed) are kept, then deleted hourly with their deliveries; 0 keeps them forever")
	fs.DurationVar(&c.UsageRetention, "usage-retention", c.UsageRetention,
		"how long per-call usage records are kept once their Beijing day is rolled up, then deleted in the background in bounded batches (reports sum them from the daily rollup; usage lists show only what is kept); 0 keeps them forever, otherwise at least 24h")
	fs.String("config", "", "JSON file of settings keyed by flag name (see tollgate.example.json); env and flags override it")
	return fs
}

func init() {
	deploymentFlagSets = append(deploymentFlagSets, func() *flag.FlagSet { c := DefaultServeConfig(); return serveFlagSet(&c) })
}

// The modes of serve (--mode).
const (
	ModeDev        = "dev"
	ModeProduction = "production"
)

// WeChat's own OAuth hosts, the defaults of --wechat-oauth-url and
// --wechat-api-url.
const (
	DefaultWechatOAuthURL = "https://open.weixin.qq.com"
	DefaultWechatAPIURL   = "https://api.weixin.qq.com"
)

// resolveDefaults fills the settings whose default depends on others: an
// unset --wxpay-api-version is v3 in production (WeChat Pay issues API v3
// to new merchants) and v2 in dev (the emulator's zero configuration).
func (c *ServeConfig) resolveDefaults() {
	if c.WxpayAPIVersion == "" {
		c.WxpayAPIVersion = payment.APIv2
		if c.Mode == ModeProduction {
			c.WxpayAPIVersion = payment.APIv3
		}
	}
}

// merchantV3 is c's API v3 merchant settings.
func (c ServeConfig) merchantV3() merchantV3 {
	return merchantV3{URL: c.WxpayURL, MchID: c.WxpayMchID, AppID: c.WxpayAppID, v3Keys: c.WxpayV3}
}

// Validate refuses settings that cannot work together, and in production
// every dev-only piece: one error names each problem found.
func (c ServeConfig) Validate() error {
	err := c.validateSettings()
	switch c.Mode {
	case ModeDev:
		if err != nil {
			return err
		}
		if realWxpay(c.WxpayURL) {
			return fmt.Errorf("serve: --wxpay-url %s is the real WeChat Pay, and --mode dev moves no real money: use --mode production", c.WxpayURL)
		}
		if p := c.merchantProblems(c.WxpayURL != ""); len(p) > 0 {
			return fmt.Errorf("serve: %s", strings.Join(p, "; "))
		}
		return nil
	case ModeProduction:
		var problems []string
		if err != nil {
			problems = append(problems, strings.TrimPrefix(err.Error(), "serve: "))
		}
		problems = append(problems, c.productionProblems()...)
		if len(problems) > 0 {
			return fmt.Errorf("serve: --mode production refuses to start:\n  - %s", strings.Join(problems, "\n  - "))
		}
		return nil
	}
	return fmt.Errorf("serve: --mode must be dev or production, not %q", c.Mode)
}

// realWxpay reports whether raw is WeChat Pay's own API (api.mch.weixin.qq.com,
// api2.mch.weixin.qq.com, ...), where orders move real money.
func realWxpay(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	h := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	return h == "weixin.qq.com" || strings.HasSuffix(h, ".weixin.qq.com")
}

// minProductionAdminToken is the shortest admin token production takes:
// the token secrets of provisional access tokens and checkout links derive
// from it (payment.TokenSecretFrom, web.SecretFrom).
const minProductionAdminToken = 16

// productionProblems are what --mode production refuses, each naming its
// setting: a dev-only piece (the emulator, the mock model, a generated
// admin token from which every secret derives) or a setting production
// needs. Several instances must agree on every secret, so none is made here.
func (c ServeConfig) productionProblems() []string {
	var p []string
	switch {
	case c.AdminToken == "" && c.AdminTokenFile == "":
		p = append(p, "no admin token: set --admin-token (TOLLGATE_ADMIN_TOKEN) or --admin-token-file; production never generates one (every instance must share it, and the token secrets derive from it)")
	case c.AdminToken != "" && len(c.AdminToken) < minProductionAdminToken:
		p = append(p, fmt.Sprintf("--admin-token must be at least %d characters (the token secrets derive from it)", minProductionAdminToken))
	}
	if c.PublicURL == "" {
		p = append(p, "no --public-url: production needs the https URL users and WeChat Pay reach it at (WeChat Pay notifies only https)")
	} else if u, err := url.Parse(c.PublicURL); err == nil && u.Scheme != "https" {
		p = append(p, fmt.Sprintf("--public-url must be https (WeChat Pay notifies only https), not %q", c.PublicURL))
	}
	switch {
	case c.Providers == "" && c.Catalog == "":
		p = append(p, "no --catalog (or --providers): production serves real models, never the mock model")
	case c.Providers != "":
		p = append(p, c.mockProviders()...)
	default:
		p = append(p, c.mockCatalog()...)
	}
	if c.WxpayURL == "" {
		p = append(p, "no --wxpay-url: production takes payments through WeChat Pay, never the in-process emulator")
	}
	p = append(p, c.plainHTTPProblems()...)
	return append(p, c.merchantProblems(true)...)
}

// plainHTTPProblems names each of WeChat's URLs that production would
// reach over plain http: the merchant's signed requests and the answers
// that credit accounts go to --wxpay-url, the payer's browser is sent to
// --wechat-oauth-url for the code that names them, and the AppSecret is
// sent to --wechat-api-url. WeChat's own are https; plain http is taken
// only to this machine (a loopback host: an emulator or a local proxy).
func (c ServeConfig) plainHTTPProblems() []string {
	var p []string
	for _, u := range []struct{ flag, v, why string }{
		{"--wxpay-url", c.WxpayURL, "the merchant's signed requests and WeChat Pay's answers go there"},
		{"--wechat-oauth-url", c.WechatOAuthURL, "the payer's browser gets its OAuth code there"},
		{"--wechat-api-url", c.WechatAPIURL, "the AppSecret is sent there"},
	} {
		if httpURL(u.v) && !tlsOrLoopback(u.v) {
			p = append(p, fmt.Sprintf("%s must be https in --mode production (%s), not %q; plain http is taken only for a loopback host (127.0.0.1, ::1, localhost)", u.flag, u.why, u.v))
		}
	}
	return p
}

// tlsOrLoopback reports whether the http(s) URL raw is https, or plain
// http to a loopback host, whose traffic never leaves the machine.
func tlsOrLoopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	h := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// merchantProblems are the problems of the merchant's settings for WeChat
// Pay at --wxpay-url (external true): mch_id and appid, and the API
// version's credentials with every key file read and checked. Without an
// external WeChat Pay, v3 key settings are refused: the in-process
// emulator signs with its own test keys.
func (c ServeConfig) merchantProblems(external bool) []string {
	v3 := c.merchantV3()
	if !external {
		var p []string
		if v3.hasKeys() {
			p = append(p, "--wxpay-private-key, --wxpay-cert-serial, --wxpay-apiv3-key-file, --wxpay-public-key and --wxpay-public-key-id "+
				"are the keys of the merchant at --wxpay-url; the in-process emulator has its own test keys: set --wxpay-url or drop them")
		}
		if c.WechatAppSecretFile != "" {
			p = append(p, "--wechat-app-secret-file is the AppSecret of the app at WeChat's OAuth; "+
				"with the in-process emulator the checkout uses the emulator's: set --wxpay-url or drop it")
		}
		return p
	}
	var p []string
	for _, s := range []struct{ flag, v string }{{"--wxpay-mch-id", c.WxpayMchID}, {"--wxpay-appid", c.WxpayAppID}} {
		if s.v == "" {
			p = append(p, "no "+s.flag+": WeChat Pay at --wxpay-url needs the merchant's own")
		}
	}
	switch c.WxpayAPIVersion {
	case payment.APIv2:
		if c.WxpayAPIKey == "" {
			p = append(p, "no --wxpay-api-key: API v2 signs every request with the merchant's 32-character API key (or use API v3: --wxpay-api-version v3)")
		}
	case payment.APIv3:
		_, problems := v3.load(true)
		p = append(p, problems...)
	}
	if c.WechatAppSecretFile != "" {
		if _, _, err := readSecretFile("--wechat-app-secret-file", c.WechatAppSecretFile); err != nil {
			p = append(p, err.Error())
		}
	}
	return p
}

// mockProviders names each provider of the --providers file whose base URL
// is the mock model mounted by serve (under /mockllm), which production
// does not mount. A file that cannot be read is named too.
func (c ServeConfig) mockProviders() []string {
	b, err := os.ReadFile(c.Providers)
	if err != nil {
		return []string{fmt.Sprintf("--providers %s cannot be read: %v", c.Providers, err)}
	}
	f, err := gateway.ParseConfigFile(c.Providers, b)
	if err != nil {
		return []string{fmt.Sprintf("--providers %s is not a valid providers file: %v", c.Providers, err)}
	}
	var p []string
	for _, s := range mockProviderNames(f) {
		p = append(p, "--providers "+c.Providers+": "+s)
	}
	return p
}

// mockCatalog names each provider of --catalog at the mock model, or the
// catalog's problems (serve checks it again when it loads it).
func (c ServeConfig) mockCatalog() []string {
	cat, err := catalog.Load(c.Catalog)
	if err != nil {
		return []string{fmt.Sprintf("--catalog %s is not a valid catalog: %v", c.Catalog, err)}
	}
	var p []string
	for _, s := range mockProviderNames(cat.Gateway) {
		p = append(p, "--catalog "+c.Catalog+": "+s)
	}
	return p
}

// validateSettings refuses settings that cannot work in any mode.
func (c ServeConfig) validateSettings() error {
	switch {
	case c.Catalog != "" && c.Providers != "":
		return errors.New("serve: --catalog holds the providers: give --catalog or --providers, not both")
	case c.AdminToken != "" && c.AdminTokenFile != "":
		return errors.New("serve: --admin-token and --admin-token-file are two admin tokens: give one")
	case c.WxpayAPIVersion != payment.APIv2 && c.WxpayAPIVersion != payment.APIv3:
		return fmt.Errorf("serve: --wxpay-api-version must be v2 or v3, not %q", c.WxpayAPIVersion)
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("serve: --log-format must be text or json, not %q", c.LogFormat)
	case c.WxpayRolloutPercent < 0 || c.WxpayRolloutPercent > 100:
		return fmt.Errorf("serve: --wxpay-rollout-percent must be 0-100, got %d", c.WxpayRolloutPercent)
	case c.WxpayGuardFailureRate < 0 || c.WxpayGuardFailureRate > 1:
		return fmt.Errorf("serve: --wxpay-guard-failure-rate must be from 0 to 1, got %v", c.WxpayGuardFailureRate)
	case min(c.ReadHeaderTimeout, c.BodyTimeout, c.NotifyBodyTimeout, c.ModelBodyTimeout, c.IdleTimeout, c.StreamWriteTimeout) <= 0:
		return errors.New("serve: --read-header-timeout, --body-timeout, --notify-body-timeout, --model-body-timeout, --idle-timeout and --stream-write-timeout must be positive")
	case c.TrustedProxyHeader != "" && !httpapi.ValidHeaderName(c.TrustedProxyHeader):
		return fmt.Errorf("serve: --trusted-proxy-header must be a header name such as X-Forwarded-For or X-Real-IP, not %q", c.TrustedProxyHeader)
	case c.RefundPolicy != payment.RefundPolicyAdmin && c.RefundPolicy != payment.RefundPolicySelf:
		return fmt.Errorf("serve: --refund-policy must be admin or self, not %q", c.RefundPolicy)
	case c.RefundWindow <= 0:
		return fmt.Errorf("serve: --refund-window must be positive, got %s", c.RefundWindow)
	case c.WebhookRetention < 0:
		return fmt.Errorf("serve: --webhook-retention must not be negative (0 keeps webhook events forever), got %s", c.WebhookRetention)
	case c.UsageRetention < 0 || c.UsageRetention > 0 && c.UsageRetention < ledger.MinUsageRetention:
		return fmt.Errorf("serve: --usage-retention must be 0 (keep every usage record) or at least %s, got %s", ledger.MinUsageRetention, c.UsageRetention)
	case c.RateLimit < 0:
		return fmt.Errorf("serve: --rate-limit must not be negative, got %d", c.RateLimit)
	case c.MaxRequestDuration < 0:
		return fmt.Errorf("serve: --max-request-duration must not be negative, got %s", c.MaxRequestDuration)
	case c.WxpayAPIKey != "" && len(c.WxpayAPIKey) != 32:
		return fmt.Errorf("serve: --wxpay-api-key must be 32 characters, got %d", len(c.WxpayAPIKey))
	case (c.WxpayCert == "") != (c.WxpayCertKey == ""):
		return errors.New("serve: --wxpay-cert and --wxpay-cert-key go together")
	}
	for _, u := range []struct {
		flag, v  string
		required bool // empty means nothing for the others
	}{
		{"--public-url", c.PublicURL, false}, {"--wxpay-url", c.WxpayURL, false},
		{"--wechat-oauth-url", c.WechatOAuthURL, true}, {"--wechat-api-url", c.WechatAPIURL, true},
	} {
		switch {
		case u.v == "" && u.required:
			return fmt.Errorf("serve: %s must not be empty", u.flag)
		case u.v != "" && !httpURL(u.v):
			return fmt.Errorf("serve: %s must be an http(s) URL, not %q", u.flag, u.v)
		}
	}
	return nil
}

// httpURL reports whether raw is an absolute http(s) URL.
func httpURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
