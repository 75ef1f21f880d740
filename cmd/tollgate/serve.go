package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	goredis "github.com/redis/go-redis/v9"

	"tollgate"
	"tollgate/auth"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
	"tollgate/gateway/redisbreaker"
	"tollgate/httpapi"
	"tollgate/internal/cpuprio"
	"tollgate/kv"
	kvredis "tollgate/kv/redis"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/pricing"
	"tollgate/store/postgres"
	"tollgate/store/sqlite"
	"tollgate/web"
	"tollgate/web/webadapt"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// apiKeyCacheTTL is how long serve keeps a valid API key in memory after
// reading it (one store read per key per second instead of per request).
// A key revoked on this instance stops at once; on another instance
// sharing the database, within this long.
const apiKeyCacheTTL = time.Second

const serveSummary = "run the service: API, gateway, payments (zero config: SQLite, WeChat Pay emulator, mock LLM)"

func init() {
	register("serve", serveSummary, runServe)
}

// tuneRuntime is set by main for `tollgate serve` (not for tests, which
// run serve inside the test process): Run then tunes the Go runtime.
var tuneRuntime bool

// tuneServeRuntime sets the Go runtime for a long-running server, unless
// the environment sets GOGC or GOMAXPROCS itself (measured on 2 cores,
// docs/BENCHMARKS.md):
//   - GOGC 400: serve's live heap is small (tens of MB) and its garbage
//     comes from per-request JSON and HTTP; collecting a quarter as often
//     cut the 1-client median by ≈ 0.05 ms.
//   - on SQLite (sqlite true), GOMAXPROCS twice the default: the ledger's
//     committer and the SQLite checkpointer run CPU bursts of milliseconds
//     in this process, and with one P per core a request whose upstream
//     answer arrives during one waits for a P (1-client p99 +1.3 ms instead
//     of +2–4 ms, 16 clients 7,000 instead of 6,000 requests/s). With
//     PostgreSQL that work is in the database's processes and more Ps only
//     cost (1 client 346 instead of 552 requests/s), so it stays.
func tuneServeRuntime(sqlite bool) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if sqlite && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2 * runtime.GOMAXPROCS(0))
	}
}

// runServe runs Main until ctx is cancelled (SIGINT/SIGTERM), then closes it.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := NewMain(stdout, stderr)
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-m.serveErr:
		m.Close()
		return fmt.Errorf("serve: %w", err)
	}
	return m.Close()
}

// ServeConfig is every setting of `tollgate serve`. Flag names (DESIGN.md
// §5) are fixed; each is also TOLLGATE_<NAME> and a key of --config FILE.
type ServeConfig struct {
	Addr            string
	Data            string
	AdminToken      string
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
	Providers    string
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
}

// Main is the `tollgate serve` program: ParseFlags, then Run (which returns
// once the server listens), then Close. Tests run it directly.
type Main struct {
	Config ServeConfig
	// URL is the server's base URL once Run returned (the public URL when
	// one is set).
	URL string
	// AdminToken is the admin token in effect; AdminTokenFile is where it is
	// kept when it was not given.
	AdminToken     string
	AdminTokenFile string

	// Sim is the in-process WeChat Pay emulator, nil with --wxpay-url.
	Sim *wxpaysim.Server

	stdout, stderr io.Writer
	log            *slog.Logger

	ln       net.Listener
	srv      *http.Server
	serveErr chan error
	cancel   context.CancelFunc
	loops    sync.WaitGroup
	closers  []func() error // run in reverse order by Close

	gatewayConfig *gateway.Config  // providers, for the revenue report's provider cost
	rollout       *payment.Rollout // WeChat Pay rollout and failure guard
}

// NewMain returns a Main with the default configuration.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{stdout: stdout, stderr: stderr, serveErr: make(chan error, 1), Config: ServeConfig{
		Addr: "127.0.0.1:8080", Data: "./tollgate-data", WxpayAPIVersion: payment.APIv2, LogFormat: "text",
		WxpayRolloutPercent: 100, WxpayGuardFailureRate: 0.5,
	}}
}

