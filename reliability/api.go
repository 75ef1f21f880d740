package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"time"

	"tollgate/internal/apiclient"
)

// Outcome is how a client operation ended, in Jepsen's terms: a transport
// failure is Unknown (the operation may or may not have happened), never
// Fail.
type Outcome int

// Outcomes of a call.
const (
	OK      Outcome = iota // 2xx
	Fail                   // an answer other than 2xx
	Unknown                // no answer: the instance died or timed out
)

// Reply is one HTTP answer.
type Reply struct {
	Outcome Outcome
	Status  int
	Body    []byte
	Header  http.Header
	Err     error
	// Refused is set when the connection was refused: the request
	// certainly did not happen (the instance was down), though Outcome
	// stays Unknown for callers that do not care.
	Refused bool
}

// Decode unmarshals the body into v.
func (r Reply) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode %d %q: %w", r.Status, r.Body, err)
	}
	return nil
}

func (r Reply) String() string {
	if r.Err != nil {
		return "unknown: " + r.Err.Error()
	}
	b := r.Body
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(b))
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// Call sends one request. body is sent as is when it is []byte or string,
// else as JSON; bearer, when not empty, goes in Authorization.
func Call(ctx context.Context, method, url, bearer string, hdr map[string]string, body any) Reply {
	r, err := apiclient.Do(ctx, httpClient, apiclient.Request{Method: method, URL: url, Bearer: bearer, Header: hdr, Body: body}, 0)
	switch {
	case err != nil && r.Status == 0:
		return Reply{Outcome: Unknown, Err: err, Refused: errors.Is(err, syscall.ECONNREFUSED)}
	case err != nil:
		return Reply{Outcome: Unknown, Status: r.Status, Err: err}
	case r.OK():
		return Reply{Outcome: OK, Status: r.Status, Body: r.Body, Header: r.Header}
	}
	return Reply{Outcome: Fail, Status: r.Status, Body: r.Body, Header: r.Header}
}
