package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"tollgate/gateway/mockllm"
)

const mockLLMSummary = "run the deterministic OpenAI/Anthropic-compatible mock LLM upstream"

func init() {
	register("mockllm", mockLLMSummary, runMockLLM)
}

// runMockLLM serves a mockllm.Server until ctx is cancelled.
func runMockLLM(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	addr, srv, err := parseMockLLM(args, stderr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mockllm: listen: %w", err)
	}
	return serveMockLLM(ctx, ln, srv, stdout)
}

// parseMockLLM reads the flags into the listen address and a configured
// server.
func parseMockLLM(args []string, stderr io.Writer) (string, *mockllm.Server, error) {
	fs := newFlagSet("mockllm", mockLLMSummary)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8091", "listen address HOST:PORT (port 0 picks a free one)")
	latency := fs.Duration("latency", 0, "wait before the first byte of every answer")
	tps := fs.Float64("tokens-per-second", 0, "pace generation at this many tokens per second (0: as fast as possible)")
	errorRate := fs.Float64("error-rate", 0, "fail this fraction of requests with 429, 500 or 503 (seeded)")
	seed := fs.Uint64("seed", 0, "seed of the --error-rate draws")
	outputTokens := fs.Int("output-tokens", mockllm.DefaultOutputTokens, "tokens per completion before max_tokens and stop sequences")
	apiKey := fs.String("api-key", "", "accept only this API key (empty: any)")
	failAfter := fs.Int("fail-after", 0, "cut every stream after this many events (0: never)")
	cached := fs.Int("cached-tokens", 0, "prompt tokens reported as read from cache")
	if err := parseFlags(fs, args); err != nil {
		return "", nil, err
	}
	if *errorRate < 0 || *errorRate > 1 {
		return "", nil, fmt.Errorf("mockllm: --error-rate must be in [0,1], got %v", *errorRate)
	}
	if *tps < 0 || *outputTokens < 0 || *latency < 0 || *failAfter < 0 || *cached < 0 {
		return "", nil, errors.New("mockllm: --latency, --tokens-per-second, --output-tokens, --fail-after and --cached-tokens must not be negative")
	}
	srv := &mockllm.Server{
		APIKey: *apiKey, Latency: *latency, TokensPerSecond: *tps, ErrorRate: *errorRate, Seed: *seed,
		OutputTokens: *outputTokens, FailAfter: *failAfter, CachedTokens: *cached,
	}
	if *outputTokens == 0 {
		srv.OutputTokens = -1 // the field's zero is the default; negative asks for empty completions
	}
	return *addr, srv, nil
}

// serveMockLLM prints the URL and serves srv on ln until ctx is cancelled,
// then shuts down, letting answers in flight finish for up to 5 seconds.
func serveMockLLM(ctx context.Context, ln net.Listener, srv *mockllm.Server, stdout io.Writer) error {
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "mock LLM listening on %s\n", url)
	fmt.Fprintf(stdout, "  OpenAI base URL:    %s/v1\n", url)
	fmt.Fprintf(stdout, "  Anthropic base URL: %s\n", url)
	fmt.Fprintf(stdout, "  stats:              %s/mock/stats\n", url)
	// Requests inherit ctx, so hanging or paced answers end at shutdown.
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("mockllm: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("mockllm: shutdown: %w", err)
	}
	return nil
}
