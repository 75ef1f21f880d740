package wxpaysim

// This file is the one seam between the emulator and the v3 primitives of
// package wxpay. While those were being written, it held minimal private
// versions; each function now names the wxpay primitive it stands for.

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
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

// v3Auth is wxpay.V3Authorization.
type v3Auth struct {
	MchID, NonceStr, Timestamp, SerialNo, Signature string
}

// v3RequestMessage is wxpay.V3RequestMessage.
func v3RequestMessage(method, canonicalURL, ts, nonce string, body []byte) []byte {
	return []byte(method + "\n" + canonicalURL + "\n" + ts + "\n" + nonce + "\n" + string(body) + "\n")
}

// v3ResponseMessage is wxpay.V3ResponseMessage.
func v3ResponseMessage(ts, nonce string, body []byte) []byte {
	return []byte(ts + "\n" + nonce + "\n" + string(body) + "\n")
}

// signV3 is wxpay.SignV3.
func signV3(priv *rsa.PrivateKey, msg []byte) (string, error) {
	h := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, h[:])
	if err != nil {
		return "", fmt.Errorf("sign v3: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// verifyV3Signature is wxpay.VerifyV3Signature.
func verifyV3Signature(pub *rsa.PublicKey, msg []byte, sig string) error {
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("verify v3: %w", err)
	}
	h := sha256.Sum256(msg)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], raw); err != nil {
		return fmt.Errorf("verify v3: %w", err)
	}
	return nil
}

// parseV3Authorization is wxpay.ParseV3Authorization.
func parseV3Authorization(h string) (v3Auth, error) {
	var a v3Auth
	_, rest, ok := strings.Cut(h, " ")
	if !ok {
		return a, errors.New("no scheme")
	}
	for _, item := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return a, fmt.Errorf("bad item %q", item)
		}
		v = v[1 : len(v)-1]
		switch k {
		case "mchid":
			a.MchID = v
		case "nonce_str":
			a.NonceStr = v
		case "timestamp":
			a.Timestamp = v
		case "serial_no":
			a.SerialNo = v
		case "signature":
			a.Signature = v
		}
	}
	if a.MchID == "" || a.NonceStr == "" || a.Timestamp == "" || a.SerialNo == "" || a.Signature == "" {
		return a, errors.New("missing item")
	}
	return a, nil
}

// encryptV3Resource is wxpay.EncryptV3Resource.
func encryptV3Resource(apiV3Key, nonce, associatedData string, plaintext []byte) (string, error) {
	block, err := aes.NewCipher([]byte(apiV3Key))
	if err != nil {
		return "", fmt.Errorf("encrypt resource: %w", err)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(nonce))
	if err != nil {
		return "", fmt.Errorf("encrypt resource: %w", err)
	}
	return base64.StdEncoding.EncodeToString(gcm.Seal(nil, []byte(nonce), plaintext, []byte(associatedData))), nil
}

// loadPrivateKeyPEM is wxpay.LoadRSAPrivateKeyPEM.
func loadPrivateKeyPEM(p []byte) (*rsa.PrivateKey, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return rk, nil
}

// loadPublicKeyPEM is wxpay.LoadRSAPublicKeyPEM.
func loadPublicKeyPEM(p []byte) (*rsa.PublicKey, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return rk, nil
}
