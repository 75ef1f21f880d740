package wxpay

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// V3MaxClockSkew is the verification window: a response or notification
// whose Wechatpay-Timestamp is V3MaxClockSkew or more away from now, in
// either direction, is refused with ErrTooOld, as wechatpay-go does; the
// distance is measured exactly, where wechatpay-go compares whole seconds
// of the local clock and so refuses a timestamp 299.5 s ahead.
const V3MaxClockSkew = 300 * time.Second

// V3PublicKeyIDPrefix starts the id of a WeChat Pay public key (微信支付公钥),
// which Wechatpay-Serial carries instead of a certificate serial.
const V3PublicKeyIDPrefix = "PUB_KEY_ID_"

// Headers WeChat Pay sets on API v3 responses and notifications.
const (
	HeaderV3Timestamp     = "Wechatpay-Timestamp"
	HeaderV3Nonce         = "Wechatpay-Nonce"
	HeaderV3Signature     = "Wechatpay-Signature"
	HeaderV3Serial        = "Wechatpay-Serial"
	HeaderV3SignatureType = "Wechatpay-Signature-Type"
	HeaderV3RequestID     = "Request-Id"
)

// V3ClockSkewError is the ErrTooOld of a v3 answer or notification: it
// says how far the message's timestamp is from the local clock, so that a
// skewed clock can raise an alarm rather than pass for forged messages.
// errors.Is(err, ErrTooOld) holds.
type V3ClockSkewError struct {
	// Skew is the local clock minus the message's timestamp: positive for
	// an old message (a replay, or a local clock running fast), negative for
	// one from the future (a local clock running slow).
	Skew time.Duration
}

// Error implements error.
func (e *V3ClockSkewError) Error() string {
	return fmt.Sprintf("timestamp is %s from the local clock (limit %s)", e.Skew, V3MaxClockSkew)
}

// Unwrap returns ErrTooOld.
func (e *V3ClockSkewError) Unwrap() error { return ErrTooOld }

// V3Keyring holds the WeChat Pay keys that may sign responses and
// notifications, by the value of Wechatpay-Serial: platform certificates
// (serial in upper-case hex, used only within their validity period) and
// WeChat Pay public keys ("PUB_KEY_ID_…", no expiry). Both may be present
// during a migration. The zero value is an empty keyring ready to use; it is
// safe for concurrent use.
type V3Keyring struct {
	mu sync.RWMutex
	// keys maps a normalised serial to its key.
	keys map[string]v3Key
}

// v3Key is a public key with an optional validity period.
type v3Key struct {
	pub       *rsa.PublicKey
	notBefore time.Time // zero: no bound
	notAfter  time.Time // zero: no bound
	cert      bool      // a platform certificate, replaced by ReplaceCertificates
}

// NewV3Keyring returns an empty keyring.
func NewV3Keyring() *V3Keyring { return &V3Keyring{} }

// normaliseV3Serial upper-cases a certificate serial (hex is compared
// without regard to case) and leaves anything else, such as a public key id,
// as it is.
func normaliseV3Serial(serial string) string {
	for i := 0; i < len(serial); i++ {
		c := serial[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return serial
		}
	}
	return strings.ToUpper(serial)
}

// V3CertificateSerial returns the serial WeChat Pay puts in Wechatpay-Serial
// for cert: its serial number in upper-case hex, two digits per byte.
func V3CertificateSerial(cert *x509.Certificate) string {
	return fmt.Sprintf("%X", cert.SerialNumber.Bytes())
}

// Add registers pub under serial: a WeChat Pay public key id
// ("PUB_KEY_ID_…") or a certificate serial. A key under the same serial is
// replaced. The key must be RSA with at least 2048 bits.
func (k *V3Keyring) Add(serial string, pub *rsa.PublicKey) error {
	return k.add(serial, v3Key{pub: pub})
}

// AddCertificate registers a platform certificate under its serial
// (V3CertificateSerial); it is used only between its NotBefore and NotAfter.
func (k *V3Keyring) AddCertificate(cert *x509.Certificate) error {
	serial, key, err := certificateKey(cert)
	if err != nil {
		return err
	}
	return k.add(serial, key)
}

// certificateKey returns the serial and checked key of a platform
// certificate.
func certificateKey(cert *x509.Certificate) (string, v3Key, error) {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return "", v3Key{}, fmt.Errorf("wxpay v3: keyring: certificate key %T is not RSA", cert.PublicKey)
	}
	serial := V3CertificateSerial(cert)
	key := v3Key{pub: pub, notBefore: cert.NotBefore, notAfter: cert.NotAfter, cert: true}
	if err := checkV3Key(serial, key); err != nil {
		return "", v3Key{}, err
	}
	return serial, key, nil
}

// ReplaceCertificates makes certs the keyring's whole set of platform
// certificates: every certificate registered before and not in certs is
// dropped, so that a certificate WeChat Pay no longer lists stops
// verifying anything. Public keys (Add, AddPublicKeyPEM) stay. Either
// every certificate is taken or, on an error (a key that is not RSA of at
// least 2048 bits), the keyring is unchanged. An empty certs drops every
// certificate.
func (k *V3Keyring) ReplaceCertificates(certs []*x509.Certificate) error {
	keys := make(map[string]v3Key, len(certs))
	for _, cert := range certs {
		serial, key, err := certificateKey(cert)
		if err != nil {
			return err
		}
		keys[normaliseV3Serial(serial)] = key
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = make(map[string]v3Key)
	}
	for serial, key := range k.keys {
		if key.cert {
			delete(k.keys, serial)
		}
	}
	for serial, key := range keys {
		k.keys[serial] = key
	}
	return nil
}

