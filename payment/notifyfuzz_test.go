package payment_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"tollgate/payment"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// The notify fuzz worlds run on a stopped clock and number orders from a
// reader of zeros, so that the seeds' order number, v3 timestamp and
// signatures are valid in every run and in every fuzz worker.
var fuzzNow = time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)

const (
	fuzzOrderNo = "tg2026112700000000000000000000" // "tg" + Beijing date + 20 × alphabet[0]
	fuzzNonce   = "fuzz-nonce"
	seenNonce   = "seen-nonce" // marked seen in every world: a replay
	fuzzTxID    = "4200000000202611270000000001"
)

// FuzzHandleV2Notification posts arbitrary bodies to HandleV2Notification
// with one v2 (MD5) order pending. Unless the body is a notification signed
// with the merchant key for that order, SUCCESS, with its amount in CNY and
// a fresh nonce, nothing may change (ledger and order digest); such a
// notification must credit the order exactly once (a repeat is
// acknowledged and changes nothing). An input whose signature does not
// verify is never answered 2xx; nothing is answered 5xx; nothing panics.
func FuzzHandleV2Notification(f *testing.F) {
	nf := newNotifyFuzz(f, modes[0])
	for _, b := range v2NotifySeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		nf.tb.TB = t
		signed, credits := v2Verdict(body)
		nf.check(t, signed, credits, func() (int, []byte) {
			return nf.w.svc.HandleV2Notification(context.Background(), body)
		})
	})
}

// FuzzHandleV3Notification is FuzzHandleV2Notification for API v3: the
// Wechatpay-* headers are fuzzed with the body. "Signed" means the
// WeChat Pay platform key's RSA signature over timestamp, nonce and body
// verifies, for a timestamp within five minutes of the clock.
func FuzzHandleV3Notification(f *testing.F) {
	nf := newNotifyFuzz(f, modes[2])
	for _, s := range v3NotifySeeds(f) {
		f.Add(s.ts, s.nonce, s.serial, s.sigType, s.sig, s.body)
	}
	f.Fuzz(func(t *testing.T, ts, nonce, serial, sigType, sig string, body []byte) {
		nf.tb.TB = t
		h := http.Header{}
		for k, v := range map[string]string{wxpay.HeaderV3Timestamp: ts, wxpay.HeaderV3Nonce: nonce,
			wxpay.HeaderV3Serial: serial, wxpay.HeaderV3SignatureType: sigType, wxpay.HeaderV3Signature: sig} {
			if v != "" {
				h.Set(k, v)
			}
		}
		signed, credits := v3Verdict(h, body)
		nf.check(t, signed, credits, func() (int, []byte) {
			return nf.w.svc.HandleV3Notification(context.Background(), h, body)
		})
	})
}

// notifyFuzz is a fuzz target's world: one account, one order pending. An
// input that credits the order is checked, then the world is rebuilt so
// that the next input again meets a pending order.
type notifyFuzz struct {
	mode mode
	tb   *fuzzTB
	w    *world
}

func newNotifyFuzz(f *testing.F, m mode) *notifyFuzz {
	f.Helper()
	nf := &notifyFuzz{mode: m}
	nf.rebuild(f)
	f.Cleanup(func() {
		nf.tb.TB = f
		nf.tb.close()
	})
	return nf
}

// rebuild closes the current world, if any, reporting to tb, and builds a
// new one whose failures go to tb (and then to each iteration's t).
func (nf *notifyFuzz) rebuild(tb testing.TB) {
	tb.Helper()
	if nf.tb != nil {
		nf.tb.TB = tb
		nf.tb.close()
	}
	nf.tb = &fuzzTB{TB: tb}
	w := newWorld(nf.tb, backend{"sqlite", openSQLite}, nf.mode, func(_ *payment.Config, d *payment.Deps) {
		d.Rand = zeroReader{}
	})
	w.clock.Advance(fuzzNow.Sub(w.clock.Now()))
	w.mustAccount("alice")
	if res := w.mustOrder("alice", "plus"); res.OutTradeNo != fuzzOrderNo || res.AmountFen != 5000 {
		tb.Fatalf("order %s of %d fen, want %s of 5000: the seeds no longer match", res.OutTradeNo, res.AmountFen, fuzzOrderNo)
	}
	w.quiesce() // the emulator delivers nothing behind the digest
	mch := w.sim.Config().MchID
	for _, v := range []string{"v2", "v3"} {
		if _, err := w.nonces.SetNX(w.ctx, "wxpay:"+v+":"+mch+":"+seenNonce, 48*time.Hour); err != nil {
			tb.Fatal(err)
		}
	}
	nf.w = w
}

