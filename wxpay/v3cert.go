package wxpay

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
)

// v3CertificatesAnswer is the JSON of GET /v3/certificates.
type v3CertificatesAnswer struct {
	Data []struct {
		SerialNo           string     `json:"serial_no"`
		EffectiveTime      string     `json:"effective_time"`
		ExpireTime         string     `json:"expire_time"`
		EncryptCertificate V3Resource `json:"encrypt_certificate"`
	} `json:"data"`
}

// FetchCertificates downloads the platform certificates
// (GET /v3/certificates), adds them to Keyring and returns them. It is for
// merchants in certificate mode; a merchant in public key mode gets an
// *APIError (404 RESOURCE_NOT_EXISTS). V3Certificates uses the same
// download but replaces Keyring's certificates instead of adding to them.
//
// Each certificate is decrypted with APIv3Key: the AES-GCM authentication
// proves it comes from WeChat Pay, as only WeChat Pay and the merchant hold
// that key. The answer's signature is then verified with the keys already
// in Keyring plus the new certificates, which bootstraps an empty keyring.
// A certificate whose serial is not the announced serial_no is refused
// (ErrMalformed); nothing is added unless everything verifies.
func (c *V3Client) FetchCertificates(ctx context.Context) ([]*x509.Certificate, error) {
	certs, err := c.fetchCertificates(ctx)
	if err != nil {
		return nil, err
	}
	for _, cert := range certs {
		if err := c.Keyring.AddCertificate(cert); err != nil {
			return nil, err
		}
	}
	return certs, nil
}

// fetchCertificates downloads, decrypts and verifies the platform
// certificates, and changes nothing. It never asks Certificates to
// re-fetch: it is that re-fetch.
func (c *V3Client) fetchCertificates(ctx context.Context) ([]*x509.Certificate, error) {
	call := v3Call{op: "certificates", method: http.MethodGet, path: "/v3/certificates"}
	resp, body, op, err := c.roundTrip(ctx, call, MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		if err := c.Keyring.verify(resp.Header, body, c.now()); err != nil {
			return nil, &TransportError{Op: "v3 " + op, Err: unverifiedAnswer(resp.StatusCode, body, err)}
		}
		return nil, fmt.Errorf("wxpay v3 %s: %w", op, v3APIError(resp.StatusCode, body))
	}
	certs, err := c.decryptCertificates(body)
	if err != nil {
		return nil, &TransportError{Op: "v3 " + op, Err: err}
	}
	trial := c.Keyring.clone()
	for _, cert := range certs {
		if err := trial.AddCertificate(cert); err != nil {
			return nil, &TransportError{Op: "v3 " + op, Err: err}
		}
	}
	if err := trial.verify(resp.Header, body, c.now()); err != nil {
		return nil, &TransportError{Op: "v3 " + op, Err: fmt.Errorf("unverified answer: %w", err)}
	}
	return certs, nil
}

// decryptCertificates decrypts and parses every certificate of a
// /v3/certificates answer.
func (c *V3Client) decryptCertificates(body []byte) ([]*x509.Certificate, error) {
	var a v3CertificatesAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("decode answer: %v: %w", err, ErrMalformed)
	}
	if len(a.Data) == 0 {
		return nil, fmt.Errorf("answer without certificates: %w", ErrMalformed)
	}
	certs := make([]*x509.Certificate, 0, len(a.Data))
	for _, d := range a.Data {
		plain, err := DecryptV3Resource(c.APIv3Key, d.EncryptCertificate)
		if err != nil {
			return nil, &v3DecryptError{fmt.Errorf("certificate %.64q: %w", d.SerialNo, err)}
		}
		block, _ := pem.Decode(plain)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certificate %.64q: no CERTIFICATE block: %w", d.SerialNo, ErrMalformed)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %.64q: %v: %w", d.SerialNo, err, ErrMalformed)
		}
		if got := V3CertificateSerial(cert); got != normaliseV3Serial(d.SerialNo) {
			return nil, fmt.Errorf("certificate announced as %.64q has serial %s: %w", d.SerialNo, got, ErrMalformed)
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

// v3DecryptError marks a certificate the APIv3 key could not decrypt, so
// that Preflight can name the key rather than the answer's signature.
type v3DecryptError struct{ err error }

func (e *v3DecryptError) Error() string { return e.err.Error() }
func (e *v3DecryptError) Unwrap() error { return e.err }

// clone returns a keyring with the same keys.
func (k *V3Keyring) clone() *V3Keyring {
	out := &V3Keyring{}
	if k == nil {
		return out
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	out.keys = maps.Clone(k.keys)
	return out
}
