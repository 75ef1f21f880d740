package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"tollgate"
)

// StatusError is an error the gateway shows with more than its tollgate
// code says: a Retry-After, a public code of its own, or a status the
// code's row does not give (413, 504). The error types and every field
// left zero come from tollgate's error table. It wraps a *tollgate.Error.
type StatusError struct {
	Status     int    // 0: the code's status
	Code       string // public code, e.g. "rate_limit_exceeded"; "": the code's
	RetryAfter time.Duration
	Err        error
}

// Error implements error.
func (e *StatusError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped *tollgate.Error.
func (e *StatusError) Unwrap() error { return e.Err }

// PublicCode is the machine code shown to clients (httpapi.CodedError).
func (e *StatusError) PublicCode() string { return e.Code }

// apiError is OpenAI's error body.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// errorBody returns the status, Retry-After and OpenAI-shaped body for
// err, from tollgate's error table and, on top, a *StatusError's own
// status and code. Internal errors show only "internal error".
func errorBody(err error) (int, time.Duration, apiError) {
	status, retry, kind, code, msg := shownError(err)
	return status, retry, apiError{Error: apiErrorBody{Message: msg, Type: kind.OpenAIType, Code: code}}
}

// shownError is how the gateway shows err: status, Retry-After, the row of
// tollgate's error table, public code and message.
func shownError(err error) (int, time.Duration, tollgate.HTTPError, string, string) {
	code := tollgate.ErrorCode(err)
	kind, ok := tollgate.HTTPErrorOf(code)
	msg := tollgate.ErrorMessage(err)
	if code == tollgate.EINTERNAL || !ok {
		msg = "internal error" // details are logged, never shown
	}
	status, pub := kind.Status, kind.ModelCode
	var retry time.Duration
	var se *StatusError
	if errors.As(err, &se) {
		retry = se.RetryAfter
		if se.Status != 0 {
			status = se.Status
		}
		if se.Code != "" {
			pub = se.Code
		}
	}
	return status, retry, kind, pub, msg
}

// writeError writes err in OpenAI's error shape with its status and, for
// 429 and 503, a Retry-After header.
func writeError(w http.ResponseWriter, err error) {
	status, retry, body := errorBody(err)
	if retry > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(retry))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// upstreamError is one failed upstream attempt.
type upstreamError struct {
	Status     int           // HTTP status, 0 when no response came
	RetryAfter time.Duration // from the Retry-After header
	Message    string        // upstream's error message, safe to show
	Timeout    bool
	Err        error
	provider   string // set by the router: the provider that failed
}

func (e *upstreamError) Error() string {
	switch {
	case e.Timeout:
		return fmt.Sprintf("upstream timeout: %v", e.Err)
	case e.Status == 0:
		return fmt.Sprintf("upstream unreachable: %v", e.Err)
	default:
		return fmt.Sprintf("upstream status %d: %s", e.Status, e.Message)
	}
}

func (e *upstreamError) Unwrap() error { return e.Err }

// retryable reports whether another deployment may succeed where this
// attempt failed: connection errors, timeouts, 429 and 5xx, and the
// answers that blame the deployment rather than the request (401 and 403
// for a bad or unentitled key, 404 for an unknown upstream model, 408,
// 409). Only the request's own faults (400, 413, 422…) are not retried.
func (e *upstreamError) retryable() bool {
	switch e.Status {
	case 0, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests:
		return true
	}
	return e.Status >= 500
}

// clientError turns a non-retryable upstream answer into the error shown to
// the client: the client's own mistakes (400, 413, 422) pass through as
// invalid requests; anything else is our upstream's failure.
func (e *upstreamError) clientError() error {
	switch e.Status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return &tollgate.Error{Code: tollgate.EINVALID, Message: "upstream refused the request: " + e.Message, Err: e}
	case http.StatusRequestEntityTooLarge:
		return &StatusError{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large",
			Err: &tollgate.Error{Code: tollgate.EINVALID, Message: "request too large for the model: " + e.Message, Err: e}}
	}
	return &tollgate.Error{Code: tollgate.EUPSTREAM, Message: fmt.Sprintf("upstream error (status %d)", e.Status), Err: e}
}

// classify wraps a transport error from an upstream call.
func classify(ctx context.Context, err error) *upstreamError {
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	if ctx.Err() != nil && errors.Is(context.Cause(ctx), errAttemptTimeout) {
		timeout = true
	}
	return &upstreamError{Timeout: timeout, Err: err}
}

var errAttemptTimeout = errors.New("attempt timed out")

// parseRetryAfter reads Retry-After as seconds or an HTTP date.
func parseRetryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(h, 64); err == nil && n > 0 {
		return time.Duration(n * float64(time.Second))
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// upstreamMessage extracts a readable message from an upstream error body
// (OpenAI's and Anthropic's shapes), bounded in length.
func upstreamMessage(body []byte) string {
	var v struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &v) == nil && len(v.Error) > 0 {
		var inner struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(v.Error, &inner) == nil && inner.Message != "" {
			return truncate(inner.Message, 300)
		}
		var s string
		if json.Unmarshal(v.Error, &s) == nil && s != "" {
			return truncate(s, 300)
		}
	}
	return truncate(string(body), 300)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// retryAfterSeconds formats d as whole seconds, rounded up.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}
