package wxpay_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/clocktest"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// preflightOrder is the order of Preflight's checks.
var preflightOrder = []string{wxpay.CheckConfig, wxpay.CheckConnection, wxpay.CheckClock, wxpay.CheckMerchant, wxpay.CheckWechatpay, wxpay.CheckAPIv3Key}

// preflightWant is what one check must say: OK, or a problem holding
// every string of has (usually the flag to fix) and none of hasNot.
type preflightWant struct {
	ok     bool
	has    []string
	hasNot []string
}

var okCheck = preflightWant{ok: true}

func problemWith(has ...string) preflightWant { return preflightWant{has: has} }

// checkPreflight compares results with want by check name; a check not in
// want must be OK. No problem may show the APIv3 key.
func checkPreflight(t *testing.T, c *wxpay.V3Client, got []wxpay.CheckResult, want map[string]preflightWant) {
	t.Helper()
	var names []string
	for _, r := range got {
		if len(names) == 0 || names[len(names)-1] != r.Name {
			names = append(names, r.Name)
		}
		w, ok := want[r.Name]
		if !ok {
			w = okCheck
		}
		switch {
		case r.OK != w.ok:
			t.Errorf("%s: OK = %v, want %v (problem %q)", r.Name, r.OK, w.ok, r.Problem)
		case r.OK && r.Problem != "":
			t.Errorf("%s: OK with a problem %q", r.Name, r.Problem)
		case !r.OK && r.Problem == "":
			t.Errorf("%s: not OK without a problem", r.Name)
		}
		for _, s := range w.has {
			if !strings.Contains(r.Problem, s) {
				t.Errorf("%s: problem %q does not say %q", r.Name, r.Problem, s)
			}
		}
		for _, s := range w.hasNot {
			if strings.Contains(r.Problem, s) {
				t.Errorf("%s: problem %q says %q", r.Name, r.Problem, s)
			}
		}
		if len(c.APIv3Key) >= 8 && strings.Contains(r.Problem, c.APIv3Key) {
			t.Errorf("%s: problem shows the APIv3 key", r.Name)
		}
	}
	if !slices.Equal(names, preflightOrder) {
		t.Errorf("checks %v, want %v", names, preflightOrder)
	}
	if t.Failed() || testing.Verbose() {
		for _, r := range got {
			t.Logf("%-22s ok=%-5v %s", r.Name, r.OK, r.Problem)
		}
	}
}

