package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"tollgate"
)

// errorKind is how one tollgate error code is shown over HTTP: the status
// and OpenAI's error "type".
type errorKind struct {
	status int
	typ    string
}

// errorKinds maps every tollgate error code to HTTP once. A code missing
// here is shown as an internal error.
var errorKinds = map[string]errorKind{
	tollgate.EINVALID:      {http.StatusBadRequest, "invalid_request_error"},
	tollgate.ENOTFOUND:     {http.StatusNotFound, "invalid_request_error"},
	tollgate.ECONFLICT:     {http.StatusConflict, "invalid_request_error"},
	tollgate.EUNAUTHORIZED: {http.StatusUnauthorized, "authentication_error"},
	tollgate.EFORBIDDEN:    {http.StatusForbidden, "permission_error"},
	tollgate.EINSUFFICIENT: {http.StatusPaymentRequired, "insufficient_balance"},
	tollgate.ERATELIMITED:  {http.StatusTooManyRequests, "rate_limit_error"},
	tollgate.EUPSTREAM:     {http.StatusBadGateway, "upstream_error"},
	tollgate.EUNAVAILABLE:  {http.StatusServiceUnavailable, "service_unavailable"},
	tollgate.EINTERNAL:     {http.StatusInternalServerError, "internal_error"},
}

// StatusOf returns the HTTP status err is shown with.
func StatusOf(err error) int {
	if k, ok := errorKinds[tollgate.ErrorCode(err)]; ok {
		return k.status
	}
	return http.StatusInternalServerError
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

// WriteError writes err as an OpenAI-shaped JSON error. Internal errors are
// logged with the request id and shown only as "internal error", so no
// detail (keys, SQL, paths) leaks to clients.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := tollgate.ErrorCode(err)
	kind, ok := errorKinds[code]
	if !ok {
		code, kind = tollgate.EINTERNAL, errorKinds[tollgate.EINTERNAL]
	}
	msg := tollgate.ErrorMessage(err)
	if code == tollgate.EINTERNAL {
		msg = "internal error"
		if log != nil {
			log.ErrorContext(r.Context(), "internal error", "request_id", RequestID(r.Context()), "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	public := code
	var tooLarge *TooLargeError
	if errors.As(err, &tooLarge) {
		kind.status, public = http.StatusRequestEntityTooLarge, "request_too_large"
	}
	var ce CodedError
	if errors.As(err, &ce) && ce.PublicCode() != "" {
		public = ce.PublicCode()
	}
	WriteJSON(w, kind.status, APIError{Error: APIErrorBody{Message: msg, Type: kind.typ, Code: public}})
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
