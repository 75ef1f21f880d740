package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"tollgate/wxpay/wxpaysim"
)

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
	// SIGHUP reloads the catalog; a bad one is refused and logged, and
	// the catalog in force is kept.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return m.Close()
		case err := <-m.serveErr:
			m.Close()
			return fmt.Errorf("serve: %w", err)
		case <-hup:
			_ = m.ReloadCatalog(ctx) // logged
		}
	}
}

// Main is the `tollgate serve` program: ParseFlags, then Run (which returns
// once the server listens), then Close. Tests run it directly.
//
// Run is four steps, each in its own file: open the stores (stores.go),
// build the services on them (services.go), mount them on HTTP (http.go)
// and start the background loops (loops.go).
type Main struct {
	Config ServeConfig
	// URL is the server's base URL once Run returned (the public URL when
	// one is set).
	URL string
	// AdminToken is the admin token in effect; AdminTokenFile is where it is
	// kept when it was not given, or the --admin-token-file it came from.
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
	catalog  *liveCatalog
}

// NewMain returns a Main with the default configuration.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{stdout: stdout, stderr: stderr, serveErr: make(chan error, 1), Config: DefaultServeConfig()}
}

// ParseFlags reads the configuration: defaults, then --config FILE (or
// TOLLGATE_CONFIG), then TOLLGATE_* variables, then flags.
func (m *Main) ParseFlags(args []string) error {
	fs := serveFlagSet(&m.Config)
	fs.SetOutput(m.stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	m.Config.resolveDefaults()
	return m.Config.Validate()
}

// Run opens every dependency, starts the background loops and the HTTP
// server, prints what it started, and returns once the server listens.
// Call Close afterwards, also when Run fails.
func (m *Main) Run(ctx context.Context) error {
	m.log = newLogger(m.stderr, m.Config.LogFormat)
	if err := m.listen(); err != nil {
		return err
	}
	if err := m.checkDataDir(); err != nil {
		return err
	}
	if err := m.adminToken(); err != nil {
		return err
	}
	st, err := m.openStores(ctx)
	if err != nil {
		return err
	}
	if tuneRuntime {
		tuneServeRuntime(st.db.oneWriter)
	}
	svc, err := m.buildServices(st)
	if err != nil {
		return err
	}
	if err := m.preflight(ctx, svc); err != nil {
		return err
	}
	m.startLoops(ctx, svc, st.db.store)
	m.serveHTTP(m.httpServer(st, svc))
	m.printStart(st, svc)
	return nil
}

func newLogger(w io.Writer, format string) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// Close stops accepting connections, drains requests in flight, stops the
// background loops, then closes what Run opened in reverse order: the
// emulator, the ledger's batchers, Redis, the store. It is safe after a failed Run and twice.
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
