package httpapi_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate"
	"tollgate/httpapi"
)

func decodeError(t *testing.T, body io.Reader) httpapi.APIErrorBody {
	t.Helper()
	var e httpapi.APIError
	if err := json.NewDecoder(body).Decode(&e); err != nil {
		t.Fatalf("decode error body: %v", err)
	}
	return e.Error
}

func TestWriteErrorMapsCodesOnce(t *testing.T) {
	for _, tc := range []struct {
		err     error
		status  int
		typ     string
		code    string
		message string
	}{
		{tollgate.Errorf(tollgate.EINVALID, "bad field"), 400, "invalid_request_error", "invalid", "bad field"},
		{tollgate.Errorf(tollgate.EUNAUTHORIZED, "bad key"), 401, "authentication_error", "unauthorized", "bad key"},
		{tollgate.Errorf(tollgate.EINSUFFICIENT, "top up"), 402, "insufficient_balance", "insufficient_balance", "top up"},
		{tollgate.Errorf(tollgate.EFORBIDDEN, "model not allowed"), 403, "permission_error", "forbidden", "model not allowed"},
		{tollgate.Errorf(tollgate.ENOTFOUND, "no such order"), 404, "invalid_request_error", "not_found", "no such order"},
		{tollgate.Errorf(tollgate.ECONFLICT, "key reused"), 409, "invalid_request_error", "conflict", "key reused"},
		{tollgate.Errorf(tollgate.ERATELIMITED, "slow down"), 429, "rate_limit_error", "rate_limited", "slow down"},
		{tollgate.Errorf(tollgate.EUPSTREAM, "provider down"), 502, "upstream_error", "upstream", "provider down"},
		{tollgate.Errorf(tollgate.EUNAVAILABLE, "db down"), 503, "service_unavailable", "unavailable", "db down"},
		{errors.New("pq: password=secret"), 500, "internal_error", "internal", "internal error"},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		httpapi.WriteError(rec, req, nil, tc.err)
		if rec.Code != tc.status {
			t.Errorf("%v: status %d, want %d", tc.err, rec.Code, tc.status)
		}
		got := decodeError(t, rec.Body)
		if got.Type != tc.typ || got.Code != tc.code || got.Message != tc.message {
			t.Errorf("%v: got %+v, want type=%s code=%s message=%q", tc.err, got, tc.typ, tc.code, tc.message)
		}
	}
}

func TestReadJSONRefusesBadBodies(t *testing.T) {
	type body struct {
		PackageID string `json:"package_id"`
		AmountFen int64  `json:"amount_fen"`
	}
	h := httpapi.LimitBody(64, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b body
		if err := httpapi.ReadJSON(r, &b, true); err != nil {
			httpapi.WriteError(w, r, nil, err)
			return
		}
		w.WriteHeader(204)
	}))
	for _, tc := range []struct {
		name, ct, body string
		status         int
		contains       string
	}{
		{"ok", "application/json", `{"package_id":"p1"}`, 204, ""},
		{"empty", "application/json", ``, 400, "empty"},
		{"not json", "application/json", `{"package_id":`, 400, "not valid JSON"},
		{"wrong type", "application/json", `{"amount_fen":"12"}`, 400, "amount_fen"},
		{"unknown field", "application/json", `{"amount":1}`, 400, "unknown field"},
		{"trailing", "application/json", `{} {}`, 400, "after the JSON"},
		{"wrong content type", "text/plain", `{}`, 400, "Content-Type"},
		{"too large", "application/json", `{"package_id":"` + strings.Repeat("x", 100) + `"}`, 413, "larger than 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ct)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.status, rec.Body)
			}
			if tc.contains != "" {
				if got := decodeError(t, rec.Body); !strings.Contains(got.Message, tc.contains) {
					t.Fatalf("message %q does not mention %q", got.Message, tc.contains)
				}
			}
		})
	}
}

// TestRequestIDIsMade: the server always makes the request id (the id of
// a gateway answer and its usage record, one per call); a client's
// well-formed X-Request-Id is kept apart, for the log.
func TestRequestIDIsMade(t *testing.T) {
	h := httpapi.WithRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, httpapi.RequestID(r.Context())+" "+httpapi.ClientRequestID(r.Context()))
	}))
	seen := map[string]bool{}
	for _, tc := range []struct{ sent, client string }{{"abc-123", "abc-123"}, {"bad id\n", ""}, {"", ""}, {"abc-123", "abc-123"}} {
		req := httptest.NewRequest("GET", "/", nil)
		if tc.sent != "" {
			req.Header.Set("X-Request-Id", tc.sent)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		if rec.Body.String() != got+" "+tc.client {
			t.Fatalf("header %q body %q; want the client's %q apart", got, rec.Body, tc.client)
		}
		if len(got) != len("req_")+40 || !strings.HasPrefix(got, "req_") || seen[got] {
			t.Fatalf("made id %q (seen before: %v)", got, seen[got])
		}
		seen[got] = true
	}
}
