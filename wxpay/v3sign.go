package wxpay

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// V3AuthScheme is the scheme token of the API v3 Authorization header and
// the only value of the Wechatpay-Signature-Type header: RSA-2048 PKCS#1 v1.5
// signatures over SHA-256.
const V3AuthScheme = "WECHATPAY2-SHA256-RSA2048"

// V3SignatureProbePrefix starts the deliberately invalid signatures WeChat
// Pay sends to check that merchants verify notifications.
const V3SignatureProbePrefix = "WECHATPAY/SIGNTEST/"

// maxV3AuthorizationLen bounds the Authorization header ParseV3Authorization
// accepts. A real one is about 450 bytes (a 344-character signature).
const maxV3AuthorizationLen = 2048

// V3RequestMessage returns the string a merchant signs for an API v3
// request: method, canonical URL (absolute path plus "?" and the query
// exactly as sent, no scheme or host), Unix timestamp in seconds, nonce and
// the exact body bytes, each followed by "\n". An empty body gives a message
// ending in "\n\n"; a body's own trailing newline is kept.
func V3RequestMessage(method, canonicalURL, timestamp, nonce string, body []byte) []byte {
	b := make([]byte, 0, len(method)+len(canonicalURL)+len(timestamp)+len(nonce)+len(body)+5)
	for _, s := range []string{method, canonicalURL, timestamp, nonce} {
		b = append(b, s...)
		b = append(b, '\n')
	}
	b = append(b, body...)
	return append(b, '\n')
}

// V3ResponseMessage returns the string WeChat Pay signs for an API v3
// response or notification: timestamp, nonce and the exact body bytes, each
// followed by "\n". A 204 answer's message is "TS\nNONCE\n\n".
func V3ResponseMessage(timestamp, nonce string, body []byte) []byte {
	b := make([]byte, 0, len(timestamp)+len(nonce)+len(body)+3)
	b = append(b, timestamp...)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	b = append(b, body...)
	return append(b, '\n')
}

// SignV3 signs message with priv (RSA PKCS#1 v1.5 over SHA-256) and returns
// the signature in standard base64. The signature is deterministic: the same
// key and message always give the same string.
func SignV3(priv *rsa.PrivateKey, message []byte) (string, error) {
	if priv == nil {
		return "", errors.New("wxpay v3: sign: no private key")
	}
	sum := sha256.Sum256(message)
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("wxpay v3: sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// VerifyV3Signature checks signature (standard base64) over message with
// pub. It returns nil on success and otherwise an error wrapping
// ErrNotSigned (empty signature), ErrSignatureProbe (a WECHATPAY/SIGNTEST/
// probe) or ErrBadSignature (bad base64 or a mismatch).
func VerifyV3Signature(pub *rsa.PublicKey, message []byte, signature string) error {
	if err := verifyV3Signature(pub, message, signature); err != nil {
		return fmt.Errorf("wxpay v3: verify: %w", err)
	}
	return nil
}

// verifyV3Signature is VerifyV3Signature without the package prefix.
func verifyV3Signature(pub *rsa.PublicKey, message []byte, signature string) error {
	switch {
	case signature == "":
		return ErrNotSigned
	case strings.HasPrefix(signature, V3SignatureProbePrefix):
		return ErrSignatureProbe
	case pub == nil:
		return errors.New("no public key")
	}
	raw, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("signature is not base64: %w", ErrBadSignature)
	}
	sum := sha256.Sum256(message)
	// rsa.VerifyPKCS1v15 compares the decoded block in constant time.
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], raw); err != nil {
		return ErrBadSignature
	}
	return nil
}

// V3Authorization holds the five items of an API v3 Authorization header.
// SerialNo is the serial of the merchant API certificate that holds the
// public half of the signing key.
type V3Authorization struct {
	MchID     string
	NonceStr  string
	Timestamp string
	SerialNo  string
	Signature string
}

// String returns the Authorization header value:
// WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",timestamp="…",serial_no="…",signature="…".
func (a V3Authorization) String() string {
	var b strings.Builder
	b.Grow(len(V3AuthScheme) + 64 + len(a.MchID) + len(a.NonceStr) + len(a.Timestamp) + len(a.SerialNo) + len(a.Signature))
	b.WriteString(V3AuthScheme)
	b.WriteString(` mchid="`)
	b.WriteString(a.MchID)
	b.WriteString(`",nonce_str="`)
	b.WriteString(a.NonceStr)
	b.WriteString(`",timestamp="`)
	b.WriteString(a.Timestamp)
	b.WriteString(`",serial_no="`)
	b.WriteString(a.SerialNo)
	b.WriteString(`",signature="`)
	b.WriteString(a.Signature)
	b.WriteString(`"`)
	return b.String()
}

