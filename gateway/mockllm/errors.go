package mockllm

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// fail answers status in api's error shape and counts it. An empty msg
// takes the status's usual message.
func (s *Server) fail(w http.ResponseWriter, path string, a api, status int, msg string) {
	s.failParam(w, path, a, status, msg, "")
}

// failParam is fail naming the offending request parameter (OpenAI only).
func (s *Server) failParam(w http.ResponseWriter, path string, a api, status int, msg, param string) {
	s.record(path, status)
	if msg == "" {
		msg = defaultMessage(status)
	}
	if status == http.StatusTooManyRequests {
		ra := s.RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		h := w.Header()
		h["Retry-After"] = []string{strconv.FormatInt(int64((ra+time.Second-1)/time.Second), 10)}
		h["Retry-After-Ms"] = []string{strconv.FormatInt(ra.Milliseconds(), 10)}
	}
	var buf []byte
	if a == apiGemini {
		buf = append(buf, `{"error":{"code":`...)
		buf = appendInt(buf, int64(status))
		buf = append(buf, `,"message":`...)
		buf = appendString(buf, msg)
		buf = append(buf, `,"status":`...)
		buf = appendString(buf, geminiStatus(status))
		buf = append(buf, "}}\n"...)
	} else if a == apiAnthropic {
		buf = append(buf, `{"type":"error","error":{"type":`...)
		buf = appendString(buf, anthropicErrorType(status))
		buf = append(buf, `,"message":`...)
		buf = appendString(buf, msg)
		buf = append(buf, "}}\n"...)
	} else {
		typ, code := openAIErrorType(status)
		buf = append(buf, `{"error":{"message":`...)
		buf = appendString(buf, msg)
		buf = append(buf, `,"type":`...)
		buf = appendString(buf, typ)
		buf = append(buf, `,"param":`...)
		buf = appendNullable(buf, param)
		buf = append(buf, `,"code":`...)
		buf = appendNullable(buf, code)
		buf = append(buf, "}}\n"...)
	}
	writeJSON(w, status, buf)
}

func appendNullable(buf []byte, s string) []byte {
	if s == "" {
		return append(buf, "null"...)
	}
	return appendString(buf, s)
}

func defaultMessage(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "mockllm: incorrect API key provided"
	case http.StatusTooManyRequests:
		return "mockllm: rate limit reached (injected)"
	case http.StatusInternalServerError:
		return "mockllm: the server had an error while processing your request (injected)"
	case http.StatusServiceUnavailable:
		return "mockllm: the engine is currently overloaded (injected)"
	}
	return "mockllm: injected " + strconv.Itoa(status) + " " + http.StatusText(status)
}

// openAIErrorType returns OpenAI's error "type" and "code" for status.
func openAIErrorType(status int) (typ, code string) {
	switch {
	case status == http.StatusUnauthorized:
		return "invalid_request_error", "invalid_api_key"
	case status == http.StatusTooManyRequests:
		return "requests", "rate_limit_exceeded"
	case status >= 500:
		return "server_error", ""
	}
	return "invalid_request_error", ""
}

// anthropicErrorType returns Anthropic's error type for status.
func anthropicErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusServiceUnavailable, 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// errorf is fmt.Errorf for messages shown to clients.
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// geminiStatus returns Google's status name for status.
func geminiStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}
