package reliability

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	mrand "math/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"tollgate"
	"tollgate/wxpay"
)

// Notification is one payment or refund notification as sent to an
// instance: the body, and for API v3 the headers carrying its signature.
type Notification struct {
	Header map[string]string
	Body   []byte
}

// notificationHeaders keeps the headers of a notification that a replay
// must repeat: Content-Type and every Wechatpay-* header.
func notificationHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if len(v) > 0 && (k == "Content-Type" || strings.HasPrefix(k, "Wechatpay-")) {
			out[k] = v[0]
		}
	}
	return out
}

// acked reports whether an answer to a notification of the API version is
// the success acknowledgement: v2 return_code SUCCESS with 200; v3 200 with
// code SUCCESS, or 204.
func acked(version string, status int, body []byte) bool {
	if version != "v3" {
		return status == 200 && ackedBody(body)
	}
	if status == http.StatusNoContent {
		return true
	}
	var a struct{ Code string }
	return status == http.StatusOK && json.Unmarshal(body, &a) == nil && a.Code == "SUCCESS"
}

// Acked reports whether r is the success acknowledgement of a notification
// of the cluster's API version.
func (cl *Cluster) Acked(r Reply) bool { return acked(cl.APIVersion, r.Status, r.Body) }

// Notify posts n to the instance at addr, on the cluster's notify path.
func (cl *Cluster) Notify(ctx context.Context, addr string, n Notification) Reply {
	return Call(ctx, "POST", addr+cl.NotifyPath, "", n.Header, n.Body)
}

// ForgeKinds are the forgeries sent during the run, for the cluster's API
// version: each must be refused and change nothing (docs/DESIGN.md §7.2 F5,
// F6).
func (cl *Cluster) ForgeKinds() []string {
	if cl.APIVersion == "v3" {
		return ForgeKindsV3
	}
	return ForgeKinds
}

// CatalogueKinds are the forgeries of the S4 catalogue at quiescence: the
// run's, and for v3 unknown_serial too.
func (cl *Cluster) CatalogueKinds() []string {
	if cl.APIVersion == "v3" {
		return append(append([]string(nil), ForgeKindsV3...), ForgeUnknownSerial)
	}
	return ForgeKinds
}

// Forge builds a forged notification of the given kind for p.
func (cl *Cluster) Forge(kind string, p Payment, rng *mrand.Rand) Notification {
	if cl.APIVersion == "v3" {
		return cl.forgeV3(kind, p, rng)
	}
	return v2Notification(Forge(kind, cl.SimConfig, p, rng))
}

// Tamper builds a correctly signed notification whose amount differs from
// the order's by delta fen (F4: only the amount check stops it).
func (cl *Cluster) Tamper(p Payment, delta int64, rng *mrand.Rand) Notification {
	if cl.APIVersion == "v3" {
		p.Total += delta
		return cl.notificationV3(p, fmt.Sprintf("tamper%026d", rng.Int63()), nil)
	}
	return v2Notification(Tamper(cl.SimConfig, p, delta, rng))
}

// Genuine builds a correctly signed payment notification for p with the
// given nonce (v2 nonce_str, v3 Wechatpay-Nonce), as WeChat Pay would.
func (cl *Cluster) Genuine(p Payment, nonce string) Notification {
	if cl.APIVersion == "v3" {
		return cl.notificationV3(p, nonce, nil)
	}
	return v2Notification(NotificationV2(cl.SimConfig, p, nonce, wxpay.SignTypeMD5, cl.SimConfig.APIKey))
}

func v2Notification(body []byte) Notification {
	return Notification{Header: map[string]string{"Content-Type": "text/xml"}, Body: body}
}

