package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// Timeouts bound how long a client may keep a connection busy without
// sending or reading: a client trickling its request, or keeping an idle
// connection open, holds a connection and a goroutine for as long as it
// likes otherwise. Zero fields take DefaultTimeouts'. (A stream's writes
// are bounded by the gateway's StreamWriteTimeout.)
type Timeouts struct {
	// ReadHeader bounds reading a request's line and headers.
	ReadHeader time.Duration
	// Body bounds reading the body of the service's own routes (JSON of
	// at most 16 KiB, or none) and of the extra Routes.
	Body time.Duration
	// NotifyBody bounds reading a WeChat Pay notification: WeChat Pay
	// sends a few KiB at once, so anything slower is not WeChat Pay.
	NotifyBody time.Duration
	// ModelBody bounds reading a model request (up to 8 MiB of prompt)
	// and a request to the mounted emulator or mock LLM.
	ModelBody time.Duration
	// Idle bounds how long a keep-alive connection waits for its next
	// request.
	Idle time.Duration
}

// DefaultTimeouts are the timeouts of a Server whose Timeouts are zero.
var DefaultTimeouts = Timeouts{
	ReadHeader: 10 * time.Second,
	Body:       10 * time.Second,
	NotifyBody: 5 * time.Second,
	ModelBody:  60 * time.Second,
	Idle:       120 * time.Second,
}

// orDefault returns t with each zero field taken from DefaultTimeouts.
func (t Timeouts) orDefault() Timeouts {
	d := DefaultTimeouts
	for _, f := range []struct{ v, def *time.Duration }{
		{&t.ReadHeader, &d.ReadHeader}, {&t.Body, &d.Body}, {&t.NotifyBody, &d.NotifyBody},
		{&t.ModelBody, &d.ModelBody}, {&t.Idle, &d.Idle},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return t
}

// HTTPServer returns the http.Server to serve Handler() with: the
// header and idle timeouts of s.Timeouts (its body timeouts are per
// route, in Handler), and net/http's own messages logged as warnings.
//
// net/http lifts a connection's write deadline once a response is
// finished, so the one a stream renews before every event
// (gateway.Options.StreamWriteTimeout) bounds the stream's last write,
// made after its handler returned, and not the next response.
func (s *Server) HTTPServer() *http.Server {
	t := s.Timeouts.orDefault()
	return &http.Server{
		Handler: s.Handler(), ReadHeaderTimeout: t.ReadHeader, IdleTimeout: t.Idle,
		ErrorLog: slog.NewLogLogger(s.log().Handler(), slog.LevelWarn),
	}
}

// ErrBodyTimeout is wrapped by ReadJSON's error when the client did not
// send the request's body within its route's deadline; it is shown as 408.
var ErrBodyTimeout = errors.New("request body not received in time")

// WithBodyDeadline gives the client d (from when the handler starts) to
// send the request's body. Past it, reading the body fails with an error
// wrapping os.ErrDeadlineExceeded (ReadJSON's wraps ErrBodyTimeout and is
// shown as 408), and net/http closes the connection after the answer. A
// request without a body, or a d of zero, is left alone.
//
// net/http lifts the deadline when the body has been read to its end: it
// then reads the connection in the background to notice the client going
// away, where a deadline passing would cancel the request in the middle of
// a long answer. A request without a body is read so from the start,
// which is why it gets no deadline.
func WithBodyDeadline(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d > 0 && r.Body != nil && r.Body != http.NoBody {
			// A socket deadline is the network's real time, not a
			// decision of the service's clock.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		next.ServeHTTP(w, r)
	})
}
