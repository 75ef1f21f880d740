package httpapi

import (
	"log/slog"
	"net/http"
	"strings"
)

// GeminiRoute is the pattern of the Gemini API's native routes the gateway
// serves (POST /v1beta/models/{model}:generateContent,
// :streamGenerateContent?alt=sse and :countTokens): the mux cannot match
// "{model}:method", so the gateway splits rest at its ':'.
const GeminiRoute = "/v1beta/models/{rest}"

// isGeminiPath reports whether path is one of the Gemini API's routes,
// where Google's SDKs send the key as x-goog-api-key and read errors in
// Google's shape.
func isGeminiPath(path string) bool { return strings.HasPrefix(path, "/v1beta/models/") }

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
