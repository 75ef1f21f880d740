package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"tollgate"
)

// StatusOf returns the HTTP status err is shown with.
func StatusOf(err error) int {
	h, _ := tollgate.HTTPErrorOf(tollgate.ErrorCode(err))
	return h.Status
}

// APIError is the body of every error answer, in OpenAI's shape:
// {"error":{"message":..,"type":..,"code":..}}.
type APIError struct {
	Error APIErrorBody `json:"error"`
}

// APIErrorBody is the inner object of APIError.
type APIErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// CodedError lets an error name the exact machine code shown to clients
// (for example "PARAM_ERROR" or "insufficient_balance") when it differs
// from the tollgate code.
type CodedError interface {
	error
	PublicCode() string
}

// ParamNamer lets an error name the request field it is about (for example
// *payment.ParamError), shown as the error's "param".
type ParamNamer interface {
	error
	PublicParam() string
}

// WriteError writes err as an OpenAI-shaped JSON error with the status and
// type of tollgate's error table and the tollgate code (or the error's own
// PublicCode) as its code, and as its param the field a ParamNamer names. Internal errors are logged with the request id
// and shown only as "internal error", so no detail (keys, SQL, paths)
// leaks to clients.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, code, kind, msg := shown(r, log, err)
	body := APIErrorBody{Message: msg, Type: kind.OpenAIType, Code: code}
	var pn ParamNamer
	if status == http.StatusBadRequest && errors.As(err, &pn) && pn.PublicParam() != "" {
		param := pn.PublicParam()
		body.Param = &param
	}
	WriteJSON(w, status, APIError{Error: body})
}

// shown is how err is shown by the service's own endpoints: its status,
// public code, row of the error table and message. Internal errors are
// logged with the request id and shown only as "internal error", so no
// detail (keys, SQL, paths) leaks to clients. A *TooLargeError is 413; a
// body that did not arrive in time (ErrBodyTimeout) is 408.
func shown(r *http.Request, log *slog.Logger, err error) (int, string, tollgate.HTTPError, string) {
	code := tollgate.ErrorCode(err)
	kind, ok := tollgate.HTTPErrorOf(code)
	if !ok {
		code = tollgate.EINTERNAL
	}
	msg := tollgate.ErrorMessage(err)
	if code == tollgate.EINTERNAL {
		msg = "internal error"
		switch {
		case log == nil:
		case r.Context().Err() != nil && errors.Is(err, context.Canceled):
			// The client went away (a load generator stopping, a closed
			// tab): nothing failed, and nobody reads the answer.
			log.InfoContext(r.Context(), "request abandoned by its client", "request_id", RequestID(r.Context()), "method", r.Method, "path", r.URL.Path, "err", err)
		default:
			log.ErrorContext(r.Context(), "internal error", "request_id", RequestID(r.Context()), "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	status, public := kind.Status, code
	var tooLarge *TooLargeError
	switch {
	case errors.As(err, &tooLarge):
		status, public = http.StatusRequestEntityTooLarge, "request_too_large"
	case code == tollgate.EINVALID && errors.Is(err, ErrBodyTimeout):
		status, public = http.StatusRequestTimeout, "request_timeout"
	}
	var ce CodedError
	if errors.As(err, &ce) && ce.PublicCode() != "" {
		public = ce.PublicCode()
	}
	return status, public, kind, msg
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
