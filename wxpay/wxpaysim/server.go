package wxpaysim

import (
	"context"
	"crypto/md5"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"log"
	"net/http"
	"strings"
	"sync"
	"time"

	"tollgate"
	"tollgate/wxpay"
)

// Defaults used for empty Server fields. They are the merchant of the
// official documentation examples and the test keys of docs/WECHATPAY.md §6.2.
const (
	DefaultMchID          = "1230000109"
	DefaultAppID          = "wxd678efh567hg6787"
	DefaultAPIKey         = "192006250b4c09247ec02edce69f6a2d"
	DefaultAPIv3Key       = "0123456789abcdefghijklmnopqrstuv"
	DefaultMerchantSerial = "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"
	DefaultPlatformKeyID  = "PUB_KEY_ID_0112300001092025010100000000000001"
	// DefaultOrderTTL is how long an order without time_expire stays
	// payable: the lifetime of a Native code_url. (Real v3 orders without
	// time_expire stay payable for 7 days; 2 h keeps tests and demos short.)
	DefaultOrderTTL = 2 * time.Hour
	// DefaultRefundDelay is how long (virtual time) a refund stays PROCESSING.
	DefaultRefundDelay = time.Minute
	// DefaultAnswerDeadline is how long a notify URL has to answer (real time).
	DefaultAnswerDeadline = 5 * time.Second
)

