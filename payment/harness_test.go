package payment_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/clocktest"
	"tollgate/internal/testenv"
	"tollgate/kv"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/pricing"
	"tollgate/store/postgres"
	"tollgate/store/sqlite"
	"tollgate/store/storetest"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// mode is one way of talking to WeChat Pay.
type mode struct {
	name     string
	version  string
	signType string
}

var modes = []mode{
	{"v2-MD5", payment.APIv2, wxpay.SignTypeMD5},
	{"v2-HMAC-SHA256", payment.APIv2, wxpay.SignTypeHMACSHA256},
	{"v3", payment.APIv3, ""},
}

// backend opens a fresh store holding the ledger and the orders.
type backend struct {
	name string
	open func(tb testing.TB) storetest.PaymentStore
}

var backends = []backend{{"sqlite", openSQLite}, {"postgres", openPostgres}}

// openPostgres skips unless PostgreSQL is up (fails instead with
// TOLLGATE_REQUIRE_SERVICES=1).
func openPostgres(tb testing.TB) storetest.PaymentStore {
	tb.Helper()
	s, err := postgres.Open(context.Background(), testenv.MustPostgres(tb))
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}
	return s
}

func openSQLite(tb testing.TB) storetest.PaymentStore {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), sqlite.FileName))
	if err != nil {
		tb.Fatalf("open sqlite: %v", err)
	}
	return s
}

// forEach runs body for every backend × mode.
func forEach(t *testing.T, body func(t *testing.T, w *world)) {
	for _, b := range backends {
		for _, m := range modes {
			t.Run(b.name+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				body(t, newWorld(t, b, m, nil))
			})
		}
	}
}

// world is one test's system: the emulator and a notify receiver, each
// behind a real HTTP server, and a payment.Service over a fresh store.
type world struct {
	t    testing.TB
	ctx  context.Context
	mode mode
	// clock is the one manual clock every component shares: the service
	// and its poller, the ledger, the nonce store, the emulator (expiry and
	// its notification schedule) and the v3 client's verification window.
	clock   *clocktest.Clock
	sim     *wxpaysim.Server
	simURL  string
	notify  string // the notify receiver's base URL
	store   storetest.PaymentStore
	ledger  *ledger.Service
	nonces  *kv.Memory
	metrics *payment.Counters
	svc     *payment.Service
	v2      *wxpay.V2Client
	v3      *wxpay.V3Client

	mu       sync.Mutex
	received [][]byte // bodies of POSTs to the notify receiver
	headers  []http.Header
	logs     syncBuffer // everything the service logged
	tokens   []string   // access tokens handed out, which must never be logged
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newWorld(tb testing.TB, b backend, m mode, tweak func(*payment.Config, *payment.Deps)) *world {
	tb.Helper()
	w := &world{t: tb, ctx: context.Background(), mode: m, clock: clocktest.New(time.Now().UTC().Truncate(time.Second)),
		metrics: &payment.Counters{}}
	w.nonces = kv.NewMemory(kv.MemoryOptions{Clock: w.clock})
	w.sim = &wxpaysim.Server{Clock: w.clock, RefundDelay: -1, Logf: tb.Logf}
	simSrv := httptest.NewTLSServer(w.sim) // TLS: v2 refunds need the merchant certificate
	tb.Cleanup(simSrv.Close)
	tb.Cleanup(func() { w.sim.Close() })
	w.simURL = simSrv.URL

	notify := httptest.NewServer(http.HandlerFunc(w.serveNotify))
	tb.Cleanup(notify.Close)
	w.notify = notify.URL

	w.store = b.open(tb)
	w.ledger = ledger.New(w.store, ledger.Options{Clock: w.clock})
	tb.Cleanup(func() {
		w.ledger.Close()
		w.store.Close()
	})
	tb.Cleanup(func() {
		if !tb.Failed() {
			w.mustAudit()
		}
	})
	pr := mustPricer(tb)
	cfg := w.sim.Config()
	w.v2 = &wxpay.V2Client{BaseURL: simSrv.URL, AppID: cfg.AppID, MchID: cfg.MchID, APIKey: cfg.APIKey,
		SignType: m.signType, HTTPClient: simSrv.Client(), Certificate: mustClientCert(tb)}
	mkey, err := wxpay.LoadRSAPrivateKeyPEM([]byte(cfg.MerchantPrivateKeyPEM))
	if err != nil {
		tb.Fatal(err)
	}
	ring := wxpay.NewV3Keyring()
	if err := ring.AddPublicKeyPEM(cfg.PlatformKeyID, []byte(cfg.PlatformPublicKeyPEM)); err != nil {
		tb.Fatal(err)
	}
	w.v3 = &wxpay.V3Client{BaseURL: simSrv.URL, MchID: cfg.MchID, AppID: cfg.AppID, MerchantSerialNo: cfg.MerchantSerial,
		MerchantKey: mkey, APIv3Key: cfg.APIv3Key, Keyring: ring, HTTPClient: simSrv.Client(), Clock: w.clock}
	pc := payment.Config{APIVersion: m.version, SignType: m.signType,
		NotifyURL: notify.URL + "/v2", NotifyURLV3: notify.URL + "/v3", RefundNotifyURL: notify.URL + "/" + m.version,
		TokenSecret: []byte("test secret"), RefundPolicy: payment.RefundPolicySelf}
	deps := payment.Deps{Ledger: w.ledger, Store: w.store, Pricer: pr, Nonces: w.nonces, Limiter: w.nonces,
		V2: w.v2, V3: w.v3, Metrics: w.metrics, Clock: w.clock,
		Logger: slog.New(slog.NewTextHandler(&w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	tb.Cleanup(func() { w.mustNotLogSecrets(cfg) })
	if tweak != nil {
		tweak(&pc, &deps)
	}
	w.svc, err = payment.New(pc, deps)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(w.svc.Close) // before the ledger and store close: drains its order writes
	return w
}

// serveNotify is the notify receiver: HEAD answers 200, POST goes to the
// service's handler for its API version.
func (w *world) serveNotify(rw http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, wxpay.MaxBodyBytes+1))
	if err != nil {
		rw.WriteHeader(http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	w.received = append(w.received, body)
	w.headers = append(w.headers, r.Header.Clone())
	w.mu.Unlock()
	var status int
	var reply []byte
	if r.URL.Path == "/v3" {
		status, reply = w.svc.HandleV3Notification(r.Context(), r.Header, body)
	} else {
		status, reply = w.svc.HandleV2Notification(r.Context(), body)
	}
	rw.WriteHeader(status)
	rw.Write(reply)
}

func (w *world) mustAccount(id tollgate.AccountID) {
	w.t.Helper()
	if _, err := w.ledger.CreateAccount(w.ctx, id); err != nil {
		w.t.Fatal(err)
	}
}

// fp is a well-formed device fingerprint.
const fp = "0123456789abcdef0123"

func (w *world) mustOrder(account tollgate.AccountID, pkg string) payment.OrderResult {
	w.t.Helper()
	res, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: account, PackageID: pkg, DeviceFingerprint: fp})
	if err != nil {
		w.t.Fatalf("CreateOrder: %v", err)
	}
	if res.AccessToken != nil {
		w.mu.Lock()
		w.tokens = append(w.tokens, res.AccessToken.Token)
		w.mu.Unlock()
	}
	return res
}

// mustNotLogSecrets fails if a merchant key or an access token was logged.
func (w *world) mustNotLogSecrets(cfg wxpaysim.Config) {
	logs := w.logs.String()
	w.mu.Lock()
	secrets := append([]string{cfg.APIKey, cfg.APIv3Key, "test secret"}, w.tokens...)
	w.mu.Unlock()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			w.t.Errorf("a secret was logged: %.6s…", s)
		}
	}
}

