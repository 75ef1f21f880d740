package wxpay_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/internal/clocktest"
	"tollgate/wxpay"
)

// v3CertFake is WeChat Pay in certificate mode: GET /v3/certificates lists
// the certificates in listed, encrypted with the test APIv3 key; every
// other request gets answer. Everything is signed at the fake clock's time
// by the key of the certificate serial signer.
type v3CertFake struct {
	clock *clocktest.Clock

	mu      sync.Mutex
	keys    map[string]*rsa.PrivateKey // guarded by mu; by certificate serial
	certs   map[string]*x509.Certificate
	listed  []string // guarded by mu; serials GET /v3/certificates lists
	signer  string   // guarded by mu
	answer  string   // guarded by mu
	status  int      // guarded by mu; of answer, 200 when 0
	broken  bool     // guarded by mu; /v3/certificates answers 500
	noCerts bool     // guarded by mu; /v3/certificates answers 404 (public key mode)
	refuse  string   // guarded by mu; when set, every request gets 401 SIGN_ERROR with this message
	flaky   int      // guarded by mu; the next so many GET /v3/certificates answer 500
	// faults are what the next requests other than GET /v3/certificates
	// get instead of answer, one each: "500" SYSTEM_ERROR, "429"
	// FREQUENCY_LIMITED, "drop" (the connection closed, no answer).
	faults  []string // guarded by mu
	fetches int      // guarded by mu; GET /v3/certificates seen
}

// v3CertSerials are the serials of the fake's three platform certificates:
// A and B are the ones WeChat Pay rotates between, C one it never lists.
const (
	v3CertA = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	v3CertB = "6A1F3C2D4E5F60718293A4B5C6D7E8F901234567"
	v3CertC = "7B2E4D3F5A6B70819203B4C5D6E7F8091A2B3C4D"
)

func newV3CertFake(t *testing.T) (*v3CertFake, *wxpay.V3Client) {
	t.Helper()
	f := &v3CertFake{
		clock: clocktest.New(v3TestNow),
		keys:  map[string]*rsa.PrivateKey{},
		certs: map[string]*x509.Certificate{},
	}
	f.keys[v3TestPubKeyID] = MustV3PrivateKey(t, "wechatpay_key.pem")
	for serial, keyFile := range map[string]string{v3CertA: "wechatpay_key.pem", v3CertB: "wechatpay-go_sign_key.pem", v3CertC: "wechatpay_key.pem"} {
		n, _ := new(big.Int).SetString(serial, 16)
		key := MustV3PrivateKey(t, keyFile)
		f.keys[serial] = key
		f.certs[serial] = mustPlatformCertificate(t, key, n, v3TestNow.AddDate(0, -1, 0))
	}
	f.listed, f.signer, f.answer = []string{v3CertA}, v3CertA, v3TestTransaction
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := newV3TestClient(t, srv, "")
	c.Keyring = wxpay.NewV3Keyring()
	c.Clock = f.clock
	m := wxpay.NewV3Certificates(c)
	m.Logger = slog.New(slog.DiscardHandler)
	return f, c
}

// set changes what the fake lists and who signs.
func (f *v3CertFake) set(listed []string, signer string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listed, f.signer = listed, signer
}

func (f *v3CertFake) fetchCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches
}