// TestV3PreflightEmulator runs Preflight against the emulator in public
// key mode, mounted as `tollgate serve` mounts it, once per
// misconfiguration an operator can make.
func TestV3PreflightEmulator(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *wxpay.V3Client, sim *wxpaysim.Server, clock *clocktest.Clock)
		want   map[string]preflightWant
	}{
		{name: "OK", mutate: func(*wxpay.V3Client, *wxpaysim.Server, *clocktest.Clock) {}},
		{
			name:   "WrongMchID",
			mutate: func(c *wxpay.V3Client, _ *wxpaysim.Server, _ *clocktest.Clock) { c.MchID = "1230000110" },
			want:   map[string]preflightWant{wxpay.CheckMerchant: {has: []string{"--wxpay-mch-id", "1230000110", "商户号mchid与签名不匹配"}, hasNot: []string{"--wxpay-private-key"}}, wxpay.CheckAPIv3Key: problemWith("not checked")},
		},
		{
			name: "WrongSerial",
			mutate: func(c *wxpay.V3Client, _ *wxpaysim.Server, _ *clocktest.Clock) {
				c.MerchantSerialNo = "5E1F0A0B0C0D0E0F101112131415161718191A1B"
			},
			want: map[string]preflightWant{wxpay.CheckMerchant: {has: []string{"--wxpay-cert-serial", "5E1F0A0B0C0D0E0F101112131415161718191A1B"}, hasNot: []string{"--wxpay-private-key"}}, wxpay.CheckAPIv3Key: problemWith("not checked")},
		},
		{
			name: "WrongPrivateKey",
			mutate: func(c *wxpay.V3Client, _ *wxpaysim.Server, _ *clocktest.Clock) {
				k, err := wxpay.LoadRSAPrivateKeyPEM([]byte(wxpaysim.TestPlatformPrivateKeyPEM))
				if err != nil {
					panic(err)
				}
				c.MerchantKey = k
			},
			want: map[string]preflightWant{wxpay.CheckMerchant: {has: []string{"--wxpay-private-key", "does not match"}, hasNot: []string{"--wxpay-mch-id"}}, wxpay.CheckAPIv3Key: problemWith("not checked")},
		},
		{
			name: "WrongPublicKeyID",
			mutate: func(c *wxpay.V3Client, sim *wxpaysim.Server, _ *clocktest.Clock) {
				c.Keyring = wxpay.NewV3Keyring()
				if err := c.Keyring.AddPublicKeyPEM("PUB_KEY_ID_0112300001092025010100000000000009", []byte(sim.Config().PlatformPublicKeyPEM)); err != nil {
					panic(err)
				}
			},
			want: map[string]preflightWant{
				wxpay.CheckWechatpay: problemWith("--wxpay-public-key-id", sim0().PlatformKeyID, "PUB_KEY_ID_0112300001092025010100000000000009"),
				wxpay.CheckMerchant:  problemWith("not checked"),
				wxpay.CheckAPIv3Key:  problemWith("not checked"),
			},
		},
		{
			name: "WrongPublicKeyFile",
			mutate: func(c *wxpay.V3Client, sim *wxpaysim.Server, _ *clocktest.Clock) {
				c.Keyring = wxpay.NewV3Keyring()
				if err := c.Keyring.Add(sim.Config().PlatformKeyID, &c.MerchantKey.PublicKey); err != nil {
					panic(err)
				}
			},
			want: map[string]preflightWant{
				wxpay.CheckWechatpay: {has: []string{"the key in --wxpay-public-key:", sim0().PlatformKeyID}, hasNot: []string{"--wxpay-public-key-id"}},
				wxpay.CheckMerchant:  problemWith("not checked"),
				wxpay.CheckAPIv3Key:  problemWith("not checked"),
			},
		},
		{
			name: "ClockAhead",
			mutate: func(c *wxpay.V3Client, _ *wxpaysim.Server, clock *clocktest.Clock) {
				c.Clock = tollgate.ClockFunc(func() time.Time { return clock.Now().Add(7*time.Minute + 12*time.Second) })
			},
			want: map[string]preflightWant{
				wxpay.CheckClock:     problemWith("7m12s ahead of", "NTP"),
				wxpay.CheckMerchant:  problemWith("not checked", "see clock"),
				wxpay.CheckWechatpay: problemWith("not checked", "see clock"),
				wxpay.CheckAPIv3Key:  problemWith("not checked"),
			},
		},
		{
			name: "ClockBehind",
			mutate: func(c *wxpay.V3Client, _ *wxpaysim.Server, clock *clocktest.Clock) {
				c.Clock = tollgate.ClockFunc(func() time.Time { return clock.Now().Add(-6 * time.Minute) })
			},
			want: map[string]preflightWant{
				wxpay.CheckClock:     problemWith("6m0s behind", "NTP"),
				wxpay.CheckMerchant:  problemWith("not checked"),
				wxpay.CheckWechatpay: problemWith("not checked"),
				wxpay.CheckAPIv3Key:  problemWith("not checked"),
			},
		},
		{
			name:   "APIv3KeyLength",
			mutate: func(c *wxpay.V3Client, _ *wxpaysim.Server, _ *clocktest.Clock) { c.APIv3Key = "testAPIv3Key0000" },
			want: map[string]preflightWant{
				wxpay.CheckConfig:   problemWith("--wxpay-apiv3-key-file", "16 bytes", "32"),
				wxpay.CheckAPIv3Key: problemWith("not checked"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := clocktest.New(v3TestNow)
			sim := &wxpaysim.Server{Clock: clock, Logf: t.Logf}
			t.Cleanup(func() { sim.Close() })
			srv := httptest.NewServer(http.StripPrefix(simMount, sim))
			t.Cleanup(srv.Close)
			cfg := sim.Config()
			key, err := wxpay.LoadRSAPrivateKeyPEM([]byte(cfg.MerchantPrivateKeyPEM))
			if err != nil {
				t.Fatal(err)
			}
			keyring := wxpay.NewV3Keyring()
			if err := keyring.AddPublicKeyPEM(cfg.PlatformKeyID, []byte(cfg.PlatformPublicKeyPEM)); err != nil {
				t.Fatal(err)
			}
			c := &wxpay.V3Client{
				BaseURL: srv.URL + simMount, MchID: cfg.MchID, AppID: cfg.AppID, MerchantSerialNo: cfg.MerchantSerial,
				MerchantKey: key, APIv3Key: cfg.APIv3Key, Keyring: keyring, WechatpaySerial: cfg.PlatformKeyID,
				HTTPClient: srv.Client(), Clock: clock,
			}
			tt.mutate(c, sim, clock)
			checkPreflight(t, c, c.Preflight(context.Background()), tt.want)
		})
	}
}

