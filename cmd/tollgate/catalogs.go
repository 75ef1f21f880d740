package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tollgate"
	"tollgate/catalog"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
	"tollgate/httpapi"
	"tollgate/metering"
	"tollgate/pricing"
	"tollgate/web"
)

// liveCatalog is the catalog in force and the gateway built from it,
// swapped whole and atomically by Reload (SIGHUP, POST
// /admin/catalog/reload).
//
// Prices: pricer is the one table every service reads (payments,
// /v1/packages, the checkout); each gateway is built on a pricing.Pricer
// of its own catalog that never changes, so a request keeps the gateway
// it entered, and with it the prices its hold was made at, through its
// settle. A reload builds the new gateway first; only when that worked
// are the prices and the routes swapped, so a bad file changes nothing.
type liveCatalog struct {
	path       string // --catalog; "" when the catalog is built in
	production bool
	pricer     *pricing.Pricer
	opts       gateway.Options // every gateway's, Pricer aside
	metrics    *gateway.Metrics
	reloads    *httpapi.CatalogMetrics
	log        *slog.Logger

	mu  sync.Mutex // one reload at a time
	cur atomic.Pointer[catalogState]
}

// catalogState is one catalog and the gateway built on its prices.
type catalogState struct {
	cat      *catalog.Catalog
	handler  http.Handler
	loadedAt time.Time
}

// ServeHTTP serves the gateway of the catalog in force.
func (l *liveCatalog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.cur.Load().handler.ServeHTTP(w, r)
}

// CostPrice is the provider cost of a deployment of the catalog in force
// (payment.CostPrices, for the revenue report).
func (l *liveCatalog) CostPrice(id string) (pricing.ModelPrice, error) {
	return l.cur.Load().cat.Gateway.CostPrice(id)
}

// Current is the catalog in force and when it was loaded.
func (l *liveCatalog) Current() (*catalog.Catalog, time.Time) {
	s := l.cur.Load()
	return s.cat, s.loadedAt
}

// Branding is the pages' branding of the catalog in force.
func (l *liveCatalog) Branding() web.Branding {
	c := l.cur.Load().cat
	b := c.File.Branding
	return web.Branding{Name: c.Name(), Accent: b.Accent, Support: b.Support, Footer: b.Footer, Logo: c.Logo, LogoType: c.LogoType}
}

// Support is the support contact of the catalog in force ("" when it
// has none, as without --catalog).
func (l *liveCatalog) Support() string {
	return l.cur.Load().cat.File.Branding.Support
}

// Advertised are the models the checkout shows.
func (l *liveCatalog) Advertised() []string { return l.cur.Load().cat.Advertised }

// Reload reads the catalog file again and puts it in force. A file that
// cannot be read or is not valid is refused with the reason, and the
// catalog in force is kept. actor is who asked ("SIGHUP", or the admin
// API's actor); the outcome is logged with it (logReload) and counted.
// Errors: ECONFLICT without --catalog, EINVALID for a bad file.
func (l *liveCatalog) Reload(ctx context.Context, actor string) (*catalog.Catalog, time.Time, error) {
	old, _ := l.Current()
	cur, at, err := l.reload()
	l.logReload(ctx, actor, old, cur, err)
	l.reloads.Reload(err == nil)
	if err == nil {
		l.reloads.Loaded(at)
	}
	return cur, at, err
}

// logReload is the one log line of a reload, whoever asked: who (actor),
// the file, and the outcome (the new and previous digests, or why it was
// refused and the digest kept).
func (l *liveCatalog) logReload(ctx context.Context, actor string, old, cur *catalog.Catalog, err error) {
	if err != nil {
		l.log.WarnContext(ctx, "catalog reload refused; the catalog in force is kept", "actor", actor, "file", l.path,
			"digest", old.Digest, "err", tollgate.ErrorMessage(err))
		return
	}
	l.log.InfoContext(ctx, "catalog reloaded", "actor", actor, "file", l.path, "digest", cur.Digest, "previous_digest", old.Digest,
		"models", strings.Join(slices.Sorted(maps.Keys(cur.Gateway.Models)), ","))
}