func (w *world) order(no string) payment.Order {
	w.t.Helper()
	o, err := w.store.Order(w.ctx, no)
	if err != nil {
		w.t.Fatal(err)
	}
	return o
}

// eventually waits until cond holds. The deadline only stops a hung test;
// nothing here asserts on speed.
func (w *world) eventually(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *world) waitStatus(no string, st payment.Status) {
	w.t.Helper()
	w.eventually(fmt.Sprintf("order %s to be %s", no, st), func() bool { return w.order(no).Status == st })
}

// quiesce stops the emulator's deliveries, so nothing changes behind a digest.
func (w *world) quiesce() { w.sim.Close() }

// digest hashes every money table and every order and refund record.
func (w *world) digest(accounts ...tollgate.AccountID) string {
	w.t.Helper()
	var d *ledger.Dump
	if err := w.store.View(w.ctx, func(tx ledger.ReadTx) (err error) {
		d, err = tx.Dump(w.ctx)
		return err
	}); err != nil {
		w.t.Fatal(err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%+v|%+v|%+v|%+v|%+v|%+v", d.Accounts, d.Lots, d.Holds, d.Grants, d.Refunds, d.Usage)
	for _, a := range accounts {
		os, err := w.store.ListOrders(w.ctx, a, 1000)
		if err != nil {
			w.t.Fatal(err)
		}
		for _, o := range os {
			rs, _ := w.store.RefundsByOrder(w.ctx, o.OutTradeNo)
			fmt.Fprintf(h, "|%+v|%+v", o, rs)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (w *world) mustAudit() {
	w.t.Helper()
	vs, err := ledger.Audit(w.ctx, w.store, ledger.AuditOptions{})
	if err != nil {
		w.t.Fatalf("audit: %v", err)
	}
	for _, v := range vs {
		w.t.Errorf("audit violation: %s", v)
	}
}

// lots returns the account's lots.
func (w *world) lots(a tollgate.AccountID) []ledger.Lot {
	w.t.Helper()
	ls, err := w.ledger.Lots(w.ctx, a)
	if err != nil {
		w.t.Fatal(err)
	}
	return ls
}

// poll advances the clock by d and runs one poller round.
func (w *world) poll(d time.Duration) int {
	w.t.Helper()
	w.clock.Advance(d)
	n, err := w.svc.PollOnce(w.ctx)
	if err != nil {
		w.t.Fatalf("PollOnce: %v", err)
	}
	return n
}

func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := tollgate.ErrorCode(err); got != code {
		tb.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

// mustClientCert makes a self-signed merchant API certificate (the
// emulator does not check it; the v2 client refuses refunds without one).
func mustClientCert(tb testing.TB) *tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: wxpaysim.DefaultMchID},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func mustPricer(tb testing.TB) *pricing.Pricer {
	tb.Helper()
	pr, err := pricing.New(pricing.DefaultConfig(), pricing.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return pr
}