// ParseFlags reads the configuration: defaults, then --config FILE (or
// TOLLGATE_CONFIG), then TOLLGATE_* variables, then flags.
func (m *Main) ParseFlags(args []string) error {
	fs := newFlagSet("serve", serveSummary)
	fs.SetOutput(m.stderr)
	c := &m.Config
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address HOST:PORT (port 0 picks a free one)")
	fs.StringVar(&c.Data, "data", c.Data, "data directory: the SQLite database and the generated admin token")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "admin token for /admin/*; empty: generated once and kept in DATA/admin-token")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "URL clients and WeChat Pay reach this server at (notify URLs); default http://ADDR")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "PostgreSQL URL (postgres://...); empty: SQLite under --data")
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL for the nonce store and rate limiter; empty: in-process")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", c.RedisPrefix, "prefix of every Redis key (nonces, limiter, circuit breakers); every instance of one deployment must use the same; empty: \"tollgate:\"")
	fs.StringVar(&c.WxpayAPIVersion, "wxpay-api-version", c.WxpayAPIVersion, "WeChat Pay API orders are placed with: v2 or v3")
	fs.StringVar(&c.WxpayURL, "wxpay-url", c.WxpayURL, "WeChat Pay API base URL; empty: the emulator in-process under /sandbox/wxpay/")
	fs.StringVar(&c.WxpayMchID, "wxpay-mch-id", c.WxpayMchID, "merchant id (mch_id); empty with the emulator: its default")
	fs.StringVar(&c.WxpayAppID, "wxpay-appid", c.WxpayAppID, "app id bound to the merchant")
	fs.StringVar(&c.WxpayAPIKey, "wxpay-api-key", c.WxpayAPIKey, "v2 API key (32 characters)")
	fs.StringVar(&c.WxpayCert, "wxpay-cert", c.WxpayCert, "merchant API certificate (apiclient_cert.pem) for v2 refunds with --wxpay-url")
	fs.StringVar(&c.WxpayCertKey, "wxpay-cert-key", c.WxpayCertKey, "its private key (apiclient_key.pem)")
	fs.StringVar(&c.Providers, "providers", c.Providers, "providers file (JSON); empty: the mock LLM in-process under /mockllm/")
	fs.IntVar(&c.RateLimit, "rate-limit", c.RateLimit, "gateway requests per minute per API key (shared through Redis); 0: no limit")
	fs.IntVar(&c.WxpayRolloutPercent, "wxpay-rollout-percent", c.WxpayRolloutPercent, "percent of accounts (sticky) offered WeChat Pay, 0-100")
	fs.Float64Var(&c.WxpayGuardFailureRate, "wxpay-guard-failure-rate", c.WxpayGuardFailureRate,
		"pause WeChat Pay for 5m when this share of >= 20 order placements in 5m failed (0 disables)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	// configPath reads --config before parsing; the flag is declared so
	// that it parses and shows in the usage.
	fs.String("config", "", "JSON file of settings keyed by flag name (see tollgate.example.json); env and flags override it")

	path := configPath(args)
	if path != "" {
		if err := loadConfigFile(fs, path); err != nil {
			return err
		}
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return m.validate()
}

// configPath finds --config in args, else TOLLGATE_CONFIG, before the
// flags are parsed (the file's values are the flags' defaults).
func configPath(args []string) string {
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return os.Getenv("TOLLGATE_CONFIG")
}

// loadConfigFile sets flags from a JSON object keyed by flag name. Keys
// starting with "_" are comments; any other unknown key is an error, so a
// misspelt setting is not silently ignored.
func loadConfigFile(fs *flag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("config %s: not a JSON object: %w", path, err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasPrefix(k, "_") {
			continue
		}
		if k == "config" || fs.Lookup(k) == nil {
			return fmt.Errorf("config %s: unknown setting %q", path, k)
		}
		var v string
		switch x := raw[k].(type) {
		case string:
			v = x
		case float64, bool:
			v = fmt.Sprint(x)
		default:
			return fmt.Errorf("config %s: %q must be a string, number or boolean", path, k)
		}
		if err := fs.Set(k, v); err != nil {
			return fmt.Errorf("config %s: %q: %w", path, k, err)
		}
	}
	return nil
}

func (m *Main) validate() error {
	c := m.Config
	switch {
	case c.WxpayAPIVersion != payment.APIv2 && c.WxpayAPIVersion != payment.APIv3:
		return fmt.Errorf("serve: --wxpay-api-version must be v2 or v3, not %q", c.WxpayAPIVersion)
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("serve: --log-format must be text or json, not %q", c.LogFormat)
	case c.WxpayRolloutPercent < 0 || c.WxpayRolloutPercent > 100:
		return fmt.Errorf("serve: --wxpay-rollout-percent must be 0-100, got %d", c.WxpayRolloutPercent)
	case c.WxpayGuardFailureRate < 0 || c.WxpayGuardFailureRate > 1:
		return fmt.Errorf("serve: --wxpay-guard-failure-rate must be from 0 to 1, got %v", c.WxpayGuardFailureRate)
	case c.RateLimit < 0:
		return fmt.Errorf("serve: --rate-limit must not be negative, got %d", c.RateLimit)
	case c.WxpayAPIKey != "" && len(c.WxpayAPIKey) != 32:
		return fmt.Errorf("serve: --wxpay-api-key must be 32 characters, got %d", len(c.WxpayAPIKey))
	case c.WxpayURL != "" && (c.WxpayMchID == "" || c.WxpayAppID == "" || c.WxpayAPIKey == ""):
		return errors.New("serve: --wxpay-url needs --wxpay-mch-id, --wxpay-appid and --wxpay-api-key")
	case (c.WxpayCert == "") != (c.WxpayCertKey == ""):
		return errors.New("serve: --wxpay-cert and --wxpay-cert-key go together")
	case c.WxpayURL != "" && c.WxpayAPIVersion == payment.APIv3:
		// TODO: the merchant private key, its serial and WeChat Pay's
		// public key have no flags in DESIGN.md §5 yet.
		return errors.New("serve: API v3 against a real WeChat Pay needs merchant key settings not supported yet; use v2 or the emulator")
	case c.PublicURL != "":
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("serve: --public-url must be an http(s) URL, not %q", c.PublicURL)
		}
	}
	return nil
}

