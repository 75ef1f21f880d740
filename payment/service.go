// Package payment is tollgate's order lifecycle over WeChat Pay: creating
// orders paid by QR code (Native), in a mobile browser (H5) or inside
// WeChat (JSAPI) (Idempotency-Key, device fingerprint, provisional access),
// handling payment and refund notifications (verify, check, credit, ack),
// the order-query poller that finishes what notifications did not, refunds,
// and the rollout guard. Money moves only through the ledger; exactly-once
// crediting rests on the ledger's unique constraints, never on this package.
// It knows nothing of HTTP routing: the httpapi package calls it.
//
// The flow, as the HTTP layer uses it:
//
//   - CreateOrder records the order (and its Idempotency-Key) before
//     WeChat Pay is called, places it with the same out_trade_no however
//     often it is retried, stores what WeChat Pay gave (code_url, h5_url or
//     prepay_id, whose JSAPI pay sheet is signed at most once a minute)
//     and issues a provisional grant with an access token (an HMAC of the
//     order number under Config.TokenSecret, returned to the creator and
//     again on an Idempotency-Key replay, stored only as a SHA-256).
//   - AuthenticateAccessToken turns that token into (account, grantID): the
//     gateway reserves with ledger.ReserveRequest.GrantID = grantID.
//   - HandleV2Notification / HandleV3Notification verify and credit
//     (HEAD on the notify URL is answered by the HTTP layer: 200, empty).
//   - RunPoller (every instance) queries pending orders with backoff under
//     the shared limiter, closes expired ones, revokes grants of failed or
//     closed orders (their usage becomes debt) and follows refunds.
//   - Refund returns the unused part of a paid order's credits.
package payment

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"tollgate"
	"tollgate/kv"
	"tollgate/ledger"
	"tollgate/pricing"
	"tollgate/wxpay"
)

// Config tunes a Service. Zero fields take the documented defaults.
type Config struct {
	// RefundPolicy is RefundPolicyAdmin (default: only the operator
	// refunds) or RefundPolicySelf (users may too, within RefundWindow of
	// paying; default 168 hours). RefundContact, when set, is named in
	// the refusal as where to ask for a refund; RefundContactFunc, when
	// set, is asked instead on every refusal (so a catalog reload's
	// support contact shows at once).
	RefundPolicy      string
	RefundWindow      time.Duration
	RefundContact     string
	RefundContactFunc func() string
	// APIVersion picks the WeChat Pay API orders are placed with: APIv2
	// (default) or APIv3.
	APIVersion string
	// SignType is the v2 sign type of new orders: wxpay.SignTypeMD5
	// (default) or wxpay.SignTypeHMACSHA256.
	SignType string
	// AppID and MchID are the merchant's; notifications for others are refused.
	AppID string
	MchID string
	// NotifyURL receives v2 payment notifications, NotifyURLV3 v3 ones;
	// RefundNotifyURL refund notifications ("" = the platform's setting).
	NotifyURL       string
	NotifyURLV3     string
	RefundNotifyURL string
	// Description is the order body shown to the payer. Default
	// "tollgate credits".
	Description string
	// OrderTTL is how long an order stays payable. Default 30 minutes.
	OrderTTL time.Duration
	// GrantTTL is the life of the provisional access token and grant.
	// Default 5 minutes.
	GrantTTL time.Duration
	// GrantCap caps the provisional allowance (never above the order's
	// credits). Default 20,000 credits; negative disables provisional access.
	GrantCap tollgate.Credits
	// MinFen and MaxFen bound pay-as-you-go amounts. Defaults 100 and
	// 1,000,000 fen (1 and 10,000 CNY).
	MinFen tollgate.Fen
	MaxFen tollgate.Fen
	// PlaceAttempts bounds how often order placement (and a refund call)
	// is tried with the same out_trade_no (out_refund_no) after a retryable
	// or unknown failure, waiting PlaceBackoff × attempt in between.
	// Defaults 3 and 100 ms.
	PlaceAttempts int
	PlaceBackoff  time.Duration
	// PollBase and PollMax shape the poller's exponential backoff (5 s,
	// 10 s, 20 s, … capped at PollMax), jittered by ±20%. Defaults 5 s and
	// 5 minutes. PollEvery is how often RunPoller looks for due work
	// (default 1 s) and LeaseTTL how long one instance holds an order
	// (default 30 s).
	PollBase  time.Duration
	PollMax   time.Duration
	PollEvery time.Duration
	LeaseTTL  time.Duration
	// QueryLimit is the cluster-wide limit of order and refund queries per
	// merchant, shared through the Limiter. It must admit at most
	// QueryBudget in any sliding minute (New checks its MaxIn). Default
	// kv.WindowLimit(5900, time.Minute, 100): at most 5,900 queries in any
	// minute of the limiter's clock, 100 at once after a quiet spell, the
	// rest paced evenly (5,801 a minute, one every 10.3 ms). Queries reach
	// WeChat Pay a little after the limiter admits them, some later than
	// others, so a minute at WeChat Pay can hold the queries admitted over
	// a minute plus that spread: the 100 kept back from QueryBudget cover
	// a second of it at full pace.
	QueryLimit kv.Limit
	// TokenSecret derives provisional access tokens (HMAC-SHA256 of the
	// order number), so a replayed create returns the same token. All
	// instances must share it; empty means a random per-process secret.
	TokenSecret []byte
	// InstanceID names this process in poll leases. Default random.
	InstanceID string
	// AllowPrivateClientIP lets H5 orders carry a loopback, private,
	// link-local or unspecified client IP (see PublicIP). By default they
	// are refused with PARAM_ERROR client_ip, because WeChat Pay refuses
	// such a payment without saying why, and such an address is usually a
	// reverse proxy's: --trusted-proxy-header is not set. Set it only when
	// orders go to an emulator a developer pays from 127.0.0.1 (serve does
	// with its in-process emulator, the sandbox profile).
	AllowPrivateClientIP bool
}

