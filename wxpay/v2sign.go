package wxpay

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"sort"
)

// Sign types of API v2. The value is sent as the sign_type parameter; an
// absent sign_type means MD5.
const (
	SignTypeMD5        = "MD5"
	SignTypeHMACSHA256 = "HMAC-SHA256"
)

// ErrV2SignType is returned for a sign_type other than SignTypeMD5 and
// SignTypeHMACSHA256. It is a configuration error, not a forgery.
var ErrV2SignType = errors.New("wxpay v2: unknown sign_type")

// SignV2 computes the API v2 signature of params with the merchant API key:
// every parameter except "sign" whose value is not empty, sorted by name in
// byte order, joined as name=value with "&", followed by "&key=" + key, then
// MD5 or HMAC-SHA256 (keyed with key) in upper-case hex. Values are used raw,
// not URL-encoded. It fails only for an unknown signType.
func SignV2(params map[string]string, signType, key string) (string, error) {
	var h hash.Hash
	switch signType {
	case SignTypeMD5:
		h = md5.New()
	case SignTypeHMACSHA256:
		h = hmac.New(sha256.New, []byte(key))
	default:
		return "", fmt.Errorf("sign %q: %w", signType, ErrV2SignType)
	}
	writeV2SignString(h, params, key)
	var sum [sha256.Size]byte
	return upperHex(h.Sum(sum[:0])), nil
}

// upperHex encodes b as upper-case hexadecimal.
func upperHex(b []byte) string {
	const digits = "0123456789ABCDEF"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&0x0f]
	}
	return string(out)
}

// writeV2SignString writes stringSignTemp (the sorted pairs plus the key) to w.
func writeV2SignString(h hash.Hash, params map[string]string, key string) {
	names := make([]string, 0, len(params))
	size := len("key=") + len(key)
	for k, v := range params {
		if k == "sign" || v == "" {
			continue
		}
		names = append(names, k)
		size += len(k) + len(v) + 2
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.Grow(size)
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(params[k])
		b.WriteByte('&')
	}
	b.WriteString("key=")
	b.WriteString(key)
	h.Write(b.Bytes())
}

// VerifyV2 checks the "sign" parameter of params against SignV2 over the
// same map. It returns ErrNotSigned when sign is absent or empty and
// ErrBadSignature when it does not match.
//
// An empty signType picks the algorithm from the signature's length (32 hex
// digits: MD5, 64: HMAC-SHA256), because WeChat Pay's notifications usually
// omit sign_type even for HMAC-SHA256 orders. Either way the key is needed to
// forge a signature, so letting the length choose gives nothing away.
//
// The signature must be upper-case hex, as WeChat Pay documents and sends it;
// any other spelling is ErrBadSignature. Comparison is in constant time.
func VerifyV2(params map[string]string, signType, key string) error {
	got := params["sign"]
	if got == "" {
		return ErrNotSigned
	}
	if signType == "" {
		switch len(got) {
		case 2 * md5.Size:
			signType = SignTypeMD5
		case 2 * sha256.Size:
			signType = SignTypeHMACSHA256
		default:
			return fmt.Errorf("signature of %d characters: %w", len(got), ErrBadSignature)
		}
	}
	want, err := SignV2(params, signType, key)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return fmt.Errorf("%s: %w", signType, ErrBadSignature)
	}
	return nil
}
