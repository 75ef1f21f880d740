package web

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"tollgate"
)

// apiError is the OpenAI-shaped error body the JSON routes answer with, as
// the rest of tollgate's API does.
type apiError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

// paramError is a request refused for a missing or malformed parameter; its
// public code is PARAM_ERROR, as payment's (docs/DESIGN.md §3.2).
type paramError struct{ msg string }

func (e *paramError) Error() string      { return e.msg }
func (e *paramError) PublicCode() string { return "PARAM_ERROR" }
func (e *paramError) Unwrap() error      { return tollgate.Errorf(tollgate.EINVALID, "%s", e.msg) }

// Session error codes of the JSON routes, so the page can say what is wrong.
const (
	codeSessionExpired = "session_expired"
	codeSessionInvalid = "session_invalid"
)

// statusOf returns the HTTP status and OpenAI error type of an error code
// (tollgate's error table); the session codes are 401s.
func statusOf(code string) (int, string) {
	if code == codeSessionExpired || code == codeSessionInvalid {
		code = tollgate.EUNAUTHORIZED
	}
	h, _ := tollgate.HTTPErrorOf(code)
	return h.Status, h.OpenAIType
}

// writeJSON writes v with status; the answers carry account data, so no
// cache keeps them.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeErr writes err as a JSON error. Internal errors are logged and
// shown only as "internal error".
func (h *Handler) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	code := tollgate.ErrorCode(err)
	msg := tollgate.ErrorMessage(err)
	public := code
	var coded interface{ PublicCode() string }
	if errors.As(err, &coded) {
		public = coded.PublicCode()
	}
	_, known := tollgate.HTTPErrorOf(code)
	switch {
	case errors.Is(err, ErrSessionExpired):
		code, public, msg = codeSessionExpired, codeSessionExpired, "this checkout link has expired"
	case errors.Is(err, ErrSessionMalformed), errors.Is(err, ErrSessionSignature):
		code, public, msg = codeSessionInvalid, codeSessionInvalid, "this checkout link is not valid"
	case code == tollgate.EINTERNAL || !known:
		code, public = tollgate.EINTERNAL, tollgate.EINTERNAL
		h.log().Error("web: internal error", "method", r.Method, "path", RedactPath(r.URL.Path), "err", err)
		msg = "internal error"
	}
	status, typ := statusOf(code)
	var e apiError
	e.Error.Message, e.Error.Type, e.Error.Code = msg, typ, public
	writeJSON(w, status, e)
}

// RedactPath hides the session token of a /checkout/ or /account/ path, so
// logs never hold a link that grants access. The server's access log
// should log paths through it.
func RedactPath(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) > 2 && (parts[1] == "checkout" || parts[1] == "account") {
		parts[2] = "…"
	}
	return strings.Join(parts, "/")
}

// readJSON decodes a small JSON body into v, refusing unknown fields and
// trailing data. An empty body is allowed when emptyOK. Errors are
// EINVALID with a message a client can act on.
func readJSON(r *http.Request, v any, emptyOK bool) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return tollgate.Errorf(tollgate.EINVALID, "request body too large")
		}
		return tollgate.Errorf(tollgate.EINVALID, "could not read the request body")
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		if emptyOK {
			return nil
		}
		return tollgate.Errorf(tollgate.EINVALID, "a JSON request body is required")
	}
	if !isJSON(r) {
		return tollgate.Errorf(tollgate.EINVALID, "Content-Type must be application/json")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return tollgate.Errorf(tollgate.EINVALID, "request body is not valid JSON: %v", err)
	}
	if dec.More() {
		return tollgate.Errorf(tollgate.EINVALID, "request body has data after the JSON value")
	}
	return nil
}

// isJSON reports whether the request says its body is JSON.
func isJSON(r *http.Request) bool {
	mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// sameOrigin refuses a browser POST from another site: the session link is
// a bearer credential, and a page elsewhere must not spend it. Requests
// without an Origin header (not from a browser form or script) pass; the
// JSON content type the routes require keeps simple cross-site forms out.
// The origin may be the request's host or PublicURL's (behind a proxy).
func (h *Handler) sameOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" {
		return nil
	}
	u, err := url.Parse(o)
	if err == nil && u.Host != "" && u.Host == r.Host {
		return nil
	}
	if pu, perr := url.Parse(h.PublicURL); err == nil && perr == nil && h.PublicURL != "" && u.Host == pu.Host && u.Scheme == pu.Scheme {
		return nil
	}
	return tollgate.Errorf(tollgate.EFORBIDDEN, "cross-origin request refused")
}

// baseURL is the scheme and host links start with.
func (h *Handler) baseURL(r *http.Request) string {
	if h.PublicURL != "" {
		return strings.TrimRight(h.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// pageHeaders set on every HTML page: nothing outside this origin may load,
// no referrer carries the session token away, no cache keeps the page.
func pageHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-store")
}
