package httpapi

import (
	"log/slog"
	"net/http"
	"strings"
)

// GeminiRoutes are the patterns of the Gemini API's native routes the
// gateway serves (POST /v1beta/models/{model}:generateContent,
// :streamGenerateContent?alt=sse and :countTokens, and the same under
// /v1/models/, the version Google's Go SDK defaults to): the mux cannot
// match "{model}:method", so the gateway splits rest at its ':'.
var GeminiRoutes = []string{"/v1beta/models/{rest}", "/v1/models/{rest}"}

// isGeminiPath reports whether path is one of the Gemini API's routes,
// where Google's SDKs send the key as x-goog-api-key and read errors in
// Google's shape. Under /v1/models/ only a path naming a method
// ("{model}:generateContent") is: GET /v1/models/{id} is OpenAI's.
func isGeminiPath(path string) bool {
	if strings.HasPrefix(path, "/v1beta/models/") {
		return true
	}
	rest, ok := strings.CutPrefix(path, "/v1/models/")
	return ok && strings.Contains(rest, ":")
}

// writeGeminiError writes err in Google's error shape,
// {"error":{"code":..,"message":..,"status":..}}, for Gemini API clients,
// with the status and logging of WriteError.
func writeGeminiError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, _, _, msg := shown(r, log, err)
	name := "INVALID_ARGUMENT"
	switch status {
	case http.StatusUnauthorized:
		name = "UNAUTHENTICATED"
	case http.StatusForbidden:
		name = "PERMISSION_DENIED"
	case http.StatusNotFound:
		name = "NOT_FOUND"
	case http.StatusTooManyRequests:
		name = "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable:
		name = "UNAVAILABLE"
	default:
		if status >= 500 {
			name = "INTERNAL"
		}
	}
	WriteJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg, "status": name}})
}
