package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"tollgate/auth"
	"tollgate/gateway"
	"tollgate/gateway/redisbreaker"
	"tollgate/httpapi"
	"tollgate/internal/cpuprio"
	"tollgate/ledger"
	"tollgate/metering"
	"tollgate/payment"
	"tollgate/pricing"
	"tollgate/web"
	"tollgate/web/webadapt"
	"tollgate/webhook"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// apiKeyCacheTTL is how long serve keeps a valid API key in memory after
// reading it (one store read per key per second instead of per request).
// A key revoked on this instance stops at once; on another instance
// sharing the database, within this long.
const apiKeyCacheTTL = time.Second

// settleWindow is how long the ledger's committer waits to gather more
// settles into one transaction when the first one has nobody waiting for
// it (the gateway answers before its settle commits).
const settleWindow = 10 * time.Millisecond

// services are the domain services serve runs, built on its stores.
type services struct {
	reg      *prometheus.Registry
	ledger   *ledger.Service
	auth     *auth.Service
	gateway  gatewayParts
	payments *payment.Service
	money    *httpapi.PaymentMetrics // payments', refunds' and adjustments' counters
	rollout  *payment.Rollout
	wxDesc   string // how WeChat Pay is reached, for the banner
	// v3 is the API v3 client of the merchant at --wxpay-url, nil with the
	// emulator or API v2: production's preflight checks it at start.
	v3       *wxpay.V3Client
	checkout []httpapi.Route // the hosted checkout's routes
	webhooks *webhook.Dispatcher
}

// gatewayParts are the model gateway and what it was built from.
type gatewayParts struct {
	pricer  *pricing.Pricer // the prices in force, for every service but the gateway
	catalog *liveCatalog    // the catalog in force; the revenue report's provider costs
	handler http.Handler    // the gateway of the catalog in force
	meter   *metering.Meter // its Ready is a /readyz check
	mock    http.Handler    // the mock LLM in-process, nil with --providers or --catalog
	desc    string          // the providers, for the banner
}

func (m *Main) buildServices(st *stores) (*services, error) {
	svc := &services{reg: prometheus.NewRegistry()}
	svc.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	svc.webhooks = &webhook.Dispatcher{Store: st.db.store, AllowPrivate: m.Config.WebhookAllowPrivate,
		HTTPSOnly: m.Config.Mode == ModeProduction,
		Metrics:   httpapi.NewWebhookMetrics(svc.reg), Logger: m.log,
		// Under a burst of payments every ledger batch commits events:
		// one claim per 5 ms serves them all (issue 21).
		WakeGap: 5 * time.Millisecond}
	opt := m.ledgerOptions(st.db)
	// A money change's events are delivered as soon as it commits, not at
	// the dispatcher's next poll.
	opt.EventsCommitted = svc.webhooks.Wake
	svc.ledger = ledger.New(st.db.store, opt)
	m.closers = append(m.closers, svc.ledger.Close)
	svc.auth = &auth.Service{Store: st.db.store, Accounts: svc.ledger, CacheTTL: apiKeyCacheTTL}
	var err error
	if svc.gateway, err = m.buildGateway(st, svc); err != nil {
		return nil, err
	}
	if err := m.buildPayments(st, svc); err != nil {
		return nil, err
	}
	if svc.checkout, err = m.buildCheckout(svc); err != nil {
		return nil, err
	}
	return svc, nil
}

func (m *Main) ledgerOptions(db database) ledger.Options {
	opt := ledger.Options{Committers: db.committers, MemoryHolds: db.oneWriter, LaterWindow: settleWindow}
	if db.oneWriter {
		// The committer's batches are CPU work in this process, off the
		// requests' path since the gateway answers before its settle
		// commits: at the lowest priority they wait for idle CPU instead
		// of delaying the answers (1-client p99, docs/BENCHMARKS.md).
		opt.CommitterStart = func() func() {
			end, _ := cpuprio.Background() // refused or unsupported: normal priority will do
			return end
		}
	}
	return opt
}