// sim0 is a default emulator, for its default identifiers.
func sim0() wxpaysim.Config { return (&wxpaysim.Server{}).Config() }

// TestV3PreflightWeChatTexts maps WeChat Pay's own 401 SIGN_ERROR messages
// (签名相关问题, pay.wechatpay.cn) to the flag to fix.
func TestV3PreflightWeChatTexts(t *testing.T) {
	tests := []struct {
		message string
		want    map[string]preflightWant
	}{
		{"商户证书序列号有误。", map[string]preflightWant{wxpay.CheckMerchant: problemWith("--wxpay-cert-serial", "--wxpay-mch-id", "商户证书序列号有误")}},
		{"错误的签名，导致验签失败。", map[string]preflightWant{wxpay.CheckMerchant: {has: []string{"--wxpay-private-key", "does not match"}, hasNot: []string{"--wxpay-mch-id"}}}},
		{" 签名信息错误，验签失败", map[string]preflightWant{wxpay.CheckMerchant: problemWith("--wxpay-private-key")}},
		{"商户证书已过期。", map[string]preflightWant{wxpay.CheckMerchant: problemWith("no longer valid", "--wxpay-private-key", "--wxpay-cert-serial")}},
		{"已更换证书，请使用新证书", map[string]preflightWant{wxpay.CheckMerchant: problemWith("no longer valid", "--wxpay-cert-serial")}},
		{"商户未设置APIv3密钥。", map[string]preflightWant{wxpay.CheckMerchant: problemWith("--wxpay-apiv3-key-file")}},
		{"商户未申请过证书。", map[string]preflightWant{wxpay.CheckMerchant: problemWith("no merchant API certificate", "--wxpay-cert-serial")}},
		{"HTTP头Authorization中的timestamp与发起请求的时间不得超过5分钟", map[string]preflightWant{
			wxpay.CheckClock:    problemWith("clock", "NTP"),
			wxpay.CheckMerchant: problemWith("not checked", "see clock"),
		}},
		{"HTTP头Authorization值格式错误", map[string]preflightWant{wxpay.CheckMerchant: problemWith("--wxpay-mch-id", "--wxpay-private-key", "--wxpay-cert-serial")}},
	}
	for _, tt := range tests {
		t.Run(tt.message, func(t *testing.T) {
			f, c := newV3CertFake(t)
			c.Certificates = nil
			c.Keyring = MustV3Keyring(t)
			f.set(nil, v3TestPubKeyID)
			f.noCerts, f.refuse = true, tt.message
			want := tt.want
			want[wxpay.CheckAPIv3Key] = problemWith("not checked")
			checkPreflight(t, c, c.Preflight(context.Background()), want)
		})
	}
}

const v3OrderNotExist = `{"code":"ORDER_NOT_EXIST","message":"订单不存在"}`

