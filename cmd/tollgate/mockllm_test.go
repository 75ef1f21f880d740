package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestMockLLMServesChat runs `tollgate mockllm` on a free port, reads the
// URL it prints and makes one chat completion with the configured key.
func TestMockLLMServesChat(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"mockllm", "--addr", "127.0.0.1:0", "--api-key", "k", "--output-tokens", "3"}, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mockllm returned %v after cancel", err)
		}
	})
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatal("mockllm printed nothing")
	}
	first := sc.Text()
	url := first[strings.LastIndex(first, " ")+1:]
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line %q does not end with the URL", first)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c struct {
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || resp.StatusCode != 200 || c.Usage.CompletionTokens != 3 {
		t.Fatalf("status %d, usage %+v, err %v; want 200 with 3 completion tokens", resp.StatusCode, c.Usage, err)
	}
}

// TestMockLLMFlags checks the flags (and their TOLLGATE_* variables) reach
// the server, through the factored parse and serve steps.
func TestMockLLMFlags(t *testing.T) {
	t.Setenv("TOLLGATE_LATENCY", "0s")
	t.Setenv("TOLLGATE_ERROR_RATE", "1")
	addr, srv, err := parseMockLLM([]string{"--addr", "127.0.0.1:0", "--tokens-per-second", "50", "--output-tokens", "0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if srv.ErrorRate != 1 || srv.TokensPerSecond != 50 || srv.OutputTokens >= 0 {
		t.Errorf("server %+v", srv)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveMockLLM(ctx, ln, srv, io.Discard) }()
	resp, err := http.Post("http://"+ln.Addr().String()+"/v1/embeddings", "application/json", strings.NewReader(`{"model":"e","input":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil || resp.StatusCode < 429 {
		t.Errorf("status %d, serve returned %v; want an injected error and a clean stop", resp.StatusCode, err)
	}
	if _, _, err := parseMockLLM([]string{"--error-rate", "2"}, io.Discard); err == nil {
		t.Error("--error-rate 2 accepted")
	}
}
