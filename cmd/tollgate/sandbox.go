package main

import (
	"context"
	"errors"
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
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(*apiKey) != 32 || len(*apiv3Key) != 32 {
		return fmt.Errorf("sandbox: --api-key and --apiv3-key must be 32 characters (got %d and %d)", len(*apiKey), len(*apiv3Key))
	}
	if *timeScale <= 0 {
		return fmt.Errorf("sandbox: --time-scale must be positive, got %v", *timeScale)
	}
	logger := log.New(stderr, "", log.LstdFlags)
	sim := &wxpaysim.Server{
		MchID: *mchID, AppID: *appID, APIKey: *apiKey, APIv3Key: *apiv3Key,
		TimeScale: *timeScale, NoHandshake: !*handshake, HandshakeV3: *handshakeV3, RequireDeviceFingerprint: *fingerprint,
		SignTestProbes: *probes, FreshNonceOnRetry: *freshNonce, RefundDelay: *refundDelay, QueryLimitPerMinute: *queryLimit,
		Logf: logger.Printf,
	}
	defer sim.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("sandbox: listen: %w", err)
	}
	url := "http://" + ln.Addr().String()
	printSandbox(stdout, url, sim.Config())
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

// printSandbox prints what a client needs. These are emulator test keys;
// the emulator never holds a real merchant's secrets.
func printSandbox(w io.Writer, url string, c wxpaysim.Config) {
	fmt.Fprintf(w, "WeChat Pay emulator listening on %s\n", url)
	fmt.Fprintf(w, "  v2 base URL:      %s  (sandbox: %s/sandboxnew)\n", url, url)
	fmt.Fprintf(w, "  v3 base URL:      %s\n", url)
	fmt.Fprintf(w, "  simulation API:   %s/sim/orders, /sim/notifications, /sim/faults, /sim/config\n", url)
	fmt.Fprintf(w, "  mch_id:           %s\n", c.MchID)
	fmt.Fprintf(w, "  appid:            %s\n", c.AppID)
	fmt.Fprintf(w, "  api key (v2):     %s\n", c.APIKey)
	fmt.Fprintf(w, "  sandbox key:      %s\n", c.SandboxKey)
	fmt.Fprintf(w, "  apiv3 key:        %s\n", c.APIv3Key)
	fmt.Fprintf(w, "  merchant serial:  %s\n", c.MerchantSerial)
	fmt.Fprintf(w, "  platform key id:  %s\n", c.PlatformKeyID)
	fmt.Fprintf(w, "WeChat Pay public key (verifies answers and notifications):\n%s", c.PlatformPublicKeyPEM)
	if c.MerchantPrivateKeyPEM != "" {
		fmt.Fprintf(w, "Merchant test private key (signs v3 requests):\n%s", c.MerchantPrivateKeyPEM)
	}
	fmt.Fprintln(w, strings.Repeat("=", 60))
}
