package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"tollgate/wxpay/wxpaysim"
)

const sandboxSummary = "run the WeChat Pay emulator (v2, v3, /sim API) on its own"

func init() {
	register("sandbox", sandboxSummary, runSandbox)
}

// runSandbox serves a wxpaysim.Server until ctx is cancelled. It prints the
// URL and the merchant material (test keys only) a client needs.
func runSandbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sandbox", sandboxSummary)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address HOST:PORT (port 0 picks a free one)")
	mchID := fs.String("mch-id", wxpaysim.DefaultMchID, "merchant id (mch_id)")
	appID := fs.String("appid", wxpaysim.DefaultAppID, "app id bound to the merchant")
	apiKey := fs.String("api-key", wxpaysim.DefaultAPIKey, "v2 API key (32 characters)")
	apiv3Key := fs.String("apiv3-key", wxpaysim.DefaultAPIv3Key, "APIv3 key (32 bytes), encrypts v3 notification resources")
	timeScale := fs.Float64("time-scale", 1, "multiplies notification retry waits and the refund delay (0.001 runs 24h4m in ~87 s)")
	handshake := fs.Bool("handshake", true, "send a HEAD handshake before each v2 notification POST (models the seed article, not WeChat Pay)")
	handshakeV3 := fs.Bool("handshake-v3", false, "also send the HEAD handshake before v3 notifications")
	fingerprint := fs.Bool("require-device-fingerprint", false, "refuse orders without device_info / scene_info.device_id (PARAM_ERROR)")
	probes := fs.Bool("sign-test-probes", false, "send a WECHATPAY/SIGNTEST/ probe before each v3 notification")
	freshNonce := fs.Bool("fresh-nonce-on-retry", false, "give each v2 notification retry a new nonce_str (default: resend the same body)")
	queryLimit := fs.Int("query-limit-per-minute", 0, "answer order queries beyond this many per minute FREQUENCY_LIMITED (0: no limit)")
	refundDelay := fs.Duration("refund-delay", wxpaysim.DefaultRefundDelay, "how long refunds stay PROCESSING (virtual time; negative: only via /sim)")
	var redirectHosts redirectHostList
	fs.Var(&redirectHosts, "redirect-host", "`HOST[:PORT]` the OAuth redirect_uri and the H5 page's redirect_url may lead to, as WeChat's\n"+
		"web authorization and H5 payment domains (repeatable or comma-separated; no port: any port);\n"+
		"default the host the emulator is addressed by")
	keys := addSandboxKeyFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(*apiKey) != 32 || len(*apiv3Key) != 32 {
		return fmt.Errorf("sandbox: --api-key and --apiv3-key must be 32 characters (got %d and %d)", len(*apiKey), len(*apiv3Key))
	}
	if *keys.apiv3KeyFile != "" && flagSet(fs, "apiv3-key") {
		return errors.New("sandbox: --apiv3-key and --apiv3-key-file are two APIv3 keys: give one")
	}
	if *timeScale <= 0 {
		return fmt.Errorf("sandbox: --time-scale must be positive, got %v", *timeScale)
	}
	logger := log.New(stderr, "", log.LstdFlags)
	sim := &wxpaysim.Server{
		MchID: *mchID, AppID: *appID, APIKey: *apiKey, APIv3Key: *apiv3Key,
		TimeScale: *timeScale, NoHandshake: !*handshake, HandshakeV3: *handshakeV3, RequireDeviceFingerprint: *fingerprint,
		SignTestProbes: *probes, FreshNonceOnRetry: *freshNonce, RefundDelay: *refundDelay, QueryLimitPerMinute: *queryLimit,
		RedirectHosts: redirectHosts, Logf: logger.Printf,
	}
	warnings, err := keys.apply(sim)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	for _, w := range warnings {
		logger.Printf("warning: %s", w)
	}
	defer sim.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("sandbox: listen: %w", err)
	}
	url := "http://" + ln.Addr().String()
	printSandbox(stdout, url, sim.Config(), keys.operator())
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("sandbox: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("sandbox: shutdown: %w", err)
	}
	return nil
}

