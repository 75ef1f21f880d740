package tollgate

import (
	"net/http"
	"sort"
)

// HTTPError is how one error code is shown over HTTP. Every surface reads
// it from HTTPErrorOf: the service's own JSON API and the web pages, the
// OpenAI-compatible model endpoints and the Anthropic-compatible
// /v1/messages. A surface may show a more specific status on top of the
// row (413 for a body too large, 429 with Retry-After, 504 for a timed-out
// upstream), never a different one for the same meaning.
type HTTPError struct {
	Status int
	// OpenAIType is the "type" of an OpenAI-shaped error body,
	// {"error":{"message","type","code"}}.
	OpenAIType string
	// AnthropicType is the "type" of an Anthropic-shaped error body,
	// {"type":"error","error":{"type","message"}}, one of the types
	// Anthropic's API documents, so its SDKs read it as theirs.
	AnthropicType string
	// ModelCode is the "code" the OpenAI-compatible model endpoints
	// (/v1/chat/completions, /v1/embeddings) show, in OpenAI's naming
	// ("invalid_api_key", "model_not_found", "rate_limit_exceeded").
	// The service's own endpoints (payments, admin, checkout) show the
	// tollgate code itself. An error may name its own public code
	// (PARAM_ERROR, request_too_large) through a PublicCode method.
	ModelCode string
}

// httpErrors maps every error code to HTTP, once. TestHTTPErrorsCoverEveryCode
// fails when a code is declared without a row.
//
// Balance errors are 402 insufficient_balance on every surface (type and
// code, as the service's API has always named them; Anthropic's SDKs know
// 402 as billing_error). Failures of ours or of an upstream keep their own
// OpenAI types (upstream_error, service_unavailable, internal_error): the
// OpenAI SDKs choose an exception by status alone, and the type tells an
// operator whose fault it was.
var httpErrors = map[string]HTTPError{
	EINVALID:      {http.StatusBadRequest, "invalid_request_error", "invalid_request_error", "invalid_request"},
	ENOTFOUND:     {http.StatusNotFound, "invalid_request_error", "not_found_error", "model_not_found"},
	ECONFLICT:     {http.StatusConflict, "invalid_request_error", "invalid_request_error", "conflict"},
	EUNAUTHORIZED: {http.StatusUnauthorized, "authentication_error", "authentication_error", "invalid_api_key"},
	EFORBIDDEN:    {http.StatusForbidden, "permission_error", "permission_error", "model_not_allowed"},
	EINSUFFICIENT: {http.StatusPaymentRequired, "insufficient_balance", "billing_error", "insufficient_balance"},
	ERATELIMITED:  {http.StatusTooManyRequests, "rate_limit_error", "rate_limit_error", "rate_limit_exceeded"},
	EUPSTREAM:     {http.StatusBadGateway, "upstream_error", "api_error", "upstream_error"},
	EUNAVAILABLE:  {http.StatusServiceUnavailable, "service_unavailable", "overloaded_error", "service_unavailable"},
	EINTERNAL:     {http.StatusInternalServerError, "internal_error", "api_error", "internal_error"},
}

// HTTPErrorOf returns how code is shown over HTTP, and false (with
// EINTERNAL's row) for a code that has none: an unknown code is a bug and
// is shown as an internal error.
func HTTPErrorOf(code string) (HTTPError, bool) {
	h, ok := httpErrors[code]
	if !ok {
		return httpErrors[EINTERNAL], false
	}
	return h, true
}

// ErrorCodes returns every error code that has an HTTP row, sorted.
func ErrorCodes() []string {
	codes := make([]string, 0, len(httpErrors))
	for c := range httpErrors {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	return codes
}
