package wxpay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"tollgate"
)

// CheckResult is the outcome of one Preflight check. Problem, when OK is
// false, is written for the operator and names the setting to fix by its
// `tollgate serve` flag; a check that could not run says "not checked: …"
// and why.
type CheckResult struct {
	Name    string
	OK      bool
	Problem string
}

// Names of Preflight's checks, in the order it reports them.
const (
	CheckConfig     = "configuration"        // the settings themselves, before any call
	CheckConnection = "connection"           // --wxpay-url answers
	CheckClock      = "clock"                // the machine clock is within WeChat Pay's 5 minutes
	CheckMerchant   = "merchant signature"   // mch id, private key and certificate serial accepted
	CheckWechatpay  = "WeChat Pay signature" // answers verify with the configured public key / certificates
	CheckAPIv3Key   = "APIv3 key"            // the APIv3 key decrypts what WeChat Pay encrypts
)

// Preflight's retries of a transient failure (WeChat Pay's 5xx and 429,
// SYSTEM_ERROR, FREQUENCY_LIMITED, a network error): each call is made up
// to v3PreflightAttempts times, pausing v3PreflightPause, then twice as
// long, on the client's clock, within the caller's context.
const (
	v3PreflightAttempts = 3
	v3PreflightPause    = time.Second
)

// preflightOutPref starts the order number Preflight queries, followed by
// 16 random characters: an order that exists nowhere.
const preflightOutPref = "tgpreflight"

// The `tollgate serve` flags Preflight's problems name. The protocol
// package knows them only to say which setting to fix.
const (
	flagMchID    = "--wxpay-mch-id"
	flagAppID    = "--wxpay-appid"
	flagKey      = "--wxpay-private-key"
	flagSerial   = "--wxpay-cert-serial"
	flagAPIv3Key = "--wxpay-apiv3-key-file"
	flagPubKey   = "--wxpay-public-key"
	flagPubKeyID = "--wxpay-public-key-id"
	flagURL      = "--wxpay-url"
)

