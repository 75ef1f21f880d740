package wxpaysim_test

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// mount is the prefix the emulator is served under in every test, as
// tollgate serve mounts it: requests are signed over the API path only.
const mount = "/sandbox/wxpay"

// env is an emulator behind a real HTTP listener, a notification receiver
// and a client written from the public docs.
type env struct {
	t    testing.TB
	sim  *wxpaysim.Server
	base string // emulator URL including the mount prefix
	rcv  *receiver
	cfg  wxpaysim.Config
	priv *rsa.PrivateKey // merchant key (signs v3 requests)
	// signPrefix is prepended to the path a v3 request is signed over
	// (a client that signs the full URL path, mount prefix included).
	signPrefix string
	plat       *rsa.PublicKey // WeChat Pay public key (verifies v3 answers)
}

// mustEnv starts an emulator configured by opt (may be nil).
func mustEnv(t testing.TB, opt func(*wxpaysim.Server)) *env {
	t.Helper()
	sim := &wxpaysim.Server{TimeScale: 0.0001, Logf: t.Logf}
	if opt != nil {
		opt(sim)
	}
	mux := http.NewServeMux()
	mux.Handle(mount+"/", http.StripPrefix(mount, sim))
	srv := httptest.NewServer(mux)
	rcv := newReceiver()
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
		rcv.srv.Close()
	})
	e := &env{t: t, sim: sim, base: srv.URL + mount, rcv: rcv, cfg: sim.Config()}
	if e.cfg.MerchantPrivateKeyPEM != "" { // else the test holds the operator's key
		e.priv = mustPrivateKey(t, e.cfg.MerchantPrivateKeyPEM)
	}
	e.plat = mustPublicKey(t, e.cfg.PlatformPublicKeyPEM)
	return e
}

func mustPrivateKey(t testing.TB, p string) *rsa.PrivateKey {
	t.Helper()
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		t.Fatal("no PEM block in merchant private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

func mustPublicKey(t testing.TB, p string) *rsa.PublicKey {
	t.Helper()
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		t.Fatal("no PEM block in platform public key")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PublicKey)
}

func nonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

// v2 posts a v2 request signed with signType and key (nonce_str and, for
// HMAC-SHA256, sign_type added) and returns the decoded answer. A
// return_code=SUCCESS answer must carry a valid signature (checked unless
// key is empty: getsignkey answers are not signed).
func (e *env) v2(path string, params map[string]string, signType, key string) map[string]string {
	e.t.Helper()
	p := map[string]string{}
	for k, v := range params {
		p[k] = v
	}
	if _, ok := p["nonce_str"]; !ok {
		p["nonce_str"] = nonce()
	}
	if signType == wxpay.SignTypeHMACSHA256 {
		p["sign_type"] = signType
	}
	sig, err := wxpay.SignV2(p, signType, key)
	if err != nil {
		e.t.Fatal(err)
	}
	p["sign"] = sig
	return e.v2Raw(path, wxpay.EncodeV2XML(p), signType, key)
}

func (e *env) v2Raw(path string, body []byte, signType, key string) map[string]string {
	e.t.Helper()
	resp, err := http.Post(e.base+path, "text/xml", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	m, err := wxpay.ReadV2XML(resp.Body)
	if err != nil {
		e.t.Fatalf("%s: answer is not v2 XML: %v", path, err)
	}
	if m["return_code"] == "SUCCESS" && key != "" {
		if err := wxpay.VerifyV2(m, signType, key); err != nil {
			e.t.Fatalf("%s: answer signature: %v (%v)", path, err, m)
		}
	}
	return m
}

// v2Order returns the parameters of a NATIVE unifiedorder.
func (e *env) v2Order(no string, fee int) map[string]string {
	return map[string]string{
		"appid": e.cfg.AppID, "mch_id": e.cfg.MchID, "body": "tollgate credits", "out_trade_no": no,
		"total_fee": strconv.Itoa(fee), "spbill_create_ip": "127.0.0.1", "notify_url": e.rcv.srv.URL + "/wxpay/notify",
		"trade_type": "NATIVE", "product_id": "pkg-1", "device_info": "WEB",
	}
}

func (e *env) v2Query(no string) map[string]string {
	return e.v2("/pay/orderquery", map[string]string{"appid": e.cfg.AppID, "mch_id": e.cfg.MchID, "out_trade_no": no}, wxpay.SignTypeMD5, e.cfg.APIKey)
}

// v3 sends a signed v3 request and returns the status and body; every
// answer with a body or 204 must carry a valid WeChat Pay signature.
func (e *env) v3(method, pathQuery string, body []byte) (int, []byte) {
	e.t.Helper()
	return e.v3With(method, pathQuery, body, e.priv, e.cfg.MerchantSerial, time.Now())
}

func (e *env) v3With(method, pathQuery string, body []byte, key *rsa.PrivateKey, serial string, at time.Time) (int, []byte) {
	e.t.Helper()
	ts, n := strconv.FormatInt(at.Unix(), 10), nonce()
	msg := method + "\n" + e.signPrefix + pathQuery + "\n" + ts + "\n" + n + "\n" + string(body) + "\n"
	h := sha256.Sum256([]byte(msg))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		e.t.Fatal(err)
	}
	req, _ := http.NewRequest(method, e.base+pathQuery, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", fmt.Sprintf(`WECHATPAY2-SHA256-RSA2048 mchid="%s",nonce_str="%s",timestamp="%s",serial_no="%s",signature="%s"`,
		e.cfg.MchID, n, ts, serial, base64.StdEncoding.EncodeToString(sig)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Request-ID") == "" {
		e.t.Errorf("%s %s: no Request-ID", method, pathQuery)
	}
	if !strings.HasPrefix(pathQuery, "/v3/billdownload/") {
		plat, serial := e.plat, e.cfg.PlatformKeyID
		if e.cfg.PlatformCertificates { // the certificate signing now: a rotation changes it
			c := e.sim.Config()
			plat, serial = mustPublicKey(e.t, c.PlatformPublicKeyPEM), c.PlatformCertificateSerial
		}
		if err := verifyWechatpay(plat, resp.Header, out); err != nil {
			e.t.Fatalf("%s %s: answer signature: %v", method, pathQuery, err)
		}
		if got := resp.Header.Get("Wechatpay-Serial"); got != serial {
			e.t.Fatalf("Wechatpay-Serial = %q, want %q", got, serial)
		}
	}
	return resp.StatusCode, out
}

// verifyWechatpay checks Wechatpay-Signature over "ts\nnonce\nbody\n".
func verifyWechatpay(pub *rsa.PublicKey, h http.Header, body []byte) error {
	msg := h.Get("Wechatpay-Timestamp") + "\n" + h.Get("Wechatpay-Nonce") + "\n" + string(body) + "\n"
	sig, err := base64.StdEncoding.DecodeString(h.Get("Wechatpay-Signature"))
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(msg))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
}

