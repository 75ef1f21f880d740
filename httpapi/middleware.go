package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"tollgate"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	clientRequestIDKey
)

// RequestID returns the request id stored in ctx by WithRequestID, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// ClientRequestID returns the X-Request-Id the client sent, when it was
// well formed, stored in ctx by WithRequestID; else "".
func ClientRequestID(ctx context.Context) string {
	id, _ := ctx.Value(clientRequestIDKey).(string)
	return id
}

// validRequestID accepts a client-sent id only when it is short and made of
// safe characters, so it can be logged.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// NewRequestID returns a fresh request id (tollgate.NewRequestID).
func NewRequestID() string { return tollgate.NewRequestID(time.Now()) }

// WithRequestID gives every request a new id (NewRequestID), stores it in
// the context and sends it in the X-Request-Id response header. The id is
// always the server's: it is also the id of a gateway answer and of its
// usage record, which must be one per call, so a client's X-Request-Id is
// not taken; when well formed it is kept in the context
// (ClientRequestID) and logged beside the request id.
func WithRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := NewRequestID()
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		if c := r.Header.Get("X-Request-Id"); validRequestID(c) {
			ctx = context.WithValue(ctx, clientRequestIDKey, c)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// LimitBody caps request bodies at max bytes; a handler reading past it gets
// an error that ReadJSON turns into 413.
func LimitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			WriteError(w, r, nil, &tollgate.Error{Code: tollgate.EINVALID, Message: fmt.Sprintf("request body larger than %d bytes", max), Err: &TooLargeError{Limit: max}})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status written, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush lets streaming handlers flush through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// WithRecoverAndLog recovers panics as 500 internal errors and logs one line
// per request: method, path, status, duration and request id. It never logs
// headers or bodies, so keys and tokens stay out of the logs.
func WithRecoverAndLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.ErrorContext(r.Context(), "panic", "request_id", RequestID(r.Context()), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if rec.status == 0 {
					WriteError(rec, r, nil, fmt.Errorf("panic: %v", p))
				}
			}
			log.DebugContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
				"duration_ms", time.Since(start).Milliseconds(), "request_id", RequestID(r.Context()),
				"client_request_id", ClientRequestID(r.Context()))
		}()
		next.ServeHTTP(rec, r)
	})
}
