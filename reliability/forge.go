package reliability

import (
	"bytes"
	"fmt"
	"math/rand"
	"strconv"
	"time"

	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// Payment is what a v2 payment notification says about one order.
type Payment struct {
	OutTradeNo    string
	TransactionID string
	Total         int64 // fen
}

// NotificationV2 builds a v2 payment notification as WeChat Pay sends it
// (every field signed with signType under key, no sign_type field).
func NotificationV2(cfg wxpaysim.Config, p Payment, nonce, signType, key string) []byte {
	m := notificationFields(cfg, p, nonce)
	sig, err := wxpay.SignV2(m, signType, key)
	if err != nil {
		panic(err) // signType is one of ours
	}
	m["sign"] = sig
	return wxpay.EncodeV2XML(m)
}

func notificationFields(cfg wxpaysim.Config, p Payment, nonce string) map[string]string {
	return map[string]string{
		"return_code": "SUCCESS", "return_msg": "OK", "result_code": "SUCCESS",
		"appid": cfg.AppID, "mch_id": cfg.MchID, "nonce_str": nonce,
		"openid": "oReliabilityHarness0000000000", "is_subscribe": "N", "trade_type": "NATIVE", "bank_type": "OTHERS",
		"total_fee": strconv.FormatInt(p.Total, 10), "fee_type": "CNY", "cash_fee": strconv.FormatInt(p.Total, 10),
		"transaction_id": p.TransactionID, "out_trade_no": p.OutTradeNo,
		"time_end": time.Now().Format("20060102150405"),
	}
}

// ForgeKinds are the forgeries the short form sends: each must be refused
// and change nothing (docs/DESIGN.md §7.2 F5, F6; docs/RELIABILITY.md's S4 catalogue has more).
var ForgeKinds = []string{
	"wrong_key_md5",  // signed with another key
	"wrong_key_hmac", // signed with another key, HMAC-SHA256
	"flipped_sign",   // right signature, one hex digit changed
	"empty_sign",     // sign present and empty
	"no_sign",        // sign missing
	"other_mch_id",   // right key, another merchant's mch_id
	"other_appid",    // right key, another appid
	"hmac_as_md5",    // right key, HMAC-SHA256 where the order is MD5
	"field_added",    // right signature, then a field added
}

// Forge builds a forged notification of the given kind for p. The
// notification is refused by a correct receiver whatever the order's state.
func Forge(kind string, cfg wxpaysim.Config, p Payment, rng *rand.Rand) []byte {
	nonce := fmt.Sprintf("forged%026d", rng.Int63())
	wrongKey := fmt.Sprintf("%032d", rng.Int63())
	switch kind {
	case "wrong_key_md5":
		return NotificationV2(cfg, p, nonce, wxpay.SignTypeMD5, wrongKey)
	case "wrong_key_hmac":
		return NotificationV2(cfg, p, nonce, wxpay.SignTypeHMACSHA256, wrongKey)
	case "other_mch_id":
		c := cfg
		c.MchID = "1900000001"
		return NotificationV2(c, p, nonce, wxpay.SignTypeMD5, cfg.APIKey)
	case "other_appid":
		c := cfg
		c.AppID = "wx0000000000000000"
		return NotificationV2(c, p, nonce, wxpay.SignTypeMD5, cfg.APIKey)
	case "hmac_as_md5":
		return NotificationV2(cfg, p, nonce, wxpay.SignTypeHMACSHA256, cfg.APIKey)
	}
	m := notificationFields(cfg, p, nonce)
	sig, err := wxpay.SignV2(m, wxpay.SignTypeMD5, cfg.APIKey)
	if err != nil {
		panic(err)
	}
	switch kind {
	case "flipped_sign":
		b := []byte(sig)
		i := rng.Intn(len(b))
		if b[i] == '0' {
			b[i] = '1'
		} else {
			b[i] = '0'
		}
		m["sign"] = string(b)
	case "empty_sign":
		m["sign"] = ""
	case "no_sign":
	case "field_added":
		m["sign"] = sig
		m["coupon_fee"] = "1"
	default:
		panic("unknown forgery " + kind)
	}
	return wxpay.EncodeV2XML(m)
}

// Tamper builds a correctly signed notification whose total_fee differs
// from the order's by delta fen (F4: only the amount check stops it).
func Tamper(cfg wxpaysim.Config, p Payment, delta int64, rng *rand.Rand) []byte {
	p.Total += delta
	return NotificationV2(cfg, p, fmt.Sprintf("tamper%026d", rng.Int63()), wxpay.SignTypeMD5, cfg.APIKey)
}

// ackedBody reports whether a v2 notification answer's body is the
// success acknowledgement.
func ackedBody(b []byte) bool {
	return bytes.Contains(b, []byte("<return_code><![CDATA[SUCCESS]]></return_code>"))
}
