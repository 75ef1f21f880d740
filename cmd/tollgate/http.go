package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"tollgate/console"
	"tollgate/httpapi"
	"tollgate/payment"
	"tollgate/webhook"
)

// listen opens the listener first, so that the URL (with the port it got)
// is known to what is built on it: notify URLs, the mock's base URL.
func (m *Main) listen() error {
	ln, err := net.Listen("tcp", m.Config.Addr)
	if err != nil {
		return fmt.Errorf("serve: listen: %w", err)
	}
	m.ln = ln
	m.closers = append(m.closers, func() error { ln.Close(); return nil })
	m.URL = strings.TrimRight(m.Config.PublicURL, "/")
	if m.URL == "" {
		m.URL = "http://" + ln.Addr().String()
	}
	return nil
}

// httpServer mounts the services on the HTTP API.
func (m *Main) httpServer(st *stores, svc *services) *http.Server {
	s := &httpapi.Server{
		Timeouts: httpapi.Timeouts{ReadHeader: m.Config.ReadHeaderTimeout, Body: m.Config.BodyTimeout,
			NotifyBody: m.Config.NotifyBodyTimeout, ModelBody: m.Config.ModelBodyTimeout, Idle: m.Config.IdleTimeout},
		Ledger: svc.ledger, Auth: svc.auth, Pricer: svc.gateway.pricer,
		Gateway: svc.gateway.handler, AdminToken: m.AdminToken, MockLLM: svc.gateway.mock,
		Ready:    []httpapi.Check{{Name: "store", Ping: st.db.store.ProbeWrite}, {Name: "usage", Ping: svc.gateway.meter.Ready}},
		Gatherer: svc.reg, Registerer: svc.reg, Logger: m.log,
		Payments: svc.payments, Rollout: svc.rollout, Routes: svc.checkout, Money: svc.money,
	}
	s.Revenue = &payment.RevenueReporter{Payments: svc.payments, Costs: svc.gateway.catalog}
	s.Catalogs = svc.gateway.catalog
	s.Mode = m.Config.Mode
	s.TrustedProxyHeader = m.Config.TrustedProxyHeader
	s.Webhooks, s.WebhookWake = st.db.store, svc.webhooks.Wake
	s.WebhookPolicy = webhook.URLPolicy{HTTPSOnly: m.Config.Mode == ModeProduction, AllowPrivate: m.Config.WebhookAllowPrivate}
	if m.Config.Mode == ModeProduction {
		// Validate required --wxpay-url and --providers, so neither is
		// built; production never mounts them whatever happens.
		s.MockLLM = nil
	} else if m.Sim != nil {
		s.Sandbox, s.SandboxInfo = m.Sim, m.Sim.Config()
	}
	if st.kv.probe != nil {
		s.Ready = append(s.Ready, httpapi.Check{Name: "redis", Ping: st.kv.probe})
	}
	// The console at /admin/ acts through the admin API's own handler.
	con := &console.Console{Token: m.AdminToken, Revenue: s.Revenue, Secure: strings.HasPrefix(m.URL, "https://"), Logger: m.log,
		Debt: st.db.store, Orders: st.db.store, Health: svc.gateway.catalog.metrics, Sessions: st.kv.cache, Limiter: st.kv.limiter, TrustedProxyHeader: m.Config.TrustedProxyHeader}
	s.Routes = append(s.Routes, con.Routes()...)
	srv := s.HTTPServer()
	con.API = srv.Handler
	return srv
}

// serveHTTP serves srv on the listener until Close.
func (m *Main) serveHTTP(srv *http.Server) {
	m.srv = srv
	go func() {
		if err := srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.serveErr <- err
		}
	}()
}

// printStart prints the banner: where serve listens, what it runs on and
// what to open first.
func (m *Main) printStart(st *stores, svc *services) {
	w := m.stdout
	fmt.Fprintf(w, "tollgate serving on %s\n", m.URL)
	if m.Config.Mode == ModeProduction {
		fmt.Fprintf(w, "  mode:           production\n")
	} else {
		fmt.Fprintf(w, "  mode:           dev: no real money moves (a real WeChat Pay is refused; --mode production to go live)\n")
	}
	fmt.Fprintf(w, "  store:          %s\n", st.db.name)
	fmt.Fprintf(w, "  nonces/limiter: %s\n", st.kv.name)
	fmt.Fprintf(w, "  WeChat Pay:     %s\n", svc.wxDesc)
	fmt.Fprintf(w, "  providers:      %s\n", svc.gateway.desc)
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
