package wxpay

import (
	"crypto/aes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// v2RefundKey derives the AES-256 key of req_info: the 32 ASCII characters
// of the lower-case hex MD5 of the merchant API key.
func v2RefundKey(apiKey string) []byte {
	sum := md5.Sum([]byte(apiKey))
	return []byte(hex.EncodeToString(sum[:]))
}

// DecryptV2RefundReqInfo decrypts the req_info field of a v2 refund
// notification: base64, then AES-256-ECB with the key derived from apiKey
// (lower-case hex MD5 of it), then PKCS#7 unpadding; the plaintext is a flat
// <root> document decoded under the rules of DecodeV2XML. Any failure wraps
// ErrMalformed: without an authentication tag a wrong key shows up as bad
// padding or as garbage that is not XML.
func DecryptV2RefundReqInfo(reqInfo, apiKey string) (map[string]string, error) {
	ct, err := base64.StdEncoding.DecodeString(reqInfo)
	if err != nil {
		return nil, fmt.Errorf("wxpay v2: req_info base64: %w: %v", ErrMalformed, err)
	}
	if len(ct) > MaxBodyBytes {
		return nil, fmt.Errorf("wxpay v2: req_info of %d bytes: %w", len(ct), ErrBodyTooLarge)
	}
	pt, err := decryptECB(v2RefundKey(apiKey), ct)
	if err != nil {
		return nil, fmt.Errorf("wxpay v2: req_info: %w", err)
	}
	m, err := decodeFlatXML(pt, "root")
	if err != nil {
		return nil, fmt.Errorf("wxpay v2: req_info plaintext: %w", err)
	}
	return m, nil
}

// EncryptV2RefundReqInfo is the inverse of DecryptV2RefundReqInfo: it
// encodes plain as a <root> document (fields in name order, values in
// CDATA), pads it with PKCS#7, encrypts it with AES-256-ECB under the key
// derived from apiKey and returns it in base64. The emulator uses it to send
// refund notifications.
func EncryptV2RefundReqInfo(plain map[string]string, apiKey string) (string, error) {
	ct, err := encryptECB(v2RefundKey(apiKey), encodeFlatXML(plain, "root"))
	if err != nil {
		return "", fmt.Errorf("wxpay v2: req_info: %w", err)
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}

// encryptECB pads pt with PKCS#7 and encrypts it with AES in ECB mode (the
// mode WeChat Pay chose for req_info; it is not a general-purpose mode).
func encryptECB(key, pt []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes key: %w", err)
	}
	ct := padPKCS7(append([]byte(nil), pt...))
	for i := 0; i < len(ct); i += aes.BlockSize {
		block.Encrypt(ct[i:i+aes.BlockSize], ct[i:i+aes.BlockSize])
	}
	return ct, nil
}

// decryptECB decrypts ct with AES in ECB mode and removes the PKCS#7 padding.
func decryptECB(key, ct []byte) ([]byte, error) {
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("ciphertext of %d bytes: %w", len(ct), ErrMalformed)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes key: %w", err)
	}
	pt := make([]byte, len(ct))
	for i := 0; i < len(ct); i += aes.BlockSize {
		block.Decrypt(pt[i:i+aes.BlockSize], ct[i:i+aes.BlockSize])
	}
	return unpadPKCS7(pt)
}

// padPKCS7 appends 1 to 16 bytes of PKCS#7 padding.
func padPKCS7(b []byte) []byte {
	n := aes.BlockSize - len(b)%aes.BlockSize
	for range n {
		b = append(b, byte(n))
	}
	return b
}

// unpadPKCS7 removes PKCS#7 padding, refusing a malformed one.
func unpadPKCS7(b []byte) ([]byte, error) {
	n := int(b[len(b)-1])
	if n == 0 || n > aes.BlockSize || n > len(b) {
		return nil, fmt.Errorf("bad padding: %w", ErrMalformed)
	}
	for _, c := range b[len(b)-n:] {
		if int(c) != n {
			return nil, fmt.Errorf("bad padding: %w", ErrMalformed)
		}
	}
	return b[:len(b)-n], nil
}
