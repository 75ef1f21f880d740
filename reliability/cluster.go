package reliability

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
	"strings"
	"time"

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

	sandbox   *Process
	instances []*Process
	front     *http.Server
}

// StartCluster starts everything and returns once every instance is ready.
// Close stops it all, also after a failed start.
func StartCluster(ctx context.Context, c ClusterConfig) (*Cluster, error) {
	cl := &Cluster{AdminToken: "reliability-admin-" + fmt.Sprint(c.Seed), ChatModel: "mock-gpt"}
	if c.RedisURL != "" && c.RedisPrefix == "" {
		return cl, errors.New("reliability: a cluster on a shared Redis needs its own RedisPrefix (testenv.MustRedis gives one)")
	}
	if c.Providers != "" {
		cl.ChatModel = ChatModel
	}
	sb, simURL, err := Sandbox(ctx, c.Bin, c.Log, "--time-scale", fmt.Sprint(c.TimeScale))
	if err != nil {
		return cl, err
	}
	cl.sandbox, cl.Sim = sb, simURL
	if err := getJSON(ctx, simURL+"/sim/config", &cl.SimConfig); err != nil {
		return cl, fmt.Errorf("sim config: %w", err)
	}
	cert, key, err := writeClientCert(c.Dir)
	if err != nil {
		return cl, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return cl, err
	}
	cl.FrontURL = "http://" + ln.Addr().String()
	cl.Front = &FrontDoor{FanOut: c.FanOut, Seed: c.Seed}
	cl.front = &http.Server{Handler: cl.Front, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = cl.front.Serve(ln) }()

	for i := range c.Instances {
		addr, err := FreeAddr()
		if err != nil {
			return cl, err
		}
		p := &Process{Name: fmt.Sprintf("serve%d", i), Bin: c.Bin, Log: c.Log, Args: []string{"serve",
			"--addr", addr, "--data", filepath.Join(c.Dir, fmt.Sprintf("data%d", i)),
			"--admin-token", cl.AdminToken, "--public-url", cl.FrontURL,
			"--refund-policy", "self", // the workload's users refund their own payments through /v1
			"--database-url", c.DatabaseURL, "--redis-url", c.RedisURL,
			"--wxpay-api-version", "v2", "--wxpay-url", simURL,
			"--wxpay-mch-id", cl.SimConfig.MchID, "--wxpay-appid", cl.SimConfig.AppID,
			"--wxpay-api-key", cl.SimConfig.APIKey, "--wxpay-cert", cert, "--wxpay-cert-key", key,
		}}
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

// Kill SIGKILLs instance i.
func (cl *Cluster) Kill(i int) error { return cl.instances[i].Kill() }

// Exited returns a channel closed when instance i exits (nil if it is
// not running).
func (cl *Cluster) Exited(i int) <-chan struct{} { return cl.instances[i].Exited() }

// Restart starts instance i (again) with the extra environment env and
// waits until it is ready.
func (cl *Cluster) Restart(ctx context.Context, i int, env ...string) error {
	cl.instances[i].Env = env
	if err := cl.instances[i].Start(nil); err != nil {
		return err
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
	err := WaitHTTP(ctx, cl.Addrs[i]+"/readyz", 60*time.Second)
	if err != nil && isClosed(exited) {
		return ErrExited
	}
	return err
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
