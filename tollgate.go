// Package tollgate holds the small shared vocabulary of the service: money
// units, account identifiers, the caller of a request with its key's
// limits (caller.go) and the domain error type. It imports nothing
// internal, so every other package can depend on it.
package tollgate

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
)

// Fen is an amount of Chinese yuan in fen (1 CNY = 100 fen), the unit of
// WeChat Pay's total_fee. Money is never a float.
type Fen int64

// String formats f as yuan with two decimals, e.g. "50.00".
func (f Fen) String() string {
	sign := ""
	v := int64(f)
	if v < 0 {
		sign = "-"
		v = -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

// LogValue logs f as its integer count of fen, whatever the handler (a
// text handler would otherwise print String's yuan under a fen label).
// Log it under a key that says fen.
func (f Fen) LogValue() slog.Value { return slog.Int64Value(int64(f)) }

// Credits is an amount of token credits: 1 credit is 1 token at the base price.
type Credits int64

// String formats c as a plain integer.
func (c Credits) String() string { return strconv.FormatInt(int64(c), 10) }

// Tokens counts one request's tokens by the price each is billed at. The
// prompt kinds do not overlap: Input is the prompt tokens neither read
// from nor written to a provider's cache.
type Tokens struct {
	Input       int64 // prompt tokens at the input price
	CachedInput int64 // prompt tokens read from the provider's cache
	// CacheWrite and CacheWrite1h are prompt tokens the provider wrote to
	// its cache (Anthropic: for 5 minutes, for 1 hour), which it charges
	// above the input price.
	CacheWrite   int64
	CacheWrite1h int64
	Output       int64 // completion tokens

	// What a provider bills beyond text tokens, each at a price of its
	// own in the price table; a model that does not price one refuses a
	// request using it (pricing's Cost answers EINVALID).
	//
	// AudioInput and AudioOutput are audio tokens, counted in neither
	// Input nor Output (chat with audio in or out).
	AudioInput  int64
	AudioOutput int64
	// Characters are the input characters of a speech request (text to
	// speech is priced per 1M characters).
	Characters int64
	// AudioSeconds are the seconds of audio transcribed (priced per
	// minute), whole seconds rounded up.
	AudioSeconds int64
	// Images are images generated, each priced by ImageSize: "1024x1024",
	// or "1024x1024/hd" for a quality priced apart.
	Images    int64
	ImageSize string
	// WebSearches and WebFetches are a provider's server-side tool calls
	// (OpenAI's web search, Anthropic's web_search and web_fetch server
	// tools), priced per call.
	WebSearches int64
	WebFetches  int64
	// Priority says the request was served at the provider's priority
	// tier: every token kind costs the model's priority multiplier times
	// its price (per-call and per-unit fees are not multiplied).
	Priority bool
}

// AccountID identifies an account.
type AccountID string

// Error codes. They are append-only: callers and the HTTP layer map them.
const (
	EINVALID      = "invalid"              // the request is malformed or breaks a rule
	ENOTFOUND     = "not_found"            // the thing asked for does not exist
	ECONFLICT     = "conflict"             // the request conflicts with the current state
	EUNAUTHORIZED = "unauthorized"         // missing or bad credentials
	EFORBIDDEN    = "forbidden"            // authenticated but not allowed
	EINSUFFICIENT = "insufficient_balance" // not enough available credit
	ERATELIMITED  = "rate_limited"         // a limiter refused the request
	EUPSTREAM     = "upstream"             // a provider (WeChat Pay, a model) failed
	EUNAVAILABLE  = "unavailable"          // a dependency is down; retry later
	EINTERNAL     = "internal"             // a bug or an unexpected failure
)

// Error is the domain error: a machine code, a message safe to show a user,
// the operation that failed and the underlying cause.
type Error struct {
	Code    string
	Message string
	Op      string
	Err     error
}

// Error implements error.
func (e *Error) Error() string {
	s := e.Code
	if e.Op != "" {
		s = e.Op + ": " + s
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted user-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-safe message of the first *Error in err's
// chain, and "internal error" for anything else.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "internal error"
}
