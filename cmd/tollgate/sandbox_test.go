package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// mustStartSandbox runs `tollgate sandbox` with args on a free port until
// the test ends and returns its URL and start-up output.
func mustStartSandbox(t *testing.T, args ...string) (url, printed string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, append([]string{"sandbox", "--addr", "127.0.0.1:0"}, args...), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sandbox returned %v after cancel", err)
		}
	})
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatal("sandbox printed nothing")
	}
	first := sc.Text()
	url = first[strings.LastIndex(first, " ")+1:]
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line %q does not end with the URL", first)
	}
	var b strings.Builder
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "====") {
		b.WriteString(sc.Text() + "\n")
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	return url, b.String()
}

// TestSandboxPlacesAnOrder runs `tollgate sandbox` on a free port, reads the
// URL it prints, places a v2 NATIVE order signed with the printed key and
// pays it through the simulation API.
func TestSandboxPlacesAnOrder(t *testing.T) {
	url, printed := mustStartSandbox(t, "--mch-id", "1900000109", "--api-key", "0123456789abcdef0123456789abcdef", "--handshake=false")
	for _, want := range []string{"1900000109", "0123456789abcdef0123456789abcdef", wxpaysim.DefaultPlatformKeyID, "BEGIN PUBLIC KEY"} {
		if !strings.Contains(printed, want) {
			t.Errorf("start-up output lacks %q:\n%s", want, printed)
		}
	}

	p := map[string]string{
		"appid": wxpaysim.DefaultAppID, "mch_id": "1900000109", "nonce_str": "ibuaiVcKdpRxkhJA", "body": "credits",
		"out_trade_no": "SANDBOX-CMD-1", "total_fee": "990", "spbill_create_ip": "127.0.0.1",
		"notify_url": "http://127.0.0.1:1/notify", "trade_type": "NATIVE", "product_id": "p1",
	}
	sig, err := wxpay.SignV2(p, wxpay.SignTypeMD5, "0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	p["sign"] = sig
	resp, err := http.Post(url+"/pay/unifiedorder", "text/xml", bytes.NewReader(wxpay.EncodeV2XML(p)))
	if err != nil {
		t.Fatal(err)
	}
	ans, err := wxpay.ReadV2XML(resp.Body)
	resp.Body.Close()
	if err != nil || ans["result_code"] != "SUCCESS" || ans["code_url"] == "" {
		t.Fatalf("unifiedorder: %v %v", ans, err)
	}
	resp, err = http.Post(url+"/sim/orders/SANDBOX-CMD-1/pay", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sim pay: %d", resp.StatusCode)
	}
}

func TestSandboxRefusesBadKeys(t *testing.T) {
	err := Run(context.Background(), []string{"sandbox", "--addr", "127.0.0.1:0", "--api-key", "short"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "32 characters") {
		t.Fatalf("err = %v, want a key length error", err)
	}
}

func TestSandboxReadsEnvironment(t *testing.T) {
	t.Setenv("TOLLGATE_MCH_ID", "1900000777")
	t.Setenv("TOLLGATE_APPID", "wx0000000000000777")
	_, printed := mustStartSandbox(t)
	for _, want := range []string{"mch_id:           1900000777", "appid:            wx0000000000000777"} {
		if !strings.Contains(printed, want) {
			t.Errorf("start-up output lacks %q:\n%s", want, printed)
		}
	}
}

// sandboxKeys are an operator's key files, written for one test.
type sandboxKeys struct {
	merchant     *rsa.PrivateKey
	serial       string // of the merchant certificate
	platform     *rsa.PrivateKey
	merchantCert string // PEM CERTIFICATE of merchant (apiclient_cert.pem)
	merchantPub  string // PEM PUBLIC KEY of merchant
	merchantPriv string // PEM PRIVATE KEY of merchant (a mistake to give the emulator)
	platformPriv string // PEM PRIVATE KEY of platform
	secret       string // AppSecret file
}

// sandboxKeyMaterial is generated once: RSA key generation is slow under -race.
var sandboxKeyMaterial = sync.OnceValues(func() ([3][]byte, error) {
	var out [3][]byte
	merchant, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return out, err
	}
	platform, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return out, err
	}
	sn, _ := new(big.Int).SetString(sandboxTestMerchantSerial, 16)
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: "1900000109"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	if out[0], err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &merchant.PublicKey, merchant); err != nil {
		return out, err
	}
	out[1], _ = x509.MarshalPKCS8PrivateKey(merchant)
	out[2], _ = x509.MarshalPKCS8PrivateKey(platform)
	return out, nil
})