// reload is Reload's work: the new catalog in force, or the error that
// refused it (nothing changed).
func (l *liveCatalog) reload() (*catalog.Catalog, time.Time, error) {
	if l.path == "" {
		return nil, time.Time{}, tollgate.Errorf(tollgate.ECONFLICT, "serve runs without --catalog: there is no catalog file to reload")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old, _ := l.Current()
	cat, err := l.load()
	if err == nil {
		err = l.install(cat)
	}
	if err != nil {
		return nil, time.Time{}, &tollgate.Error{Code: tollgate.EINVALID, Op: "catalog.Reload",
			Message: "catalog reload refused, the catalog in force (sha256:" + old.Digest + ") is kept: " + err.Error(), Err: err}
	}
	cur, at := l.Current()
	return cur, at, nil
}

// load reads and checks --catalog, resolves its providers' API keys, and
// in production refuses a provider at the mock model.
func (l *liveCatalog) load() (*catalog.Catalog, error) {
	cat, err := catalog.Load(l.path)
	if err != nil {
		return nil, err
	}
	if err := cat.Gateway.Resolve(os.Getenv); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", l.path, err)
	}
	if l.production {
		if p := mockProviderNames(cat.Gateway); len(p) > 0 {
			return nil, fmt.Errorf("catalog %s: %s: production serves real models, never the mock model", l.path, strings.Join(p, "; "))
		}
	}
	return cat, nil
}

// install builds cat's gateway on a pricer of its own, then puts both in
// force. On error nothing changes.
func (l *liveCatalog) install(cat *catalog.Catalog) error {
	prices, err := l.pricer.Next(cat.Pricing)
	if err != nil {
		return err
	}
	opts := l.opts
	opts.Pricer = metering.Pricer{P: prices}
	gw, err := gateway.New(cat.Gateway, opts)
	if err != nil {
		return err
	}
	l.pricer.Set(prices)
	l.cur.Store(&catalogState{cat: cat, handler: gw.Handler(), loadedAt: time.Now()})
	l.metrics.Track(gw)
	return nil
}

// mockProviderNames names each provider of c whose base URL is the mock
// model mounted by serve (under /mockllm), which production does not mount.
func mockProviderNames(c *gateway.Config) []string {
	var p []string
	for _, pr := range c.Providers {
		u, err := url.Parse(pr.BaseURL)
		if err != nil {
			continue // Validate names it
		}
		if strings.HasPrefix(u.Path+"/", "/mockllm/") {
			p = append(p, fmt.Sprintf("provider %q points at the mock model (%s)", pr.Name, pr.BaseURL))
		}
	}
	return p
}

// firstCatalog is the catalog serve starts with: --catalog, else the
// --providers file or the mock LLM in-process (its models priced like
// the "mock" model) priced by the built-in prices. Every routable model
// must have a price: serve refuses to start otherwise.
func (m *Main) firstCatalog(l *liveCatalog, g *gatewayParts) (*catalog.Catalog, error) {
	switch c := m.Config; {
	case c.Catalog != "":
		cat, err := l.load()
		if err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		g.desc = fmt.Sprintf("from the catalog %s (sha256:%.12s…)", c.Catalog, cat.Digest)
		return cat, nil
	case c.Providers != "":
		cfg, err := gateway.LoadConfig(c.Providers)
		if err != nil {
			return nil, fmt.Errorf("serve: providers: %w", err)
		}
		cat, err := catalog.Builtin("--providers "+c.Providers, cfg, pricing.DefaultConfig())
		if err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		g.desc = "from " + c.Providers
		return cat, nil
	default:
		cfg := gateway.DefaultMockProviders(m.URL + "/mockllm")
		g.mock = &mockllm.Server{}
		g.desc = "mock LLM in-process at " + m.URL + "/mockllm/"
		pcfg := pricing.DefaultConfig().PriceLike("mock", slices.Collect(maps.Keys(cfg.Models)))
		return catalog.Builtin("", cfg, pcfg)
	}
}

// ReloadCatalog reloads --catalog (SIGHUP); the outcome is logged.
func (m *Main) ReloadCatalog(ctx context.Context) error {
	if m.catalog == nil {
		return errors.New("serve: not running")
	}
	_, _, err := m.catalog.Reload(ctx, "SIGHUP")
	return err
}