// check posts an input with post and checks the properties, given whether
// the input is signed and whether it is a notification that must credit.
func (nf *notifyFuzz) check(t *testing.T, signed, credits bool, post func() (int, []byte)) {
	t.Helper()
	w := nf.w
	before := w.digest("alice")
	status, reply := post()
	changed := w.digest("alice") != before
	switch {
	case status >= 500:
		t.Fatalf("answered %d (%s): an internal failure on a healthy store", status, reply)
	case status < 300 && !signed:
		t.Fatalf("answered %d (%s) to an input whose signature does not verify", status, reply)
	case !credits && changed:
		t.Fatalf("answered %d (%s), and a notification that must not credit changed the ledger or the order", status, reply)
	case !credits:
		return
	}
	if status != http.StatusOK || !changed {
		t.Fatalf("a correct notification for the pending order was answered %d (%s), changed=%v", status, reply, changed)
	}
	if ls := w.lots("alice"); len(ls) != 1 || ls[0].Fen != 5000 || ls[0].TransactionID == "" {
		t.Fatalf("lots after the credit: %+v", ls)
	}
	if o := w.order(fuzzOrderNo); o.Status != payment.StatusSuccess {
		t.Fatalf("order %s after the credit", o.Status)
	}
	after := w.digest("alice")
	if status, reply := post(); status != http.StatusOK || w.digest("alice") != after {
		t.Fatalf("the repeat was answered %d (%s) or changed something", status, reply)
	}
	nf.rebuild(t)
}

// v2Verdict says whether body is signed with the merchant key (MD5, the
// order's sign type) and whether it is a payment notification that must
// credit the pending order.
func v2Verdict(body []byte) (signed, credits bool) {
	m, err := wxpay.DecodeV2XML(body)
	if err != nil || wxpay.VerifyV2(m, wxpay.SignTypeMD5, wxpaysim.DefaultAPIKey) != nil {
		return false, false
	}
	fee, err := strconv.ParseInt(m["total_fee"], 10, 64)
	return true, err == nil && fee == 5000 && m["req_info"] == "" &&
		m["return_code"] == "SUCCESS" && m["result_code"] == "SUCCESS" &&
		m["appid"] == wxpaysim.DefaultAppID && m["mch_id"] == wxpaysim.DefaultMchID &&
		m["out_trade_no"] == fuzzOrderNo && m["transaction_id"] != "" &&
		(m["fee_type"] == "" || m["fee_type"] == "CNY") && m["nonce_str"] != seenNonce
}

