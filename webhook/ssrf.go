package webhook

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"tollgate"
)

// blockedPrefixes are the ranges a webhook may not reach unless private
// addresses are allowed, beyond what netip's predicates cover (loopback,
// link-local, private, unspecified, multicast).
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64: would reach IPv4 through a translator
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"), // 6to4: embeds an IPv4 address
}

// PrivateAddr reports whether a is an address a webhook must not reach
// unless private addresses are allowed: loopback (127/8, ::1), link-local
// (169.254/16 with the cloud metadata service, fe80::/10), private
// (RFC 1918, fc00::/7), carrier-grade NAT, unspecified, multicast and the
// other special ranges above. An IPv4-mapped IPv6 address is judged as
// its IPv4 address.
func PrivateAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsPrivate() || a.IsUnspecified() {
		return true
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// URLPolicy is what an endpoint URL may be.
type URLPolicy struct {
	// HTTPSOnly refuses http:// (production mode).
	HTTPSOnly bool
	// AllowPrivate allows loopback and private hosts
	// (--webhook-allow-private; tests and a receiver on the same network).
	AllowPrivate bool
}

// CheckURL validates an endpoint URL: absolute http or https (https only
// with HTTPSOnly), a host, no user info or fragment, at most MaxURL
// bytes, and unless AllowPrivate a host that is neither "localhost" nor an
// address literal PrivateAddr refuses. A name that resolves to a private
// address is refused when the dispatcher connects (Transport), so DNS
// cannot be used to get around this. Errors carry EINVALID.
func (p URLPolicy) CheckURL(raw string) error {
	if len(raw) > MaxURL {
		return tollgate.Errorf(tollgate.EINVALID, "url is at most %d bytes", MaxURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return tollgate.Errorf(tollgate.EINVALID, "url does not parse: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return tollgate.Errorf(tollgate.EINVALID, "url must be http:// or https://, not %q", raw)
	case p.HTTPSOnly && u.Scheme != "https":
		return tollgate.Errorf(tollgate.EINVALID, "url must be https:// in production mode")
	case u.Host == "" || u.Hostname() == "":
		return tollgate.Errorf(tollgate.EINVALID, "url has no host")
	case u.User != nil:
		return tollgate.Errorf(tollgate.EINVALID, "url may not carry a user name or password")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return tollgate.Errorf(tollgate.EINVALID, "url may not have a fragment")
	}
	if p.AllowPrivate {
		return nil
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return tollgate.Errorf(tollgate.EINVALID, "url host %q is this machine; private addresses need --webhook-allow-private", host)
	}
	if a, err := netip.ParseAddr(host); err == nil && PrivateAddr(a) {
		return tollgate.Errorf(tollgate.EINVALID, "url host %s is a loopback, link-local or private address; those need --webhook-allow-private", host)
	}
	return nil
}

// errPrivate is the dial error for a refused address.
type errPrivate struct{ addr string }

func (e errPrivate) Error() string {
	return "webhook: refused to connect to " + e.addr + ": a loopback, link-local or private address (--webhook-allow-private allows it)"
}

// dialControl refuses, at connect time, every address PrivateAddr refuses.
// It runs for the address actually dialled, after DNS resolution, so a
// name that resolves (or rebinds) to a private address is refused too.
func dialControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return errPrivate{address}
	}
	if PrivateAddr(ap.Addr()) {
		return errPrivate{address}
	}
	return nil
}

// Transport returns the HTTP transport of deliveries: no proxy from the
// environment (the guard must see the receiver's address), the SSRF guard
// on every connection unless allowPrivate, bounded connection setup.
func Transport(allowPrivate bool) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = dialControl
	}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: AttemptTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// Client returns the HTTP client of deliveries: Transport(allowPrivate),
// AttemptTimeout per attempt, redirects not followed (a 3xx is a failed
// attempt: the registered URL is the one that must answer).
func Client(allowPrivate bool) *http.Client {
	return &http.Client{
		Transport: Transport(allowPrivate),
		Timeout:   AttemptTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