// ParseV3Authorization parses an API v3 Authorization header value. The five
// items may come in any order, separated by "," (a space after the comma is
// tolerated). Anything else — another scheme, a missing, repeated, unknown
// or empty item, an unquoted value, a control character, a non-numeric
// timestamp, an over-long header — gives an error wrapping ErrMalformed. It
// checks the form only; the caller verifies the signature.
func ParseV3Authorization(header string) (V3Authorization, error) {
	var a V3Authorization
	if len(header) > maxV3AuthorizationLen {
		return a, fmt.Errorf("wxpay v3: authorization: %d bytes: %w", len(header), ErrMalformed)
	}
	rest, ok := strings.CutPrefix(header, V3AuthScheme+" ")
	if !ok {
		return a, fmt.Errorf("wxpay v3: authorization: scheme is not %s: %w", V3AuthScheme, ErrMalformed)
	}
	seen := map[string]bool{}
	for item := range strings.SplitSeq(rest, ",") {
		if len(seen) > 0 {
			item = strings.TrimPrefix(item, " ")
		}
		key, val, err := parseV3AuthItem(item)
		if err != nil {
			return V3Authorization{}, err
		}
		if seen[key] {
			return V3Authorization{}, fmt.Errorf("wxpay v3: authorization: repeated %s: %w", key, ErrMalformed)
		}
		seen[key] = true
		switch key {
		case "mchid":
			a.MchID = val
		case "nonce_str":
			a.NonceStr = val
		case "timestamp":
			a.Timestamp = val
		case "serial_no":
			a.SerialNo = val
		case "signature":
			a.Signature = val
		default:
			return V3Authorization{}, fmt.Errorf("wxpay v3: authorization: unknown item %.20q: %w", key, ErrMalformed)
		}
	}
	if len(seen) != 5 {
		return V3Authorization{}, fmt.Errorf("wxpay v3: authorization: %d of 5 items: %w", len(seen), ErrMalformed)
	}
	if !isDigits(a.Timestamp, 12) {
		return V3Authorization{}, fmt.Errorf("wxpay v3: authorization: timestamp is not Unix seconds: %w", ErrMalformed)
	}
	return a, nil
}

// parseV3AuthItem splits key="value"; the value must be non-empty printable
// ASCII without quotes.
func parseV3AuthItem(item string) (key, val string, err error) {
	key, quoted, ok := strings.Cut(item, "=")
	if !ok || key == "" || len(quoted) < 3 || quoted[0] != '"' || quoted[len(quoted)-1] != '"' {
		return "", "", fmt.Errorf("wxpay v3: authorization: item is not key=\"value\": %w", ErrMalformed)
	}
	val = quoted[1 : len(quoted)-1]
	for i := 0; i < len(val); i++ {
		if c := val[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return "", "", fmt.Errorf("wxpay v3: authorization: bad character in %.20q: %w", key, ErrMalformed)
		}
	}
	return key, val, nil
}

// isDigits reports whether s is 1 to max ASCII digits.
func isDigits(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// LoadRSAPrivateKeyPEM parses the first PEM block of pemBytes as an RSA
// private key: PKCS#8 ("PRIVATE KEY", the form of apiclient_key.pem) or
// PKCS#1 ("RSA PRIVATE KEY").
func LoadRSAPrivateKeyPEM(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("wxpay: private key: no PEM block")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("wxpay: private key: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("wxpay: private key: %T is not RSA", k)
		}
		return rk, nil
	case "RSA PRIVATE KEY":
		rk, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("wxpay: private key: %w", err)
		}
		return rk, nil
	default:
		return nil, fmt.Errorf("wxpay: private key: unexpected PEM block %q", block.Type)
	}
}

// LoadRSAPublicKeyPEM parses the first PEM block of pemBytes as an RSA
// public key: PKIX ("PUBLIC KEY", the form of a WeChat Pay public key),
// PKCS#1 ("RSA PUBLIC KEY") or the key of a "CERTIFICATE".
func LoadRSAPublicKeyPEM(pemBytes []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("wxpay: public key: no PEM block")
	}
	var k any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		k, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(block.Bytes); err == nil {
			k = c.PublicKey
		}
	default:
		return nil, fmt.Errorf("wxpay: public key: unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("wxpay: public key: %w", err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("wxpay: public key: %T is not RSA", k)
	}
	return rk, nil
}