// Run opens every dependency, starts the background loops and the HTTP
// server, prints what it started, and returns once the server listens.
// Call Close afterwards, also when Run fails.
func (m *Main) Run(ctx context.Context) (err error) {
	c := m.Config
	m.log = newLogger(m.stderr, c.LogFormat)
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("serve: listen: %w", err)
	}
	m.ln = ln
	m.closers = append(m.closers, func() error { ln.Close(); return nil })
	m.URL = strings.TrimRight(c.PublicURL, "/")
	if m.URL == "" {
		m.URL = "http://" + ln.Addr().String()
	}
	if err := m.adminToken(); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	st, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	if tuneRuntime {
		tuneServeRuntime(st.oneWriter)
	}
	lopt := ledger.Options{Committers: st.committers, MemoryHolds: st.oneWriter, LaterWindow: settleWindow}
	if st.oneWriter {
		// The committer's batches are CPU work in this process, off the
		// requests' path since the gateway answers before its settle
		// commits: at the lowest priority they wait for idle CPU instead
		// of delaying the answers (1-client p99, docs/BENCHMARKS.md).
		lopt.CommitterStart = func() func() {
			end, _ := cpuprio.Background() // refused or unsupported: normal priority will do
			return end
		}
	}
	led := ledger.New(st.ledger, lopt)
	m.closers = append(m.closers, led.Close)
	nonces, limiter, kvName, kvPing, err := m.openKV(ctx)
	if err != nil {
		return err
	}
	pricer, gw, mock, providers, err := m.openGateway(led, reg, limiter)
	if err != nil {
		return err
	}
	pay, wxName, err := m.openPayments(led, st, pricer, nonces, limiter, reg)
	if err != nil {
		return err
	}
	s := &httpapi.Server{
		Ledger: led, Auth: &auth.Service{Store: st.keys, Accounts: led, CacheTTL: apiKeyCacheTTL}, Pricer: pricer,
		Gateway: gw, AdminToken: m.AdminToken, MockLLM: mock,
		Ready:    []httpapi.Check{{Name: "store", Ping: st.ping}},
		Gatherer: reg, Registerer: reg, Logger: m.log,
	}
	if pay != nil {
		s.Payments = pay
		s.Revenue = &revenueReporter{payments: pay, ledger: led, pricer: pricer, gateway: m.gatewayConfig}
		s.Rollout = m.rollout
		if s.Routes, err = m.checkout(pay, led, pricer); err != nil {
			return err
		}
	}
	if m.Sim != nil {
		s.Sandbox, s.SandboxInfo = m.Sim, m.Sim.Config()
	}
	if kvPing != nil {
		s.Ready = append(s.Ready, httpapi.Check{Name: "redis", Ping: kvPing})
	}
	m.startLoops(ctx, led, pay)
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)}
	m.srv = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.serveErr <- err
		}
	}()
	m.printStart(st.name, kvName, wxName, providers)
	return nil
}