// buildGateway builds the catalog in force (catalogs.go), the pricer
// every service reads and the model gateway, metered by the ledger;
// circuit breakers are shared through Redis when there is one, else kept
// in this process across catalog reloads.
func (m *Main) buildGateway(st *stores, svc *services) (gatewayParts, error) {
	g := gatewayParts{}
	metrics := gateway.NewMetrics(svc.reg)
	live := &liveCatalog{path: m.Config.Catalog, production: m.Config.Mode == ModeProduction, metrics: metrics,
		reloads: httpapi.NewCatalogMetrics(svc.reg), log: m.log}
	cat, err := m.firstCatalog(live, &g)
	if err != nil {
		return g, err
	}
	if live.pricer, err = pricing.New(cat.Pricing, pricing.Options{}); err != nil {
		return g, fmt.Errorf("serve: pricing: %w", err)
	}
	// Closed before the ledger (closers run in reverse): its last retry of
	// the settles the store failed goes through the ledger.
	g.meter = &metering.Meter{Ledger: svc.ledger, SettleLater: true, Logger: m.log}
	m.closers = append(m.closers, g.meter.Close)
	// Every gateway a reload builds shares these: the upstream
	// connections, the tokenizer and the circuit breakers.
	opts := gateway.Options{
		Meter: g.meter, Logger: m.log, Observer: metrics,
		Client: gateway.NewUpstreamClient(), Counter: &gateway.TiktokenCounter{},
		Breaker:            gateway.NewBreaker(5, 30*time.Second, nil),
		RequestID:          func(r *http.Request) string { return httpapi.RequestID(r.Context()) },
		MaxRequestDuration: m.Config.MaxRequestDuration,
		StreamWriteTimeout: m.Config.StreamWriteTimeout,
	}
	if st.kv.redis != nil {
		// Every instance sees one circuit breaker per deployment.
		opts.Breaker = redisbreaker.New(st.kv.redis, redisbreaker.Options{Logger: m.log, Prefix: m.Config.RedisPrefix})
		g.desc += "; circuit breakers shared through Redis"
	}
	// Every key's own limits (models, rpm, tpm, expiry) go through one
	// admitter over the shared limiter; --rate-limit is the rpm of keys
	// without their own.
	limits := gateway.NewLimits(st.kv.limiter, svc.reg)
	limits.Logger = m.log
	opts.Admitter = &metering.KeyAdmitter{Limits: limits, DefaultRPM: m.Config.RateLimit}
	if n := m.Config.RateLimit; n > 0 {
		g.desc += fmt.Sprintf("; %d requests/minute per API key by default", n)
	}
	live.opts = opts
	if err := live.install(cat); err != nil {
		return g, fmt.Errorf("serve: gateway: %w", err)
	}
	_, at := live.Current()
	live.reloads.Loaded(at)
	g.pricer, g.catalog, g.handler = live.pricer, live, live
	m.catalog = live
	g.desc += " (models: " + strings.Join(slices.Sorted(maps.Keys(cat.Gateway.Models)), ", ") + ")"
	return g, nil
}

// buildPayments builds the WeChat Pay clients (against the in-process
// emulator unless --wxpay-url is set) and the payment service.
func (m *Main) buildPayments(st *stores, svc *services) error {
	c := m.Config
	cfg := payment.Config{
		APIVersion: c.WxpayAPIVersion, NotifyURL: m.URL + "/wxpay/notify", NotifyURLV3: m.URL + "/wxpay/notify/v3",
		TokenSecret:  payment.TokenSecretFrom(m.AdminToken),
		RefundPolicy: c.RefundPolicy, RefundWindow: c.RefundWindow,
		// The catalog's support contact, of the catalog in force (none
		// without --catalog), is where a refused refund says to ask.
		RefundContactFunc: svc.gateway.catalog.Support,
	}
	if c.WxpayAPIVersion == payment.APIv3 {
		cfg.RefundNotifyURL = cfg.NotifyURLV3
	} else {
		cfg.RefundNotifyURL = cfg.NotifyURL
	}
	svc.money = httpapi.NewPaymentMetrics(svc.reg)
	svc.rollout = payment.NewRollout(c.WxpayRolloutPercent, c.WxpayGuardFailureRate, m.log)
	deps := payment.Deps{Ledger: svc.ledger, Store: st.db.store, EventsCommitted: svc.webhooks.Wake, Pricer: svc.gateway.pricer, Nonces: st.kv.nonces, Limiter: st.kv.limiter,
		Metrics: svc.money, Logger: m.log, Rollout: svc.rollout}
	var err error
	if c.WxpayURL != "" {
		svc.wxDesc, err = m.wxpayClients(&cfg, &deps)
		svc.v3 = deps.V3
	} else {
		svc.wxDesc, err = m.emulatorClients(&cfg, &deps)
	}
	if err != nil {
		return err
	}
	if svc.payments, err = payment.New(cfg, deps); err != nil {
		return fmt.Errorf("serve: payment: %w", err)
	}
	// Before the ledger and the stores close (closers run in reverse):
	// the order writes still queued are committed.
	m.closers = append(m.closers, func() error { svc.payments.Close(); return nil })
	return nil
}

