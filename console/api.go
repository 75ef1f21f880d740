package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"tollgate/httpapi"
)

// recorder is the response of an in-process admin API request.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	const max = 8 << 20 // the API's answers are bounded; this is a backstop
	if r.body.Len()+len(b) > max {
		return 0, fmt.Errorf("console: admin API answer over %d bytes", max)
	}
	return r.body.Write(b)
}

// apiError is an admin API answer other than 2xx: its status and message.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

// sessionKeyCtx is the context key of the session a request is made for
// (set by authed).
type sessionKeyCtx struct{}

// withSession is ctx carrying s: the admin API requests made with it name
// s as their actor.
func withSession(ctx context.Context, s *session) context.Context {
	return context.WithValue(ctx, sessionKeyCtx{}, s)
}

// call makes one admin API request in-process, with the admin token, and
// decodes a 2xx answer into out (when not nil). hdr adds headers (the
// Idempotency-Key of an adjustment). When ctx carries a session (every
// page and action past the login), the request names it in actorHeader.
func (c *Console) call(ctx context.Context, method, path string, q url.Values, body any, hdr http.Header, out any) error {
	if c.API == nil {
		return &apiError{Status: http.StatusServiceUnavailable, Message: "the admin API is not mounted"}
	}
	u := path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.RemoteAddr = "127.0.0.1:0" // the console itself
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if s, ok := ctx.Value(sessionKeyCtx{}).(*session); ok && s != nil {
		req.Header.Set(actorHeader, s.tag())
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{h: http.Header{}}
	c.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status/100 != 2 {
		var e httpapi.APIError
		if json.Unmarshal(rec.body.Bytes(), &e) != nil || e.Error.Message == "" {
			return &apiError{Status: rec.status, Message: http.StatusText(rec.status)}
		}
		return &apiError{Status: rec.status, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("console: %s %s: %w", method, path, err)
	}
	return nil
}