// mustSandboxKeys writes the key files an operator downloads from the
// merchant platform (generated here) to a temporary directory.
func mustSandboxKeys(t *testing.T) sandboxKeys {
	t.Helper()
	m, err := sandboxKeyMaterial()
	if err != nil {
		t.Fatal(err)
	}
	k := sandboxKeys{serial: sandboxTestMerchantSerial}
	mk, _ := x509.ParsePKCS8PrivateKey(m[1])
	pk, _ := x509.ParsePKCS8PrivateKey(m[2])
	k.merchant, k.platform = mk.(*rsa.PrivateKey), pk.(*rsa.PrivateKey)
	pub, _ := x509.MarshalPKIXPublicKey(&k.merchant.PublicKey)
	dir := t.TempDir()
	files := []struct {
		path *string
		name string
		data []byte
	}{
		{&k.merchantCert, "apiclient_cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m[0]})},
		{&k.merchantPub, "merchant_public.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})},
		{&k.merchantPriv, "apiclient_key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: m[1]})},
		{&k.platformPriv, "wechatpay_key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: m[2]})},
		{&k.secret, "app_secret", []byte(sandboxTestSecret + "\n")},
	}
	for _, f := range files {
		*f.path = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

const (
	sandboxTestSecret         = "operatorsecret0123456789abcdef01"
	sandboxTestKeyID          = "PUB_KEY_ID_0119000000002025010100000000000042"
	sandboxTestMerchantSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
)

// sandboxV3Client is a merchant's v3 client of the emulator at url.
func sandboxV3Client(t *testing.T, url string, key *rsa.PrivateKey, serial string, ring *wxpay.V3Keyring, wechatpaySerial string) *wxpay.V3Client {
	t.Helper()
	return &wxpay.V3Client{BaseURL: url, MchID: wxpaysim.DefaultMchID, AppID: wxpaysim.DefaultAppID, MerchantSerialNo: serial,
		MerchantKey: key, APIv3Key: wxpaysim.DefaultAPIv3Key, Keyring: ring, WechatpaySerial: wechatpaySerial}
}

// sandboxGetJSON GETs url without following redirects: the status, the
// Location and the decoded JSON body (nil when not JSON).
func sandboxGetJSON(t *testing.T, url string) (int, string, map[string]any) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, resp.Header.Get("Location"), m
}

// TestSandboxOperatorKeys runs the emulator with an operator's key files:
// it verifies requests with the merchant certificate (whose serial it
// takes), signs with the operator's WeChat Pay key and id, checks the OAuth
// exchange against the AppSecret file, and prints no secret.
func TestSandboxOperatorKeys(t *testing.T) {
	k := mustSandboxKeys(t)
	url, printed := mustStartSandbox(t, "--merchant-public-key", k.merchantCert, "--wechatpay-private-key", k.platformPriv,
		"--wechatpay-public-key-id", sandboxTestKeyID, "--app-secret-file", k.secret, "--redirect-host", "shop.example")
	for _, want := range []string{"merchant serial:  " + k.serial, "platform key id:  " + sandboxTestKeyID, "BEGIN PUBLIC KEY"} {
		if !strings.Contains(printed, want) {
			t.Errorf("start-up output lacks %q:\n%s", want, printed)
		}
	}
	for _, secret := range []string{"PRIVATE KEY", sandboxTestSecret, wxpaysim.DefaultAppSecret, wxpaysim.DefaultAPIv3Key} {
		if strings.Contains(printed, secret) {
			t.Errorf("start-up output shows %q:\n%s", secret, printed)
		}
	}

	ring := wxpay.NewV3Keyring()
	if err := ring.Add(sandboxTestKeyID, &k.platform.PublicKey); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var apiErr *wxpay.APIError
	_, err := sandboxV3Client(t, url, k.merchant, k.serial, ring, sandboxTestKeyID).QueryOrder(ctx, "SANDBOX-OPK-NONE")
	if !errors.As(err, &apiErr) || apiErr.Code != "ORDER_NOT_EXIST" {
		t.Fatalf("query signed with the operator's key, verified with theirs: %v", err)
	}
	testKey, err := wxpay.LoadRSAPrivateKeyPEM([]byte(wxpaysim.TestMerchantPrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sandboxV3Client(t, url, testKey, k.serial, ring, sandboxTestKeyID).QueryOrder(ctx, "SANDBOX-OPK-NONE")
	if !errors.As(err, &apiErr) || apiErr.Code != "SIGN_ERROR" {
		t.Fatalf("query signed with the built-in test key: %v, want SIGN_ERROR", err)
	}

	st, loc, _ := sandboxGetJSON(t, url+"/connect/oauth2/authorize?appid="+wxpaysim.DefaultAppID+
		"&redirect_uri=https%3A%2F%2Fshop.example%2Fcb&response_type=code&scope=snsapi_base&state=s&openid=oSandboxPayer0000000000000001")
	code := strings.TrimPrefix(loc, "https://shop.example/cb?code=")
	if st != http.StatusFound || code == loc {
		t.Fatalf("authorize: %d %q", st, loc)
	}
	code, _, _ = strings.Cut(code, "&")
	exchange := url + "/sns/oauth2/access_token?appid=" + wxpaysim.DefaultAppID + "&code=" + code + "&grant_type=authorization_code&secret="
	if _, _, ans := sandboxGetJSON(t, exchange+wxpaysim.DefaultAppSecret); ans["errcode"] != float64(40125) {
		t.Fatalf("exchange with the default secret: %v", ans)
	}
	if _, _, ans := sandboxGetJSON(t, exchange+sandboxTestSecret); ans["openid"] != "oSandboxPayer0000000000000001" {
		t.Fatalf("exchange with the operator's secret: %v", ans)
	}
}

// TestSandboxMerchantPublicKeyWithSerial: a PUBLIC KEY does not carry the
// serial, so --merchant-serial gives it.
func TestSandboxMerchantPublicKeyWithSerial(t *testing.T) {
	k := mustSandboxKeys(t)
	url, printed := mustStartSandbox(t, "--merchant-public-key", k.merchantPub, "--merchant-serial", "0A1B2C3D")
	if !strings.Contains(printed, "merchant serial:  0A1B2C3D") || strings.Contains(printed, "PRIVATE KEY") {
		t.Fatalf("start-up output:\n%s", printed)
	}
	ring := wxpay.NewV3Keyring()
	if err := ring.AddPublicKeyPEM(wxpaysim.DefaultPlatformKeyID, []byte(wxpaysim.TestPlatformPublicKeyPEM)); err != nil {
		t.Fatal(err)
	}
	var apiErr *wxpay.APIError
	_, err := sandboxV3Client(t, url, k.merchant, "0A1B2C3D", ring, "").QueryOrder(context.Background(), "SANDBOX-PUB-NONE")
	if !errors.As(err, &apiErr) || apiErr.Code != "ORDER_NOT_EXIST" {
		t.Fatalf("query: %v", err)
	}
}

// TestSandboxPlatformCertificates runs certificate mode: the printed serial
// is the one tollgate's client downloads, and a rotation replaces it.
func TestSandboxPlatformCertificates(t *testing.T) {
	k := mustSandboxKeys(t)
	url, printed := mustStartSandbox(t, "--platform-certificates", "--wechatpay-private-key", k.platformPriv)
	_, rest, ok := strings.Cut(printed, "platform cert serial: ")
	serial, _, _ := strings.Cut(rest, " ")
	if !ok || len(serial) != 32 || strings.Contains(printed, "platform key id") {
		t.Fatalf("start-up output:\n%s", printed)
	}
	testKey, err := wxpay.LoadRSAPrivateKeyPEM([]byte(wxpaysim.TestMerchantPrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	c := sandboxV3Client(t, url, testKey, wxpaysim.DefaultMerchantSerial, wxpay.NewV3Keyring(), "")
	certs, err := c.FetchCertificates(context.Background())
	if err != nil || len(certs) != 1 || wxpay.V3CertificateSerial(certs[0]) != serial ||
		!certs[0].PublicKey.(*rsa.PublicKey).Equal(&k.platform.PublicKey) {
		t.Fatalf("FetchCertificates: %v %v", certs, err)
	}
	resp, err := http.Post(url+"/sim/rotate-certificate", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var rot struct {
		Serial  string   `json:"serial"`
		Serials []string `json:"serials"`
	}
	err = json.NewDecoder(resp.Body).Decode(&rot)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || rot.Serial == serial || len(rot.Serials) != 2 || rot.Serials[0] != serial {
		t.Fatalf("rotate: %d %+v %v", resp.StatusCode, rot, err)
	}
}

func TestSandboxRefusesBadKeyFiles(t *testing.T) {
	k := mustSandboxKeys(t)
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := write("garbage.pem", "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n")
	text := write("text.txt", "just some text\n")
	empty := write("empty", "  \n")
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallDER, _ := x509.MarshalPKCS8PrivateKey(small)
	smallKey := write("small.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: smallDER})))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name string
		args []string
		want []string // each must be in the error
	}{
		{"MissingMerchantKey", []string{"--merchant-public-key", missing, "--merchant-serial", "01"}, []string{"--merchant-public-key", "does not exist"}},
		{"MerchantKeyIsADirectory", []string{"--merchant-public-key", dir, "--merchant-serial", "01"}, []string{"--merchant-public-key", "is a directory"}},
		{"MerchantKeyNotPEM", []string{"--merchant-public-key", text, "--merchant-serial", "01"}, []string{"--merchant-public-key", "no PEM block"}},
		{"MerchantKeyMalformed", []string{"--merchant-public-key", garbage, "--merchant-serial", "01"}, []string{"--merchant-public-key", garbage, "PUBLIC KEY block is malformed"}},
		{"MerchantPrivateKeyGiven", []string{"--merchant-public-key", k.merchantPriv, "--merchant-serial", "01"}, []string{"--merchant-public-key", "private key"}},
		{"PublicKeyWithoutSerial", []string{"--merchant-public-key", k.merchantPub}, []string{"--merchant-serial", "required"}},
		{"SerialNotHex", []string{"--merchant-public-key", k.merchantPub, "--merchant-serial", "XYZ"}, []string{"--merchant-serial", "hex"}},
		{"SerialNotTheCertificates", []string{"--merchant-public-key", k.merchantCert, "--merchant-serial", "0A1B"}, []string{"--merchant-serial", k.serial}},
		{"MissingWechatpayKey", []string{"--wechatpay-private-key", missing}, []string{"--wechatpay-private-key", "does not exist"}},
		{"WechatpayKeyIsPublic", []string{"--wechatpay-private-key", k.merchantPub}, []string{"--wechatpay-private-key", "an RSA private key in PEM", `unexpected PEM block "PUBLIC KEY"`}},
		{"WechatpayKeyTooSmall", []string{"--wechatpay-private-key", smallKey}, []string{"--wechatpay-private-key", "1024-bit RSA key"}},
		{"KeyIDNotAPublicKeyID", []string{"--wechatpay-public-key-id", "1234"}, []string{"--wechatpay-public-key-id", "PUB_KEY_ID_"}},
		{"KeyIDWithCertificates", []string{"--wechatpay-public-key-id", sandboxTestKeyID, "--platform-certificates"}, []string{"--wechatpay-public-key-id", "--platform-certificates"}},
		{"MissingAppSecret", []string{"--app-secret-file", missing}, []string{"--app-secret-file", "does not exist"}},
		{"EmptyAppSecret", []string{"--app-secret-file", empty}, []string{"--app-secret-file", "empty"}},
		{"MissingNotifyCA", []string{"--notify-ca", missing}, []string{"--notify-ca", "does not exist"}},
		{"NotifyCAWithoutCertificates", []string{"--notify-ca", k.merchantPub}, []string{"--notify-ca", "no PEM CERTIFICATE"}},
		{"EveryProblemAtOnce", []string{"--merchant-public-key", missing, "--wechatpay-private-key", text, "--notify-ca", empty},
			[]string{"--merchant-public-key", "--wechatpay-private-key", "--notify-ca"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, log bytes.Buffer
			err := Run(context.Background(), append([]string{"sandbox", "--addr", "127.0.0.1:0"}, tt.args...), &out, &log)
			if err == nil {
				t.Fatal("sandbox started")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "BEGIN") || strings.Contains(err.Error(), "MII") || out.Len() != 0 {
				t.Errorf("key material or start-up output on a refusal: %q %q", err, out.String())
			}
		})
	}
}

// TestSandboxReadsKeyFilesAsServe: the emulator reads the operator's files
// with serve's loaders, so a file one takes the other takes, and one refuses
// the other refuses: a serial with an odd number of digits, an AppSecret
// with spaces around it, an APIv3 key of the wrong length, a malformed PEM
// block. The APIv3 key comes from a file (--apiv3-key-file), off the command
// line.
func TestSandboxReadsKeyFilesAsServe(t *testing.T) {
	k := newOperatorKeys(t, 0)
	sk := mustSandboxKeys(t)
	garbage := writeFile(t, "garbage.pem", "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n")
	spaced := writeFile(t, "app-secret", sandboxTestSecret+"  \n")
	short := writeFile(t, "apiv3.key", "0123456789abcdef\n")
	for _, tc := range []struct {
		name          string
		serve, sandbx []string // flags over a good configuration
		want          string   // in both errors; "": both accept
	}{
		{"odd-length serial", []string{"--wxpay-cert-serial", "A1B2C"}, []string{"--merchant-public-key", sk.merchantPub, "--merchant-serial", "A1B2C"}, "two digits a byte"},
		{"app secret with spaces", []string{"--wechat-app-secret-file", spaced}, []string{"--app-secret-file", spaced}, "must hold the secret alone on one line"},
		{"short APIv3 key", []string{"--wxpay-apiv3-key-file", short}, []string{"--apiv3-key-file", short}, "holds 16 bytes: the APIv3 key is exactly 32 characters"},
		{"malformed public key", []string{"--wxpay-public-key", garbage}, []string{"--merchant-public-key", garbage, "--merchant-serial", "0A1B"}, "the PUBLIC KEY block is malformed"},
		{"good APIv3 key", []string{"--wxpay-apiv3-key-file", k.APIv3KeyFile}, []string{"--apiv3-key-file", k.APIv3KeyFile}, ""},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			serveErr := parseServe(append(productionV3Args(t, k, false), tc.serve...)...)
			var sandboxErr error
			if tc.want != "" {
				sandboxErr = Run(context.Background(), append([]string{"sandbox", "--addr", "127.0.0.1:0"}, tc.sandbx...), io.Discard, io.Discard)
			}
			for who, err := range map[string]error{"serve": serveErr, "sandbox": sandboxErr} {
				switch {
				case tc.want == "" && err != nil:
					t.Errorf("%s refused: %v", who, err)
				case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
					t.Errorf("%s: %v, want an error containing %q", who, err, tc.want)
				}
			}
		})
	}

	base, printed := mustStartSandbox(t, "--apiv3-key-file", k.APIv3KeyFile)
	if strings.Contains(printed, k.APIv3Key) {
		t.Errorf("the start-up output shows the APIv3 key from the file:\n%s", printed)
	}
	_, _, cfg := sandboxGetJSON(t, base+"/sim/config")
	if cfg["apiv3_key"] != k.APIv3Key {
		t.Errorf("the emulator's APIv3 key is not the file's")
	}
	err := Run(context.Background(), []string{"sandbox", "--addr", "127.0.0.1:0", "--apiv3-key", k.APIv3Key, "--apiv3-key-file", k.APIv3KeyFile}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--apiv3-key and --apiv3-key-file") {
		t.Errorf("two APIv3 keys: %v", err)
	}
}

// TestSandboxRedirectHosts: --redirect-host (repeatable, comma lists) are
// the domains WeChat's OAuth and the H5 page send the browser back to;
// any other host, the emulator's own included, is refused with a 400
// naming it, and a malformed one stops the start.
func TestSandboxRedirectHosts(t *testing.T) {
	base, _ := mustStartSandbox(t, "--redirect-host", "shop.example", "--redirect-host", "127.0.0.1:8443, pay.example:443")
	authorize := func(back string) (int, string) {
		t.Helper()
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(base + "/connect/oauth2/authorize?appid=" + wxpaysim.DefaultAppID + "&redirect_uri=" + url.QueryEscape(back) +
			"&response_type=code&scope=snsapi_base&state=s&openid=oSandboxPayer0000000000000002")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, back := range []string{"https://shop.example/cb", "http://127.0.0.1:8443/cb", "https://pay.example/cb"} {
		if st, body := authorize(back); st != http.StatusFound {
			t.Errorf("redirect_uri %s: %d %s", back, st, body)
		}
	}
	self := strings.TrimPrefix(base, "http://")
	for _, back := range []string{"https://evil.example/cb", "http://127.0.0.1:8444/cb", base + "/cb"} {
		u, _ := url.Parse(back)
		if st, body := authorize(back); st != http.StatusBadRequest || !strings.Contains(body, `"`+u.Host+`"`) || !strings.Contains(body, "--redirect-host") {
			t.Errorf("redirect_uri %s (sandbox at %s): %d %s, want 400 naming the host", back, self, st, body)
		}
	}
	for _, bad := range []string{"https://shop.example", "shop.example/cb", "shop.example,", "shop.example:99999"} {
		err := Run(context.Background(), []string{"sandbox", "--addr", "127.0.0.1:0", "--redirect-host", bad}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "redirect-host") || !strings.Contains(err.Error(), "HOST:PORT") {
			t.Errorf("--redirect-host %q: %v, want a refusal naming the flag", bad, err)
		}
	}
}
