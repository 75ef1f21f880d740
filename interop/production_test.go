package interop_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/internal/operatorkeys"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// operatorFiles are generated once per test binary: RSA key generation is
// slow under -race, and both modes use the same operator's files.
var operatorFiles = sync.OnceValues(func() (*operatorkeys.Files, error) {
	dir, err := os.MkdirTemp("", "tollgate-interop-keys-")
	if err != nil {
		return nil, err
	}
	return operatorkeys.Generate(dir, "", "")
})

// sandboxWithOperatorKeys configures the emulator from the operator's files
// as `tollgate sandbox --mch-id --appid --apiv3-key --merchant-public-key
// apiclient_cert.pem --wechatpay-private-key [--wechatpay-public-key-id |
// --platform-certificates] --notify-ca` does: the merchant's certificate
// (not its private key), WeChat Pay's private key, and the test CA for
// https notify URLs.
func sandboxWithOperatorKeys(t *testing.T, k *operatorkeys.Files, certMode bool, notifyCA string) *wxpaysim.Server {
	t.Helper()
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	merchantPub, err := wxpay.LoadRSAPublicKeyPEM(read(k.MerchantCert))
	if err != nil {
		t.Fatalf("--merchant-public-key: %v", err)
	}
	platformKey, err := wxpay.LoadRSAPrivateKeyPEM(read(k.WechatpayKey))
	if err != nil {
		t.Fatalf("--wechatpay-private-key: %v", err)
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM(read(notifyCA)) {
		t.Fatal("--notify-ca: no certificate")
	}
	sim := &wxpaysim.Server{
		MchID: k.MchID, AppID: k.AppID, APIv3Key: k.APIv3Key,
		MerchantPublicKey: merchantPub, MerchantSerial: k.MerchantSerial,
		PlatformKey: platformKey, PlatformCertificates: certMode,
		NotifyRootCAs: cas,
		RefundDelay:   -1, TimeScale: 0.001, Logf: t.Logf,
		// production.js's H5 payer returns to the merchant's H5 domain.
		RedirectHosts: []string{"merchant.example"},
	}
	if !certMode {
		sim.PlatformKeyID = k.WechatpayKeyID
	}
	return sim
}

// tollgateJSAPI stands for tollgate's order endpoint on the JSAPI path: it
// answers the payment sheet parameters of a prepay_id with tollgate's own
// code (wxpay.V3Client.JSAPIParams), the merchant key read from
// apiclient_key.pem as serve reads --wxpay-private-key.
func tollgateJSAPI(t *testing.T, k *operatorkeys.Files) *httptest.Server {
	t.Helper()
	pemBytes, err := os.ReadFile(k.MerchantKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := wxpay.LoadRSAPrivateKeyPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	client := &wxpay.V3Client{MchID: k.MchID, AppID: k.AppID, MerchantSerialNo: k.MerchantSerial, MerchantKey: key}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/jsapi-params" {
			http.NotFound(w, r)
			return
		}
		p, err := client.JSAPIParams(r.URL.Query().Get("prepay_id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestWechatpayAxiosPluginV3Production drives the emulator, configured
// with an operator's generated keys as `tollgate sandbox` is in production
// tests, with wechatpay-axios-plugin configured with the same files (not
// the emulator's built-in test keys): a JSAPI order paid through the
// payment sheet with tollgate's paySign, which the plugin's own RSA
// verification must accept (and refuse once tampered with), and an H5 order
// paid on its page; every answer and the https notifications verified by
// the plugin. In platform certificate mode the plugin downloads the
// certificates, the certificate rotates between the two orders, and the
// plugin must refuse the unknown serial until it downloads them again.
func TestWechatpayAxiosPluginV3Production(t *testing.T) {
	need(t, "node")
	mustNodeModules(t)
	k, err := operatorFiles()
	if err != nil {
		t.Fatal(err)
	}
	tlsFiles, err := operatorkeys.GenerateTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct {
		name     string
		certMode bool
	}{{"PublicKey", false}, {"PlatformCertificates", true}} {
		t.Run(mode.name, func(t *testing.T) {
			sim := sandboxWithOperatorKeys(t, k, mode.certMode, tlsFiles.CACert)
			srv := httptest.NewServer(sim)
			t.Cleanup(func() {
				sim.Close()
				srv.Close()
			})
			tg := tollgateJSAPI(t, k)

			env := []string{
				"WXPAYSIM_URL=" + srv.URL,
				"TOLLGATE_URL=" + tg.URL,
				"MCH_ID=" + k.MchID,
				"APPID=" + k.AppID,
				"MERCHANT_KEY_FILE=" + k.MerchantKey,
				"MERCHANT_CERT_FILE=" + k.MerchantCert,
				"MERCHANT_SERIAL=" + k.MerchantSerial,
				"APIV3_KEY_FILE=" + k.APIv3KeyFile,
				"TLS_CERT_FILE=" + tlsFiles.ServerCert,
				"TLS_KEY_FILE=" + tlsFiles.ServerKey,
			}
			if !mode.certMode {
				env = append(env, "WECHATPAY_PUBLIC_KEY_FILE="+k.WechatpayPub, "WECHATPAY_PUBLIC_KEY_ID="+k.WechatpayKeyID)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", "production.js")
			cmd.Env = append(os.Environ(), env...)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			t.Logf("production.js (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
			if err != nil || !strings.Contains(string(out), "INTEROP OK") {
				t.Fatalf("production.js failed: %v", err)
			}

			// What the emulator saw: both orders paid once, each
			// notification acknowledged at its first attempt.
			paid := map[string]wxpaysim.Order{}
			for _, o := range sim.Orders() {
				if o.State != wxpaysim.StateSuccess {
					t.Errorf("order %s (%s) is %s, want SUCCESS", o.OutTradeNo, o.TradeType, o.State)
				}
				paid[o.TradeType] = o
			}
			if len(paid) != 2 || paid["JSAPI"].OpenID == "" || paid["MWEB"].PayerClientIP == "" {
				t.Errorf("paid orders by trade type: %+v, want one JSAPI with an openid and one MWEB with a client IP", paid)
			}
			acked := 0
			for _, d := range sim.Notifications() {
				if !strings.HasPrefix(d.URL, "https://") {
					t.Errorf("notification to %s, want https", d.URL)
				}
				switch d.Outcome {
				case wxpaysim.OutcomeAcked:
					acked++
				default:
					t.Errorf("notification %s attempt %d: %s (%d %s %s)", d.OutTradeNo, d.Attempt, d.Outcome, d.Status, d.Err, d.Reply)
				}
			}
			if acked != 2 {
				t.Errorf("%d notifications acknowledged, want 2", acked)
			}
			if mode.certMode {
				if got := sim.CertificateSerials(); len(got) != 2 {
					t.Errorf("certificates listed %v, want the original and the rotated one", got)
				}
			}
		})
	}
}