// wxpayClients are the clients of WeChat Pay at --wxpay-url (production):
// API v2 with --wxpay-api-key (also under API v3, so that notifications and
// refunds of orders placed with v2 keep working), API v3 with the merchant
// key files.
func (m *Main) wxpayClients(cfg *payment.Config, deps *payment.Deps) (string, error) {
	c := m.Config
	cfg.AppID, cfg.MchID = c.WxpayAppID, c.WxpayMchID
	desc := fmt.Sprintf("production profile, API %s at %s, mch_id %s, appid %s", c.WxpayAPIVersion, c.WxpayURL, c.WxpayMchID, c.WxpayAppID)
	if c.WxpayAPIKey != "" {
		deps.V2 = &wxpay.V2Client{BaseURL: c.WxpayURL, AppID: c.WxpayAppID, MchID: c.WxpayMchID, APIKey: c.WxpayAPIKey}
		if c.WxpayCert != "" {
			cert, err := tls.LoadX509KeyPair(c.WxpayCert, c.WxpayCertKey)
			if err != nil {
				return "", fmt.Errorf("serve: merchant certificate: %w", err)
			}
			deps.V2.Certificate = &cert
		} else {
			m.log.Warn("no --wxpay-cert: v2 refunds will be refused until the merchant certificate is configured")
		}
	}
	if c.WxpayAPIVersion == payment.APIv3 {
		mv3 := c.merchantV3()
		keys, problems := mv3.load(true)
		if len(problems) > 0 {
			// Validate read the same files: one changed since.
			return "", fmt.Errorf("serve: WeChat Pay API v3:\n  - %s", strings.Join(problems, "\n  - "))
		}
		for _, w := range keys.warnings {
			m.log.Warn(w)
		}
		deps.V3 = mv3.client(keys)
		if deps.V3.Certificates != nil {
			deps.V3.Certificates.Logger = m.log
		}
		desc += "\n    " + mv3.describe(keys)
	}
	return desc, nil
}

// emulatorClients start the WeChat Pay emulator in-process (served under
// /sandbox/wxpay/) and are its clients (sandbox profile).
func (m *Main) emulatorClients(cfg *payment.Config, deps *payment.Deps) (string, error) {
	c := m.Config
	sim := &wxpaysim.Server{MchID: c.WxpayMchID, AppID: c.WxpayAppID, APIKey: c.WxpayAPIKey,
		Logf: func(format string, args ...any) { m.log.Info(fmt.Sprintf(format, args...), "component", "wxpaysim") }}
	m.Sim = sim
	m.closers = append(m.closers, func() error { sim.Close(); return nil })
	sc := sim.Config()
	base := m.URL + "/sandbox/wxpay"
	cfg.AppID, cfg.MchID = sc.AppID, sc.MchID
	// A developer pays H5 orders from 127.0.0.1 here; against WeChat Pay
	// (--wxpay-url) a private client IP is a proxy's and refused.
	cfg.AllowPrivateClientIP = true
	var err error
	if deps.V2, deps.V3, err = sc.Clients(base); err != nil {
		return "", fmt.Errorf("serve: emulator: %w", err)
	}
	desc := fmt.Sprintf("sandbox profile, API %s, emulator in-process at %s/\n"+
		"    mch_id %s  appid %s  api key %s  apiv3 key %s (emulator test keys)",
		c.WxpayAPIVersion, base, sc.MchID, sc.AppID, sc.APIKey, sc.APIv3Key)
	if c.DatabaseURL != "" {
		// Each instance's emulator knows only the orders placed through
		// it, while the poller of any instance may query any order.
		desc += "\n    NOTE: every instance runs its own emulator; for several instances run one" +
			"\n    `tollgate sandbox` and point --wxpay-url of every instance at it, with the merchant keys it prints or was given (API v2 or v3)"
	}
	return desc, nil
}

