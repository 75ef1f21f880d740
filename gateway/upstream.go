package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"tollgate"
)

// upstream speaks one provider kind's wire format. Both kinds answer in
// OpenAI's chat format, so the handlers relay one shape.
type upstream interface {
	// chat makes a non-streaming call; the answer is a chat.completion object.
	chat(ctx context.Context, d *deployment, req *chatRequest) (*chatResult, error)
	// chatStream opens a streaming call; its chunks are chat.completion.chunk objects.
	chatStream(ctx context.Context, d *deployment, req *chatRequest) (chunkStream, error)
}

// embedder is the optional capability of serving /v1/embeddings.
type embedder interface {
	// embed answers with ids's id and model (the upstream's when nil).
	embed(ctx context.Context, d *deployment, body []byte, ids *answerIDs) (*chatResult, error)
}

// forwarder is the optional capability of passing a request on to one of
// an OpenAI-compatible API's other paths (images, audio, moderations,
// legacy completions): body goes to the deployment's base URL + path as
// contentType, and a 2xx response is returned unread.
type forwarder interface {
	forward(ctx context.Context, d *deployment, path, contentType string, body []byte) (*http.Response, error)
}

// tokenUsage is an upstream's usage normalised to OpenAI's convention:
// Input is every prompt token, Cached (read from the provider's cache) and
// CacheWrite and CacheWrite1h (written to it, for 5 minutes and for an
// hour) included.
type tokenUsage struct {
	Input, Cached, CacheWrite, CacheWrite1h, Output int64
	// Units are what the call used beyond text tokens (tollgate.Tokens'
	// unit fields: audio tokens, characters, audio seconds, images, web
	// calls, the priority tier); their token fields stay zero. Audio
	// tokens are also counted in Input and Output, as OpenAI reports them.
	Units tollgate.Tokens
	// raw is the upstream's OpenAI-shaped usage object, kept so fields the
	// gateway does not know (reasoning tokens…) reach the client.
	raw map[string]json.RawMessage
	// unknown names the usage fields the upstream reported that tollgate
	// does not know how to price: such usage is billed at the hold, the
	// most the caller agreed to, never less than the provider may charge.
	unknown []string
}

// tokens is u by the price of each kind: the prompt tokens neither read
// from nor written to a cache are Input less the others; audio tokens,
// counted inside Input and Output as OpenAI reports them, are priced apart.
func (u tokenUsage) tokens() tollgate.Tokens {
	t := u.Units
	t.Input, t.CachedInput = u.Input-u.Cached-u.CacheWrite-u.CacheWrite1h-u.Units.AudioInput, u.Cached
	t.CacheWrite, t.CacheWrite1h, t.Output = u.CacheWrite, u.CacheWrite1h, u.Output-u.Units.AudioOutput
	return t
}

// chatResult is a complete (non-streaming) answer.
type chatResult struct {
	body       *chunk      // the OpenAI-shaped response object, with the request's id and model
	usage      *tokenUsage // nil when the upstream reported none
	outputs    []string    // the generated text per choice, for counting without usage
	upstreamID string      // the upstream's id of its answer, "" when it sent none
}

// chunkStream is an open streaming answer.
type chunkStream interface {
	// next returns the next chat.completion.chunk. Usage-only chunks are
	// not returned: their usage is kept for usage(). It returns io.EOF
	// when the stream ended properly, any other error when it broke.
	next() (*chunk, error)
	// usage returns the usage reported by the upstream, or nil.
	usage() *tokenUsage
	// upstreamID returns the upstream's id of its answer once read, or "".
	upstreamID() string
	// onWait sets f to run whenever next is about to wait for the
	// network.
	onWait(f func())
	// Close ends the call and frees the connection.
	Close() error
}

// inputReporter is the optional capability of a stream that learns the
// prompt's usage before the end (Anthropic's message_start), so an
// interrupted stream bills the upstream's prompt count, not an estimate.
type inputReporter interface {
	inputUsage() *tokenUsage
}

// deployment is one configured way to serve a public model.
type deployment struct {
	id       string // "provider/model", the breaker key
	provider *ProviderConfig
	cfg      DeploymentConfig
	up       upstream
}

// maxOut is the output cap used for this deployment given the client's ask.
func (d *deployment) maxOut(asked int64) int64 {
	limit := d.cfg.MaxOutputTokens
	if limit <= 0 {
		limit = DefaultMaxOutputTokens
	}
	if asked > 0 && asked < limit {
		return asked
	}
	return limit
}

// contextTokens is the most prompt tokens this deployment's model accepts.
func (d *deployment) contextTokens() int64 {
	if d.cfg.ContextTokens > 0 {
		return d.cfg.ContextTokens
	}
	return DefaultContextTokens
}

// maxErrorBody bounds how much of an upstream error body is read.
const maxErrorBody = 64 << 10

// post sends a JSON body and returns the response when its status is 2xx,
// else an *upstreamError describing the failure.
func post(ctx context.Context, client *http.Client, url string, header http.Header, body []byte, clock tollgate.Clock) (*http.Response, error) {
	return postAs(ctx, client, url, header, "application/json", body, clock)
}

// postAs is post with a body of another content type (multipart audio).
func postAs(ctx context.Context, client *http.Client, url string, header http.Header, contentType string, body []byte, clock tollgate.Clock) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build upstream request: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := client.Do(req)
	if err != nil {
		return nil, classify(ctx, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return nil, &upstreamError{
		Status:     resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), clock.Now()),
		Message:    upstreamMessage(b),
	}
}

// readBody reads a successful response fully, classifying a broken read.
func readBody(ctx context.Context, resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBody+1))
	if err != nil {
		return nil, classify(ctx, err)
	}
	if len(b) > maxUpstreamBody {
		return nil, classify(ctx, errors.New("gateway: upstream answer larger than 64 MiB"))
	}
	return b, nil
}

// maxUpstreamBody bounds a non-streaming upstream answer (large embedding
// batches are the biggest legitimate ones).
const maxUpstreamBody = 64 << 20

// joinURL appends path to a base URL without doubling slashes.
func joinURL(base, path string) string {
	return strings.TrimRight(base, "/") + path
}