// paymentNonces returns the nonces of the acknowledged payment
// notifications among ns (v2 nonce_str of bodies without req_info; v3
// Wechatpay-Nonce of TRANSACTION.SUCCESS events).
func (cl *Cluster) paymentNonces(ns []Notification) []string {
	var out []string
	for _, n := range ns {
		if cl.APIVersion != "v3" {
			// Payment notifications only: refund ones (req_info) keep
			// their nonces apart (wxpay:v2r:), by design.
			if m, err := wxpay.DecodeV2XML(n.Body); err == nil && m["nonce_str"] != "" && m["req_info"] == "" {
				out = append(out, m["nonce_str"])
			}
			continue
		}
		var env struct {
			EventType string `json:"event_type"`
		}
		if json.Unmarshal(n.Body, &env) == nil && env.EventType == wxpay.V3EventTransactionSuccess && n.Header[wxpay.HeaderV3Nonce] != "" {
			out = append(out, n.Header[wxpay.HeaderV3Nonce])
		}
	}
	return out
}

// nonceKey is the nonce store key (after serve's --redis-prefix) that
// records n: "nonce:wxpay:v2:" or "nonce:wxpay:v2r:" (refunds) + mch_id +
// ":" + nonce_str for v2, "nonce:wxpay:v3:" + mch_id + ":" +
// Wechatpay-Nonce for v3. ok is false when n carries no nonce.
func (cl *Cluster) nonceKeys(n Notification) (keys []string, ok bool) {
	if cl.APIVersion == "v3" {
		nonce := n.Header[wxpay.HeaderV3Nonce]
		return []string{"nonce:wxpay:v3:" + cl.SimConfig.MchID + ":" + nonce}, nonce != ""
	}
	m := nonceRE.FindSubmatch(n.Body)
	if m == nil {
		return nil, false
	}
	suffix := cl.SimConfig.MchID + ":" + string(m[1])
	return []string{"nonce:wxpay:v2:" + suffix, "nonce:wxpay:v2r:" + suffix}, true
}

// v3Window is WeChat Pay's signature window: a notification whose
// Wechatpay-Timestamp is this far from now is refused (ErrTooOld).
const v3Window = 5 * time.Minute

// replayExpect says what a correct receiver answers to n replayed now:
// acknowledged, unless it is a v3 notification signed more than the window
// ago (refused as too old). Near the window's edge either answer is
// right (sure is false).
func (cl *Cluster) replayExpect(n Notification) (ack, sure bool) {
	if cl.APIVersion != "v3" {
		return true, true
	}
	ts, err := strconv.ParseInt(n.Header[wxpay.HeaderV3Timestamp], 10, 64)
	if err != nil {
		return false, true
	}
	age := time.Since(time.Unix(ts, 0))
	const margin = 10 * time.Second
	return age < v3Window, age < v3Window-margin || age > v3Window+margin
}

// API v3 forgeries. Each is refused by a correct receiver whatever the
// order's state; the reason it is counted under is given.
const (
	ForgeWrongKey      = "wrong_key"            // signed with another key under the right serial: bad_signature
	ForgeFlippedSig    = "flipped_signature"    // right signature, one byte changed: bad_signature
	ForgeEmptySig      = "empty_signature"      // Wechatpay-Signature empty: bad_signature
	ForgeNoHeaders     = "no_wechatpay_headers" // no Wechatpay-* header at all: bad_signature
	ForgeStale         = "stale_timestamp"      // right key, signed 6 minutes ago: too_old
	ForgeProbe         = "signtest_probe"       // WECHATPAY/SIGNTEST/ signature: signature_probe
	ForgeOtherMchID    = "other_mchid"          // right key, another merchant's mchid: wrong_merchant
	ForgeOtherAppID    = "other_appid"          // right key, another appid: wrong_merchant
	ForgeWrongAPIv3Key = "wrong_apiv3_key"      // right signature, resource sealed with another APIv3 key: bad_signature
	ForgeCiphertext    = "tampered_ciphertext"  // ciphertext changed, then signed: the GCM tag fails: bad_signature
	ForgeBodyChanged   = "body_changed"         // right signature, then a field added to the body: bad_signature
	ForgeUnknownSerial = "unknown_serial"       // right key, a serial WeChat Pay never listed: bad_signature after one re-download
)