// Preflight checks, with signed read-only calls, that the client can take
// payments, and reports every check (see the Check* names) in order, each
// problem in the operator's words with the flag that fixes it:
//
//   - configuration: MchID, AppID, MerchantKey (2048 bits or more),
//     MerchantSerialNo (hex), a 32-byte APIv3Key, an absolute BaseURL, and
//     a WeChat Pay public key unless Certificates is set;
//   - in certificate mode (Certificates set): GET /v3/certificates must
//     answer, and its certificates must decrypt with the APIv3 key; they
//     then replace Keyring's, as Certificates.Refresh does;
//   - a query of an order number that does not exist must come back as a
//     404 ORDER_NOT_EXIST whose signature verifies: WeChat Pay accepted
//     the merchant id, private key and serial (a 401 SIGN_ERROR is mapped
//     from WeChat Pay's message, or the emulator's, to the flag at fault),
//     the machine clock is within 5 minutes of the answer's timestamp, and
//     the answer is signed by a configured key (in public key mode, the
//     public key id; a certificate serial or another id is named);
//   - in public key mode the APIv3 key is checked against
//     /v3/certificates when WeChat Pay still serves it for the merchant,
//     and otherwise only by its length.
//
// A call that fails transiently (WeChat Pay's 5xx or 429, SYSTEM_ERROR,
// FREQUENCY_LIMITED, a network error) is made again, 3 times in all, a
// second then two apart on the client's clock, within ctx. One that still
// fails is reported by the connection check, as WeChat Pay's fault ("WeChat
// Pay answered 500 SYSTEM_ERROR (a fault on its side; try again)") or as
// WeChat Pay out of reach, never as a setting to fix; the checks that
// needed its answer are "not checked".
//
// It changes nothing at WeChat Pay. A check that cannot run because an
// earlier one failed is reported not OK, "not checked: …".
func (c *V3Client) Preflight(ctx context.Context) []CheckResult {
	out, canCall := c.preflightConfig()
	if !canCall {
		for _, name := range []string{CheckConnection, CheckClock, CheckMerchant, CheckWechatpay, CheckAPIv3Key} {
			out = append(out, notChecked(name, "fix the configuration first"))
		}
		return out
	}

	// Certificate mode: download first, which bootstraps the keyring the
	// probe's answer is verified with.
	var certErr error
	var certTries int
	certMode := c.Certificates != nil
	if certMode {
		certTries = c.preflightRetry(ctx, func() bool {
			certErr = c.Certificates.Refresh(ctx)
			return transient(certErr)
		})
	}

	var p *v3PreflightProbe
	probeTries := c.preflightRetry(ctx, func() bool {
		p = c.preflightProbe(ctx)
		return p.transient()
	})
	if p.err != nil {
		out = append(out, preflightFaultOf(probeQuery, probeTries, p.err).problem(c))
		for _, name := range []string{CheckClock, CheckMerchant, CheckWechatpay, CheckAPIv3Key} {
			out = append(out, notChecked(name, "WeChat Pay could not be reached"))
		}
		return out
	}

	connection := CheckResult{Name: CheckConnection, OK: true}
	var merchant, wechatpay CheckResult
	switch {
	case p.transient():
		connection = p.fault(probeTries).problem(c)
		merchant = notChecked(CheckMerchant, "WeChat Pay answered the order query with a fault (see "+CheckConnection+")")
		wechatpay = CheckResult{Name: CheckWechatpay, OK: true}
		if p.verify != nil {
			wechatpay = notChecked(CheckWechatpay, "WeChat Pay answered the order query with a fault (see "+CheckConnection+")")
		}
	case certMode && transient(certErr) && p.verify != nil:
		// No certificate to verify the probe's answer with.
		connection = preflightFaultOf(certDownload, certTries, certErr).problem(c)
		why := "the platform certificates to verify WeChat Pay's answers could not be downloaded (see " + CheckConnection + ")"
		merchant, wechatpay = notChecked(CheckMerchant, why), notChecked(CheckWechatpay, why)
	default:
		if certMode && transient(certErr) {
			connection = preflightFaultOf(certDownload, certTries, certErr).problem(c)
		}
		merchant, wechatpay = p.merchant(c), p.wechatpay(c, certErr)
	}

	var apiv3 CheckResult
	switch {
	case certMode:
		apiv3 = apiv3Check(certErr, true)
	case len(c.APIv3Key) != v3KeyLen:
		apiv3 = notChecked(CheckAPIv3Key, "its length is wrong (see "+CheckConfig+")")
	case p.transient():
		apiv3 = notChecked(CheckAPIv3Key, "WeChat Pay answered the order query with a fault (see "+CheckConnection+")")
	case !merchant.OK || !wechatpay.OK:
		apiv3 = notChecked(CheckAPIv3Key, "WeChat Pay's answers cannot be trusted yet (see above)")
	default:
		var err error
		tries := c.preflightRetry(ctx, func() bool {
			_, err = c.fetchCertificates(ctx)
			return transient(err)
		})
		apiv3 = apiv3Check(err, false)
		if transient(err) && connection.OK {
			connection = preflightFaultOf(certDownload, tries, err).problem(c)
		}
	}
	return append(out, connection, p.clock(), merchant, wechatpay, apiv3)
}

// preflightRetry calls call, which reports whether it failed transiently,
// until it did not, v3PreflightAttempts calls were made or ctx ends, and
// returns the number of calls made.
func (c *V3Client) preflightRetry(ctx context.Context, call func() (transient bool)) (attempts int) {
	clock := tollgate.ClockOr(c.Clock)
	pause := v3PreflightPause
	for attempts = 1; ; attempts++ {
		if !call() || attempts == v3PreflightAttempts || tollgate.Sleep(ctx, clock, pause) != nil {
			return attempts
		}
		pause *= 2
	}
}

// The calls Preflight makes, as its problems name them.
const (
	probeQuery   = "the order query"
	certDownload = "the platform certificate download (GET /v3/certificates)"
)

// preflightFault is a call of Preflight that still failed after its
// attempts: WeChat Pay's answer (status, code and message; verified when
// its signature verified), or no answer (err).
type preflightFault struct {
	call      string
	attempts  int
	status    int
	code, msg string
	verified  bool
	err       error
}

// preflightFaultOf describes err, the last error of call.
func preflightFaultOf(call string, attempts int, err error) preflightFault {
	f := preflightFault{call: call, attempts: attempts}
	var api *APIError
	var uv *v3UnverifiedError
	switch {
	case errors.As(err, &api):
		f.status, f.code, f.msg, f.verified = api.HTTPStatus, api.Code, api.Message, true
	case errors.As(err, &uv):
		f.status, f.code = uv.status, uv.code
	default:
		f.err = err
	}
	return f
}

