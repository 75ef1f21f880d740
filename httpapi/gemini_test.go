package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate/httpapi"
)

// TestGeminiRoutesAuthenticate: the Gemini routes refuse a request
// without a key in Google's error shape, and x-goog-api-key counts as the
// key only there (elsewhere it is no key at all).
func TestGeminiRoutesAuthenticate(t *testing.T) {
	h := (&httpapi.Server{}).Handler()
	for _, tc := range []struct {
		path, goog string
		google     bool
	}{
		{"/v1beta/models/m:generateContent", "", true},
		{"/v1/models/m:streamGenerateContent", "", true},
		{"/v1/chat/completions", "tg-some-key", false},
	} {
		req := httptest.NewRequest("POST", tc.path, strings.NewReader(`{}`))
		if tc.goog != "" {
			req.Header.Set("X-Goog-Api-Key", tc.goog)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var body struct {
			Error struct {
				Code    any
				Message string
				Status  string
			}
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		google := body.Error.Code == float64(http.StatusUnauthorized) && body.Error.Status == "UNAUTHENTICATED"
		if rec.Code != http.StatusUnauthorized || google != tc.google || body.Error.Message == "" {
			t.Errorf("POST %s: %d %s; want 401 in Google's shape: %v", tc.path, rec.Code, rec.Body, tc.google)
		}
	}
}