func newLogger(w io.Writer, format string) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// adminToken uses --admin-token, else the token kept in DATA/admin-token,
// else generates one and keeps it there (mode 0600), so it survives
// restarts and is never printed again.
func (m *Main) adminToken() error {
	if m.Config.AdminToken != "" {
		m.AdminToken = m.Config.AdminToken
		return nil
	}
	path := filepath.Join(m.Config.Data, "admin-token")
	m.AdminTokenFile = path
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		m.AdminToken = strings.TrimSpace(string(b))
		return nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("serve: read admin token: %w", err)
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("serve: admin token: %w", err)
	}
	m.AdminToken = "tga_" + hex.EncodeToString(b[:])
	if err := os.MkdirAll(m.Config.Data, 0o700); err != nil {
		return fmt.Errorf("serve: data directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(m.AdminToken+"\n"), 0o600); err != nil {
		return fmt.Errorf("serve: write admin token: %w", err)
	}
	return nil
}

// stores are the opened database's faces.
type stores struct {
	name       string
	ledger     ledger.Store
	keys       auth.Store
	payments   payment.Store // nil when the store has no order tables yet
	ping       func(context.Context) error
	committers int
	oneWriter  bool // this process is the store's only writer (SQLite, locked)
}

// storeOf is what a database adapter must be to back serve.
type storeOf interface {
	ledger.Store
	auth.Store
	Ping(context.Context) error
}

// settleWindow is how long the ledger's committer waits to gather more
// settles into one transaction when the first one has nobody waiting for
// it (the gateway answers before its settle commits).
const settleWindow = 10 * time.Millisecond

func (m *Main) openStore(ctx context.Context) (stores, error) {
	var (
		s    storeOf
		name string
		n    = 1
		one  bool
	)
	if u := m.Config.DatabaseURL; u != "" {
		pg, err := postgres.Open(ctx, u)
		if err != nil {
			return stores{}, fmt.Errorf("serve: %w", err)
		}
		s, name, n = pg, "PostgreSQL "+redactURL(u), 4
	} else {
		path := filepath.Join(m.Config.Data, sqlite.FileName)
		unlock, err := sqlite.LockWriter(path)
		switch {
		case tollgate.ErrorCode(err) == tollgate.ECONFLICT:
			return stores{}, fmt.Errorf("serve: %w", err)
		case err != nil:
			m.log.Warn("no one-writer lock on the SQLite database: holds are kept in it", "err", err)
		default:
			m.closers = append(m.closers, unlock)
			one = true
		}
		sq, err := sqlite.Open(ctx, path)
		if err != nil {
			return stores{}, fmt.Errorf("serve: %w", err)
		}
		s, name = sq, "SQLite "+path
	}
	m.closers = append(m.closers, s.Close)
	ps, _ := any(s).(payment.Store)
	return stores{name: name, ledger: s, keys: s, payments: ps, ping: s.Ping, committers: n, oneWriter: one}, nil
}

// redactURL shows a database or Redis URL without its password.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// kvStore is what the nonce store and limiter backend provides.
type kvStore interface {
	kv.NonceStore
	kv.Limiter
}

func (m *Main) openKV(ctx context.Context) (kv.NonceStore, kv.Limiter, string, func(context.Context) error, error) {
	if u := m.Config.RedisURL; u != "" {
		r, err := kvredis.Open(ctx, u, kvredis.Options{Prefix: m.Config.RedisPrefix})
		if err != nil {
			return nil, nil, "", nil, fmt.Errorf("serve: redis: %w", err)
		}
		m.closers = append(m.closers, r.Close)
		ping := func(ctx context.Context) error { _, _, err := r.Get(ctx, "readyz"); return err }
		return r, r, "Redis " + redactURL(u), ping, nil
	}
	var mem kvStore = kv.NewMemory(kv.MemoryOptions{})
	return mem, mem, "in-process (one instance only)", nil, nil
}