// problem is the connection check's problem for f, in the operator's
// words: WeChat Pay's fault, or WeChat Pay out of reach.
func (f preflightFault) problem(c *V3Client) CheckResult {
	tries := "1 attempt"
	if f.attempts != 1 {
		tries = strconv.Itoa(f.attempts) + " attempts"
	}
	if f.err != nil {
		cause := f.err
		var te *TransportError
		if errors.As(cause, &te) {
			cause = te.Err
		}
		var ue *url.Error
		if errors.As(cause, &ue) {
			cause = ue.Err
		}
		return problem(CheckConnection, "cannot reach WeChat Pay at %s (%v; %s, %s): check %s and the network (DNS, firewall, proxy)",
			c.baseURL(), cause, f.call, tries, flagURL)
	}
	answer := strconv.Itoa(f.status)
	if f.code != "" {
		answer += " " + fmt.Sprintf("%.40s", f.code)
	} else {
		answer += " " + http.StatusText(f.status)
	}
	advice := "a fault on its side; try again"
	if f.status == http.StatusTooManyRequests || f.code == "FREQUENCY_LIMITED" || f.code == "RATELIMIT_EXCEEDED" {
		advice = "too many calls for now; try again in a minute"
	}
	detail := ""
	switch {
	case !f.verified:
		detail = "; the answer's signature could not be verified"
	case strings.TrimSpace(f.msg) != "":
		detail = fmt.Sprintf(": %.200s", strings.TrimSpace(f.msg))
	}
	return problem(CheckConnection, "WeChat Pay answered %s (%s) to %s, %s%s", answer, advice, f.call, tries, detail)
}

func notChecked(name, why string) CheckResult {
	return CheckResult{Name: name, Problem: "not checked: " + why}
}

func problem(name, format string, args ...any) CheckResult {
	return CheckResult{Name: name, Problem: fmt.Sprintf(format, args...)}
}

// preflightConfig checks the settings; canCall is false when no signed
// request can be made.
func (c *V3Client) preflightConfig() (out []CheckResult, canCall bool) {
	canCall = true
	add := func(fatal bool, format string, args ...any) {
		out = append(out, problem(CheckConfig, format, args...))
		canCall = canCall && !fatal
	}
	if c.MchID == "" {
		add(true, "no merchant id: set %s", flagMchID)
	} else if !isDigits(c.MchID, 32) {
		add(true, "merchant id %q is not a WeChat Pay mch id (digits, e.g. 1230000109): check %s", c.MchID, flagMchID)
	}
	if c.AppID == "" {
		add(false, "no app id: set %s to the AppID bound to merchant %s", flagAppID, c.MchID)
	}
	switch {
	case c.MerchantKey == nil:
		add(true, "no merchant API private key: set %s to apiclient_key.pem", flagKey)
	case c.MerchantKey.N.BitLen() < 2048:
		add(true, "the merchant private key in %s has %d bits; WeChat Pay's merchant API keys have 2048", flagKey, c.MerchantKey.N.BitLen())
	}
	if c.MerchantSerialNo == "" {
		add(true, "no merchant certificate serial: set %s (商户平台 → API安全 → API证书 → 查看证书)", flagSerial)
	} else if normaliseV3Serial(c.MerchantSerialNo) != strings.ToUpper(c.MerchantSerialNo) {
		add(true, "%s %q is not a certificate serial (hex digits, as 商户平台 → API安全 → API证书 shows)", flagSerial, c.MerchantSerialNo)
	}
	if n := len(c.APIv3Key); n != v3KeyLen {
		add(c.Certificates != nil, "the APIv3 key in %s is %d bytes; it is exactly 32 (商户平台 → API安全 → APIv3密钥; the API v2 key is another one)", flagAPIv3Key, n)
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			add(true, "%s %q is not an absolute http(s) URL (WeChat Pay's is %s)", flagURL, c.BaseURL, DefaultV3BaseURL)
		}
	}
	switch {
	case c.Keyring == nil:
		add(true, "no keyring for WeChat Pay's keys (a bug in the caller)")
	case c.Certificates == nil && len(c.Keyring.Serials()) == 0:
		add(true, "no WeChat Pay public key to verify answers with: set %s and %s (商户平台 → API安全 → 微信支付公钥)", flagPubKey, flagPubKeyID)
	default:
		for _, s := range c.Keyring.Serials() {
			if !strings.HasPrefix(s, V3PublicKeyIDPrefix) && normaliseV3Serial(s) != strings.ToUpper(s) {
				add(false, "%s %q is not a WeChat Pay public key id (%s…)", flagPubKeyID, s, V3PublicKeyIDPrefix)
			}
		}
	}
	if len(out) == 0 {
		out = append(out, CheckResult{Name: CheckConfig, OK: true})
	}
	return out, canCall
}

