// Package apiclient is the small HTTP client the tools that talk to a
// running tollgate share (the demo, the reliability harness, tgload): one
// request with a bearer credential and a JSON (or raw) body, the answer
// read whole, and tollgate's or the emulator's error shape read back.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Request is one call.
type Request struct {
	Method, URL string
	// Bearer, when not empty, is sent as Authorization: Bearer.
	Bearer string
	// Header is set after the others, so it may replace Content-Type.
	Header map[string]string
	// Body is sent as is when it is []byte or string, else as JSON; nil
	// sends no body. A body goes with Content-Type: application/json
	// unless Header says otherwise.
	Body any
}

// New makes the *http.Request of r.
func (r Request) New(ctx context.Context) (*http.Request, error) {
	var rd io.Reader
	switch b := r.Body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, rd)
	if err != nil {
		return nil, err
	}
	if r.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+r.Bearer)
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	return req, nil
}

// Send sends r with c (http.DefaultClient when nil) and returns the
// answer unread, for streams; the caller closes its body.
func Send(ctx context.Context, c *http.Client, r Request) (*http.Response, error) {
	req, err := r.New(ctx)
	if err != nil {
		return nil, err
	}
	if c == nil {
		c = http.DefaultClient
	}
	return c.Do(req)
}

// Reply is an answer read whole.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends r and reads the answer's body, at most limit bytes (limit ≤ 0:
// all of it). The error is a transport error or a failed read, never a
// status: any answer is a Reply, with Status set also when reading its
// body failed.
func Do(ctx context.Context, c *http.Client, r Request, limit int64) (Reply, error) {
	resp, err := Send(ctx, c, r)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	if limit > 0 {
		body = io.LimitReader(resp.Body, limit)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return Reply{Status: resp.StatusCode}, err
	}
	return Reply{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// OK reports a 2xx answer.
func (r Reply) OK() bool { return r.Status/100 == 2 }

// Decode unmarshals the body as JSON into v.
func (r Reply) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode %d %.200q: %w", r.Status, r.Body, err)
	}
	return nil
}

// Error is a refused call, with the server's message and code.
type Error struct {
	Method, Path  string
	Status        int
	Code, Message string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	return s
}

// ParseError reads a refusal's body: tollgate's OpenAI-style
// {"error":{"message","code"}}, the emulator's {"error":"..."}, or else
// the start of the body as the message.
func ParseError(method, path string, status int, body []byte) *Error {
	e := &Error{Method: method, Path: path, Status: status}
	var openai struct {
		Error struct {
			Message string `json:"message"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	var sim struct {
		Error string `json:"error"`
	}
	switch {
	case json.Unmarshal(body, &openai) == nil && openai.Error.Message != "":
		e.Message, e.Code = openai.Error.Message, openai.Error.Code
	case json.Unmarshal(body, &sim) == nil && sim.Error != "":
		e.Message = sim.Error
	default:
		if len(body) > 200 {
			body = body[:200]
		}
		e.Message = strings.TrimSpace(string(body))
	}
	return e
}