// printSandbox prints what a client needs. Only the emulator's built-in
// test secrets are printed: it never prints a key read from a file, and
// with the operator's keys (operator) not the v2 and APIv3 keys either.
// flagSet reports whether the flag name was set (by the command line, the
// environment or the config file).
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func printSandbox(w io.Writer, url string, c wxpaysim.Config, operator bool) {
	if operator {
		c.APIKey, c.SandboxKey, c.APIv3Key = "(as given, not shown)", "(not shown)", "(as given, not shown)"
	}
	fmt.Fprintf(w, "WeChat Pay emulator listening on %s\n", url)
	fmt.Fprintf(w, "  v2 base URL:      %s  (sandbox: %s/sandboxnew)\n", url, url)
	fmt.Fprintf(w, "  v3 base URL:      %s\n", url)
	fmt.Fprintf(w, "  simulation API:   %s/sim/orders, /sim/notifications, /sim/faults, /sim/config\n", url)
	fmt.Fprintf(w, "  JSAPI bridge:     %s/sim/jsapi/bridge.js  (H5 pages: %s/sim/h5/pay)\n", url, url)
	fmt.Fprintf(w, "  OAuth URLs:       %s  (--wechat-oauth-url and --wechat-api-url)\n", url)
	fmt.Fprintf(w, "  mch_id:           %s\n", c.MchID)
	fmt.Fprintf(w, "  appid:            %s\n", c.AppID)
	fmt.Fprintf(w, "  api key (v2):     %s\n", c.APIKey)
	fmt.Fprintf(w, "  sandbox key:      %s\n", c.SandboxKey)
	fmt.Fprintf(w, "  apiv3 key:        %s\n", c.APIv3Key)
	fmt.Fprintf(w, "  merchant serial:  %s\n", c.MerchantSerial)
	if c.PlatformCertificates {
		fmt.Fprintf(w, "  platform cert serial: %s  (download: GET /v3/certificates; rotate: POST /sim/rotate-certificate)\n", c.PlatformCertificateSerial)
	} else {
		fmt.Fprintf(w, "  platform key id:  %s\n", c.PlatformKeyID)
	}
	if c.AppSecret != "" {
		fmt.Fprintf(w, "  app secret:       %s  (test value)\n", c.AppSecret)
	}
	fmt.Fprintf(w, "WeChat Pay public key (verifies answers and notifications):\n%s", c.PlatformPublicKeyPEM)
	if c.MerchantPrivateKeyPEM != "" {
		fmt.Fprintf(w, "Merchant test private key (signs v3 requests):\n%s", c.MerchantPrivateKeyPEM)
	}
	fmt.Fprintln(w, strings.Repeat("=", 60))
}

// sandboxKeyFlags are the flags that make `tollgate sandbox` an external
// WeChat Pay with the operator's keys instead of its built-in test keys.
// Their files are read by serve's loaders (wxpaykeys.go): a file serve
// takes, the emulator takes, and one serve refuses it refuses alike.
type sandboxKeyFlags struct {
	merchantPublicKey *string
	merchantSerial    *string
	platformKey       *string
	platformKeyID     *string
	platformCerts     *bool
	appSecretFile     *string
	apiv3KeyFile      *string
	notifyCA          *string
}

func addSandboxKeyFlags(fs *flag.FlagSet) sandboxKeyFlags {
	return sandboxKeyFlags{
		merchantPublicKey: fs.String("merchant-public-key", "", "PEM FILE verifying the merchant's v3 request signatures: a PUBLIC KEY, or the CERTIFICATE apiclient_cert.pem (its serial is then the merchant serial); default the built-in test key"),
		merchantSerial:    fs.String("merchant-serial", "", "HEX serial_no the merchant's requests must name (needed with a PUBLIC KEY; default "+wxpaysim.DefaultMerchantSerial+" for the test key)"),
		platformKey:       fs.String("wechatpay-private-key", "", "PEM FILE of the private key WeChat Pay signs answers and notifications with; default the built-in test key"),
		platformKeyID:     fs.String("wechatpay-public-key-id", "", "PUB_KEY_ID_… sent as Wechatpay-Serial in public key mode (default "+wxpaysim.DefaultPlatformKeyID+")"),
		platformCerts:     fs.Bool("platform-certificates", false, "platform certificate mode: a self-signed certificate for the WeChat Pay key, served encrypted by GET /v3/certificates, rotated by POST /sim/rotate-certificate"),
		appSecretFile:     fs.String("app-secret-file", "", "FILE holding the AppSecret the OAuth code exchange requires (default the test value "+wxpaysim.DefaultAppSecret+")"),
		apiv3KeyFile:      fs.String("apiv3-key-file", "", "FILE holding the APIv3 key (32 characters), instead of --apiv3-key (a key on the command line shows in ps)"),
		notifyCA:          fs.String("notify-ca", "", "PEM FILE of CA certificates trusted for https notify URLs (default the system's)"),
	}
}