// openGateway builds the pricer and the model gateway: the providers file,
// or the mock LLM in-process with prices for its models.
func (m *Main) openGateway(led *ledger.Service, reg prometheus.Registerer, limiter kv.Limiter) (*pricing.Pricer, http.Handler, http.Handler, string, error) {
	pcfg := pricing.DefaultConfig()
	var (
		gcfg *gateway.Config
		mock http.Handler
		desc string
		err  error
	)
	if m.Config.Providers != "" {
		if gcfg, err = gateway.LoadConfig(m.Config.Providers); err != nil {
			return nil, nil, nil, "", fmt.Errorf("serve: providers: %w", err)
		}
		desc = "from " + m.Config.Providers
	} else {
		mock = &mockllm.Server{}
		gcfg = gateway.DefaultMockProviders(m.URL + "/mockllm")
		desc = "mock LLM in-process at " + m.URL + "/mockllm/"
		// The mock's public model names are priced like the "mock" model.
		if p, ok := pcfg.Models["mock"]; ok {
			models := make(map[string]pricing.ModelPrice, len(pcfg.Models)+len(gcfg.Models))
			for k, v := range pcfg.Models {
				models[k] = v
			}
			for name := range gcfg.Models {
				if _, ok := models[name]; !ok {
					models[name] = p
				}
			}
			pcfg.Models = models
		}
	}
	pricer, err := pricing.New(pcfg, pricing.Options{})
	if err != nil {
		return nil, nil, nil, "", fmt.Errorf("serve: pricing: %w", err)
	}
	metrics := gateway.NewMetrics(reg)
	opts := gateway.Options{
		Meter: &httpapi.Meter{Ledger: led, SettleLater: true, Logger: m.log}, Pricer: httpapi.Pricer{P: pricer}, Logger: m.log,
		Observer:  metrics,
		RequestID: func(r *http.Request) string { return httpapi.RequestID(r.Context()) },
	}
	if u := m.Config.RedisURL; u != "" {
		// Every instance sees one circuit breaker per deployment.
		ropt, err := goredis.ParseURL(u)
		if err != nil {
			return nil, nil, nil, "", fmt.Errorf("serve: redis: %w", err)
		}
		rc := goredis.NewClient(ropt)
		m.closers = append(m.closers, rc.Close)
		opts.Breaker = redisbreaker.New(rc, redisbreaker.Options{Logger: m.log, Prefix: m.Config.RedisPrefix})
		desc += "; circuit breakers shared through Redis"
	}
	// Every key's own limits (models, rpm, tpm, expiry) go through one
	// admitter over the shared limiter; --rate-limit is the rpm of keys
	// without their own.
	limits := gateway.NewLimits(limiter, reg)
	limits.Logger = m.log
	opts.Admitter = &httpapi.KeyAdmitter{Limits: limits, DefaultRPM: m.Config.RateLimit}
	if n := m.Config.RateLimit; n > 0 {
		desc += fmt.Sprintf("; %d requests/minute per API key by default", n)
	}
	m.gatewayConfig = gcfg
	gw, err := gateway.New(gcfg, opts)
	if err != nil {
		return nil, nil, nil, "", fmt.Errorf("serve: gateway: %w", err)
	}
	metrics.Track(gw)
	names := make([]string, 0, len(gcfg.Models))
	for n := range gcfg.Models {
		names = append(names, n)
	}
	sort.Strings(names)
	return pricer, gw.Handler(), mock, desc + " (models: " + strings.Join(names, ", ") + ")", nil
}

