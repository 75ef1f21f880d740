package wxpay

import (
	"context"
	"crypto/x509"
	"fmt"
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
	// causes: after one that succeeded, the next waits this long, however
	// many messages name serials the keyring does not know, so that forged
	// messages cannot make the service hammer WeChat Pay.
	V3CertificateRefetchInterval = time.Minute
	// V3CertificateRefetchBackoff is the wait after a download for an
	// unknown serial that failed (every attempt of it): the next unknown
	// serial may download again this long after, then twice as long after
	// each further failure in a row, up to V3CertificateRefetchInterval. A
	// failure says nothing about the serial (WeChat Pay had a fault, the
	// network dropped), so it must not hold back the new certificate's
	// messages for the whole interval.
	V3CertificateRefetchBackoff = 2 * time.Second
	// v3CertificateRefetchAttempts and v3CertificateRefetchPause: a download
	// for an unknown serial that fails with a transient error (a 5xx or 429,
	// the network) is tried again within the same single flight, after
	// 250 ms then 500 ms, so that one SYSTEM_ERROR costs the waiting
	// messages a moment rather than a refusal.
	v3CertificateRefetchAttempts = 3
	v3CertificateRefetchPause    = 250 * time.Millisecond
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
//     keyring does not know (WeChat Pay rotated its certificate): once; the
//     message is then verified again and refused with ErrUnknownSerial if
//     the serial is still unknown. A transient failure (5xx, 429, network)
//     is tried again twice within that download. After a download that
//     succeeded, the next one for an unknown serial waits
//     V3CertificateRefetchInterval; after one that failed, only
//     V3CertificateRefetchBackoff, doubling with each failure in a row up
//     to the interval, so that a fault of WeChat Pay at the moment of a
//     rotation does not refuse the new certificate for a minute.
//
// Concurrent callers share one download (single flight). It is safe for
// concurrent use. Create it with NewV3Certificates.
type V3Certificates struct {
	// Logger receives failed downloads and changes of the certificate set;
	// slog.Default() when nil. Set it before Run.
	Logger *slog.Logger

	client *V3Client

	mu        sync.Mutex
	inflight  *v3CertFetch // guarded by mu; the running download
	lastOK    time.Time    // guarded by mu; end of the last good download
	unknownOK time.Time    // guarded by mu; start of the last good download for an unknown serial
	failures  int          // guarded by mu; downloads for an unknown serial failed in a row
	retryAt   time.Time    // guarded by mu; after such a failure, no download for an unknown serial before
	serials   []string     // guarded by mu; the certificates of the last good download
}

// v3CertFetch is one download, shared by everyone waiting for it.
type v3CertFetch struct {
	unknown bool      // started for an unknown serial
	started time.Time // on the client's clock
	done    chan struct{}
	err     error // set before done is closed
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
	f := m.startLocked(ctx, false)
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
// one unless the last download for an unknown serial succeeded less than
// V3CertificateRefetchInterval ago or failed less than its backoff ago.
// The caller verifies again afterwards; the error, when not nil, says why
// the certificates could not be downloaded (or that it was not tried).
func (m *V3Certificates) refetchUnknown(ctx context.Context) error {
	now := m.client.now()
	m.mu.Lock()
	f := m.inflight
	if f == nil {
		switch {
		case !m.unknownOK.IsZero() && now.Sub(m.unknownOK) < V3CertificateRefetchInterval:
			m.mu.Unlock()
			return nil // the serial is unknown to WeChat Pay's list of a moment ago
		case now.Before(m.retryAt):
			at := m.retryAt
			m.mu.Unlock()
			return fmt.Errorf("platform certificates not downloaded: the last download failed; next in %v", at.Sub(now))
		}
		f = m.startLocked(ctx, true)
	}
	m.mu.Unlock()
	return f.wait(ctx)
}

// startLocked returns the download under way, or starts one (for an
// unknown serial: with retries of transient failures). It runs apart from
// ctx's cancellation (bounded by v3CertificateFetchTimeout), so that a
// caller giving up does not fail the download for everyone waiting on it.
func (m *V3Certificates) startLocked(ctx context.Context, unknown bool) *v3CertFetch {
	if m.inflight != nil {
		return m.inflight
	}
	f := &v3CertFetch{unknown: unknown, started: m.client.now(), done: make(chan struct{})}
	m.inflight = f
	go func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v3CertificateFetchTimeout)
		defer cancel()
		err := m.download(fctx, f.unknown)
		m.mu.Lock()
		m.inflight = nil
		f.err = err
		switch {
		case err == nil:
			m.failures, m.retryAt = 0, time.Time{}
			if f.unknown {
				m.unknownOK = f.started
			}
		case f.unknown:
			m.failures++
			wait := V3CertificateRefetchBackoff << min(m.failures-1, 8)
			wait = min(wait, V3CertificateRefetchInterval)
			m.retryAt = m.client.now().Add(wait)
			m.log().Warn("wxpay: platform certificate download for an unknown serial failed; messages signed by it are refused until one succeeds",
				slog.Any("error", err), slog.Int("failures_in_a_row", m.failures), slog.Duration("next_in", wait))
		}
		m.mu.Unlock()
		close(f.done)
	}()
	return f
}

// download fetches the certificates and replaces the keyring's with them;
// retry: a transient failure is tried again, v3CertificateRefetchAttempts
// times in all, pausing on the client's clock.
func (m *V3Certificates) download(ctx context.Context, retry bool) error {
	clock := tollgate.ClockOr(m.client.Clock)
	pause := v3CertificateRefetchPause
	for attempt := 1; ; attempt++ {
		certs, err := m.client.fetchCertificates(ctx)
		if err == nil {
			if err = m.client.Keyring.ReplaceCertificates(certs); err == nil {
				m.mu.Lock()
				m.lastOK = m.client.now()
				old := m.serials
				m.serials = certificateSerials(certs)
				if !slices.Equal(old, m.serials) {
					m.log().Info("wxpay: platform certificates", slog.Any("serials", m.serials), slog.Any("before", old))
				}
				m.mu.Unlock()
			}
			return err
		}
		if !retry || attempt == v3CertificateRefetchAttempts || !transient(err) {
			return err
		}
		m.log().Info("wxpay: platform certificate download failed; trying again", slog.Any("error", err), slog.Duration("in", pause))
		if tollgate.Sleep(ctx, clock, pause) != nil {
			return err
		}
		pause *= 2
	}
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