// v3Verdict says whether h and body carry a valid platform signature in
// the time window (checked here with crypto/rsa, not wxpay's verifier) and
// whether they are a TRANSACTION.SUCCESS that must credit the pending order.
// A Wechatpay-Signature-Type other than ours is not our signature.
func v3Verdict(h http.Header, body []byte) (signed, credits bool) {
	tss := h.Get(wxpay.HeaderV3Timestamp)
	ts, err := strconv.ParseInt(tss, 10, 64)
	if err != nil || strings.Trim(tss, "0123456789") != "" || h.Get(wxpay.HeaderV3Nonce) == "" ||
		h.Get(wxpay.HeaderV3Serial) != wxpaysim.DefaultPlatformKeyID || len(body) > wxpay.MaxBodyBytes ||
		(h.Get(wxpay.HeaderV3SignatureType) != "" && h.Get(wxpay.HeaderV3SignatureType) != wxpay.V3AuthScheme) ||
		time.Unix(ts, 0).Sub(fuzzNow).Abs() > wxpay.V3MaxClockSkew {
		return false, false
	}
	sig, err := base64.StdEncoding.DecodeString(h.Get(wxpay.HeaderV3Signature))
	if err != nil {
		return false, false
	}
	msg := sha256.Sum256(wxpay.V3ResponseMessage(h.Get(wxpay.HeaderV3Timestamp), h.Get(wxpay.HeaderV3Nonce), body))
	if rsa.VerifyPKCS1v15(platformKey(), crypto.SHA256, msg[:], sig) != nil {
		return false, false
	}
	var env struct {
		ID           string           `json:"id"`
		EventType    string           `json:"event_type"`
		ResourceType string           `json:"resource_type"`
		Resource     wxpay.V3Resource `json:"resource"`
	}
	var tx struct {
		AppID         string `json:"appid"`
		MchID         string `json:"mchid"`
		OutTradeNo    string `json:"out_trade_no"`
		TransactionID string `json:"transaction_id"`
		TradeState    string `json:"trade_state"`
		Amount        struct {
			Total    int64  `json:"total"`
			Currency string `json:"currency"`
		} `json:"amount"`
	}
	if json.Unmarshal(body, &env) != nil || env.ID == "" || env.EventType != wxpay.V3EventTransactionSuccess ||
		env.ResourceType != "encrypt-resource" || env.Resource.OriginalType != "transaction" {
		return true, false
	}
	plain, err := wxpay.DecryptV3Resource(wxpaysim.DefaultAPIv3Key, env.Resource)
	if err != nil || json.Unmarshal(plain, &tx) != nil {
		return true, false
	}
	return true, tx.AppID == wxpaysim.DefaultAppID && tx.MchID == wxpaysim.DefaultMchID &&
		tx.OutTradeNo == fuzzOrderNo && tx.TransactionID != "" && tx.TradeState == wxpay.V3TradeStateSuccess &&
		tx.Amount.Total == 5000 && (tx.Amount.Currency == "" || tx.Amount.Currency == wxpay.V3CurrencyCNY) &&
		h.Get(wxpay.HeaderV3Nonce) != seenNonce
}

func platformKey() *rsa.PublicKey {
	pub, err := wxpay.LoadRSAPublicKeyPEM([]byte(wxpaysim.TestPlatformPublicKeyPEM))
	if err != nil {
		panic(err)
	}
	return pub
}

// v2Payment's fields for the pending order, deterministic.
func fuzzV2Fields(edit func(m map[string]string)) map[string]string {
	cfg := wxpaysim.Config{AppID: wxpaysim.DefaultAppID, MchID: wxpaysim.DefaultMchID}
	m := v2Payment(cfg, fuzzOrderNo, 5000, fuzzNonce)
	m["transaction_id"] = fuzzTxID
	if edit != nil {
		edit(m)
	}
	return m
}

func mustSignV2(tb testing.TB, m map[string]string, signType, key string) []byte {
	tb.Helper()
	sig, err := wxpay.SignV2(m, signType, key)
	if err != nil {
		tb.Fatal(err)
	}
	m["sign"] = sig
	return wxpay.EncodeV2XML(m)
}

