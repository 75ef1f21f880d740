package wxpay

import (
	"crypto/rsa"
	"fmt"
	"strconv"
	"strings"
)

// V3JSAPISignType is the signType of API v3 JSAPI payment parameters.
const V3JSAPISignType = "RSA"

// V3JSAPIParams are the parameters a page inside WeChat passes to
// WeixinJSBridge.invoke('getBrandWCPayRequest', params, cb) to open the
// payment sheet of a JSAPI order. They marshal to the JSON names the
// bridge expects.
type V3JSAPIParams struct {
	AppID     string `json:"appId"`
	TimeStamp string `json:"timeStamp"` // Unix seconds, as a string
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"`  // "prepay_id=…"
	SignType  string `json:"signType"` // V3JSAPISignType
	PaySign   string `json:"paySign"`
}

// V3JSAPIMessage returns the string paySign signs:
// "appId\ntimeStamp\nnonceStr\npackage\n".
func V3JSAPIMessage(p V3JSAPIParams) string {
	return p.AppID + "\n" + p.TimeStamp + "\n" + p.NonceStr + "\n" + p.Package + "\n"
}

// validPrepayID reports whether s looks like a prepay_id: 1–64 characters
// of digits, letters, '_' and '-'. Anything else, a newline above all,
// would make the signed message ambiguous.
func validPrepayID(s string) bool { return validOutNo(s, 1, 64, "_-") }

// JSAPIParams returns the payment sheet parameters of prepayID (from
// JSAPIOrder): the client's AppID, the clock's Unix time, a fresh nonce,
// package "prepay_id=<prepayID>", signType "RSA" and paySign, the base64
// RSA-SHA256 (PKCS#1 v1.5) signature of V3JSAPIMessage with MerchantKey.
// A missing AppID or MerchantKey, or a prepayID that is not 1–64
// characters of [0-9A-Za-z_-], is an error wrapping ErrV3Request.
func (c *V3Client) JSAPIParams(prepayID string) (V3JSAPIParams, error) {
	switch {
	case c.AppID == "":
		return V3JSAPIParams{}, fmt.Errorf("wxpay v3 jsapi params: AppID not set: %w", ErrV3Request)
	case c.MerchantKey == nil:
		return V3JSAPIParams{}, fmt.Errorf("wxpay v3 jsapi params: MerchantKey not set: %w", ErrV3Request)
	case !validPrepayID(prepayID):
		return V3JSAPIParams{}, fmt.Errorf("wxpay v3 jsapi params: prepay_id %.80q: %w", prepayID, ErrV3Request)
	}
	nonce, err := newV3Nonce()
	if err != nil {
		return V3JSAPIParams{}, fmt.Errorf("wxpay v3 jsapi params: %w", err)
	}
	p := V3JSAPIParams{
		AppID:     c.AppID,
		TimeStamp: strconv.FormatInt(c.now().Unix(), 10),
		NonceStr:  nonce,
		Package:   "prepay_id=" + prepayID,
		SignType:  V3JSAPISignType,
	}
	if p.PaySign, err = SignV3(c.MerchantKey, []byte(V3JSAPIMessage(p))); err != nil {
		return V3JSAPIParams{}, fmt.Errorf("wxpay v3 jsapi params: %w", err)
	}
	return p, nil
}

// VerifyV3JSAPIPaySign checks p.PaySign with the merchant's public key pub,
// as WeChat does before it opens the payment sheet. It returns an error
// wrapping ErrMalformed for a signType other than "RSA" or a field holding a
// newline (the signed message would be ambiguous), ErrNotSigned for an
// empty paySign, and ErrBadSignature for a signature that does not match.
func VerifyV3JSAPIPaySign(pub *rsa.PublicKey, p V3JSAPIParams) error {
	if p.SignType != V3JSAPISignType {
		return fmt.Errorf("wxpay v3 jsapi paySign: signType %.20q is not RSA: %w", p.SignType, ErrMalformed)
	}
	for _, f := range []string{p.AppID, p.TimeStamp, p.NonceStr, p.Package} {
		if strings.ContainsAny(f, "\r\n") {
			return fmt.Errorf("wxpay v3 jsapi paySign: a field holds a newline: %w", ErrMalformed)
		}
	}
	if err := verifyV3Signature(pub, []byte(V3JSAPIMessage(p)), p.PaySign); err != nil {
		return fmt.Errorf("wxpay v3 jsapi paySign: %w", err)
	}
	return nil
}
