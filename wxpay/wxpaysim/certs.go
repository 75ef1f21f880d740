package wxpaysim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"tollgate"
	"tollgate/wxpay"
)

// ErrPublicKeyMode is returned by RotateCertificate when the emulator runs
// in public key mode (PlatformCertificates off): there is no certificate.
var ErrPublicKeyMode = errors.New("wxpaysim: no platform certificates in public key mode (PlatformCertificates is off)")

// platformCertValidity is how long a generated platform certificate is
// valid, as WeChat Pay's (5 years).
const platformCertValidity = 5 * 365 * 24 * time.Hour

// platformCert is one platform certificate and its private key.
type platformCert struct {
	key    *rsa.PrivateKey
	cert   *x509.Certificate
	serial string // upper-case hex, as Wechatpay-Serial carries it
	pem    []byte
}

// newPlatformCert makes a self-signed certificate for key, valid from an
// hour before now (clients' clocks differ) for five years, with a random
// 16-byte serial.
func newPlatformCert(key *rsa.PrivateKey, now time.Time) (platformCert, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return platformCert{}, err
	}
	b[0] = b[0]&0x7f | 0x10 // positive, and 16 bytes: 32 hex digits
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(b),
		Subject: pkix.Name{CommonName: "Tenpay.com", Organization: []string{"Tenpay.com"},
			OrganizationalUnit: []string{"wxpaysim emulated platform certificate"}, Country: []string{"CN"}},
		NotBefore: now.Add(-time.Hour).Truncate(time.Second),
		NotAfter:  now.Add(platformCertValidity).Truncate(time.Second),
		KeyUsage:  x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return platformCert{}, fmt.Errorf("wxpaysim: platform certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return platformCert{}, fmt.Errorf("wxpaysim: platform certificate: %w", err)
	}
	return platformCert{key: key, cert: cert, serial: wxpay.V3CertificateSerial(cert),
		pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// initCertificates gives PlatformKey its certificate in certificate mode.
func (s *Server) initCertificates() {
	if !s.PlatformCertificates {
		return
	}
	c, err := newPlatformCert(s.platKey, s.wallNow())
	if err != nil {
		// Only a broken crypto/rand or an invalid key gets here.
		panic(err)
	}
	s.certs = []platformCert{c}
}

// signer returns the key that signs answers and notifications now and the
// Wechatpay-Serial naming it: PlatformKeyID in public key mode, the newest
// certificate's serial in certificate mode.
func (s *Server) signer() (*rsa.PrivateKey, string) {
	if !s.PlatformCertificates {
		return s.platKey, s.PlatformKeyID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.certs[len(s.certs)-1]
	return c.key, c.serial
}

// RotateCertificate makes a new platform key and certificate, which signs
// everything from now on, and returns its serial. The previous
// certificates stay listed by /v3/certificates (the overlap in which
// clients re-download) until RetireCertificates. It returns
// ErrPublicKeyMode unless PlatformCertificates is set.
func (s *Server) RotateCertificate() (serial string, err error) {
	serial, _, err = s.rotate(false)
	return serial, err
}

// rotate is RotateCertificate, retiring the older certificates in the same
// step when retire is set. It returns the new serial and the serials then
// listed.
func (s *Server) rotate(retire bool) (string, []string, error) {
	s.init()
	if !s.PlatformCertificates {
		return "", nil, ErrPublicKeyMode
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", nil, fmt.Errorf("wxpaysim: rotate certificate: %w", err)
	}
	c, err := newPlatformCert(key, s.wallNow())
	if err != nil {
		return "", nil, err
	}
	s.mu.Lock()
	s.certs = append(s.certs, c)
	if retire {
		s.retireLocked()
	}
	serials := s.serialsLocked()
	s.mu.Unlock()
	s.logf("wxpaysim: platform certificate %s now signs (listed: %v)", c.serial, serials)
	return c.serial, serials, nil
}

// RetireCertificates stops listing every platform certificate but the
// newest, and returns the serials still listed (nil in public key mode).
func (s *Server) RetireCertificates() []string {
	s.init()
	if !s.PlatformCertificates {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retireLocked()
	return s.serialsLocked()
}

// retireLocked moves every certificate but the newest to s.retired, where
// only NotifySignedBy still uses them.
func (s *Server) retireLocked() {
	n := len(s.certs) - 1
	s.retired = append(s.retired, s.certs[:n]...)
	s.certs = slices.Clone(s.certs[n:])
}

// NotifySignedBy sends, now and once (no retries, no faults), the payment
// notification of the paid v3 order outTradeNo signed by the platform
// certificate serial, listed or retired: what a receiver sees when WeChat
// Pay's notification is signed by a key it has rotated out (a receiver
// that dropped the certificate must refuse it). It returns the delivery,
// also recorded in Notifications. Errors: ErrPublicKeyMode; ErrNotFound
// (no such order or certificate); ErrWrongState (not a paid v3 order).
func (s *Server) NotifySignedBy(outTradeNo, serial string) (Delivery, error) {
	s.init()
	if !s.PlatformCertificates {
		return Delivery{}, ErrPublicKeyMode
	}
	s.mu.Lock()
	var signer *platformCert
	for _, c := range slices.Concat(s.certs, s.retired) {
		if strings.EqualFold(c.serial, serial) {
			signer = &c
		}
	}
	o := s.orders[outTradeNo]
	switch {
	case signer == nil:
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("notify signed by certificate %.64q: %w", serial, ErrNotFound)
	case o == nil:
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("notify %q: %w", outTradeNo, ErrNotFound)
	case o.APIVersion != 3 || (o.State != StateSuccess && o.State != StateRefund):
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("notify %q, a v%d order in state %s: %w", outTradeNo, o.APIVersion, o.State, ErrWrongState)
	}
	v := s.viewLocked(o)
	v.State = StateSuccess
	n := s.paymentNotificationLocked(v)
	n.signer = signer
	s.notifySeq++
	s.mu.Unlock()
	d := Delivery{NotificationID: n.id, Kind: n.kind, APIVersion: n.version, OutTradeNo: n.outTradeNo,
		URL: n.url, Attempt: 1, SignedBy: signer.serial}
	d, _ = s.post(n, n.body, d)
	return d, nil
}

// CertificateSerials returns the serials of the listed platform
// certificates, oldest first; the last one signs. It is nil in public key
// mode.
func (s *Server) CertificateSerials() []string {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serialsLocked()
}

func (s *Server) serialsLocked() []string {
	var out []string
	for _, c := range s.certs {
		out = append(out, c.serial)
	}
	return out
}

// v3Certificates answers GET /v3/certificates. In public key mode (the
// default, as for every merchant since late 2024) there are no platform
// certificates: verify with the WeChat Pay public key (PlatformKeyID). In
// certificate mode it lists every certificate not retired, each PEM
// encrypted with the APIv3 key (AEAD_AES_256_GCM, associated data
// "certificate"); the answer is signed by the newest.
func (s *Server) v3Certificates(c v3Call) v3Reply {
	if !s.PlatformCertificates {
		return v3Err(&bizErr{"RESOURCE_NOT_EXISTS", "RESOURCE_NOT_EXISTS", 404,
			"无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥。可查看指引https://pay.weixin.qq.com/doc/v3/merchant/4012153196", ""})
	}
	s.mu.Lock()
	certs := append([]platformCert(nil), s.certs...)
	s.mu.Unlock()
	type encrypted struct {
		Algorithm      string `json:"algorithm"`
		Nonce          string `json:"nonce"`
		AssociatedData string `json:"associated_data"`
		Ciphertext     string `json:"ciphertext"`
	}
	type entry struct {
		SerialNo           string    `json:"serial_no"`
		EffectiveTime      string    `json:"effective_time"`
		ExpireTime         string    `json:"expire_time"`
		EncryptCertificate encrypted `json:"encrypt_certificate"`
	}
	data := make([]entry, 0, len(certs))
	for _, pc := range certs {
		nonce := randAlnum(12)
		ct, err := wxpay.EncryptV3Resource(s.APIv3Key, nonce, "certificate", pc.pem)
		if err != nil {
			s.logf("wxpaysim: encrypt certificate: %v", err)
			return v3Err(errSystem)
		}
		data = append(data, entry{SerialNo: pc.serial,
			EffectiveTime: pc.cert.NotBefore.In(tollgate.Beijing).Format(time.RFC3339),
			ExpireTime:    pc.cert.NotAfter.In(tollgate.Beijing).Format(time.RFC3339),
			EncryptCertificate: encrypted{Algorithm: wxpay.V3Algorithm, Nonce: nonce,
				AssociatedData: "certificate", Ciphertext: ct}})
	}
	return v3JSON(200, map[string]any{"data": data})
}

// certRoutes registers the rotation of the simulation API.
func (s *Server) certRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /sim/rotate-certificate", func(w http.ResponseWriter, r *http.Request) {
		retire := r.URL.Query().Get("retire")
		if retire != "" && retire != "0" && retire != "1" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "retire must be 0 or 1"})
			return
		}
		serial, serials, err := s.rotate(retire == "1")
		if err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, ErrPublicKeyMode) {
				status = http.StatusConflict
			}
			writeJSON(w, status, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"serial": serial, "serials": serials})
	})
	m.HandleFunc("POST /sim/orders/{no}/notify-signed-by", func(w http.ResponseWriter, r *http.Request) {
		d, err := s.NotifySignedBy(r.PathValue("no"), r.URL.Query().Get("serial"))
		if errors.Is(err, ErrPublicKeyMode) {
			writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
			return
		}
		s.simAnswer(w, d, err)
	})
}

// newNotifyClient returns the client notifications are sent with: HTTPClient, or
// one trusting NotifyRootCAs for https notify URLs, or the default client.
func (s *Server) newNotifyClient() *http.Client {
	switch {
	case s.HTTPClient != nil:
		return s.HTTPClient
	case s.NotifyRootCAs != nil:
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: s.NotifyRootCAs, MinVersion: tls.VersionTLS12}
		return &http.Client{Transport: t}
	}
	return http.DefaultClient
}