// AddCertificatePEM parses every CERTIFICATE block of pemBytes and registers
// each with AddCertificate.
func (k *V3Keyring) AddCertificatePEM(pemBytes []byte) error {
	n := 0
	for {
		var block *pem.Block
		block, pemBytes = pem.Decode(pemBytes)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("wxpay v3: keyring: %w", err)
		}
		if err := k.AddCertificate(cert); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return errors.New("wxpay v3: keyring: no CERTIFICATE block")
	}
	return nil
}

// AddPublicKeyPEM registers the WeChat Pay public key in pemBytes under its
// id ("PUB_KEY_ID_…").
func (k *V3Keyring) AddPublicKeyPEM(id string, pemBytes []byte) error {
	pub, err := LoadRSAPublicKeyPEM(pemBytes)
	if err != nil {
		return fmt.Errorf("wxpay v3: keyring %s: %w", id, err)
	}
	return k.Add(id, pub)
}

// checkV3Key refuses an empty serial and a key under 2048 bits.
func checkV3Key(serial string, key v3Key) error {
	if serial == "" {
		return errors.New("wxpay v3: keyring: empty serial")
	}
	if key.pub == nil || key.pub.N == nil || key.pub.N.BitLen() < 2048 {
		return fmt.Errorf("wxpay v3: keyring %s: need an RSA key of at least 2048 bits", serial)
	}
	return nil
}

func (k *V3Keyring) add(serial string, key v3Key) error {
	if err := checkV3Key(serial, key); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = make(map[string]v3Key)
	}
	k.keys[normaliseV3Serial(serial)] = key
	return nil
}

// Lookup returns the key registered under serial, whatever its validity
// period.
func (k *V3Keyring) Lookup(serial string) (*rsa.PublicKey, bool) {
	key, ok := k.lookup(serial)
	return key.pub, ok
}

func (k *V3Keyring) lookup(serial string) (v3Key, bool) {
	if k == nil {
		return v3Key{}, false
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok := k.keys[normaliseV3Serial(serial)]
	return key, ok
}

// Serials returns the registered serials, in no particular order.
func (k *V3Keyring) Serials() []string {
	if k == nil {
		return nil
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]string, 0, len(k.keys))
	for s := range k.keys {
		out = append(out, s)
	}
	return out
}

// VerifyResponse verifies the Wechatpay-* signature headers of an API v3
// response or notification over body, at time now. Checks run in this
// order, and the first failure is returned wrapped:
//
//   - no Wechatpay-Signature: ErrNotSigned;
//   - a WECHATPAY/SIGNTEST/ probe: ErrSignatureProbe;
//   - a missing or non-numeric timestamp, missing nonce or serial, or a
//     Wechatpay-Signature-Type other than V3AuthScheme: ErrMalformed;
//   - |now − timestamp| ≥ V3MaxClockSkew: ErrTooOld, as a
//     *V3ClockSkewError that gives the skew;
//   - a serial not in the keyring, or a certificate outside its validity
//     period at now: ErrUnknownSerial;
//   - a signature that does not match: ErrBadSignature.
func (k *V3Keyring) VerifyResponse(h http.Header, body []byte, now time.Time) error {
	if err := k.verify(h, body, now); err != nil {
		return fmt.Errorf("wxpay v3: verify response: %w", err)
	}
	return nil
}

// verify is VerifyResponse without the package prefix on its errors, for
// callers that add their own context.
func (k *V3Keyring) verify(h http.Header, body []byte, now time.Time) error {
	sig := h.Get(HeaderV3Signature)
	switch {
	case sig == "":
		return ErrNotSigned
	case strings.HasPrefix(sig, V3SignatureProbePrefix):
		return ErrSignatureProbe
	}
	ts, nonce, serial := h.Get(HeaderV3Timestamp), h.Get(HeaderV3Nonce), h.Get(HeaderV3Serial)
	if st := h.Get(HeaderV3SignatureType); st != "" && st != V3AuthScheme {
		return fmt.Errorf("signature type %.40q: %w", st, ErrMalformed)
	}
	if !isDigits(ts, 12) || nonce == "" || serial == "" {
		return fmt.Errorf("timestamp, nonce or serial missing: %w", ErrMalformed)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp: %w", ErrMalformed)
	}
	// The skew from the local clock as it is, not as whole seconds: a
	// truncated now.Unix() refused a timestamp 299.5 s ahead.
	if skew := now.Sub(time.Unix(sec, 0)); skew >= V3MaxClockSkew || -skew >= V3MaxClockSkew {
		return &V3ClockSkewError{Skew: skew}
	}
	key, ok := k.lookup(serial)
	if !ok {
		return fmt.Errorf("serial %.64q: %w", serial, ErrUnknownSerial)
	}
	if (!key.notBefore.IsZero() && now.Before(key.notBefore)) || (!key.notAfter.IsZero() && now.After(key.notAfter)) {
		return fmt.Errorf("certificate %s is not valid at %s: %w", serial, now.UTC().Format(time.RFC3339), ErrUnknownSerial)
	}
	if err := verifyV3Signature(key.pub, V3ResponseMessage(ts, nonce, body), sig); err != nil {
		return fmt.Errorf("signed by %s: %w", serial, err)
	}
	return nil
}