// v2NotifySeeds are the genuine notification for the pending order and
// forged variants of it: each kind of docs/DESIGN.md §7.2 F6–F8.
func v2NotifySeeds(tb testing.TB) [][]byte {
	key := wxpaysim.DefaultAPIKey
	signed := func(edit func(m map[string]string)) []byte {
		return mustSignV2(tb, fuzzV2Fields(edit), wxpay.SignTypeMD5, key)
	}
	good := signed(nil)
	sig := fuzzV2Fields(nil)
	mustSignV2(tb, sig, wxpay.SignTypeMD5, key)
	lower := fuzzV2Fields(nil)
	lower["sign"] = strings.ToLower(sig["sign"])
	flipped := bytes.Replace(good, []byte(sig["sign"][:4]), []byte("0000"), 1)
	dup := bytes.Replace(good, []byte("</xml>"), []byte("<total_fee>1</total_fee></xml>"), 1)
	return [][]byte{
		good,
		flipped,
		wxpay.EncodeV2XML(lower),
		mustSignV2(tb, fuzzV2Fields(nil), wxpay.SignTypeMD5, "00000000000000000000000000000000"),
		mustSignV2(tb, fuzzV2Fields(nil), wxpay.SignTypeHMACSHA256, key), // algorithm confusion
		wxpay.EncodeV2XML(fuzzV2Fields(func(m map[string]string) { m["sign"] = "" })),
		signed(func(m map[string]string) { m["total_fee"] = "5001" }),
		signed(func(m map[string]string) { m["total_fee"] = "05000" }),
		signed(func(m map[string]string) { m["fee_type"] = "USD" }),
		signed(func(m map[string]string) { m["appid"] = "wx0000000000000000" }),
		signed(func(m map[string]string) { m["mch_id"] = "1999999999" }),
		signed(func(m map[string]string) { m["out_trade_no"] = "tg20261127NOSUCHORDER0000" }),
		signed(func(m map[string]string) { m["result_code"] = "FAIL" }),
		signed(func(m map[string]string) { m["nonce_str"] = seenNonce }),
		signed(func(m map[string]string) { delete(m, "transaction_id") }),
		signed(func(m map[string]string) { m["req_info"] = "bm90IGVuY3J5cHRlZA==" }),
		dup,
		[]byte(`<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><out_trade_no>&x;</out_trade_no></xml>`),
		[]byte("<xml><out_trade_no><![CDATA[" + fuzzOrderNo + "]]>x</out_trade_no><sign>\xff\xfe</sign></xml>"),
		bytes.Repeat([]byte("x"), wxpay.MaxBodyBytes+1),
		nil,
	}
}

// v3Seed is one v3 fuzz input: headers and body.
type v3Seed struct {
	ts, nonce, serial, sigType, sig string
	body                            []byte
}

// v3NotifySeeds are the genuine notification for the pending order and
// forged variants of it.
func v3NotifySeeds(tb testing.TB) []v3Seed {
	key, err := wxpay.LoadRSAPrivateKeyPEM([]byte(wxpaysim.TestPlatformPrivateKeyPEM))
	if err != nil {
		tb.Fatal(err)
	}
	tx := func(edit func(m map[string]any)) map[string]any {
		m := map[string]any{"appid": wxpaysim.DefaultAppID, "mchid": wxpaysim.DefaultMchID, "out_trade_no": fuzzOrderNo,
			"transaction_id": fuzzTxID, "trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "ok",
			"bank_type": "OTHERS", "success_time": "2026-11-27T12:00:00+08:00", "payer": map[string]string{"openid": "o1"},
			"amount": map[string]any{"total": 5000, "payer_total": 5000, "currency": "CNY", "payer_currency": "CNY"}}
		if edit != nil {
			edit(m)
		}
		return m
	}
	body := func(event, original string, plain any) []byte {
		p, _ := json.Marshal(plain)
		ct, err := wxpay.EncryptV3Resource(wxpaysim.DefaultAPIv3Key, "0123456789ab", original, p)
		if err != nil {
			tb.Fatal(err)
		}
		b, _ := json.Marshal(map[string]any{"id": "EV-1", "create_time": "2026-11-27T12:00:00+08:00",
			"resource_type": "encrypt-resource", "event_type": event, "summary": "支付成功",
			"resource": map[string]string{"original_type": original, "algorithm": wxpay.V3Algorithm,
				"ciphertext": ct, "associated_data": original, "nonce": "0123456789ab"}})
		return b
	}
	sign := func(b []byte, at time.Time, nonce string) v3Seed {
		ts := strconv.FormatInt(at.Unix(), 10)
		sig, err := wxpay.SignV3(key, wxpay.V3ResponseMessage(ts, nonce, b))
		if err != nil {
			tb.Fatal(err)
		}
		return v3Seed{ts, nonce, wxpaysim.DefaultPlatformKeyID, wxpay.V3AuthScheme, sig, b}
	}
	good := body(wxpay.V3EventTransactionSuccess, "transaction", tx(nil))
	edited := func(edit func(m map[string]any)) v3Seed {
		return sign(body(wxpay.V3EventTransactionSuccess, "transaction", tx(edit)), fuzzNow, fuzzNonce)
	}
	probe := sign(good, fuzzNow, fuzzNonce)
	probe.sig = wxpay.V3SignatureProbePrefix + "abc"
	flipped := sign(good, fuzzNow, fuzzNonce)
	flipped.sig = "A" + flipped.sig[1:]
	if flipped.sig == probe.sig {
		flipped.sig = "B" + flipped.sig[1:]
	}
	serial := sign(good, fuzzNow, fuzzNonce)
	serial.serial = "PUB_KEY_ID_0000000000000000000000000000000000"
	tag := bytes.Replace(good, []byte(`","nonce"`), []byte(`A","nonce"`), 1)
	return []v3Seed{
		sign(good, fuzzNow, fuzzNonce),
		probe, flipped, serial,
		sign(good, fuzzNow.Add(-10*time.Minute), fuzzNonce),
		sign(good, fuzzNow, seenNonce),
		sign(tag, fuzzNow, fuzzNonce),
		edited(func(m map[string]any) { m["amount"] = map[string]any{"total": 4999, "currency": "CNY"} }),
		edited(func(m map[string]any) { m["amount"] = map[string]any{"total": 5000, "currency": "USD"} }),
		edited(func(m map[string]any) { m["appid"] = "wx0000000000000000" }),
		edited(func(m map[string]any) { m["out_trade_no"] = "tg20261127NOSUCHORDER0000" }),
		edited(func(m map[string]any) { m["trade_state"] = "NOTPAY" }),
		edited(func(m map[string]any) { delete(m, "transaction_id") }),
		sign(body("TRANSACTION.CLOSED", "transaction", tx(nil)), fuzzNow, fuzzNonce), // acknowledged, changes nothing
		sign(body("REFUND.SUCCESS", "refund", map[string]any{"mchid": wxpaysim.DefaultMchID, "out_trade_no": fuzzOrderNo,
			"out_refund_no": "R-not-ours", "refund_status": "SUCCESS", "amount": map[string]int64{"total": 5000, "refund": 5000}}), fuzzNow, fuzzNonce),
		sign([]byte("{"), fuzzNow, fuzzNonce),
		{body: good},
		{},
	}
}

