package reliability

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tollgate/internal/operatorkeys"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// ClusterConfig says what to start.
type ClusterConfig struct {
	Bin         string // the tollgate binary (Build)
	Dir         string // scratch directory (data dirs, certificate)
	DatabaseURL string
	RedisURL    string
	Instances   int
	Seed        int64
	// TimeScale is the emulator's --time-scale: 0.001 runs WeChat Pay's
	// 24-hour retry schedule in about 87 s.
	TimeScale float64
	// FanOut is the chance a notification goes to every instance at once.
	FanOut float64
	Log    io.Writer
	// Providers is serve's --providers file (StartUpstreams); empty: the
	// in-process mock LLM on "mock-gpt".
	Providers string
	// RedisPrefix is serve's --redis-prefix, required with RedisURL: a
	// cluster on a shared Redis keeps its keys (24-hour nonces among them)
	// under its own prefix, never serve's default.
	RedisPrefix string
	// Production runs the production path: keys generated for an operator
	// (internal/operatorkeys), `tollgate sandbox` as an external WeChat Pay
	// with them in platform certificate mode, every instance `serve --mode
	// production --wxpay-api-version v3` with the merchant's key files, and
	// an https front door (a test CA the sandbox trusts through
	// --notify-ca). Otherwise: API v2 with the emulator's merchant key, as
	// before.
	Production bool
}

// Cluster is one emulator, N `tollgate serve` instances sharing one
// database and Redis, and the front door whose URL every instance
// advertises as its public URL.
type Cluster struct {
	Sim        string // emulator base URL
	SimConfig  wxpaysim.Config
	AdminToken string
	Addrs      []string // each instance's base URL
	Front      *FrontDoor
	FrontURL   string
	ChatModel  string // the model users chat on

	// APIVersion is the WeChat Pay API the instances use ("v2", or "v3"
	// in production) and NotifyPath the path they take its notifications
	// on.
	APIVersion string
	NotifyPath string
	// Production only: the operator's key files, the test CA and the
	// front door's certificate, and the serial of the platform certificate
	// of Keys.WechatpayKey (the first one; a rotation keeps it listed, so
	// notifications the harness signs with that key stay verifiable).
	Keys           *operatorkeys.Files
	TLS            *operatorkeys.TLS
	PlatformSerial string
	// PreflightRestarts counts instance starts the preflight refused (see
	// Restart).
	PreflightRestarts atomic.Int64
	// CertRetries counts the attempts of a platform certificate download
	// for an unknown serial that failed transiently and were made again
	// within the download (a SYSTEM_ERROR of the faults).
	CertRetries atomic.Int64
	mu          sync.Mutex
	// refetchFailures are when an instance logged that a download of the
	// platform certificates for an unknown serial failed (every attempt);
	// certLines the last "wxpay: platform certificates" line each instance
	// logged (the serials it holds).
	refetchFailures []time.Time
	certLines       map[int]string
	// kills are when each instance was SIGKILLed (Kill), by instance.
	kills map[int][]time.Time

	sandbox   *Process
	instances []*Process
	// env is every instance's environment (production: SSL_CERT_FILE, so
	// the dispatcher trusts the test CA of the https webhook receiver).
	env   []string
	front *http.Server
}