// buildCheckout returns the hosted checkout's routes (package web): signed
// links from POST /v1/checkout/sessions, the checkout and account pages.
func (m *Main) buildCheckout(svc *services) ([]httpapi.Route, error) {
	orders := webadapt.Orders{Payments: svc.payments}
	h := &web.Handler{
		Secret: web.SecretFrom(m.AdminToken), PublicURL: m.URL, Branding: svc.gateway.catalog.Branding,
		Sandbox: m.Sim != nil, Orders: orders, Refunder: orders,
		// Under --refund-policy admin the account page shows how to ask
		// the operator (the branding's support contact) instead of refund
		// buttons; under self, buttons within --refund-window.
		RefundByOperator: m.Config.RefundPolicy != payment.RefundPolicySelf, RefundWindow: m.Config.RefundWindow,
		Accounts: webadapt.Accounts{Ledger: svc.ledger}, Catalog: webadapt.Catalog{Pricer: svc.gateway.pricer, Advertised: svc.gateway.catalog.Advertised}, Logger: m.log,
		Account: httpapi.CheckoutAccount,
		// Apps (platform keys, the admin token) open checkouts for their
		// users, found or made by external_id; http:// return URLs only
		// in dev mode (or to loopback).
		Users: webadapt.Users{Auth: svc.auth}, DevMode: m.Config.Mode == ModeDev,
		// H5 orders send WeChat Pay the payer's IP, as the API does.
		ClientIP: func(r *http.Request) string { return httpapi.ClientIP(r, m.Config.TrustedProxyHeader) },
	}
	if m.Sim != nil {
		// Inside WeChat the page pays with the JSAPI sheet after getting
		// the openid from the emulator's OAuth, mounted in-process.
		sc, base := m.Sim.Config(), m.URL+"/sandbox/wxpay"
		secret := sc.AppSecret
		if secret == "" {
			secret = m.Sim.AppSecret
		}
		h.OAuth = webadapt.OAuth{Client: &wxpay.OAuthClient{AuthorizeURL: base, APIURL: base, AppID: sc.AppID, Secret: secret}}
	} else if oc, err := m.wechatOAuth(); err != nil {
		return nil, err
	} else if oc != nil {
		// WeChat's OAuth at --wechat-oauth-url / --wechat-api-url with the
		// app's AppSecret; without it pages inside WeChat show the QR code.
		h.OAuth = webadapt.OAuth{Client: oc}
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

// preflight checks the merchant's API v3 settings against WeChat Pay before
// serve takes a payment: production runs `tollgate wxpay check`'s checks
// and refuses to start on a failure, naming each; dev against an external
// emulator only downloads the platform certificates in certificate mode.
//
// When the only failure is reaching WeChat Pay (its connection check:
// unreachable, or WeChat Pay answering with its own fault), production
// starts with a loud warning instead: the settings were read and checked
// (Validate), the model API works without WeChat Pay, and payments fail
// until it answers (in certificate mode the certificate manager keeps
// trying to download). Refusing would turn WeChat Pay's outage into one
// of the whole service at every restart.
func (m *Main) preflight(ctx context.Context, svc *services) error {
	v3 := svc.v3
	if v3 == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	if m.Config.Mode != ModeProduction {
		if v3.Certificates == nil {
			return nil
		}
		if err := v3.Certificates.Refresh(ctx); err != nil {
			return fmt.Errorf("serve: WeChat Pay platform certificates: %w", err)
		}
		return nil
	}
	results := v3.Preflight(ctx)
	failed, outage := preflightFailures(results)
	switch {
	case len(failed) == 0:
		svc.wxDesc += fmt.Sprintf("\n    preflight: all %d checks passed", len(results))
	case outage:
		var cause string
		for _, r := range results {
			if r.Name == wxpay.CheckConnection {
				cause = r.Problem
			}
		}
		m.log.Error("WeChat Pay could not be reached at start: serving anyway; the model API works, payments fail until WeChat Pay answers; "+
			"the merchant settings are not checked yet (run tollgate wxpay check)", "connection", cause)
		svc.wxDesc += "\n    WARNING: WeChat Pay could not be reached at start: payments fail until it answers (the model API works)." +
			"\n      connection: " + cause +
			"\n      The merchant settings are not checked yet: run `tollgate wxpay check` once WeChat Pay answers."
	default:
		return fmt.Errorf("serve: --mode production refuses to start: WeChat Pay's preflight (tollgate wxpay check) failed:\n  - %s",
			strings.Join(failed, "\n  - "))
	}
	return nil
}
