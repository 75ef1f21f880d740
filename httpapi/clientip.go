package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
)

// ClientIP returns the address of the client that sent r, as WeChat Pay
// wants it (payer_client_ip), or "" when it is not known.
//
// With trustedHeader "" it is the connection's peer (r.RemoteAddr). With a
// header name it is taken only from that header, set by the reverse proxy
// in front of tollgate, never from the peer (the proxy): for
// X-Forwarded-For the right-most entry, the one the trusted proxy appended
// (entries to its left are the client's to forge); for any other header
// (X-Real-IP, CF-Connecting-IP, …) its whole value, trimmed, which must
// appear once. A missing header or a value that is not an IP address gives
// "". IPv4-mapped IPv6 addresses are returned as IPv4.
func ClientIP(r *http.Request, trustedHeader string) string {
	if trustedHeader == "" {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		return canonicalIP(host)
	}
	name := textproto.CanonicalMIMEHeaderKey(trustedHeader)
	values := r.Header[name]
	if len(values) == 0 {
		return ""
	}
	if name == "X-Forwarded-For" {
		// Several X-Forwarded-For lines are one comma-separated list.
		last := values[len(values)-1]
		return canonicalIP(last[strings.LastIndexByte(last, ',')+1:])
	}
	if len(values) != 1 {
		return ""
	}
	return canonicalIP(values[0])
}

// canonicalIP returns s, trimmed, as a canonical IP address, or "" if it is
// not one (a zone such as fe80::1%eth0 is refused too).
func canonicalIP(s string) string {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		return ""
	}
	return a.Unmap().String()
}

// ValidHeaderName reports whether name can be an HTTP header name (an RFC
// 9110 token), as --trusted-proxy-header must be.
func ValidHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