// Server is an in-memory WeChat Pay emulator. It is an http.Handler serving
// the v2, v3 and /sim APIs; mount it at the root of a listener or under a
// prefix with http.StripPrefix. The zero value works (with the default
// merchant and test keys); set fields before the first request and do not
// change them afterwards, except through SetFaults and the methods.
type Server struct {
	// Merchant identity and keys. Empty fields take the Default* values.
	MchID    string
	AppID    string
	APIKey   string // v2 API key, 32 characters
	APIv3Key string // 32 bytes, encrypts v3 notification resources
	// SandboxKey signs /sandboxnew requests; empty means derived from
	// APIKey (as returned by /sandboxnew/pay/getsignkey).
	SandboxKey string
	// MerchantPublicKey verifies v3 request signatures; nil means the key
	// of TestMerchantPrivateKeyPEM. MerchantSerial is the serial_no the
	// requests must name.
	MerchantPublicKey *rsa.PublicKey
	MerchantSerial    string
	// PlatformKey signs v3 responses and notifications; nil means
	// TestPlatformPrivateKeyPEM. PlatformKeyID is sent as Wechatpay-Serial.
	PlatformKey   *rsa.PrivateKey
	PlatformKeyID string
	// PlatformCertificates puts the emulator in platform certificate mode
	// (merchants that joined before late 2024): PlatformKey gets a
	// self-signed certificate, Wechatpay-Serial is its serial (upper-case
	// hex) instead of PlatformKeyID, GET /v3/certificates lists it
	// encrypted with APIv3Key, and RotateCertificate replaces it.
	PlatformCertificates bool
	// AppSecret is the AppSecret of AppID, which the OAuth code exchange
	// (GET /sns/oauth2/access_token) requires; empty means
	// DefaultAppSecret.
	AppSecret string

	// Clock is the clock for expiry, timestamps and bills, and the one the
	// notification schedule and refund delay wait on; nil means
	// tollgate.SystemClock. A test's fake clock makes every wait happen
	// when the test advances it.
	Clock tollgate.Clock
	// TimeScale multiplies every wait of the notification schedule and the
	// refund delay: 0.001 runs the 24h4m retry schedule in about 87 s.
	// Zero means 1.
	TimeScale float64
	// AnswerDeadline bounds each notification request (real time, not
	// scaled); zero means DefaultAnswerDeadline.
	AnswerDeadline time.Duration
	// OrderTTL is the payable window of orders without time_expire; zero
	// means DefaultOrderTTL.
	OrderTTL time.Duration
	// RefundDelay is how long a refund stays PROCESSING before it succeeds
	// and is notified (virtual time, scaled); zero means
	// DefaultRefundDelay, negative means only CompleteRefund finishes it.
	RefundDelay time.Duration

	// NoHandshake turns off the HEAD request sent to the notify URL before
	// each POST (flag --handshake=false). The handshake, and blacklisting a
	// URL after 3 failed handshakes, model the seed article, not WeChat
	// Pay's documentation.
	NoHandshake bool
	// HandshakeV3 also sends the HEAD handshake before v3 notifications.
	// It is off by default: tollgate answers HEAD only on (docs/DESIGN.md §4.7)
	// the v2 notify URL, and the seed article's handshake predates API v3.
	HandshakeV3 bool
	// FreshNonceOnRetry makes each v2 retry carry a new nonce_str and sign.
	// By default a retry resends the identical body (same nonce_str and
	// sign): a notification is one message delivered again, and a receiver
	// that refuses seen nonces must still acknowledge it
	// (docs/WECHATPAY.md §1.4). v3 retries always get a fresh
	// Wechatpay-Timestamp, Wechatpay-Nonce and signature (the body is the
	// same), because a 5-minute window would otherwise refuse them.
	FreshNonceOnRetry bool
	// RequireDeviceFingerprint refuses orders without device_info (v2) or
	// scene_info.device_id (v3) with PARAM_ERROR. WeChat Pay does not do
	// this; it models the seed article's requirement.
	RequireDeviceFingerprint bool
	// SignTestProbes sends a v3 notification signed "WECHATPAY/SIGNTEST/..."
	// before each real v3 notification; a correct receiver answers 4xx.
	SignTestProbes bool
	// RefundNotifyURL is the refund notification URL "configured in the
	// merchant platform": used when a refund request carries no notify_url.
	// Empty means the order's notify_url.
	RefundNotifyURL string
	// QueryLimitPerMinute, when positive, answers an order query
	// FREQUENCY_LIMITED (v2) / 429 (v3) when that many were answered in the
	// 60 s before it (a sliding minute of Clock, as Stats counts them).
	// WeChat Pay limits queries without publishing the number.
	QueryLimitPerMinute int
	// BaseURL is the absolute URL the emulator is reachable at (used in bill
	// download_url); empty means derived from each request.
	BaseURL string
	// RedirectHosts are the hosts ("host" or "host:port") the browser may
	// be sent to: the OAuth redirect_uri (WeChat's web authorization
	// domain, 网页授权域名) and the H5 page's redirect_url (the merchant's H5
	// payment domain). Any other is refused with a 400 naming its host, as
	// WeChat refuses an unconfigured domain (10003 redirect_uri域名与后台配置不一致)
	// instead of redirecting. An entry without a port allows every port,
	// as WeChat's domains carry none. Empty means the host the request was
	// addressed to (the origin the emulator is served on) and BaseURL's
	// host. CheckRedirectHost validates an entry.
	RedirectHosts []string
	// HTTPClient sends notifications (each bounded by AnswerDeadline); nil
	// means http.DefaultClient, or one trusting NotifyRootCAs.
	HTTPClient *http.Client
	// NotifyRootCAs, when set and HTTPClient is nil, are the certificate
	// authorities trusted for https notify URLs (instead of the system's):
	// a test's own CA, or a staging receiver's.
	NotifyRootCAs *x509.CertPool
	// Logf logs unmodelled requests, refused requests and deliveries; nil
	// means log.Printf. Keys are never logged.
	Logf func(format string, args ...any)

	initOnce     sync.Once
	mux          *http.ServeMux
	merchKey     *rsa.PublicKey
	platKey      *rsa.PrivateKey // PlatformKey or the test key; the first certificate's key in certificate mode
	notifyClient *http.Client
	ctx          context.Context
	cancel       context.CancelFunc
	wg           sync.WaitGroup

	// mu guards everything below.
	mu         sync.Mutex
	orders     map[string]*order
	byTxID     map[string]*order // transaction_id -> order
	byPrepay   map[string]*order // prepay_id -> order
	orderSeq   []string          // out_trade_no in creation order
	refunds    map[string]*refund
	deliveries []Delivery
	notifySeq  int
	urls       map[string]*urlState
	faults     Faults
	rng        *faultRand
	clockSkew  time.Duration
	bills      map[string][]byte // download token -> bill text
	stats      callStats
	targets    map[string]string // out_trade_no -> the lie LieAbout tells about it
	oauthCodes map[string]*oauthCode
	// certs are the listed platform certificates, oldest first; the last
	// signs. Empty in public key mode. retired are those no longer listed.
	certs   []platformCert
	retired []platformCert
	lies    []LieTold
	closed  bool
}

