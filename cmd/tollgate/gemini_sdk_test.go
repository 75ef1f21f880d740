package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/genai"

	"tollgate/gateway/mockllm"
)

// These tests use Google's Gen AI Go SDK (google.golang.org/genai) as a
// Gemini user would, its base URL pointed at tollgate and a tollgate API
// key as its API key: the native Gemini endpoint
// (/v1beta/models/{model}:generateContent and :streamGenerateContent)
// against serve's mock-gemini deployment, checked against the same call
// made straight to the mock, and each bill checked as the OpenAI and
// Anthropic SDK tests check theirs.

// gemini is a Gen AI client of base with key, retries off.
func gemini(t *testing.T, base, key string) *genai.Client {
	t.Helper()
	c, err := genai.NewClient(context.Background(), &genai.ClientConfig{
		APIKey: key, Backend: genai.BackendGeminiAPI,
		HTTPOptions: genai.HTTPOptions{BaseURL: base + "/", RetryOptions: &genai.HTTPRetryOptions{Attempts: new(int32(1))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func geminiConfig() *genai.GenerateContentConfig {
	return &genai.GenerateContentConfig{SystemInstruction: genai.NewContentFromText("be brief", genai.RoleUser), MaxOutputTokens: 32}
}

// geminiUsage is usageMetadata in OpenAI's convention: thoughts are output.
func geminiUsage(u *genai.GenerateContentResponseUsageMetadata) sdkUsage {
	if u == nil {
		return sdkUsage{}
	}
	return sdkUsage{In: int64(u.PromptTokenCount + u.ToolUsePromptTokenCount), Cached: int64(u.CachedContentTokenCount), Out: int64(u.CandidatesTokenCount + u.ThoughtsTokenCount)}
}

// geminiStream reads a whole stream: its text, its chunks and the last
// usage reported.
func geminiStream(ctx context.Context, c *genai.Client, model string, stop int) (text string, chunks int, u *genai.GenerateContentResponseUsageMetadata, finish genai.FinishReason, err error) {
	var b strings.Builder
	for r, err := range c.Models.GenerateContentStream(ctx, model, genai.Text("hello there world"), geminiConfig()) {
		if err != nil {
			return b.String(), chunks, u, finish, err
		}
		chunks++
		b.WriteString(r.Text())
		if r.UsageMetadata != nil {
			u = r.UsageMetadata
		}
		if len(r.Candidates) > 0 && r.Candidates[0].FinishReason != "" {
			finish = r.Candidates[0].FinishReason
		}
		if chunks == stop {
			break
		}
	}
	return b.String(), chunks, u, finish, nil
}

// TestSDKGemini spends bought credits with the Gen AI SDK on the native
// Gemini endpoint, and with openai-go on the chat endpoint served by the
// same gemini deployment; every bill is the advertised price of the usage
// the mock reported, and the ledger audits clean.
func TestSDKGemini(t *testing.T) {
	s := mustSDKServe(t)
	ctx := context.Background()
	key := s.account(t)
	s.mustPrices(t, key)
	no, bought, _ := s.mustOrder(t, key)
	s.mustPay(t, key, no, bought)
	client, mock := gemini(t, s.m.URL, key), gemini(t, s.mock, "sk-mock")

	t.Run("GenerateContent", func(t *testing.T) {
		before := s.snap(t, key)
		got, err := client.Models.GenerateContent(ctx, "mock-gemini", genai.Text("hello there world"), geminiConfig())
		if err != nil {
			t.Fatal(err)
		}
		want, err := mock.Models.GenerateContent(ctx, "gemini-2.5-flash", genai.Text("hello there world"), geminiConfig())
		if err != nil {
			t.Fatal(err)
		}
		u := geminiUsage(got.UsageMetadata)
		if got.Text() != want.Text() || int64(mockllm.CountTokens(got.Text())) != u.Out || u != geminiUsage(want.UsageMetadata) ||
			got.Candidates[0].FinishReason != genai.FinishReasonStop || got.ModelVersion != "mock-gemini" {
			t.Errorf("answer %q %+v, the mock says %q %+v", got.Text(), u, want.Text(), geminiUsage(want.UsageMetadata))
		}
		s.mustBill(t, key, "mock-gemini", before, u, s.prices["mock-gemini"].cost(u), false)
	})

	t.Run("GenerateContentStream", func(t *testing.T) {
		before := s.snap(t, key)
		text, chunks, gu, finish, err := geminiStream(ctx, client, "mock-gemini", -1)
		if err != nil {
			t.Fatal(err)
		}
		wantText, wantChunks, wu, _, err := geminiStream(ctx, mock, "gemini-2.5-flash", -1)
		if err != nil {
			t.Fatal(err)
		}
		u := geminiUsage(gu)
		// The last chunk carries the finish reason and the usage, text
		// or not: one more than the tokens.
		if text != wantText || u != geminiUsage(wu) || u.Out != mockllm.DefaultOutputTokens || chunks != wantChunks+1 || finish != genai.FinishReasonStop {
			t.Errorf("stream %q in %d chunks, %+v; the mock sent %q in %d, %+v", text, chunks, u, wantText, wantChunks, geminiUsage(wu))
		}
		s.mustBill(t, key, "mock-gemini", before, u, s.prices["mock-gemini"].cost(u), false)
	})

	t.Run("GenerateContent/v1beta", func(t *testing.T) {
		before := s.snap(t, key)
		beta, err := genai.NewClient(ctx, &genai.ClientConfig{APIKey: key, Backend: genai.BackendGeminiAPI,
			HTTPOptions: genai.HTTPOptions{BaseURL: s.m.URL + "/", APIVersion: "v1beta", RetryOptions: &genai.HTTPRetryOptions{Attempts: new(int32(1))}}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := beta.Models.GenerateContent(ctx, "mock-gemini", genai.Text("hello there world"), geminiConfig())
		if err != nil {
			t.Fatal(err)
		}
		u := geminiUsage(got.UsageMetadata)
		if u.Out != mockllm.DefaultOutputTokens || got.Text() == "" {
			t.Errorf("answer %q %+v", got.Text(), u)
		}
		s.mustBill(t, key, "mock-gemini", before, u, s.prices["mock-gemini"].cost(u), false)
	})

	// openai-go on /v1/chat/completions, served by the gemini deployment.
	t.Run("OpenAI/Chat", func(t *testing.T) { s.sdkChat(t, key, "mock-gemini", "gemini-2.5-flash", false) })
	t.Run("OpenAI/Stream", func(t *testing.T) { s.sdkStream(t, key, "mock-gemini", "gemini-2.5-flash", true) })

	t.Run("Refused", func(t *testing.T) {
		before := s.snap(t, key)
		var ae genai.APIError
		_, err := client.Models.GenerateContent(ctx, "no-such-model", genai.Text("hi"), nil)
		if !errors.As(err, &ae) || ae.Code != http.StatusNotFound || ae.Status != "NOT_FOUND" {
			t.Errorf("unknown model: %v, want a 404 NOT_FOUND APIError", err)
		}
		_, err = gemini(t, s.m.URL, "tg-wrong").Models.GenerateContent(ctx, "mock-gemini", genai.Text("hi"), nil)
		if !errors.As(err, &ae) || ae.Code != http.StatusUnauthorized || ae.Status != "UNAUTHENTICATED" {
			t.Errorf("bad key: %v, want a 401 UNAUTHENTICATED APIError", err)
		}
		bad := []*genai.Content{{Role: "user", Parts: []*genai.Part{{InlineData: &genai.Blob{MIMEType: "audio/wav", Data: []byte("RIFF")}}}}}
		_, err = client.Models.GenerateContent(ctx, "mock-gemini", bad, nil)
		if !errors.As(err, &ae) || ae.Code != http.StatusBadRequest || !strings.Contains(ae.Message, "only images") {
			t.Errorf("audio input: %v, want a 400 APIError saying only images are accepted", err)
		}
		if after := s.snap(t, key); after != before {
			t.Errorf("refused calls moved the balance or logged usage: %+v -> %+v", before, after)
		}
	})
	s.mustAudit(t)
}

// TestSDKGeminiStreamInterrupted runs serve against a Gemini upstream
// that cuts every stream after a few events: the Gen AI SDK and openai-go
// both see an error, and each call is billed on what was delivered.
func TestSDKGeminiStreamInterrupted(t *testing.T) {
	srv := httptest.NewServer(&mockllm.Server{FailAfter: 6})
	t.Cleanup(srv.Close)
	up := srv.URL
	providers := filepath.Join(t.TempDir(), "providers.json")
	cfg := `{"providers":[{"name":"up-gemini","kind":"gemini","base_url":"` + up + `"}],
	 "models":{"gpt-4o-mini":[{"provider":"up-gemini","model":"gemini-2.5-flash"}]}}`
	if err := os.WriteFile(providers, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustSDKServe(t, "--providers", providers)
	key := s.account(t)
	s.mustPrices(t, key)
	no, bought, _ := s.mustOrder(t, key)
	s.mustPay(t, key, no, bought)
	t.Run("GenAI", func(t *testing.T) {
		s.mustCutBill(t, key, "gpt-4o-mini", "interrupted", func(ctx context.Context) cutStream {
			text, _, _, _, err := geminiStream(ctx, gemini(t, s.m.URL, key), "gpt-4o-mini", -1)
			var ae genai.APIError
			if !errors.As(err, &ae) || ae.Status != "UNAVAILABLE" || text == "" {
				t.Fatalf("read %q, error %v; want some output and an UNAVAILABLE error", text, err)
			}
			return cutStream{deltas: int64(mockllm.CountTokens(text))}
		})
	})
	t.Run("OpenAI", func(t *testing.T) {
		s.mustCutBill(t, key, "gpt-4o-mini", "interrupted", func(ctx context.Context) cutStream {
			cs, err := readOpenAI(ctx, s.openai(key), 1000)
			if err == nil || cs.deltas == 0 {
				t.Fatalf("read %d deltas and no error, want some output and an error", cs.deltas)
			}
			return cs
		})
	})
	s.mustAudit(t)
}
