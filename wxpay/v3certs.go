package wxpay

import (
	"context"
	"crypto/x509"
	"log/slog"
	"slices"
	"sync"
	"time"

	"tollgate"
)

// Timing of V3Certificates, on the client's clock.
const (
	// V3CertificateRefresh is how often Run downloads the platform
	// certificates, as WeChat Pay advises (at most every 12 hours).
	V3CertificateRefresh = 12 * time.Hour
	// V3CertificateRefetchInterval bounds the downloads an unknown serial
	// causes: at most one per interval, however many messages name
	// serials the keyring does not know, so that forged messages cannot
	// make the service hammer WeChat Pay.
	V3CertificateRefetchInterval = time.Minute
	// v3CertificateRetryMax caps the wait of Run between failed refreshes
	// (1, 2, 4 … minutes up to this).
	v3CertificateRetryMax = time.Hour
	// v3CertificateFetchTimeout bounds one download, which runs apart from
	// the context of the call that started it.
	v3CertificateFetchTimeout = 30 * time.Second
)

// V3Certificates keeps the platform certificates of a V3Client in
// certificate mode. Every download (GET /v3/certificates with
// FetchCertificates' checks: decrypted with the APIv3 key, answer verified)
// replaces the keyring's set of certificates: a certificate WeChat Pay no
// longer lists is dropped; public keys stay. Downloads happen:
//
//   - on Refresh (call it once at start-up, before the first payment);
//   - every V3CertificateRefresh in Run, retried with backoff after a
//     failure while the certificates held keep working;
//   - when an answer or a notification names a certificate serial the
//     keyring does not know (WeChat Pay rotated its certificate): once, at
//     most every V3CertificateRefetchInterval; the message is then verified
//     again and refused with ErrUnknownSerial if the serial is still
//     unknown.
//
// Concurrent callers share one download (single flight). It is safe for
// concurrent use. Create it with NewV3Certificates.
type V3Certificates struct {
	// Logger receives failed downloads and changes of the certificate set;
	// slog.Default() when nil. Set it before Run.
	Logger *slog.Logger

	client *V3Client

	mu          sync.Mutex
	inflight    *v3CertFetch // guarded by mu; the running download
	lastOK      time.Time    // guarded by mu; end of the last good download
	lastUnknown time.Time    // guarded by mu; start of the last download for an unknown serial
	serials     []string     // guarded by mu; the certificates of the last good download
}

// v3CertFetch is one download, shared by everyone waiting for it.
type v3CertFetch struct {
	done chan struct{}
	err  error // set before done is closed
}

// NewV3Certificates returns the certificate manager of c and sets
// c.Certificates to it. c must be configured (MchID, merchant key and
// serial, APIv3Key, Keyring, which may start empty); the manager downloads
// nothing until Refresh, Run or an unknown serial.
func NewV3Certificates(c *V3Client) *V3Certificates {
	m := &V3Certificates{client: c}
	c.Certificates = m
	return m
}

func (m *V3Certificates) log() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.Default()
}

// Serials returns the serials of the certificates of the last good
// download, sorted; nil before one.
func (m *V3Certificates) Serials() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.serials)
}

// Refresh downloads the certificates now (or waits for the download under
// way) and replaces the keyring's certificates with them. On an error the
// keyring is unchanged: an *APIError (404 RESOURCE_NOT_EXISTS for a
// merchant in public key mode) or a *TransportError, as FetchCertificates.
func (m *V3Certificates) Refresh(ctx context.Context) error {
	m.mu.Lock()
	f := m.startLocked(ctx)
	m.mu.Unlock()
	return f.wait(ctx)
}

// Run refreshes the certificates every V3CertificateRefresh after the last
// good download (at once when there was none) until ctx ends, and returns
// ctx's error then. A failed refresh is logged and retried after 1, 2, 4 …
// minutes, up to an hour; the certificates held meanwhile keep verifying.
func (m *V3Certificates) Run(ctx context.Context) error {
	clock := tollgate.ClockOr(m.client.Clock)
	retry := time.Duration(0)
	for {
		wait := retry
		if retry == 0 {
			m.mu.Lock()
			if !m.lastOK.IsZero() {
				wait = m.lastOK.Add(V3CertificateRefresh).Sub(clock.Now())
			}
			m.mu.Unlock()
		}
		if err := tollgate.Sleep(ctx, clock, wait); err != nil {
			return err
		}
		if err := m.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			retry = min(max(2*retry, time.Minute), v3CertificateRetryMax)
			m.log().Warn("wxpay: platform certificate refresh failed; the certificates held stay in use",
				slog.Any("error", err), slog.Duration("retry_in", retry))
			continue
		}
		retry = 0
	}
}

// refetchUnknown is called after a message named a certificate serial the
// keyring does not know: it waits for the download under way, or starts
// one unless one was started for an unknown serial within
// V3CertificateRefetchInterval. The caller verifies again afterwards.
func (m *V3Certificates) refetchUnknown(ctx context.Context) {
	now := m.client.now()
	m.mu.Lock()
	f := m.inflight
	if f == nil {
		if !m.lastUnknown.IsZero() && now.Sub(m.lastUnknown) < V3CertificateRefetchInterval {
			m.mu.Unlock()
			return
		}
		m.lastUnknown = now
		f = m.startLocked(ctx)
	}
	m.mu.Unlock()
	if err := f.wait(ctx); err != nil {
		m.log().Warn("wxpay: platform certificate download for an unknown serial failed", slog.Any("error", err))
	}
}

// startLocked returns the download under way, or starts one. It runs apart
// from ctx's cancellation (bounded by v3CertificateFetchTimeout), so that a
// caller giving up does not fail the download for everyone waiting on it.
func (m *V3Certificates) startLocked(ctx context.Context) *v3CertFetch {
	if m.inflight != nil {
		return m.inflight
	}
	f := &v3CertFetch{done: make(chan struct{})}
	m.inflight = f
	go func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v3CertificateFetchTimeout)
		defer cancel()
		certs, err := m.client.fetchCertificates(fctx)
		if err == nil {
			err = m.client.Keyring.ReplaceCertificates(certs)
		}
		m.mu.Lock()
		if err == nil {
			m.lastOK = m.client.now()
			old := m.serials
			m.serials = certificateSerials(certs)
			if !slices.Equal(old, m.serials) {
				m.log().Info("wxpay: platform certificates", slog.Any("serials", m.serials), slog.Any("before", old))
			}
		}
		m.inflight = nil
		f.err = err
		m.mu.Unlock()
		close(f.done)
	}()
	return f
}

// wait waits for f to end, or for ctx.
func (f *v3CertFetch) wait(ctx context.Context) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// certificateSerials returns the sorted serials of certs.
func certificateSerials(certs []*x509.Certificate) []string {
	out := make([]string, 0, len(certs))
	for _, c := range certs {
		out = append(out, V3CertificateSerial(c))
	}
	slices.Sort(out)
	return out
}