// ForgeKindsV3 are the v3 forgeries sent during the run. unknown_serial
// is kept for the quiescent catalogue (CatalogueKinds): each one makes an
// instance download the certificates again, at most once a minute, and
// one sent in the minute before a rotation would hold back that
// instance's download of the new certificate (see docs/RELIABILITY.md).
var ForgeKindsV3 = []string{
	ForgeWrongKey, ForgeFlippedSig, ForgeEmptySig, ForgeNoHeaders, ForgeStale, ForgeProbe,
	ForgeOtherMchID, ForgeOtherAppID, ForgeWrongAPIv3Key, ForgeCiphertext, ForgeBodyChanged,
}

// v3Parts are the pieces of a v3 notification the forgeries change.
type v3Parts struct {
	Transaction map[string]any // the resource's plaintext
	APIv3Key    string         // seals the resource
	Key         *rsa.PrivateKey
	Serial      string
	Timestamp   time.Time
	Nonce       string
	// EditBody, when set, changes the body before it is signed;
	// EditSigned after.
	EditBody, EditSigned func([]byte) []byte
	// EditHeaders changes the headers last.
	EditHeaders func(map[string]string)
}

// notificationV3 builds a TRANSACTION.SUCCESS notification for p as WeChat
// Pay sends it: the transaction sealed with the APIv3 key
// (AEAD_AES_256_GCM, associated data "transaction"), the envelope signed
// with the operator's WeChat Pay key under its certificate's serial, then
// edit's changes.
func (cl *Cluster) notificationV3(p Payment, nonce string, edit func(*v3Parts)) Notification {
	now := time.Now()
	paid := p.Total
	parts := &v3Parts{
		Transaction: map[string]any{
			"appid": cl.SimConfig.AppID, "mchid": cl.SimConfig.MchID, "out_trade_no": p.OutTradeNo,
			"transaction_id": p.TransactionID, "trade_type": "NATIVE", "trade_state": "SUCCESS",
			"trade_state_desc": "支付成功", "bank_type": "OTHERS", "attach": "",
			"success_time": now.In(tollgate.Beijing).Format(time.RFC3339),
			"payer":        map[string]string{"openid": "oReliabilityHarness0000000000"},
			"amount":       map[string]any{"total": p.Total, "payer_total": paid, "currency": "CNY", "payer_currency": "CNY"},
		},
		APIv3Key: cl.Keys.APIv3Key, Key: cl.Keys.WechatpayPrivateKey, Serial: cl.PlatformSerial,
		Timestamp: now, Nonce: nonce,
	}
	if edit != nil {
		edit(parts)
	}
	plain, err := json.Marshal(parts.Transaction)
	if err != nil {
		panic(err)
	}
	resNonce := nonce
	if len(resNonce) > 12 {
		resNonce = resNonce[len(resNonce)-12:]
	}
	ct, err := wxpay.EncryptV3Resource(parts.APIv3Key, resNonce, "transaction", plain)
	if err != nil {
		panic(err) // a 32-byte key and a 12-byte nonce
	}
	body, err := json.Marshal(map[string]any{
		"id": "EV-" + nonce, "create_time": now.In(tollgate.Beijing).Format(time.RFC3339),
		"resource_type": "encrypt-resource", "event_type": wxpay.V3EventTransactionSuccess, "summary": "支付成功",
		"resource": map[string]string{"original_type": "transaction", "algorithm": wxpay.V3Algorithm,
			"ciphertext": ct, "associated_data": "transaction", "nonce": resNonce},
	})
	if err != nil {
		panic(err)
	}
	if parts.EditBody != nil {
		body = parts.EditBody(body)
	}
	ts := strconv.FormatInt(parts.Timestamp.Unix(), 10)
	sig, err := wxpay.SignV3(parts.Key, wxpay.V3ResponseMessage(ts, parts.Nonce, body))
	if err != nil {
		panic(err)
	}
	if parts.EditSigned != nil {
		body = parts.EditSigned(body)
	}
	h := map[string]string{
		"Content-Type": "application/json", wxpay.HeaderV3Timestamp: ts, wxpay.HeaderV3Nonce: parts.Nonce,
		wxpay.HeaderV3Serial: parts.Serial, wxpay.HeaderV3SignatureType: wxpay.V3AuthScheme, wxpay.HeaderV3Signature: sig,
	}
	if parts.EditHeaders != nil {
		parts.EditHeaders(h)
	}
	return Notification{Header: h, Body: body}
}