// urlState is what the notifier knows about one notify URL.
type urlState struct {
	handshakeFailures int // consecutive
	blacklisted       bool
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		if s.MchID == "" {
			s.MchID = DefaultMchID
		}
		if s.AppID == "" {
			s.AppID = DefaultAppID
		}
		if s.APIKey == "" {
			s.APIKey = DefaultAPIKey
		}
		if s.APIv3Key == "" {
			s.APIv3Key = DefaultAPIv3Key
		}
		if s.SandboxKey == "" {
			sum := md5.Sum([]byte("sandboxnew:" + s.MchID + ":" + s.APIKey))
			s.SandboxKey = hex.EncodeToString(sum[:])
		}
		if s.MerchantSerial == "" {
			s.MerchantSerial = DefaultMerchantSerial
		}
		if s.PlatformKeyID == "" {
			s.PlatformKeyID = DefaultPlatformKeyID
		}
		s.merchKey = s.MerchantPublicKey
		if s.merchKey == nil {
			s.merchKey = mustPublicKey(TestMerchantPublicKeyPEM)
		}
		s.platKey = s.PlatformKey
		if s.platKey == nil {
			s.platKey = mustPrivateKey(TestPlatformPrivateKeyPEM)
		}
		s.initCertificates()
		s.notifyClient = s.newNotifyClient()
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.orders = map[string]*order{}
		s.byTxID = map[string]*order{}
		s.byPrepay = map[string]*order{}
		s.refunds = map[string]*refund{}
		s.urls = map[string]*urlState{}
		s.bills = map[string][]byte{}
		s.targets = map[string]string{}
		s.oauthCodes = map[string]*oauthCode{}
		s.rng = newFaultRand(0)
		s.mux = s.routes()
	})
}

func mustPublicKey(p string) *rsa.PublicKey {
	k, err := wxpay.LoadRSAPublicKeyPEM([]byte(p))
	if err != nil {
		panic(fmt.Sprintf("wxpaysim: built-in public key: %v", err))
	}
	return k
}

func mustPrivateKey(p string) *rsa.PrivateKey {
	k, err := wxpay.LoadRSAPrivateKeyPEM([]byte(p))
	if err != nil {
		panic(fmt.Sprintf("wxpaysim: built-in private key: %v", err))
	}
	return k
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.init()
	s.mux.ServeHTTP(w, r)
}

// Close stops every delivery goroutine and waits for them. The handler
// keeps answering API requests but sends no more notifications.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// now returns the emulator's current time: Now (or time.Now) plus the skew
// added by Advance.
func (s *Server) now() time.Time {
	s.mu.Lock()
	skew := s.clockSkew
	s.mu.Unlock()
	return s.nowLocked(skew)
}

func (s *Server) nowLocked(skew time.Duration) time.Time {
	return tollgate.ClockOr(s.Clock).Now().Add(skew)
}

// wallNow is the clock of the protocol itself: v3 signature timestamps and
// their 5-minute window. It is Clock's time without the skew added by
// Advance, because a merchant's client runs on its own clock: advancing the
// emulator's order clock must not make every signature look stale.
func (s *Server) wallNow() time.Time {
	return tollgate.ClockOr(s.Clock).Now()
}

// Advance moves the emulator's order clock forward by d (expiry, payment and
// bill times), on top of Clock. Signature timestamps keep using Clock (see
// wallNow), and notification schedules keep running on Clock's timers.
func (s *Server) Advance(d time.Duration) {
	s.init()
	s.mu.Lock()
	s.clockSkew += d
	s.mu.Unlock()
}

// scaled converts a virtual duration to the real time waited.
func (s *Server) scaled(d time.Duration) time.Duration {
	if s.TimeScale <= 0 {
		return d
	}
	return time.Duration(float64(d) * s.TimeScale)
}

// Config is the merchant material a client needs to talk to the emulator.
type Config struct {
	MchID          string `json:"mch_id"`
	AppID          string `json:"appid"`
	APIKey         string `json:"api_key"`
	SandboxKey     string `json:"sandbox_key"`
	APIv3Key       string `json:"apiv3_key"`
	MerchantSerial string `json:"merchant_serial"`
	// MerchantPrivateKeyPEM is set only when the emulator uses the built-in
	// test merchant key (it never holds a real merchant's private key).
	MerchantPrivateKeyPEM string `json:"merchant_private_key_pem,omitempty"`
	// PlatformKeyID is the WeChat Pay public key id (public key mode only);
	// PlatformPublicKeyPEM is the public key of the key signing now, in
	// either mode.
	PlatformKeyID        string `json:"platform_public_key_id,omitempty"`
	PlatformPublicKeyPEM string `json:"platform_public_key_pem"`
	// PlatformCertificates is set in certificate mode, with the serial and
	// PEM of the certificate signing now (clients may also download every
	// listed one from /v3/certificates).
	PlatformCertificates      bool   `json:"platform_certificates,omitempty"`
	PlatformCertificateSerial string `json:"platform_certificate_serial,omitempty"`
	PlatformCertificatePEM    string `json:"platform_certificate_pem,omitempty"`
	// AppSecret is set only when the emulator uses DefaultAppSecret.
	AppSecret string `json:"app_secret,omitempty"`
}