// v3PreflightProbe is the answer to the probe query, read but not trusted.
type v3PreflightProbe struct {
	err    error // no answer: network, or an answer too large to read
	status int
	header http.Header
	code   string // the body's code and message, verified or not
	msg    string
	json   bool  // the body is a v3 error object
	verify error // nil when the answer's signature verified
	now    time.Time
}

// transient reports whether the probe failed in a way that may pass by
// asking again: no answer for a network reason, or a 5xx or 429 answer
// (verified or not: a proxy's 502 says nothing about the settings either),
// or a verified answer whose code WeChat Pay says to retry.
func (p *v3PreflightProbe) transient() bool {
	if p.err != nil {
		return transient(p.err)
	}
	return p.status >= 500 || p.status == http.StatusTooManyRequests || (p.verify == nil && retryableCodes[p.code])
}

// fault describes the probe's last answer, transient, after attempts.
func (p *v3PreflightProbe) fault(attempts int) preflightFault {
	return preflightFault{call: probeQuery, attempts: attempts, status: p.status, code: p.code, msg: p.msg, verified: p.verify == nil}
}

// preflightProbe queries an order number that exists nowhere.
func (c *V3Client) preflightProbe(ctx context.Context) *v3PreflightProbe {
	no := preflightOutPref
	if n, err := newV3Nonce(); err == nil {
		no += n[:16]
	}
	call := v3Call{
		op: "preflight query", method: http.MethodGet,
		path:  "/v3/pay/transactions/out-trade-no/" + no,
		query: "mchid=" + url.QueryEscape(c.MchID),
	}
	resp, body, _, err := c.roundTrip(ctx, call, MaxBodyBytes)
	p := &v3PreflightProbe{err: err, now: c.now()}
	if err != nil {
		return p
	}
	p.status, p.header = resp.StatusCode, resp.Header
	var b v3ErrorBody
	if json.Unmarshal(body, &b) == nil && b.Code != "" {
		p.code, p.msg, p.json = b.Code, b.Message, true
	}
	// Keyring as it is: Preflight has just downloaded the certificates.
	p.verify = c.Keyring.verify(resp.Header, body, p.now)
	return p
}

// answerTime returns the time an answer was sent: Wechatpay-Timestamp, or
// the HTTP Date.
func (p *v3PreflightProbe) answerTime() (time.Time, bool) {
	if sec, err := strconv.ParseInt(p.header.Get(HeaderV3Timestamp), 10, 64); err == nil {
		return time.Unix(sec, 0), true
	}
	if t, err := http.ParseTime(p.header.Get("Date")); err == nil {
		return t, true
	}
	return time.Time{}, false
}

func (p *v3PreflightProbe) clock() CheckResult {
	at, measured := p.answerTime()
	skew := p.now.Sub(at).Round(time.Second)
	refused := p.status == http.StatusUnauthorized && isTimestampMessage(p.msg)
	switch {
	case measured && (skew >= V3MaxClockSkew || -skew >= V3MaxClockSkew):
		dir := "ahead of"
		if skew < 0 {
			dir, skew = "behind", -skew
		}
		return problem(CheckClock, "the machine clock is %s %s WeChat Pay's (local %s, WeChat Pay %s); WeChat Pay refuses requests more than %s off: set the machine clock right (NTP)",
			skew, dir, p.now.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339), V3MaxClockSkew)
	case refused:
		return problem(CheckClock, "WeChat Pay refused the request's timestamp (401 SIGN_ERROR: %s): set the machine clock right (NTP)", strings.TrimSpace(p.msg))
	case measured:
		return CheckResult{Name: CheckClock, OK: true}
	}
	return notChecked(CheckClock, "the answer carries no time")
}

// isTimestampMessage reports whether a 401 message is about the request's
// timestamp: WeChat Pay's "HTTP头Authorization中的timestamp与发起请求的时间不得超过5分钟",
// the emulator's "请求的时间戳已过期或超前".
func isTimestampMessage(msg string) bool {
	return strings.Contains(strings.ToLower(msg), "timestamp") || strings.Contains(msg, "时间戳")
}