// strangerKey is an RSA key WeChat Pay never had, made once.
var strangerKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// forgeV3 builds the v3 forgery kind for p.
func (cl *Cluster) forgeV3(kind string, p Payment, rng *mrand.Rand) Notification {
	nonce := fmt.Sprintf("forged%026d", rng.Int63())
	var edit func(*v3Parts)
	switch kind {
	case ForgeWrongKey:
		edit = func(v *v3Parts) { v.Key = strangerKey() }
	case ForgeFlippedSig:
		i := rng.Intn(256)
		edit = func(v *v3Parts) {
			v.EditHeaders = func(h map[string]string) {
				b, _ := base64.StdEncoding.DecodeString(h[wxpay.HeaderV3Signature])
				b[i%len(b)] ^= 0x10
				h[wxpay.HeaderV3Signature] = base64.StdEncoding.EncodeToString(b)
			}
		}
	case ForgeEmptySig:
		edit = func(v *v3Parts) { v.EditHeaders = func(h map[string]string) { h[wxpay.HeaderV3Signature] = "" } }
	case ForgeNoHeaders:
		edit = func(v *v3Parts) {
			v.EditHeaders = func(h map[string]string) {
				for k := range h {
					if strings.HasPrefix(k, "Wechatpay-") {
						delete(h, k)
					}
				}
			}
		}
	case ForgeStale:
		edit = func(v *v3Parts) { v.Timestamp = v.Timestamp.Add(-v3Window - time.Minute) }
	case ForgeProbe:
		edit = func(v *v3Parts) {
			v.EditHeaders = func(h map[string]string) {
				h[wxpay.HeaderV3Signature] = fmt.Sprintf("WECHATPAY/SIGNTEST/%016d", rng.Int63())
			}
		}
	case ForgeOtherMchID:
		edit = func(v *v3Parts) { v.Transaction["mchid"] = "1900000001" }
	case ForgeOtherAppID:
		edit = func(v *v3Parts) { v.Transaction["appid"] = "wx0000000000000000" }
	case ForgeWrongAPIv3Key:
		edit = func(v *v3Parts) { v.APIv3Key = fmt.Sprintf("%032d", rng.Int63()) }
	case ForgeCiphertext:
		edit = func(v *v3Parts) { v.EditBody = flipCiphertext }
	case ForgeBodyChanged:
		edit = func(v *v3Parts) {
			v.EditSigned = func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"summary":`), []byte(`"extra":"1","summary":`), 1)
			}
		}
	case ForgeUnknownSerial:
		serial := fmt.Sprintf("%032X", rng.Int63())
		edit = func(v *v3Parts) { v.Serial = serial }
	default:
		panic("unknown v3 forgery " + kind)
	}
	return cl.notificationV3(p, nonce, edit)
}

// flipCiphertext changes one byte of the sealed resource of a v3
// notification body, keeping it valid base64 and JSON.
func flipCiphertext(body []byte) []byte {
	var env map[string]any
	if err := json.Unmarshal(body, &env); err != nil {
		panic(err)
	}
	res := env["resource"].(map[string]any)
	ct, err := base64.StdEncoding.DecodeString(res["ciphertext"].(string))
	if err != nil {
		panic(err)
	}
	ct[len(ct)/2] ^= 0x01
	res["ciphertext"] = base64.StdEncoding.EncodeToString(ct)
	out, err := json.Marshal(env)
	if err != nil {
		panic(err)
	}
	return out
}