// QueryBudget is the most order and refund queries tollgate sends WeChat
// Pay per merchant in any minute: WeChat Pay limits queries at a rate it
// does not publish (FREQUENCY_LIMITED), so tollgate keeps its own budget
// (docs/WECHATPAY.md, docs/DESIGN.md §3.5).
const QueryBudget = 6000

// Deps are the services a Service uses.
type Deps struct {
	Ledger  *ledger.Service
	Store   Store
	Pricer  *pricing.Pricer
	Nonces  kv.NonceStore
	Limiter kv.Limiter
	// V2 and V3 verify notifications of their API version; the one named
	// by Config.APIVersion also places orders unless Gateway is set.
	V2 *wxpay.V2Client
	V3 *wxpay.V3Client
	// Gateway overrides the gateway built from V2 or V3.
	Gateway Gateway
	// Rollout, when set, decides which accounts may pay with WeChat Pay
	// and pauses it when too many payments fail.
	Rollout *Rollout
	// Metrics counts events; nil counts nothing.
	Metrics Metrics
	// Logger logs decisions (never keys or tokens); nil discards.
	Logger *slog.Logger
	// Clock decides expiry, the poll schedule and backoff waits; nil means
	// tollgate.SystemClock.
	Clock tollgate.Clock
	// Rand supplies order numbers; nil means crypto/rand.
	Rand io.Reader
	// EventsCommitted, when set, is called after an order change that
	// wrote a webhook event (payment.closed, in the store's UpdateOrder
	// transaction), as ledger.Options.EventsCommitted is after a money
	// change's: serve wakes the webhook dispatcher with it.
	EventsCommitted func()
}