// openPayments builds the WeChat Pay clients (against the in-process
// emulator unless --wxpay-url is set) and the payment service. It returns
// a nil service when the store has no order tables.
func (m *Main) openPayments(led *ledger.Service, st stores, pricer *pricing.Pricer, nonces kv.NonceStore, limiter kv.Limiter, reg prometheus.Registerer) (*payment.Service, string, error) {
	c := m.Config
	cfg := payment.Config{
		APIVersion: c.WxpayAPIVersion, NotifyURL: m.URL + "/wxpay/notify", NotifyURLV3: m.URL + "/wxpay/notify/v3",
		TokenSecret: derive(m.AdminToken, "tollgate payment access tokens"),
	}
	if c.WxpayAPIVersion == payment.APIv3 {
		cfg.RefundNotifyURL = cfg.NotifyURLV3
	} else {
		cfg.RefundNotifyURL = cfg.NotifyURL
	}
	deps := payment.Deps{Ledger: led, Store: st.payments, Pricer: pricer, Nonces: nonces, Limiter: limiter,
		Metrics: httpapi.NewPaymentMetrics(reg), Logger: m.log, Rollout: m.newRollout()}
	var desc string
	if c.WxpayURL != "" {
		cfg.AppID, cfg.MchID = c.WxpayAppID, c.WxpayMchID
		deps.V2 = &wxpay.V2Client{BaseURL: c.WxpayURL, AppID: c.WxpayAppID, MchID: c.WxpayMchID, APIKey: c.WxpayAPIKey}
		if c.WxpayCert != "" {
			cert, err := tls.LoadX509KeyPair(c.WxpayCert, c.WxpayCertKey)
			if err != nil {
				return nil, "", fmt.Errorf("serve: merchant certificate: %w", err)
			}
			deps.V2.Certificate = &cert
		} else {
			m.log.Warn("no --wxpay-cert: v2 refunds will be refused until the merchant certificate is configured")
		}
		desc = fmt.Sprintf("production profile, API %s at %s, mch_id %s, appid %s", c.WxpayAPIVersion, c.WxpayURL, c.WxpayMchID, c.WxpayAppID)
	} else {
		sim := &wxpaysim.Server{MchID: c.WxpayMchID, AppID: c.WxpayAppID, APIKey: c.WxpayAPIKey,
			Logf: func(format string, args ...any) { m.log.Info(fmt.Sprintf(format, args...), "component", "wxpaysim") }}
		m.Sim = sim
		m.closers = append(m.closers, func() error { sim.Close(); return nil })
		sc := sim.Config()
		base := m.URL + "/sandbox/wxpay"
		cfg.AppID, cfg.MchID = sc.AppID, sc.MchID
		cert, err := throwawayClientCert(sc.MchID)
		if err != nil {
			return nil, "", err
		}
		deps.V2 = &wxpay.V2Client{BaseURL: base, AppID: sc.AppID, MchID: sc.MchID, APIKey: sc.APIKey, Certificate: cert}
		mkey, err := wxpay.LoadRSAPrivateKeyPEM([]byte(sc.MerchantPrivateKeyPEM))
		if err != nil {
			return nil, "", fmt.Errorf("serve: emulator merchant key: %w", err)
		}
		ring := wxpay.NewV3Keyring()
		if err := ring.AddPublicKeyPEM(sc.PlatformKeyID, []byte(sc.PlatformPublicKeyPEM)); err != nil {
			return nil, "", fmt.Errorf("serve: emulator public key: %w", err)
		}
		deps.V3 = &wxpay.V3Client{BaseURL: base, MchID: sc.MchID, AppID: sc.AppID, MerchantSerialNo: sc.MerchantSerial,
			MerchantKey: mkey, APIv3Key: sc.APIv3Key, Keyring: ring, WechatpaySerial: sc.PlatformKeyID}
		desc = fmt.Sprintf("sandbox profile, API %s, emulator in-process at %s/\n"+
			"    mch_id %s  appid %s  api key %s  apiv3 key %s (emulator test keys)",
			c.WxpayAPIVersion, base, sc.MchID, sc.AppID, sc.APIKey, sc.APIv3Key)
		if c.DatabaseURL != "" {
			// Each instance's emulator knows only the orders placed through
			// it, while the poller of any instance may query any order.
			desc += "\n    NOTE: every instance runs its own emulator; for several instances run one" +
				"\n    `tollgate sandbox` and point --wxpay-url (API v2) of every instance at it"
		}
	}
	if st.payments == nil {
		// TODO: wire once the store implements payment.Store (PostgreSQL
		// order tables are being written).
		m.log.Warn("payments disabled: this store has no order tables yet")
		return nil, desc + "\n    PAYMENTS DISABLED: this store does not implement payment.Store yet", nil
	}
	svc, err := payment.New(cfg, deps)
	if err != nil {
		return nil, "", fmt.Errorf("serve: payment: %w", err)
	}
	return svc, desc, nil
}