// operator reports whether any of the operator's key files is given.
func (f sandboxKeyFlags) operator() bool {
	return *f.merchantPublicKey != "" || *f.platformKey != "" || *f.appSecretFile != "" || *f.apiv3KeyFile != ""
}

// apply reads the key files and sets sim's keys. Every problem is named
// with its flag, all at once; no file content appears in an error.
// warnings are about secret files others may read.
func (f sandboxKeyFlags) apply(sim *wxpaysim.Server) (warnings []string, err error) {
	var errs []error
	fail := func(err error) { errs = append(errs, err) }
	serial := certSerial(*f.merchantSerial)
	if serial != "" {
		if err := checkCertSerial("--merchant-serial", serial); err != nil {
			fail(err)
		}
	}
	if *f.merchantPublicKey != "" {
		pub, certSerial, err := readPublicKey("--merchant-public-key", *f.merchantPublicKey, "the merchant's public key or certificate (apiclient_cert.pem)")
		switch {
		case err != nil:
			fail(err)
		case certSerial != "" && serial != "" && !strings.EqualFold(serial, certSerial):
			fail(fmt.Errorf("--merchant-serial %s is not the serial of the certificate in --merchant-public-key (%s)", serial, certSerial))
		case certSerial == "" && serial == "":
			fail(errors.New("--merchant-serial is required with a PUBLIC KEY in --merchant-public-key (the serial of the merchant API certificate)"))
		default:
			sim.MerchantPublicKey = pub
			if serial == "" {
				serial = certSerial
			}
		}
	}
	sim.MerchantSerial = serial

	if p := *f.platformKey; p != "" {
		key, err := readPrivateKey("--wechatpay-private-key", p, "the private key WeChat Pay signs with")
		if err != nil {
			fail(err)
		} else {
			warnings = append(warnings, secretFileWarning("--wechatpay-private-key", p)...)
		}
		sim.PlatformKey = key
	}
	if id := *f.platformKeyID; id != "" {
		switch {
		case *f.platformCerts:
			fail(errors.New("--wechatpay-public-key-id names a WeChat Pay public key, but --platform-certificates signs with a certificate: give one or the other"))
		default:
			if err := checkPublicKeyID("--wechatpay-public-key-id", id); err != nil {
				fail(err)
			}
		}
		sim.PlatformKeyID = id
	}
	sim.PlatformCertificates = *f.platformCerts

	if p := *f.appSecretFile; p != "" {
		secret, w, err := readSecretFile("--app-secret-file", p)
		if err != nil {
			fail(err)
		}
		warnings = append(warnings, w...)
		sim.AppSecret = secret
	}
	if p := *f.apiv3KeyFile; p != "" {
		key, err := readAPIv3Key("--apiv3-key-file", p)
		if err != nil {
			fail(err)
		} else {
			warnings = append(warnings, secretFileWarning("--apiv3-key-file", p)...)
		}
		sim.APIv3Key = key
	}
	if p := *f.notifyCA; p != "" {
		b, err := readSettingFile("--notify-ca", p)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			fail(err)
		case !pool.AppendCertsFromPEM(b):
			fail(fmt.Errorf("--notify-ca %s holds no PEM CERTIFICATE", p))
		}
		sim.NotifyRootCAs = pool
	}
	return warnings, errors.Join(errs...)
}

// redirectHostList is --redirect-host: repeatable, each a comma-separated
// list of hosts checked by wxpaysim.CheckRedirectHost.
type redirectHostList []string

func (l *redirectHostList) String() string { return strings.Join(*l, ",") }

func (l *redirectHostList) Set(v string) error {
	for _, h := range strings.Split(v, ",") {
		h = strings.TrimSpace(h)
		if err := wxpaysim.CheckRedirectHost(h); err != nil {
			return err
		}
		*l = append(*l, h)
	}
	return nil
}