// Service runs the order lifecycle. Its methods are safe for concurrent
// use, and several processes may run it over one database.
type Service struct {
	cfg     Config
	ledger  *ledger.Service
	store   Store
	pricer  *pricing.Pricer
	nonces  kv.NonceStore
	limiter kv.Limiter
	v2      *wxpay.V2Client
	v3      *wxpay.V3Client
	gw      Gateway
	rollout *Rollout
	metrics Metrics
	log     *slog.Logger
	clock   tollgate.Clock
	now     func() time.Time
	rand    io.Reader

	sheets *sheetCache // signed JSAPI pay sheets (JSAPIParams)
	volume monthVolume // the month's paid volume, for merchant fees (fee)

	orders          *orderBatcher // group commit of order writes (batch.go)
	eventsCommitted func()

	jitterMu sync.Mutex
	jitter   *mrand.Rand
}

// New checks cfg and deps, fills defaults and returns a Service.
func New(cfg Config, d Deps) (*Service, error) {
	if d.Ledger == nil || d.Store == nil || d.Pricer == nil || d.Nonces == nil || d.Limiter == nil {
		return nil, errors.New("payment: New needs Ledger, Store, Pricer, Nonces and Limiter")
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = APIv2
	}
	if cfg.SignType == "" {
		cfg.SignType = wxpay.SignTypeMD5
	}
	setDefaults(&cfg)
	if cfg.RefundPolicy != RefundPolicyAdmin && cfg.RefundPolicy != RefundPolicySelf {
		return nil, fmt.Errorf("payment: RefundPolicy %q: want %q or %q", cfg.RefundPolicy, RefundPolicyAdmin, RefundPolicySelf)
	}
	if n := cfg.QueryLimit.MaxIn(time.Minute); cfg.QueryLimit.Validate() != nil || n > QueryBudget {
		return nil, fmt.Errorf("payment: QueryLimit %+v admits up to %d queries in a sliding minute; it must be valid and admit at most %d (see kv.WindowLimit)",
			cfg.QueryLimit, n, QueryBudget)
	}
	// The merchant is the clients' when config does not name it.
	app, mch := clientIDs(d.V2, d.V3, cfg.APIVersion)
	if cfg.AppID == "" {
		cfg.AppID = app
	}
	if cfg.MchID == "" {
		cfg.MchID = mch
	}
	s := &Service{cfg: cfg, ledger: d.Ledger, store: machineStore{d.Store, d.EventsCommitted}, pricer: d.Pricer, nonces: d.Nonces,
		limiter: d.Limiter, v2: d.V2, v3: d.V3, gw: d.Gateway, rollout: d.Rollout, metrics: d.Metrics,
		log: d.Logger, clock: tollgate.ClockOr(d.Clock), rand: d.Rand, sheets: newSheetCache(sheetMax),
		orders: newOrderBatcher(d.Store), eventsCommitted: d.EventsCommitted}
	s.now = s.clock.Now
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.metrics == nil {
		s.metrics = nopMetrics{}
	}
	if s.gw == nil {
		switch cfg.APIVersion {
		case APIv2:
			if d.V2 == nil {
				return nil, errors.New("payment: APIVersion v2 needs Deps.V2")
			}
			s.gw = &V2Gateway{Client: d.V2}
		case APIv3:
			if d.V3 == nil {
				return nil, errors.New("payment: APIVersion v3 needs Deps.V3")
			}
			s.gw = &V3Gateway{Client: d.V3}
		default:
			return nil, fmt.Errorf("payment: unknown APIVersion %q", cfg.APIVersion)
		}
	}
	if cfg.APIVersion == APIv2 && cfg.SignType != wxpay.SignTypeMD5 && cfg.SignType != wxpay.SignTypeHMACSHA256 {
		return nil, fmt.Errorf("payment: unknown sign type %q", cfg.SignType)
	}
	if s.rollout != nil && s.rollout.OnPause == nil {
		s.rollout.OnPause = func(failures, total int) {
			s.metrics.Count(EventRolloutPaused, "failure_rate")
			s.log.Error("payment: WeChat Pay paused by the failure-rate guard", "failures", failures, "attempts", total,
				"pause", s.rollout.Pause)
		}
	}
	var seed [16]byte
	if _, err := io.ReadFull(rand.Reader, seed[:]); err != nil {
		return nil, fmt.Errorf("payment: seed: %w", err)
	}
	s.jitter = mrand.New(mrand.NewPCG(uint64FromBytes(seed[:8]), uint64FromBytes(seed[8:])))
	if len(s.cfg.TokenSecret) == 0 {
		s.cfg.TokenSecret = seed[:]
	}
	if s.cfg.InstanceID == "" {
		s.cfg.InstanceID = fmt.Sprintf("inst-%x", seed[:6])
	}
	return s, nil
}