// StartCluster starts everything and returns once every instance is ready.
// Close stops it all, also after a failed start.
func StartCluster(ctx context.Context, c ClusterConfig) (*Cluster, error) {
	cl := &Cluster{AdminToken: "reliability-admin-" + fmt.Sprint(c.Seed), ChatModel: "mock-gpt",
		APIVersion: "v2", NotifyPath: NotifyPathV2}
	if c.RedisURL != "" && c.RedisPrefix == "" {
		return cl, errors.New("reliability: a cluster on a shared Redis needs its own RedisPrefix (testenv.MustRedis gives one)")
	}
	if c.Providers != "" {
		cl.ChatModel = ChatModel
	}
	sandboxArgs := []string{"--time-scale", fmt.Sprint(c.TimeScale)}
	if c.Production {
		cl.APIVersion, cl.NotifyPath = "v3", NotifyPathV3
		var err error
		if cl.Keys, err = operatorkeys.Generate(c.Dir, "", ""); err != nil {
			return cl, err
		}
		if cl.TLS, err = operatorkeys.GenerateTLS(c.Dir); err != nil {
			return cl, err
		}
		sandboxArgs = append(sandboxArgs, cl.sandboxKeyArgs()...)
		cl.env = []string{"SSL_CERT_FILE=" + cl.TLS.CACert}
	}
	sb, simURL, err := Sandbox(ctx, c.Bin, c.Log, sandboxArgs...)
	if err != nil {
		return cl, err
	}
	cl.sandbox, cl.Sim = sb, simURL
	if err := getJSON(ctx, simURL+"/sim/config", &cl.SimConfig); err != nil {
		return cl, fmt.Errorf("sim config: %w", err)
	}
	if c.Production {
		if err := cl.checkSandboxKeys(); err != nil {
			return cl, err
		}
		cl.PlatformSerial = cl.SimConfig.PlatformCertificateSerial
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return cl, err
	}
	cl.FrontURL = "http://" + ln.Addr().String()
	cl.Front = &FrontDoor{FanOut: c.FanOut, Seed: c.Seed, APIVersion: cl.APIVersion}
	cl.front = &http.Server{Handler: cl.Front, ReadHeaderTimeout: 10 * time.Second}
	if c.Production {
		// WeChat Pay notifies only https: the front door terminates TLS
		// with a certificate of the test CA, as a load balancer would.
		cert, err := tls.LoadX509KeyPair(cl.TLS.ServerCert, cl.TLS.ServerKey)
		if err != nil {
			return cl, err
		}
		cl.front.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		cl.FrontURL = "https://" + ln.Addr().String()
		go func() { _ = cl.front.ServeTLS(ln, "", "") }()
	} else {
		go func() { _ = cl.front.Serve(ln) }()
	}
	merchantArgs, err := cl.merchantArgs(c.Dir)
	if err != nil {
		return cl, err
	}

	for i := range c.Instances {
		addr, err := FreeAddr()
		if err != nil {
			return cl, err
		}
		p := &Process{Name: fmt.Sprintf("serve%d", i), Bin: c.Bin, Log: c.Log, Args: append([]string{"serve",
			"--addr", addr, "--data", filepath.Join(c.Dir, fmt.Sprintf("data%d", i)),
			"--admin-token", cl.AdminToken, "--public-url", cl.FrontURL,
			"--refund-policy", "self", // the workload's users refund their own payments through /v1
			"--webhook-allow-private", // the harness's webhook receiver is on loopback
			"--database-url", c.DatabaseURL, "--redis-url", c.RedisURL,
			"--wxpay-url", simURL, "--wxpay-mch-id", cl.SimConfig.MchID, "--wxpay-appid", cl.SimConfig.AppID,
		}, merchantArgs...)}
		if c.Providers != "" {
			p.Args = append(p.Args, "--providers", c.Providers)
		}
		if c.RedisPrefix != "" {
			p.Args = append(p.Args, "--redis-prefix", c.RedisPrefix)
		}
		cl.instances = append(cl.instances, p)
		cl.Addrs = append(cl.Addrs, "http://"+addr)
		// One at a time: the first applies the migrations.
		if err := cl.Restart(ctx, i); err != nil {
			return cl, err
		}
	}
	cl.Front.Backends = cl.Addrs
	return cl, nil
}

// Notify paths of serve.
const (
	NotifyPathV2 = "/wxpay/notify"
	NotifyPathV3 = "/wxpay/notify/v3"
)

// sandboxKeyArgs are `tollgate sandbox`'s flags for the operator's keys:
// the merchant's certificate (never its private key) verifies requests,
// WeChat Pay's private key signs, in platform certificate mode, and https
// notify URLs are trusted through the test CA.
func (cl *Cluster) sandboxKeyArgs() []string {
	k := cl.Keys
	return []string{"--mch-id", k.MchID, "--appid", k.AppID, "--apiv3-key", k.APIv3Key,
		"--merchant-public-key", k.MerchantCert, "--wechatpay-private-key", k.WechatpayKey,
		"--platform-certificates", "--notify-ca", cl.TLS.CACert}
}

// checkSandboxKeys makes sure the sandbox took the operator's keys: it
// holds no merchant private key and signs with the operator's WeChat Pay
// key in certificate mode.
func (cl *Cluster) checkSandboxKeys() error {
	c := cl.SimConfig
	pub, err := wxpay.LoadRSAPublicKeyPEM([]byte(c.PlatformPublicKeyPEM))
	switch {
	case err != nil:
		return fmt.Errorf("sandbox: its WeChat Pay public key: %w", err)
	case c.MerchantPrivateKeyPEM != "" || c.MchID != cl.Keys.MchID || c.MerchantSerial != cl.Keys.MerchantSerial:
		return errors.New("sandbox: did not take the operator's merchant (it still has its test merchant key, or another mch_id or serial)")
	case !c.PlatformCertificates || c.PlatformCertificateSerial == "":
		return errors.New("sandbox: not in platform certificate mode")
	case !pub.Equal(&cl.Keys.WechatpayPrivateKey.PublicKey):
		return errors.New("sandbox: does not sign with the operator's WeChat Pay key")
	}
	return nil
}

// merchantArgs are serve's merchant flags: the v3 key files in production
// (certificate mode: no --wxpay-public-key), else the emulator's v2 key and
// a throwaway client certificate.
func (cl *Cluster) merchantArgs(dir string) ([]string, error) {
	if cl.Keys != nil {
		k := cl.Keys
		return []string{"--mode", "production", "--wxpay-api-version", "v3",
			"--wxpay-private-key", k.MerchantKey, "--wxpay-cert-serial", k.MerchantSerial,
			"--wxpay-apiv3-key-file", k.APIv3KeyFile}, nil
	}
	cert, key, err := writeClientCert(dir)
	if err != nil {
		return nil, err
	}
	return []string{"--wxpay-api-version", "v2", "--wxpay-api-key", cl.SimConfig.APIKey,
		"--wxpay-cert", cert, "--wxpay-cert-key", key}, nil
}