// TestV3PreflightFake covers certificate mode and answers the emulator
// does not give.
func TestV3PreflightFake(t *testing.T) {
	publicKeyMode := func(f *v3CertFake, c *wxpay.V3Client) {
		c.Certificates, c.Keyring = nil, MustV3Keyring(t)
		f.set(nil, v3TestPubKeyID)
		f.noCerts = true
	}
	tests := []struct {
		name   string
		mutate func(f *v3CertFake, c *wxpay.V3Client)
		want   map[string]preflightWant
		after  func(t *testing.T, c *wxpay.V3Client)
	}{
		{
			name:   "CertificateModeOK",
			mutate: func(*v3CertFake, *wxpay.V3Client) {},
			after: func(t *testing.T, c *wxpay.V3Client) {
				if _, ok := c.Keyring.Lookup(v3CertA); !ok {
					t.Error("the certificates Preflight downloaded are not in the keyring")
				}
			},
		},
		{
			name:   "CertificateModeWrongAPIv3Key",
			mutate: func(_ *v3CertFake, c *wxpay.V3Client) { c.APIv3Key = "0123456789abcdefghijklmnopqrstuw" },
			want: map[string]preflightWant{
				wxpay.CheckAPIv3Key:  problemWith("--wxpay-apiv3-key-file", "does not decrypt"),
				wxpay.CheckWechatpay: problemWith("not checked"),
				wxpay.CheckMerchant:  problemWith("not checked"),
			},
		},
		{
			name:   "CertificateModeButPublicKeyMerchant",
			mutate: func(f *v3CertFake, _ *wxpay.V3Client) { f.set(nil, v3TestPubKeyID); f.noCerts = true },
			want: map[string]preflightWant{
				wxpay.CheckWechatpay: problemWith("--wxpay-public-key", "--wxpay-public-key-id "+v3TestPubKeyID),
				wxpay.CheckMerchant:  problemWith("not checked"),
				wxpay.CheckAPIv3Key:  problemWith("not checked"),
			},
		},
		{
			name:   "PublicKeyModeOK",
			mutate: publicKeyMode,
		},
		{
			name: "PublicKeyModeButCertificateMerchant",
			mutate: func(f *v3CertFake, c *wxpay.V3Client) {
				publicKeyMode(f, c)
				f.set([]string{v3CertA}, v3CertA)
				f.noCerts = false
			},
			want: map[string]preflightWant{
				wxpay.CheckWechatpay: problemWith("platform certificate", v3CertA, "--wxpay-public-key"),
				wxpay.CheckMerchant:  problemWith("not checked"),
				wxpay.CheckAPIv3Key:  problemWith("not checked"),
			},
		},
		{
			name: "PublicKeyModeMigratingWrongAPIv3Key",
			mutate: func(f *v3CertFake, c *wxpay.V3Client) {
				publicKeyMode(f, c)
				f.listed, f.noCerts = []string{v3CertA}, false
				c.APIv3Key = "0123456789abcdefghijklmnopqrstuw"
			},
			want: map[string]preflightWant{wxpay.CheckAPIv3Key: problemWith("--wxpay-apiv3-key-file", "does not decrypt")},
		},
		{
			name: "Unsigned",
			mutate: func(f *v3CertFake, c *wxpay.V3Client) {
				publicKeyMode(f, c)
				f.signer = "" // the fake then sends no signature
			},
			want: map[string]preflightWant{
				wxpay.CheckWechatpay: problemWith("not signed", "--wxpay-url"),
				wxpay.CheckMerchant:  problemWith("not checked"),
				wxpay.CheckAPIv3Key:  problemWith("not checked"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newV3CertFake(t)
			f.status, f.answer = http.StatusNotFound, v3OrderNotExist
			tt.mutate(f, c)
			checkPreflight(t, c, c.Preflight(context.Background()), tt.want)
			if tt.after != nil {
				tt.after(t, c)
			}
		})
	}
}

// preflightRun runs c's Preflight with clock moved past every pause it
// takes (its retries).
func preflightRun(clock *clocktest.Clock, c *wxpay.V3Client) []wxpay.CheckResult {
	var got []wxpay.CheckResult
	clock.Run(func() { got = c.Preflight(context.Background()) })
	return got
}

func TestV3PreflightUnreachable(t *testing.T) {
	f, c := newV3CertFake(t)
	f.status, f.answer = http.StatusNotFound, v3OrderNotExist
	srv := httptest.NewServer(http.NotFoundHandler())
	c.BaseURL = srv.URL + "/sandbox/wxpay"
	srv.Close()
	checkPreflight(t, c, preflightRun(f.clock, c), map[string]preflightWant{
		wxpay.CheckConnection: problemWith("cannot reach", srv.URL, "--wxpay-url", "3 attempts"),
		wxpay.CheckClock:      problemWith("not checked"),
		wxpay.CheckMerchant:   problemWith("not checked"),
		wxpay.CheckWechatpay:  problemWith("not checked"),
		wxpay.CheckAPIv3Key:   problemWith("not checked"),
	})
}

// notAKeyProblem are the flags of settings a transient failure must not
// be blamed on.
var notAKeyProblem = []string{"--wxpay-mch-id", "--wxpay-private-key", "--wxpay-cert-serial", "--wxpay-apiv3-key-file", "--wxpay-public-key", "does not match", "does not decrypt"}

// transientWant is what Preflight must say when WeChat Pay kept failing:
// the connection check names the fault in the operator's words, with
// has; the checks that needed the answer are not checked; no setting is
// blamed. ok are the checks that could run and passed.
func transientWant(has []string, ok ...string) map[string]preflightWant {
	w := map[string]preflightWant{}
	for _, name := range preflightOrder[1:] {
		w[name] = preflightWant{has: []string{"not checked", "see connection"}, hasNot: notAKeyProblem}
	}
	w[wxpay.CheckConnection] = preflightWant{has: has, hasNot: notAKeyProblem}
	w[wxpay.CheckClock] = okCheck
	for _, name := range ok {
		w[name] = okCheck
	}
	return w
}

// TestV3PreflightTransientEmulator: the emulator answers order queries
// (and GET /v3/certificates) with 500 SYSTEM_ERROR, always or now and
// then. A share of faults is made up for by the retries; faults every
// time are reported as WeChat Pay's, after 3 attempts a second then two
// apart on the client's clock, and blame no setting.
func TestV3PreflightTransientEmulator(t *testing.T) {
	newSim := func(t *testing.T, faults wxpaysim.Faults) (*wxpaysim.Server, *wxpay.V3Client, *clocktest.Clock) {
		clock := clocktest.New(v3TestNow)
		sim := &wxpaysim.Server{Clock: clock, Logf: t.Logf}
		t.Cleanup(func() { sim.Close() })
		if err := sim.SetFaults(faults); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.StripPrefix(simMount, sim))
		t.Cleanup(srv.Close)
		cfg := sim.Config()
		key, err := wxpay.LoadRSAPrivateKeyPEM([]byte(cfg.MerchantPrivateKeyPEM))
		if err != nil {
			t.Fatal(err)
		}
		keyring := wxpay.NewV3Keyring()
		if err := keyring.AddPublicKeyPEM(cfg.PlatformKeyID, []byte(cfg.PlatformPublicKeyPEM)); err != nil {
			t.Fatal(err)
		}
		return sim, &wxpay.V3Client{
			BaseURL: srv.URL + simMount, MchID: cfg.MchID, AppID: cfg.AppID, MerchantSerialNo: cfg.MerchantSerial,
			MerchantKey: key, APIv3Key: cfg.APIv3Key, Keyring: keyring, WechatpaySerial: cfg.PlatformKeyID,
			HTTPClient: srv.Client(), Clock: clock,
		}, clock
	}
	t.Run("Always", func(t *testing.T) {
		sim, c, clock := newSim(t, wxpaysim.Faults{SystemError: map[string]float64{"query": 1}})
		start := clock.Now()
		got := preflightRun(clock, c)
		// The 500s are signed by WeChat Pay's public key: that check ran.
		checkPreflight(t, c, got, transientWant([]string{"WeChat Pay answered 500 SYSTEM_ERROR (a fault on its side; try again)", "the order query", "3 attempts"}, wxpay.CheckWechatpay))
		if n := sim.Stats().SystemErrors["query"]; n != 3 {
			t.Errorf("%d SYSTEM_ERRORs answered, want 3 (one query, 3 attempts)", n)
		}
		if took := clock.Now().Sub(start); took != 3*time.Second {
			t.Errorf("the attempts took %v on the clock, want 3s (1 s, then 2 s)", took)
		}
	})
	t.Run("Share", func(t *testing.T) {
		// Seed 13: the query fails twice, then passes; the certificate
		// check (404 in public key mode) fails once, then passes.
		sim, c, clock := newSim(t, wxpaysim.Faults{Seed: 13, SystemError: map[string]float64{"query": 0.5}})
		checkPreflight(t, c, preflightRun(clock, c), nil)
		if n := sim.Stats().SystemErrors["query"]; n != 3 {
			t.Errorf("%d SYSTEM_ERRORs answered, want 3 (seed 13 no longer draws them)", n)
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		// The caller's context bounds the retries: nothing waits for the
		// clock once it has ended.
		sim, c, _ := newSim(t, wxpaysim.Faults{SystemError: map[string]float64{"query": 1}})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		got := c.Preflight(ctx)
		if got[1].OK {
			t.Errorf("connection OK with a cancelled context: %+v", got)
		}
		if n := sim.Stats().SystemErrors["query"]; n > 1 {
			t.Errorf("%d attempts after the context ended", n)
		}
	})
}

// TestV3PreflightTransientFake: one transient failure of any call (500
// SYSTEM_ERROR, 429 FREQUENCY_LIMITED, a dropped connection, a 500 to the
// certificate download before any certificate is held) is made up for by
// a retry; a certificate download that always fails is reported as
// WeChat Pay's fault, not as the APIv3 key's.
func TestV3PreflightTransientFake(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(f *v3CertFake, c *wxpay.V3Client)
		want   map[string]preflightWant
	}{
		{name: "QuerySystemErrorOnce", mutate: func(f *v3CertFake, _ *wxpay.V3Client) { f.faults = []string{"500"} }},
		{name: "QuerySystemErrorTwice", mutate: func(f *v3CertFake, _ *wxpay.V3Client) { f.faults = []string{"500", "500"} }},
		{name: "QueryFrequencyLimited", mutate: func(f *v3CertFake, _ *wxpay.V3Client) { f.faults = []string{"429"} }},
		{name: "QueryConnectionDropped", mutate: func(f *v3CertFake, _ *wxpay.V3Client) { f.faults = []string{"drop"} }},
		{name: "CertificatesSystemErrorOnce", mutate: func(f *v3CertFake, _ *wxpay.V3Client) { f.flaky = 1 }},
		{
			name:   "QueryAlwaysFrequencyLimited",
			mutate: func(f *v3CertFake, _ *wxpay.V3Client) { f.faults = []string{"429", "429", "429"} },
			want:   transientWant([]string{"WeChat Pay answered 429 FREQUENCY_LIMITED (too many calls for now; try again in a minute)", "频率超限"}, wxpay.CheckWechatpay, wxpay.CheckAPIv3Key),
		},
		{
			name:   "CertificatesAlwaysSystemError",
			mutate: func(f *v3CertFake, _ *wxpay.V3Client) { f.broken = true },
			want: transientWant([]string{"WeChat Pay answered 500 SYSTEM_ERROR (a fault on its side; try again)", "GET /v3/certificates", "3 attempts"},
				wxpay.CheckClock),
		},
		{
			name: "PublicKeyModeCertificatesAlwaysSystemError",
			mutate: func(f *v3CertFake, c *wxpay.V3Client) {
				c.Certificates, c.Keyring = nil, MustV3Keyring(t)
				f.set([]string{v3CertA}, v3TestPubKeyID)
				f.broken = true
			},
			want: transientWant([]string{"WeChat Pay answered 500 SYSTEM_ERROR (a fault on its side; try again)", "GET /v3/certificates"},
				wxpay.CheckMerchant, wxpay.CheckWechatpay),
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newV3CertFake(t)
			f.status, f.answer = http.StatusNotFound, v3OrderNotExist
			tt.mutate(f, c)
			checkPreflight(t, c, preflightRun(f.clock, c), tt.want)
			if len(f.faults) != 0 {
				t.Errorf("faults left unused: %v", f.faults)
			}
		})
	}
}

