package gateway

import (
	"net"
	"net/http"
	"time"
)

// NewUpstreamClient returns the client the gateway calls model providers
// with unless Options.Client names another: net/http's Transport, which
// never sends a POST twice when a connection fails under it (a paid
// generation must not run twice for one charge), tuned for a gateway:
//
//   - a large idle pool: many concurrent calls to a few hosts keep their
//     connections instead of dialing for each call;
//   - no transparent compression: no Accept-Encoding is added, so bodies
//     and streams arrive as the provider sends them and usage is parsed
//     from what was really sent;
//   - no overall timeout (streams last minutes); each attempt has the
//     provider's timeout (to the first byte and between chunks), and
//     dialing, TLS and idle connections have their own bounds;
//   - proxies from the environment as net/http has them: HTTPS_PROXY,
//     HTTP_PROXY and NO_PROXY apply to providers, never to a loopback
//     address (the in-process mock and local model servers).
func NewUpstreamClient() *http.Client {
	return &http.Client{Transport: newUpstreamTransport()}
}

func newUpstreamTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 1 << 20,
		ReadBufferSize:         16 << 10,
	}
}