// fuzzTB lets a world outlive one fuzz iteration: its embedded TB is set
// to each iteration's t, so failures and logs go there, while cleanups and
// temporary directories belong to the world and end with close.
type fuzzTB struct {
	testing.TB
	cleanups []func()
}

func (tb *fuzzTB) Cleanup(f func()) { tb.cleanups = append(tb.cleanups, f) }

func (tb *fuzzTB) TempDir() string {
	dir, err := os.MkdirTemp("", "tollgate-notifyfuzz-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// close runs the cleanups, last registered first.
func (tb *fuzzTB) close() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
	tb.cleanups = nil
}

// zeroReader reads zeros: order numbers become tg<date>000…0.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestNotifyFuzzOracles: the fuzz targets' verdicts are not vacuous: the
// genuine seeds are judged signed and crediting, the forged ones not
// crediting, and the HMAC-SHA256 and probe seeds not signed.
func TestNotifyFuzzOracles(t *testing.T) {
	credit := 0
	for i, b := range v2NotifySeeds(t) {
		signed, credits := v2Verdict(b)
		if i == 0 && !credits || (i == 1 || i == 4) && signed {
			t.Errorf("v2 seed %d: signed %v, credits %v", i, signed, credits)
		}
		if credits {
			credit++
		}
	}
	for i, s := range v3NotifySeeds(t) {
		h := http.Header{}
		h.Set(wxpay.HeaderV3Timestamp, s.ts)
		h.Set(wxpay.HeaderV3Nonce, s.nonce)
		h.Set(wxpay.HeaderV3Serial, s.serial)
		h.Set(wxpay.HeaderV3Signature, s.sig)
		signed, credits := v3Verdict(h, s.body)
		if i == 0 && !credits || (i == 1 || i == 2) && signed {
			t.Errorf("v3 seed %d: signed %v, credits %v", i, signed, credits)
		}
		if credits {
			credit++
		}
	}
	if credit != 3 { // v2 genuine and total_fee "05000", v3 genuine
		t.Errorf("%d seeds judged crediting, want 3", credit)
	}
}