func (f *v3CertFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	status, body := f.status, f.answer
	if status == 0 {
		status = http.StatusOK
	}
	if r.URL.Path != "/v3/certificates" && len(f.faults) > 0 {
		fault := f.faults[0]
		f.faults = f.faults[1:]
		switch fault {
		case "500":
			status, body = http.StatusInternalServerError, `{"code":"SYSTEM_ERROR","message":"系统错误"}`
		case "429":
			status, body = http.StatusTooManyRequests, `{"code":"FREQUENCY_LIMITED","message":"频率超限"}`
		case "drop":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
	}
	if r.URL.Path == "/v3/certificates" {
		f.fetches++
		switch {
		case f.broken || f.flaky > 0:
			f.flaky = max(f.flaky-1, 0)
			status, body = http.StatusInternalServerError, `{"code":"SYSTEM_ERROR","message":"系统错误"}`
		case f.noCerts:
			status, body = http.StatusNotFound, `{"code":"RESOURCE_NOT_EXISTS","message":"无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥"}`
		default:
			status, body = http.StatusOK, f.listBody()
		}
	}
	if f.refuse != "" {
		b, _ := json.Marshal(map[string]string{"code": "SIGN_ERROR", "message": f.refuse})
		status, body = http.StatusUnauthorized, string(b)
	}
	f.writeSigned(w, status, body)
}

// listBody returns the /v3/certificates answer; mu is held.
func (f *v3CertFake) listBody() string {
	type entry struct {
		SerialNo           string           `json:"serial_no"`
		EffectiveTime      string           `json:"effective_time"`
		ExpireTime         string           `json:"expire_time"`
		EncryptCertificate wxpay.V3Resource `json:"encrypt_certificate"`
	}
	var data []entry
	for _, serial := range f.listed {
		cert := f.certs[serial]
		r := wxpay.V3Resource{Algorithm: wxpay.V3Algorithm, AssociatedData: "certificate", Nonce: "a1b2c3d4e5f6"}
		var err error
		r.Ciphertext, err = wxpay.EncryptV3Resource(v3TestAPIKey, r.Nonce, r.AssociatedData, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
		if err != nil {
			panic(err)
		}
		data = append(data, entry{serial, cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339), r})
	}
	b, err := json.Marshal(map[string]any{"data": data})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// writeSigned sends body signed by signer at the fake clock; mu is held.
func (f *v3CertFake) writeSigned(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Date", f.clock.Now().UTC().Format(http.TimeFormat))
	if f.signer != "" { // no signer: an unsigned answer, as from a proxy
		h := v3SignedHeader(f.keys[f.signer], f.signer, f.clock.Now(), []byte(body))
		for k, v := range h {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// v3SignedHeader returns the Wechatpay-* headers of body signed by key
// under serial at now.
func v3SignedHeader(key *rsa.PrivateKey, serial string, now time.Time, body []byte) http.Header {
	ts := strconv.FormatInt(now.Unix(), 10)
	sig, err := wxpay.SignV3(key, wxpay.V3ResponseMessage(ts, "n0nce", body))
	if err != nil {
		panic(err)
	}
	h := http.Header{}
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", "n0nce")
	h.Set("Wechatpay-Serial", serial)
	h.Set("Wechatpay-Signature", sig)
	return h
}

// notification returns a payment notification signed by serial's key at
// the fake clock.
func (f *v3CertFake) notification(t *testing.T, serial string) (http.Header, []byte) {
	t.Helper()
	e := newV3Envelope(t, wxpay.V3EventTransactionSuccess, "transaction", MustReadV3(t, "notify_v3-e_plaintext.json"))
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return v3SignedHeader(f.keys[serial], serial, f.clock.Now(), body), body
}

func queryV3(c *wxpay.V3Client) error {
	_, err := c.QueryOrder(context.Background(), "1217752501201407033233368018")
	return err
}

func checkUnknownSerial(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, wxpay.ErrUnknownSerial) {
		t.Fatalf("err = %v, want ErrUnknownSerial", err)
	}
}

func TestV3CertificatesRefreshBootstrapsAndVerifies(t *testing.T) {
	f, c := newV3CertFake(t)
	if err := c.Validate(); err != nil {
		t.Errorf("Validate of an empty keyring the certificates will fill: %v", err)
	}
	if err := c.Certificates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.Certificates.Serials(); !slices.Equal(got, []string{v3CertA}) {
		t.Errorf("Serials = %v", got)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after the first download: %v", err)
	}
	if err := queryV3(c); err != nil {
		t.Fatal(err)
	}
	if n := f.fetchCount(); n != 1 {
		t.Errorf("%d downloads, want 1", n)
	}
}

// TestV3CertificatesRotation: WeChat Pay starts signing with a new
// certificate; the first answer signed by it costs one download, then it
// verifies, and answers that follow cost nothing.
func TestV3CertificatesRotation(t *testing.T) {
	f, c := newV3CertFake(t)
	if err := c.Certificates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.set([]string{v3CertA, v3CertB}, v3CertB)
	if err := queryV3(c); err != nil {
		t.Fatalf("answer signed by the new certificate: %v", err)
	}
	if n := f.fetchCount(); n != 2 {
		t.Errorf("%d downloads, want 2 (start-up, then one for the new serial)", n)
	}
	for range 3 {
		if err := queryV3(c); err != nil {
			t.Fatal(err)
		}
	}
	h, body := f.notification(t, v3CertB)
	if _, err := c.ParseNotification(h, body); err != nil {
		t.Fatalf("notification signed by the new certificate: %v", err)
	}
	if n := f.fetchCount(); n != 2 {
		t.Errorf("%d downloads after more answers, want still 2", n)
	}
	if got := c.Certificates.Serials(); !slices.Equal(got, []string{v3CertA, v3CertB}) {
		t.Errorf("Serials = %v", got)
	}
}

// TestV3CertificatesRotationSeenInNotification: the new serial shows up
// first in a notification, read from its request, and costs one download.
func TestV3CertificatesRotationSeenInNotification(t *testing.T) {
	f, c := newV3CertFake(t)
	if err := c.Certificates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.set([]string{v3CertA, v3CertB}, v3CertB)
	h, body := f.notification(t, v3CertB)
	r := httptest.NewRequest(http.MethodPost, "https://merchant.example/wxpay/notify", strings.NewReader(string(body)))
	for k, v := range h {
		r.Header[k] = v
	}
	n, err := c.ParseNotificationRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	if n.Serial != v3CertB || f.fetchCount() != 2 {
		t.Errorf("serial %s after %d downloads", n.Serial, f.fetchCount())
	}
}

// TestV3CertificatesUnknownAfterRefetch: a serial WeChat Pay does not list
// is refused after one download, and further messages naming unknown
// serials cause no download until a minute has passed.
func TestV3CertificatesUnknownAfterRefetch(t *testing.T) {
	f, c := newV3CertFake(t)
	if err := c.Certificates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.set([]string{v3CertA}, v3CertC)
	err := queryV3(c)
	checkUnknownSerial(t, err)
	var te *wxpay.TransportError
	if !errors.As(err, &te) {
		t.Errorf("err = %T, want *TransportError", err)
	}
	if n := f.fetchCount(); n != 2 {
		t.Fatalf("%d downloads, want 2", n)
	}
	for range 5 {
		checkUnknownSerial(t, queryV3(c))
		h, body := f.notification(t, v3CertC)
		_, err := c.ParseNotification(h, body)
		checkUnknownSerial(t, err)
	}
	if n := f.fetchCount(); n != 2 {
		t.Errorf("%d downloads within the minute, want still 2", n)
	}
	f.clock.Advance(wxpay.V3CertificateRefetchInterval)
	checkUnknownSerial(t, queryV3(c))
	if n := f.fetchCount(); n != 3 {
		t.Errorf("%d downloads a minute later, want 3", n)
	}
	// A public key id is never looked for among certificates.
	f.clock.Advance(wxpay.V3CertificateRefetchInterval)
	h, body := f.notification(t, v3CertA)
	h.Set("Wechatpay-Serial", "PUB_KEY_ID_0112300001092025010100000000000009")
	_, err = c.ParseNotification(h, body)
	checkUnknownSerial(t, err)
	if n := f.fetchCount(); n != 3 {
		t.Errorf("an unknown public key id caused a download (%d)", n)
	}
}

// setBroken makes GET /v3/certificates answer 500 SYSTEM_ERROR (signed by
// the signer, which the keyring may not know yet) or work again.
func (f *v3CertFake) setBroken(broken bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.broken = broken
}

// queryV3Run is queryV3 with the fake clock moved past every pause the
// client takes on it meanwhile (the retries of a download).
func (f *v3CertFake) queryV3Run(c *wxpay.V3Client) error {
	var err error
	f.clock.Run(func() { err = queryV3(c) })
	return err
}

// TestV3CertificatesFailedRefetch: WeChat Pay rotates its certificate and
// answers the download the new serial causes with SYSTEM_ERROR (each of
// the download's attempts): that message is refused, and so are messages
// of the next seconds, without a download; once the backoff has passed,
// the next message signed by the new certificate downloads again and
// verifies. It is not held back for V3CertificateRefetchInterval.
func TestV3CertificatesFailedRefetch(t *testing.T) {
	f, c := newV3CertFake(t)
	if err := c.Certificates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.set([]string{v3CertA, v3CertB}, v3CertB)
	f.setBroken(true)
	start := f.clock.Now()
	err := f.queryV3Run(c)
	checkUnknownSerial(t, err)
	if !strings.Contains(err.Error(), "SYSTEM_ERROR") {
		t.Errorf("the refusal does not say the download failed: %v", err)
	}
	if n := f.fetchCount(); n != 4 {
		t.Errorf("%d downloads, want 4 (start-up, then 3 attempts for the new serial)", n)
	}
	if took := f.clock.Now().Sub(start); took != 750*time.Millisecond {
		t.Errorf("the attempts took %v, want 750ms (pauses of 250 and 500 ms)", took)
	}

	f.setBroken(false)
	f.clock.Advance(wxpay.V3CertificateRefetchBackoff - time.Millisecond)
	err = queryV3(c)
	checkUnknownSerial(t, err)
	if !strings.Contains(err.Error(), "the last download failed") {
		t.Errorf("a refusal within the backoff does not say why: %v", err)
	}
	h, body := f.notification(t, v3CertB)
	_, err = c.ParseNotification(h, body)
	checkUnknownSerial(t, err)
	if n := f.fetchCount(); n != 4 {
		t.Errorf("%d downloads within the backoff, want still 4", n)
	}

	f.clock.Advance(time.Millisecond)
	h, body = f.notification(t, v3CertB)
	if _, err := c.ParseNotification(h, body); err != nil {
		t.Fatalf("notification signed by the new certificate %v after a failed download: %v", wxpay.V3CertificateRefetchBackoff, err)
	}
	if err := queryV3(c); err != nil {
		t.Fatal(err)
	}
	if n := f.fetchCount(); n != 5 {
		t.Errorf("%d downloads, want 5", n)
	}

	// The download that succeeded starts the minute: a serial WeChat Pay
	// does not list is refused without a download until it has passed,
	// then after one.
	f.set([]string{v3CertA, v3CertB}, v3CertC)
	for range 3 {
		checkUnknownSerial(t, queryV3(c))
	}
	if n := f.fetchCount(); n != 5 {
		t.Errorf("%d downloads for an unlisted serial within the minute, want still 5", n)
	}
	f.clock.Advance(wxpay.V3CertificateRefetchInterval)
	checkUnknownSerial(t, queryV3(c))
	checkUnknownSerial(t, queryV3(c))
	if n := f.fetchCount(); n != 6 {
		t.Errorf("%d downloads for an unlisted serial a minute later, want 6", n)
	}
}

// TestV3CertificatesFailedRefetchBackoff: while the downloads keep
// failing, the wait after each doubles from V3CertificateRefetchBackoff up
// to V3CertificateRefetchInterval, and each download makes its 3 attempts;
// a success ends the backoff.
func TestV3CertificatesFailedRefetchBackoff(t *testing.T) {
	f, c := newV3CertFake(t)
	if err := c.Certificates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.set([]string{v3CertA, v3CertB}, v3CertB)
	f.setBroken(true)
	checkUnknownSerial(t, f.queryV3Run(c))
	downloads := 4
	for _, wait := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute} {
		f.clock.Advance(wait - time.Millisecond)
		checkUnknownSerial(t, queryV3(c))
		if n := f.fetchCount(); n != downloads {
			t.Fatalf("%d downloads %v after a failure, want %d", n, wait-time.Millisecond, downloads)
		}
		f.clock.Advance(time.Millisecond)
		checkUnknownSerial(t, f.queryV3Run(c))
		downloads += 3
		if n := f.fetchCount(); n != downloads {
			t.Fatalf("%d downloads %v after a failure, want %d", n, wait, downloads)
		}
	}
	f.setBroken(false)
	f.clock.Advance(time.Minute)
	if err := queryV3(c); err != nil {
		t.Fatal(err)
	}
	// A later rotation downloads at once, the backoff forgotten, and
	// one attempt that fails is made up for by the next.
	f.clock.Advance(wxpay.V3CertificateRefetchInterval)
	f.set([]string{v3CertA, v3CertB, v3CertC}, v3CertC)
	f.mu.Lock()
	f.flaky = 1
	f.mu.Unlock()
	if err := f.queryV3Run(c); err != nil {
		t.Fatalf("one SYSTEM_ERROR among the attempts: %v", err)
	}
	if n := f.fetchCount(); n != downloads+3 {
		t.Errorf("%d downloads, want %d", n, downloads+3)
	}
}

// TestV3CertificatesFailedRefetchSingleFlight: many messages naming the
// new serial while the download fails share one download (its attempts),
// and after the backoff one download again, which verifies them all.
func TestV3CertificatesFailedRefetchSingleFlight(t *testing.T) {
	f, c := newV3CertFake(t)
	if err := c.Certificates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.set([]string{v3CertA, v3CertB}, v3CertB)
	f.setBroken(true)
	many := func() (failed int) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		f.clock.Run(func() {
			for range 16 {
				wg.Go(func() { errs <- queryV3(c) })
			}
			wg.Wait()
		})
		close(errs)
		for err := range errs {
			if err != nil {
				checkUnknownSerial(t, err)
				failed++
			}
		}
		return failed
	}
	if failed := many(); failed != 16 {
		t.Errorf("%d of 16 answers refused while the download fails, want 16", failed)
	}
	if n := f.fetchCount(); n != 4 {
		t.Errorf("%d downloads, want 4 (start-up, one download of 3 attempts)", n)
	}
	f.setBroken(false)
	f.clock.Advance(wxpay.V3CertificateRefetchBackoff)
	if failed := many(); failed != 0 {
		t.Errorf("%d of 16 answers refused after the backoff", failed)
	}
	if n := f.fetchCount(); n != 5 {
		t.Errorf("%d downloads, want 5", n)
	}
}

// TestV3CertificatesRefetchNotRetried: a download that fails for a reason
// asking again does not cure (an APIv3 key that does not decrypt) is made
// once, then backs off like any failure.
func TestV3CertificatesRefetchNotRetried(t *testing.T) {
	f, c := newV3CertFake(t)
	if err := c.Certificates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.set([]string{v3CertA, v3CertB}, v3CertB)
	c.APIv3Key = "0123456789abcdefghijklmnopqrstuw"
	checkUnknownSerial(t, f.queryV3Run(c))
	checkUnknownSerial(t, queryV3(c))
	if n := f.fetchCount(); n != 2 {
		t.Errorf("%d downloads, want 2 (start-up, one attempt)", n)
	}
}

// TestV3CertificatesDropped: a certificate WeChat Pay stops listing is
// dropped at the next download and refused afterwards; public keys stay.
func TestV3CertificatesDropped(t *testing.T) {
	f, c := newV3CertFake(t)
	if err := c.Keyring.AddPublicKeyPEM(v3TestPubKeyID, MustReadV3(t, "wechatpay_pub.pem")); err != nil {
		t.Fatal(err)
	}
	f.set([]string{v3CertA, v3CertB}, v3CertA)
	if err := c.Certificates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.set([]string{v3CertB}, v3CertB)
	if err := c.Certificates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Keyring.Lookup(v3CertA); ok {
		t.Error("certificate A is still in the keyring")
	}
	if _, ok := c.Keyring.Lookup(v3TestPubKeyID); !ok {
		t.Error("the public key was dropped with the certificates")
	}
	h, body := f.notification(t, v3CertA)
	_, err := c.ParseNotification(h, body)
	checkUnknownSerial(t, err)
	if err := queryV3(c); err != nil {
		t.Errorf("answer signed by B: %v", err)
	}
	if n := f.fetchCount(); n != 3 {
		t.Errorf("%d downloads, want 3 (two refreshes, one for the dropped serial)", n)
	}
}

// TestV3CertificatesSingleFlight: many answers naming the new serial at
// once share one download.
func TestV3CertificatesSingleFlight(t *testing.T) {
	f, c := newV3CertFake(t)
	if err := c.Certificates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.set([]string{v3CertA, v3CertB}, v3CertB)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() { errs <- queryV3(c) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := f.fetchCount(); n != 2 {
		t.Errorf("%d downloads, want 2", n)
	}
}

// TestV3CertificatesRun: Run downloads at once, then every 12 hours on the
// client's clock; a failed refresh keeps the certificates held and is
// retried a minute later.
func TestV3CertificatesRun(t *testing.T) {
	f, c := newV3CertFake(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Certificates.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	}()
	waitTimer := func(what string) {
		t.Helper()
		if !f.clock.WaitTimers(1, 10*time.Second) {
			t.Fatalf("Run did not wait for its next refresh after %s", what)
		}
	}
	waitTimer("start")
	if n := f.fetchCount(); n != 1 || !slices.Equal(c.Certificates.Serials(), []string{v3CertA}) {
		t.Fatalf("after start: %d downloads, serials %v", n, c.Certificates.Serials())
	}
	f.set([]string{v3CertB}, v3CertB)
	f.clock.Advance(wxpay.V3CertificateRefresh - time.Second)
	if n := f.fetchCount(); n != 1 {
		t.Fatalf("%d downloads before 12 h passed", n)
	}
	f.clock.Advance(time.Second)
	waitTimer("12 h")
	if n := f.fetchCount(); n != 2 || !slices.Equal(c.Certificates.Serials(), []string{v3CertB}) {
		t.Fatalf("after 12 h: %d downloads, serials %v", n, c.Certificates.Serials())
	}
	if _, ok := c.Keyring.Lookup(v3CertA); ok {
		t.Error("the refresh kept certificate A, no longer listed")
	}

	f.mu.Lock()
	f.broken = true
	f.mu.Unlock()
	f.clock.Advance(wxpay.V3CertificateRefresh)
	waitTimer("a failed refresh")
	if n := f.fetchCount(); n != 3 || !slices.Equal(c.Certificates.Serials(), []string{v3CertB}) {
		t.Fatalf("after a failure: %d downloads, serials %v", n, c.Certificates.Serials())
	}
	if err := queryV3(c); err != nil {
		t.Errorf("the certificates held stopped working after a failed refresh: %v", err)
	}
	f.mu.Lock()
	f.broken = false
	f.mu.Unlock()
	f.clock.Advance(time.Minute)
	waitTimer("the retry")
	if n := f.fetchCount(); n != 4 {
		t.Fatalf("after the retry: %d downloads, want 4", n)
	}
}

func TestV3CertificatesRefreshErrors(t *testing.T) {
	t.Run("PublicKeyMerchant", func(t *testing.T) {
		fk, srv := newV3FakeServer(t, "")
		fk.answer(404, `{"code":"RESOURCE_NOT_EXISTS","message":"无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥"}`, nil)
		c := newV3TestClient(t, srv, "")
		m := wxpay.NewV3Certificates(c)
		m.Logger = slog.New(slog.DiscardHandler)
		err := m.Refresh(context.Background())
		if wxpay.ErrorCode(err) != "RESOURCE_NOT_EXISTS" {
			t.Fatalf("err = %v", err)
		}
		if len(c.Keyring.Serials()) != 1 {
			t.Errorf("keyring %v changed", c.Keyring.Serials())
		}
	})
	t.Run("WrongAPIv3Key", func(t *testing.T) {
		f, c := newV3CertFake(t)
		if err := c.Certificates.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.set([]string{v3CertB}, v3CertA)
		c.APIv3Key = "0123456789abcdefghijklmnopqrstuw"
		checkErrIs(t, c.Certificates.Refresh(context.Background()), wxpay.ErrBadSignature)
		if _, ok := c.Keyring.Lookup(v3CertA); !ok || !slices.Equal(c.Certificates.Serials(), []string{v3CertA}) {
			t.Error("a failed download changed the certificates")
		}
	})
}

func TestV3KeyringReplaceCertificates(t *testing.T) {
	priv := MustV3PrivateKey(t, "wechatpay_key.pem")
	certA := mustPlatformCertificate(t, priv, big.NewInt(0xA1), v3TestNow)
	certB := mustPlatformCertificate(t, priv, big.NewInt(0xB2), v3TestNow)
	k := MustV3Keyring(t)
	if err := k.AddCertificate(certA); err != nil {
		t.Fatal(err)
	}
	if err := k.ReplaceCertificates([]*x509.Certificate{certB}); err != nil {
		t.Fatal(err)
	}
	got := k.Serials()
	slices.Sort(got)
	if want := []string{"B2", v3TestPubKeyID}; !slices.Equal(got, want) {
		t.Errorf("serials %v, want %v", got, want)
	}

	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	certWeak := mustPlatformCertificate(t, weak, big.NewInt(0xC3), v3TestNow)
	if err := k.ReplaceCertificates([]*x509.Certificate{certA, certWeak}); err == nil {
		t.Fatal("a 1024-bit certificate was taken")
	}
	got = k.Serials()
	slices.Sort(got)
	if want := []string{"B2", v3TestPubKeyID}; !slices.Equal(got, want) {
		t.Errorf("a refused replacement changed the keyring: %v", got)
	}
	if err := k.ReplaceCertificates(nil); err != nil {
		t.Fatal(err)
	}
	if got := k.Serials(); !slices.Equal(got, []string{v3TestPubKeyID}) {
		t.Errorf("after replacing with nothing: %v", got)
	}
}