// Kill SIGKILLs instance i; Kills remembers when.
func (cl *Cluster) Kill(i int) error {
	cl.mu.Lock()
	if cl.kills == nil {
		cl.kills = map[int][]time.Time{}
	}
	cl.kills[i] = append(cl.kills[i], time.Now())
	cl.mu.Unlock()
	return cl.instances[i].Kill()
}

// KilledWithin reports whether instance i was killed within d after at:
// what it did in the moments before may have been lost by design (a
// settle handed to the committer after its answer was sent).
func (cl *Cluster) KilledWithin(i int, at time.Time, d time.Duration) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, k := range cl.kills[i] {
		if !k.Before(at) && k.Sub(at) <= d {
			return true
		}
	}
	return false
}

// Exited returns a channel closed when instance i exits (nil if it is
// not running).
func (cl *Cluster) Exited(i int) <-chan struct{} { return cl.instances[i].Exited() }

// Restart starts instance i (again) with the extra environment env and
// waits until it is ready.
//
// In production serve runs WeChat Pay's preflight at start and refuses to
// start when a check fails. The preflight makes a call that WeChat Pay
// fails transiently 3 times, so the emulator's SYSTEM_ERRORs (5 % of
// queries) refuse a start only when one call fails thrice in a row, about
// once in 4,000 starts. An instance that exits so is started again, as the
// supervisor an operator runs serve under (systemd's Restart=on-failure)
// would, up to maxPreflightStarts times; PreflightRestarts counts them.
func (cl *Cluster) Restart(ctx context.Context, i int, env ...string) error {
	for attempt := 1; ; attempt++ {
		preflight, err := cl.start(ctx, i, env)
		if !errors.Is(err, ErrExited) || !preflight || attempt == maxPreflightStarts {
			return err
		}
		cl.PreflightRestarts.Add(1)
	}
}

// CertRefetchFailures returns when an instance logged that a download of
// the platform certificates for an unknown serial failed, every attempt of
// it. Such an instance refuses that serial's messages until its next
// download, wxpay.V3CertificateRefetchBackoff later (doubling with each
// failure in a row, up to wxpay.V3CertificateRefetchInterval).
func (cl *Cluster) CertRefetchFailures() []time.Time {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return slices.Clone(cl.refetchFailures)
}

// HasCertificate reports whether instance i has logged that it holds the
// platform certificate serial (after a download at start or for an unknown
// serial).
func (cl *Cluster) HasCertificate(i int, serial string) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return strings.Contains(cl.certLines[i], serial)
}

// maxPreflightStarts bounds the starts of one Restart that the preflight
// refused.
const maxPreflightStarts = 3

// start starts instance i once and waits until it is ready. preflight
// reports whether it printed that WeChat Pay's preflight failed.
func (cl *Cluster) start(ctx context.Context, i int, env []string) (preflight bool, err error) {
	var refused atomic.Bool
	cl.instances[i].Env = append(slices.Clone(cl.env), env...)
	if err := cl.instances[i].Start(func(line string) {
		switch {
		case strings.Contains(line, "WeChat Pay's preflight"):
			refused.Store(true)
		case strings.Contains(line, "platform certificate download failed; trying again"):
			cl.CertRetries.Add(1)
		case strings.Contains(line, "platform certificate download for an unknown serial failed"):
			cl.mu.Lock()
			cl.refetchFailures = append(cl.refetchFailures, time.Now())
			cl.mu.Unlock()
		case strings.Contains(line, `msg="wxpay: platform certificates"`):
			cl.mu.Lock()
			if cl.certLines == nil {
				cl.certLines = map[int]string{}
			}
			cl.certLines[i] = line
			cl.mu.Unlock()
		}
	}); err != nil {
		return false, err
	}
	exited := cl.instances[i].Exited()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	err = WaitHTTP(ctx, cl.Addrs[i]+"/readyz", 60*time.Second)
	if err != nil && isClosed(exited) {
		return refused.Load(), ErrExited
	}
	return false, err
}

// ErrExited is returned by Restart when the instance died before it was
// ready (an armed failpoint fired during start-up).
var ErrExited = errors.New("instance exited while starting")

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Close stops the instances (gracefully: the run is over), the front door
// and the emulator.
func (cl *Cluster) Close() {
	for _, p := range cl.instances {
		p.Stop(5 * time.Second)
	}
	if cl.front != nil {
		_ = cl.front.Close()
	}
	if cl.sandbox != nil {
		cl.sandbox.Stop(5 * time.Second)
	}
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// writeClientCert writes a throwaway merchant API certificate: serve
// refuses v2 refunds against a --wxpay-url without one, and the emulator
// does not check it.
func writeClientCert(dir string) (certFile, keyFile string, err error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "reliability harness"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "client-cert.pem"), filepath.Join(dir, "client-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}