func (p *v3PreflightProbe) merchant(c *V3Client) CheckResult {
	unverified := ""
	if p.verify != nil {
		unverified = " (an answer whose signature did not verify)"
	}
	switch {
	case p.status == http.StatusNotFound && p.code == "ORDER_NOT_EXIST", p.status >= 200 && p.status < 300:
		if p.verify != nil {
			// A success anyone could have sent proves nothing.
			return notChecked(CheckMerchant, "the answer's signature did not verify (see "+CheckWechatpay+")")
		}
		return CheckResult{Name: CheckMerchant, OK: true}
	case !p.json:
		return notChecked(CheckMerchant, fmt.Sprintf("the answer (HTTP %d) is not WeChat Pay's", p.status))
	case p.status == http.StatusUnauthorized:
		return signErrorProblem(c, p.msg+unverified)
	case p.code == "MCH_NOT_EXISTS" || p.code == "MCHID_NOT_EXIST" ||
		(p.code == "PARAM_ERROR" && strings.Contains(strings.ToLower(p.msg), "mchid")):
		return problem(CheckMerchant, "WeChat Pay does not know merchant %s (HTTP %d %s: %s%s): check %s", c.MchID, p.status, p.code, p.msg, unverified, flagMchID)
	case p.status == http.StatusForbidden:
		return problem(CheckMerchant, "WeChat Pay refuses merchant %s this API (HTTP 403 %s: %s%s): check %s and the products enabled in the merchant platform", c.MchID, p.code, p.msg, unverified, flagMchID)
	}
	return problem(CheckMerchant, "WeChat Pay answered a signed order query with HTTP %d %s: %s%s: check %s, %s and %s", p.status, p.code, p.msg, unverified, flagMchID, flagKey, flagSerial)
}

// signErrorProblem maps the message of a 401 SIGN_ERROR to the setting at
// fault. The texts are WeChat Pay's (签名相关问题: "商户证书序列号有误。",
// "错误的签名，导致验签失败。", "商户证书已过期。", …) and the emulator's
// ("商户号mchid与签名不匹配", "商户证书序列号serial_no有误", "签名错误").
// WeChat Pay looks the serial up under the mch id, so its "serial wrong"
// may also mean a wrong mch id.
func signErrorProblem(c *V3Client, msg string) CheckResult {
	quote := fmt.Sprintf("(401 SIGN_ERROR: %s)", strings.TrimSpace(msg))
	switch {
	case isTimestampMessage(msg):
		return notChecked(CheckMerchant, "WeChat Pay refused the request's timestamp "+quote+" (see clock)")
	case strings.Contains(msg, "APIv3密钥"):
		return problem(CheckMerchant, "merchant %s has no APIv3 key yet %s: set one in 商户平台 → API安全 → APIv3密钥 and put it in %s", c.MchID, quote, flagAPIv3Key)
	case strings.Contains(msg, "未申请过证书"):
		return problem(CheckMerchant, "merchant %s has no merchant API certificate %s: apply for one in 商户平台 → API安全 → API证书, then set %s and %s; or check %s", c.MchID, quote, flagKey, flagSerial, flagMchID)
	case strings.Contains(msg, "证书已过期") || strings.Contains(msg, "证书已作废") || strings.Contains(msg, "更换证书"):
		return problem(CheckMerchant, "merchant certificate %s is no longer valid %s: use the new certificate's key and serial in %s and %s", c.MerchantSerialNo, quote, flagKey, flagSerial)
	case strings.Contains(msg, "mchid") || strings.Contains(msg, "商户号"):
		return problem(CheckMerchant, "WeChat Pay does not accept merchant id %s with this certificate %s: check %s", c.MchID, quote, flagMchID)
	case strings.Contains(msg, "序列号") || strings.Contains(strings.ToLower(msg), "serial"):
		return problem(CheckMerchant, "WeChat Pay knows no merchant certificate %s for merchant %s %s: check %s (商户平台 → API安全 → API证书 → 查看证书) and %s", c.MerchantSerialNo, c.MchID, quote, flagSerial, flagMchID)
	case strings.Contains(msg, "签名") || strings.Contains(strings.ToLower(msg), "sign"):
		return problem(CheckMerchant, "the private key in %s does not match merchant certificate %s %s: use the apiclient_key.pem issued with that certificate, or set %s to the serial of this key's certificate", flagKey, c.MerchantSerialNo, quote, flagSerial)
	}
	return problem(CheckMerchant, "WeChat Pay refused the request's signature %s: check %s, %s and %s", quote, flagMchID, flagKey, flagSerial)
}