// clientIDs returns the appid and mch_id of the client of version.
func clientIDs(v2 *wxpay.V2Client, v3 *wxpay.V3Client, version string) (string, string) {
	switch {
	case version == APIv3 && v3 != nil:
		return v3.AppID, v3.MchID
	case v2 != nil:
		return v2.AppID, v2.MchID
	case v3 != nil:
		return v3.AppID, v3.MchID
	}
	return "", ""
}

func setDefaults(cfg *Config) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.OrderTTL, 30*time.Minute)
	def(&cfg.GrantTTL, 5*time.Minute)
	def(&cfg.PollBase, 5*time.Second)
	def(&cfg.PollMax, 5*time.Minute)
	def(&cfg.PollEvery, time.Second)
	def(&cfg.LeaseTTL, 30*time.Second)
	def(&cfg.PlaceBackoff, 100*time.Millisecond)
	def(&cfg.RefundWindow, 168*time.Hour)
	if cfg.RefundPolicy == "" {
		cfg.RefundPolicy = RefundPolicyAdmin
	}
	if cfg.Description == "" {
		cfg.Description = "tollgate credits"
	}
	if cfg.GrantCap == 0 {
		cfg.GrantCap = 20000
	}
	if cfg.MinFen <= 0 {
		cfg.MinFen = 100
	}
	if cfg.MaxFen <= 0 {
		cfg.MaxFen = 1_000_000
	}
	if cfg.PlaceAttempts <= 0 {
		cfg.PlaceAttempts = 3
	}
	if cfg.QueryLimit == (kv.Limit{}) {
		cfg.QueryLimit = kv.WindowLimit(QueryBudget-100, time.Minute, 100)
	}
}

func uint64FromBytes(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// Config returns the configuration in effect, defaults filled in (the
// token secret is not returned).
func (s *Service) Config() Config {
	c := s.cfg
	c.TokenSecret = nil
	return c
}

// Gateway returns the gateway orders are placed through.
func (s *Service) Gateway() Gateway { return s.gw }

// wrap returns err as a *tollgate.Error with op, keeping a domain error's
// code and turning anything else into code.
func wrap(op, code string, err error) error {
	if err == nil {
		return nil
	}
	var te *tollgate.Error
	if errors.As(err, &te) {
		return &tollgate.Error{Code: te.Code, Message: te.Message, Op: op, Err: err}
	}
	return &tollgate.Error{Code: code, Op: op, Err: err}
}

// GetOrder returns an order of account. Errors: ENOTFOUND (no such order,
// or another account's).
func (s *Service) GetOrder(ctx context.Context, account tollgate.AccountID, outTradeNo string) (Order, error) {
	o, err := s.store.Order(ctx, outTradeNo)
	if err != nil {
		return Order{}, wrap("payment.GetOrder", tollgate.EINTERNAL, err)
	}
	if o.Account != account {
		return Order{}, &tollgate.Error{Code: tollgate.ENOTFOUND, Op: "payment.GetOrder", Message: "no such order"}
	}
	return o, nil
}

// ListOrders returns up to limit (default and at most 100) orders of an
// account, newest first.
func (s *Service) ListOrders(ctx context.Context, account tollgate.AccountID, limit int) ([]Order, error) {
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	os, err := s.store.ListOrders(ctx, account, limit)
	if err != nil {
		return nil, wrap("payment.ListOrders", tollgate.EINTERNAL, err)
	}
	return os, nil
}