// decryptResource opens a v3 notification resource with the APIv3 key.
func decryptResource(t testing.TB, key string, env []byte) (string, map[string]any) {
	t.Helper()
	var n struct {
		EventType string `json:"event_type"`
		Resource  struct {
			Algorithm, Ciphertext, Nonce string
			AssociatedData               string `json:"associated_data"`
		} `json:"resource"`
	}
	if err := json.Unmarshal(env, &n); err != nil {
		t.Fatal(err)
	}
	if n.Resource.Algorithm != "AEAD_AES_256_GCM" {
		t.Fatalf("algorithm %q", n.Resource.Algorithm)
	}
	ct, _ := base64.StdEncoding.DecodeString(n.Resource.Ciphertext)
	block, _ := aes.NewCipher([]byte(key))
	gcm, _ := cipher.NewGCM(block)
	plain, err := gcm.Open(nil, []byte(n.Resource.Nonce), ct, []byte(n.Resource.AssociatedData))
	if err != nil {
		t.Fatalf("decrypt resource: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(plain, &m); err != nil {
		t.Fatal(err)
	}
	return n.EventType, m
}

// received is one request the notify receiver got.
type received struct {
	Method string
	Header http.Header
	Body   []byte
}

// receiver is a merchant's notify endpoint. By default it answers HEAD
// 200 and acknowledges every POST (v2 SUCCESS XML, v3 204).
type receiver struct {
	srv *httptest.Server
	ch  chan received

	mu        sync.Mutex
	failPosts int  // POSTs still to refuse
	failHEAD  bool // answer HEAD 503
	probeSeen int
}

func newReceiver() *receiver {
	r := &receiver{ch: make(chan received, 256)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.ch <- received{Method: req.Method, Header: req.Header.Clone(), Body: body}
	r.mu.Lock()
	defer r.mu.Unlock()
	v3 := strings.HasSuffix(req.URL.Path, "/v3")
	switch {
	case req.Method == http.MethodHead:
		if r.failHEAD {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	case v3 && strings.HasPrefix(req.Header.Get("Wechatpay-Signature"), "WECHATPAY/SIGNTEST/"):
		r.probeSeen++
		w.WriteHeader(http.StatusUnauthorized)
	case r.failPosts > 0:
		r.failPosts--
		if v3 {
			w.WriteHeader(http.StatusInternalServerError)
		} else {
			_, _ = w.Write(wxpay.V2NotifyAck(false, "busy"))
		}
	case v3:
		w.WriteHeader(http.StatusNoContent)
	default:
		_, _ = w.Write(wxpay.V2NotifyAck(true, ""))
	}
}

// next returns the next request the receiver got, failing after 10 s.
func (r *receiver) next(t testing.TB) received {
	t.Helper()
	select {
	case got := <-r.ch:
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("no notification received")
		return received{}
	}
}

// digest hashes the emulator's ground truth, to show a refused request
// changed nothing.
func digest(t testing.TB, s *wxpaysim.Server) string {
	t.Helper()
	b, err := json.Marshal(s.Orders())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// simPost calls the simulation API and returns the status.
func (e *env) simPost(path string) int {
	e.t.Helper()
	resp, err := http.Post(e.base+path, "application/json", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
