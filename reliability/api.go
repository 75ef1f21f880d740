package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"time"
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
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return Reply{Outcome: Unknown, Err: err}
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return Reply{Outcome: Unknown, Err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return Reply{Outcome: Unknown, Err: err, Refused: errors.Is(err, syscall.ECONNREFUSED)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Reply{Outcome: Unknown, Status: resp.StatusCode, Err: err}
	}
	r := Reply{Outcome: Fail, Status: resp.StatusCode, Body: b, Header: resp.Header}
	if resp.StatusCode/100 == 2 {
		r.Outcome = OK
	}
	return r
}