// Config returns the merchant configuration clients of this emulator use.
func (s *Server) Config() Config {
	s.init()
	c := Config{
		MchID:                s.MchID,
		AppID:                s.AppID,
		APIKey:               s.APIKey,
		SandboxKey:           s.SandboxKey,
		APIv3Key:             s.APIv3Key,
		MerchantSerial:       s.MerchantSerial,
		PlatformKeyID:        s.PlatformKeyID,
		PlatformPublicKeyPEM: publicKeyPEM(s.PlatformPublicKey()),
	}
	if s.PlatformCertificates {
		s.mu.Lock()
		cur := s.certs[len(s.certs)-1]
		s.mu.Unlock()
		c.PlatformKeyID, c.PlatformCertificates = "", true
		c.PlatformCertificateSerial, c.PlatformCertificatePEM = cur.serial, string(cur.pem)
	}
	if s.MerchantPublicKey == nil {
		c.MerchantPrivateKeyPEM = strings.TrimSpace(TestMerchantPrivateKeyPEM) + "\n"
	}
	if s.AppSecret == "" {
		c.AppSecret = DefaultAppSecret
	}
	return c
}

// PlatformPublicKey returns the key clients verify responses and
// notifications with now: the WeChat Pay public key (its id is
// Config().PlatformKeyID), or in certificate mode the newest certificate's.
func (s *Server) PlatformPublicKey() *rsa.PublicKey {
	s.init()
	key, _ := s.signer()
	return &key.PublicKey
}

func publicKeyPEM(k *rsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return ""
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// routes builds the handler tree. Every path not listed here is answered
// 404 by unmodelled, loudly.
func (s *Server) routes() *http.ServeMux {
	m := http.NewServeMux()
	for _, prefix := range []string{"", "/sandboxnew"} {
		sandbox := prefix != ""
		m.Handle(prefix+"/pay/unifiedorder", s.v2Handler(epOrder, sandbox, s.v2UnifiedOrder))
		m.Handle(prefix+"/pay/orderquery", s.v2Handler(epQuery, sandbox, s.v2OrderQuery))
		m.Handle(prefix+"/pay/closeorder", s.v2Handler(epClose, sandbox, s.v2CloseOrder))
		m.Handle(prefix+"/secapi/pay/refund", s.v2Handler(epRefund, sandbox, s.v2Refund))
		m.Handle(prefix+"/pay/refundquery", s.v2Handler(epRefundQuery, sandbox, s.v2RefundQuery))
		m.Handle(prefix+"/pay/downloadbill", s.v2BillHandler(sandbox))
	}
	m.Handle("/sandboxnew/pay/refund", s.v2Handler(epRefund, true, s.v2Refund))
	m.HandleFunc("/sandboxnew/pay/getsignkey", s.v2GetSignKey)

	m.Handle("POST /v3/pay/transactions/native", s.v3Handler(epOrder, s.v3Native))
	m.Handle("POST /v3/pay/transactions/jsapi", s.v3Handler(epOrder, s.v3JSAPI))
	m.Handle("POST /v3/pay/transactions/h5", s.v3Handler(epOrder, s.v3H5))
	m.Handle("GET /v3/pay/transactions/out-trade-no/{no}", s.v3Handler(epQuery, s.v3Query))
	m.Handle("GET /v3/pay/transactions/id/{id}", s.v3Handler(epQuery, s.v3QueryByID))
	m.Handle("POST /v3/pay/transactions/out-trade-no/{no}/close", s.v3Handler(epClose, s.v3Close))
	m.Handle("POST /v3/refund/domestic/refunds", s.v3Handler(epRefund, s.v3Refund))
	m.Handle("GET /v3/refund/domestic/refunds/{no}", s.v3Handler(epRefundQuery, s.v3RefundQuery))
	m.Handle("GET /v3/bill/tradebill", s.v3Handler(epBill, s.v3TradeBill))
	m.Handle("GET /v3/billdownload/file", s.v3Handler(epBill, s.v3BillDownload))
	m.Handle("GET /v3/certificates", s.v3Handler(epQuery, s.v3Certificates))

	s.simRoutes(m)
	s.h5Routes(m)
	s.jsapiRoutes(m)
	s.certRoutes(m)
	s.oauthRoutes(m)
	m.HandleFunc("/", s.unmodelled)
	return m
}

// unmodelled answers any request the emulator does not model with a 404
// that says so, and logs it: a silent fake would hide a client bug.
func (s *Server) unmodelled(w http.ResponseWriter, r *http.Request) {
	s.logf("wxpaysim: UNMODELLED request %s %s", r.Method, r.URL.Path)
	http.Error(w, fmt.Sprintf("wxpaysim: %s %s is not modelled by the WeChat Pay emulator", r.Method, r.URL.Path), http.StatusNotFound)
}