func (p *v3PreflightProbe) wechatpay(c *V3Client, certErr error) CheckResult {
	var api *APIError
	if errors.As(certErr, &api) && api.HTTPStatus == http.StatusNotFound {
		return problem(CheckWechatpay, "WeChat Pay has no platform certificates for merchant %s (HTTP 404 %s: %s): it signs with a WeChat Pay public key; set %s and %s (商户平台 → API安全 → 微信支付公钥)", c.MchID, api.Code, api.Message, flagPubKey, flagPubKeyID)
	}
	if p.verify == nil {
		return CheckResult{Name: CheckWechatpay, OK: true}
	}
	serial := p.header.Get(HeaderV3Serial)
	certMode := c.Certificates != nil
	switch {
	case errors.Is(p.verify, ErrTooOld):
		return notChecked(CheckWechatpay, "the answer's timestamp is outside the 5 minutes (see clock)")
	case errors.Is(p.verify, ErrNotSigned):
		return problem(CheckWechatpay, "the answer from %s (HTTP %d) is not signed by WeChat Pay: check that %s is WeChat Pay's API (%s)", c.baseURL(), p.status, flagURL, DefaultV3BaseURL)
	case errors.Is(p.verify, ErrUnknownSerial):
		pubIDs := slices.DeleteFunc(c.Keyring.Serials(), func(s string) bool { return !strings.HasPrefix(s, V3PublicKeyIDPrefix) })
		slices.Sort(pubIDs)
		switch {
		case strings.HasPrefix(serial, V3PublicKeyIDPrefix) && certMode:
			return problem(CheckWechatpay, "WeChat Pay signs merchant %s's answers with public key %s: set %s %s and %s to that key (商户平台 → API安全 → 微信支付公钥)", c.MchID, serial, flagPubKeyID, serial, flagPubKey)
		case strings.HasPrefix(serial, V3PublicKeyIDPrefix):
			return problem(CheckWechatpay, "WeChat Pay signs merchant %s's answers with public key %s, not %s: set %s %s and %s to that key's file", c.MchID, serial, strings.Join(pubIDs, ", "), flagPubKeyID, serial, flagPubKey)
		case certMode:
			if transient(certErr) {
				return notChecked(CheckWechatpay, "the platform certificates could not be downloaded (see "+CheckConnection+")")
			}
			if certErr != nil {
				return notChecked(CheckWechatpay, "the platform certificates could not be downloaded (see "+CheckAPIv3Key+")")
			}
			return problem(CheckWechatpay, "the answer is signed by %.64q, which is not among the platform certificates WeChat Pay lists (%s): check %s", serial, strings.Join(c.Certificates.Serials(), ", "), flagURL)
		default:
			return problem(CheckWechatpay, "WeChat Pay signs merchant %s's answers with platform certificate %.64q, not a public key: the merchant uses platform certificates; run without %s and %s, or enable 微信支付公钥 in 商户平台 → API安全", c.MchID, serial, flagPubKey, flagPubKeyID)
		}
	case errors.Is(p.verify, ErrBadSignature) && strings.HasPrefix(serial, V3PublicKeyIDPrefix):
		return problem(CheckWechatpay, "answers signed by %s do not verify with the key in %s: it is not the public key of %s (商户平台 → API安全 → 微信支付公钥 → 下载)", serial, flagPubKey, serial)
	}
	return problem(CheckWechatpay, "the answer's signature (%.64q) does not verify (%v): check that %s is WeChat Pay's API (%s)", serial, p.verify, flagURL, DefaultV3BaseURL)
}

// apiv3Check judges the APIv3 key from a certificate download.
func apiv3Check(err error, certMode bool) CheckResult {
	var de *v3DecryptError
	var api *APIError
	switch {
	case err == nil:
		return CheckResult{Name: CheckAPIv3Key, OK: true}
	case errors.As(err, &de):
		return problem(CheckAPIv3Key, "the key in %s does not decrypt the platform certificates WeChat Pay sends: it is not this merchant's APIv3 key (商户平台 → API安全 → APIv3密钥; the API v2 key is another one)", flagAPIv3Key)
	case !certMode && errors.As(err, &api) && api.HTTPStatus == http.StatusNotFound:
		// Public key mode, no certificates to decrypt: the length is all
		// that can be checked before a notification arrives.
		return CheckResult{Name: CheckAPIv3Key, OK: true}
	case transient(err):
		return notChecked(CheckAPIv3Key, "the platform certificates could not be downloaded (see "+CheckConnection+")")
	}
	return notChecked(CheckAPIv3Key, "the platform certificates could not be downloaded ("+err.Error()+")")
}

func (c *V3Client) baseURL() string {
	if c.BaseURL == "" {
		return DefaultV3BaseURL
	}
	return c.BaseURL
}
