package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"tollgate"
)

// ReadJSON decodes the request body into v. It refuses a body that is
// missing, too large (413 is reported through the error's code), too slow
// to arrive (408, ErrBodyTimeout), not JSON, has unknown fields (when
// strict), or carries trailing data. Every failure is a *tollgate.Error
// with code EINVALID and a message a client can act on.
func ReadJSON(r *http.Request, v any, strict bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return tollgate.Errorf(tollgate.EINVALID, "Content-Type must be application/json, not %q", ct)
	}
	dec := json.NewDecoder(r.Body)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return tollgate.Errorf(tollgate.EINVALID, "request body has data after the JSON object")
	}
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		return jsonError(err)
	}
	return nil
}

// TooLargeError is returned by ReadJSON when the body passes the limit.
type TooLargeError struct{ Limit int64 }

// Error implements error.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("request body larger than %d bytes", e.Limit)
}

func jsonError(err error) error {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded): // the route's body deadline (WithBodyDeadline)
		return &tollgate.Error{Code: tollgate.EINVALID, Message: "request body not received in time; send it at once", Err: fmt.Errorf("%w: %w", ErrBodyTimeout, err)}
	case errors.As(err, &tooLarge):
		return &tollgate.Error{Code: tollgate.EINVALID, Message: fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit), Err: &TooLargeError{Limit: tooLarge.Limit}}
	case errors.Is(err, io.EOF):
		return tollgate.Errorf(tollgate.EINVALID, "request body is empty; a JSON object is required")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return tollgate.Errorf(tollgate.EINVALID, "request body is not valid JSON")
	case errors.As(err, &typ):
		return tollgate.Errorf(tollgate.EINVALID, "field %q must be of type %s", typ.Field, typ.Type.String())
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return tollgate.Errorf(tollgate.EINVALID, "%s", strings.TrimPrefix(err.Error(), "json: "))
	default:
		return tollgate.Errorf(tollgate.EINVALID, "request body could not be read")
	}
}