// throwawayClientCert makes a self-signed merchant API certificate for v2
// refunds against the emulator, which does not check it (the v2 client
// refuses to call /secapi/ without one).
func throwawayClientCert(mchID string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("serve: emulator client certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: mchID},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("serve: emulator client certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// checkout returns the hosted checkout's routes (package web): signed
// links from POST /v1/checkout/sessions, the checkout and account pages.
func (m *Main) checkout(pay *payment.Service, led *ledger.Service, pricer *pricing.Pricer) ([]httpapi.Route, error) {
	h := &web.Handler{
		Secret: derive(m.AdminToken, "tollgate checkout sessions"), PublicURL: m.URL, MerchantName: "tollgate",
		Sandbox: m.Sim != nil, Orders: webadapt.Orders{Payments: pay}, Refunder: webadapt.Orders{Payments: pay},
		Accounts: webadapt.Accounts{Ledger: led}, Catalog: webadapt.Catalog{Pricer: pricer}, Logger: m.log,
		Account: func(r *http.Request) (tollgate.AccountID, error) {
			c, ok := httpapi.CallerFrom(r.Context())
			switch {
			case !ok:
				return "", tollgate.Errorf(tollgate.EUNAUTHORIZED, "an API key is required")
			case c.Provisional:
				return "", tollgate.Errorf(tollgate.EFORBIDDEN, "a provisional access token cannot open a checkout")
			}
			return c.Account, nil
		},
	}
	if err := h.Check(); err != nil {
		return nil, fmt.Errorf("serve: checkout: %w", err)
	}
	var out []httpapi.Route
	for _, rt := range h.Routes() {
		out = append(out, httpapi.Route{Pattern: rt.Pattern, Handler: rt.Handler, Auth: rt.Auth, MaxBody: rt.MaxBody})
	}
	return out, nil
}

// derive is HMAC-SHA256(secret, label): a per-purpose key that every
// instance sharing the admin token derives alike.
func derive(secret, label string) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(label))
	return h.Sum(nil)
}

// startLoops runs the background work until Close: the hold sweeper and
// grant expiry every 30 s, and the payment poller.
func (m *Main) startLoops(ctx context.Context, led *ledger.Service, pay *payment.Service) {
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.loops.Add(1)
	go func() {
		defer m.loops.Done()
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			now := time.Now()
			if n, err := led.ExpireHolds(ctx, now); err != nil && ctx.Err() == nil {
				m.log.Error("expire holds", "err", err)
			} else if n > 0 {
				m.log.Info("expired holds", "count", n)
			}
			if n, err := led.ExpireGrants(ctx, now); err != nil && ctx.Err() == nil {
				m.log.Error("expire grants", "err", err)
			} else if n > 0 {
				m.log.Info("expired provisional grants", "count", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	if pay != nil {
		m.loops.Add(1)
		go func() {
			defer m.loops.Done()
			if err := pay.RunPoller(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("payment poller stopped", "err", err)
			}
		}()
	}
}

func (m *Main) printStart(store, kvName, wx, providers string) {
	w := m.stdout
	fmt.Fprintf(w, "tollgate serving on %s\n", m.URL)
	fmt.Fprintf(w, "  store:          %s\n", store)
	fmt.Fprintf(w, "  nonces/limiter: %s\n", kvName)
	fmt.Fprintf(w, "  WeChat Pay:     %s\n", wx)
	fmt.Fprintf(w, "  providers:      %s\n", providers)
	if m.AdminTokenFile != "" {
		fmt.Fprintf(w, "  admin token:    in %s\n", m.AdminTokenFile)
	} else {
		fmt.Fprintf(w, "  admin token:    as given by --admin-token\n")
	}
	fmt.Fprintf(w, "Open:\n")
	fmt.Fprintf(w, "  %s/healthz  %s/readyz  %s/metrics\n", m.URL, m.URL, m.URL)
	fmt.Fprintf(w, "  %s/v1/packages\n", m.URL)
	fmt.Fprintf(w, "  checkout links: POST %s/v1/checkout/sessions with an API key\n", m.URL)
	if m.Sim != nil {
		fmt.Fprintf(w, "  %s/sandbox/wxpay/sim/orders/{out_trade_no}/pay   (pay an order as the user)\n", m.URL)
	}
	tok := "$TOKEN"
	if m.AdminTokenFile != "" {
		tok = "$(cat " + m.AdminTokenFile + ")"
	}
	fmt.Fprintf(w, "Create an account:\n  curl -X POST -H \"Authorization: Bearer %s\" %s/admin/accounts\n", tok, m.URL)
}

// Close stops accepting connections, drains requests in flight, stops the
// background loops, closes the ledger's batchers, the emulator, Redis and
// the store, in that order. It is safe after a failed Run and twice.
func (m *Main) Close() error {
	var errs []error
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := m.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("serve: shutdown: %w", err))
		}
		cancel()
		m.srv = nil
	}
	if m.cancel != nil {
		m.cancel()
		m.loops.Wait()
		m.cancel = nil
	}
	for i := len(m.closers) - 1; i >= 0; i-- {
		if err := m.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	m.closers = nil
	return errors.Join(errs...)
}