// TestV3PreflightConfig: settings no request can be made with are named
// each, and nothing is sent.
func TestV3PreflightConfig(t *testing.T) {
	notChecked := func(w map[string]preflightWant) map[string]preflightWant {
		for _, n := range preflightOrder[1:] {
			w[n] = problemWith("not checked", "configuration")
		}
		return w
	}
	tests := []struct {
		name   string
		mutate func(c *wxpay.V3Client)
		want   map[string]preflightWant
	}{
		{"NoMchID", func(c *wxpay.V3Client) { c.MchID = "" }, notChecked(map[string]preflightWant{wxpay.CheckConfig: problemWith("--wxpay-mch-id")})},
		{"MchIDNotDigits", func(c *wxpay.V3Client) { c.MchID = "mch-1" }, notChecked(map[string]preflightWant{wxpay.CheckConfig: problemWith("--wxpay-mch-id", "mch-1")})},
		{"NoPrivateKey", func(c *wxpay.V3Client) { c.MerchantKey = nil }, notChecked(map[string]preflightWant{wxpay.CheckConfig: problemWith("--wxpay-private-key")})},
		{"SerialNotHex", func(c *wxpay.V3Client) { c.MerchantSerialNo = "serial-1" }, notChecked(map[string]preflightWant{wxpay.CheckConfig: problemWith("--wxpay-cert-serial", "serial-1")})},
		{"BadURL", func(c *wxpay.V3Client) { c.BaseURL = "api.mch.weixin.qq.com" }, notChecked(map[string]preflightWant{wxpay.CheckConfig: problemWith("--wxpay-url", "api.mch.weixin.qq.com")})},
		{"NoPublicKey", func(c *wxpay.V3Client) { c.Certificates, c.Keyring = nil, wxpay.NewV3Keyring() }, notChecked(map[string]preflightWant{wxpay.CheckConfig: problemWith("--wxpay-public-key", "--wxpay-public-key-id")})},
		{"CertificateModeAPIv3KeyLength", func(c *wxpay.V3Client) { c.APIv3Key = "short" }, notChecked(map[string]preflightWant{wxpay.CheckConfig: problemWith("--wxpay-apiv3-key-file", "5 bytes")})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newV3CertFake(t)
			tt.mutate(c)
			checkPreflight(t, c, c.Preflight(context.Background()), tt.want)
			if n := f.fetchCount(); n != 0 {
				t.Errorf("%d requests sent with a broken configuration", n)
			}
		})
	}
	t.Run("EveryProblemAtOnce", func(t *testing.T) {
		_, c := newV3CertFake(t)
		c.MchID, c.AppID, c.MerchantKey, c.MerchantSerialNo, c.APIv3Key = "", "", nil, "", ""
		var problems []string
		for _, r := range c.Preflight(context.Background()) {
			if r.Name == wxpay.CheckConfig {
				problems = append(problems, r.Problem)
			}
		}
		all := strings.Join(problems, "\n")
		for _, flag := range []string{"--wxpay-mch-id", "--wxpay-appid", "--wxpay-private-key", "--wxpay-cert-serial", "--wxpay-apiv3-key-file"} {
			if !strings.Contains(all, flag) {
				t.Errorf("no problem names %s:\n%s", flag, all)
			}
		}
		if len(problems) != 5 {
			t.Errorf("%d configuration problems, want 5:\n%s", len(problems), all)
		}
	})
}
