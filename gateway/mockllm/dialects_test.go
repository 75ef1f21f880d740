package mockllm_test

import (
	"encoding/json"
	"strings"
	"testing"

	"tollgate/gateway/mockllm"
)

// TestUsageDialects: each provider's usage fields, selected by the path
// prefix, the header or the Server field, with the same counts (prompt 3
// tokens, 2 of them cached, 1 written for openrouter; 16 output, 5 of
// them reasoning), the same in a stream's usage chunk.
func TestUsageDialects(t *testing.T) {
	base := MustServe(t, &mockllm.Server{CachedTokens: 2, CacheCreationTokens: 1, ReasoningTokens: 5})
	want := map[string]string{
		"openai":        `{"prompt_tokens":3,"completion_tokens":16,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":2,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":5,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`,
		"deepseek":      `{"prompt_tokens":3,"completion_tokens":16,"total_tokens":19,"prompt_cache_hit_tokens":2,"prompt_cache_miss_tokens":1,"completion_tokens_details":{"reasoning_tokens":5}}`,
		"siliconflow":   `{"prompt_tokens":3,"completion_tokens":16,"total_tokens":19,"completion_tokens_details":{"reasoning_tokens":5},"prompt_tokens_details":{"cached_tokens":2},"prompt_cache_hit_tokens":2,"prompt_cache_miss_tokens":1}`,
		"moonshot":      `{"prompt_tokens":3,"completion_tokens":16,"total_tokens":19,"cached_tokens":2}`,
		"openrouter":    `{"prompt_tokens":3,"completion_tokens":16,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":2,"cache_write_tokens":1,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":5},"cost":0.0001,"is_byok":false}`,
		"ollama":        `{"prompt_tokens":3,"completion_tokens":16,"total_tokens":19}`,
		"unknown":       `{"input_tokens":3,"output_tokens":16,"total_tokens":19}`,
		"unknown-cache": `{"prompt_tokens":3,"completion_tokens":16,"total_tokens":19,"cache_read_tokens":2}`,
	}
	want["dashscope"], want["zhipu"], want["ark"], want["vllm"], want["azure-openai"] = want["openai"], want["openai"], want["openai"], want["openai"], want["openai"]
	want["plain"] = want["ollama"]
	if got := strings.Join(mockllm.UsageDialects(), ","); len(mockllm.UsageDialects()) != len(want) {
		t.Fatalf("dialects %s, want %d", got, len(want))
	}
	usageOf := func(body string, stream bool) string {
		if stream {
			data := sseLines(body)
			body = data[len(data)-2]
		}
		var v struct{ Usage json.RawMessage }
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return string(v.Usage)
	}
	for name, w := range want {
		for _, c := range []call{
			{path: "/usage/" + name + "/v1/chat/completions", body: chatBody},
			{path: "/v1/chat/completions", body: chatBody, header: map[string]string{mockllm.HeaderUsageDialect: name}},
			{path: "/usage/" + name + "/v1/chat/completions", body: chatStreamBody},
		} {
			status, _, body := MustDo(t, base, c)
			if status != 200 {
				t.Fatalf("%s %s: %d %s", name, c.path, status, body)
			}
			if got := usageOf(body, strings.Contains(c.body, `"stream":true`)); got != w {
				t.Errorf("%s %s:\n got %s\nwant %s", name, c.path, got, w)
			}
		}
	}
	if status, _, body := MustDo(t, base, call{path: "/usage/nope/v1/chat/completions", body: chatBody}); status != 404 || !strings.Contains(body, "unknown usage dialect") {
		t.Fatalf("unknown dialect: %d %s", status, body)
	}
	if status, _, body := MustDo(t, base, call{path: "/v1/chat/completions", body: chatBody, header: map[string]string{mockllm.HeaderUsageDialect: "nope"}}); status != 400 {
		t.Fatalf("unknown dialect header: %d %s", status, body)
	}
	byField := MustServe(t, &mockllm.Server{UsageDialect: "moonshot", CachedTokens: 1})
	if _, _, body := MustDo(t, byField, call{path: "/v1/chat/completions", body: chatBody}); !strings.Contains(body, `"total_tokens":19,"cached_tokens":1}`) {
		t.Fatalf("Server.UsageDialect: %s", body)
	}
}

// TestAzureRoutes: Azure's deployment URLs with api-version and the
// api-key header reach the chat and embeddings routes.
func TestAzureRoutes(t *testing.T) {
	base := MustServe(t, &mockllm.Server{APIKey: "k"})
	for _, tc := range []struct {
		c      call
		status int
	}{
		{call{path: "/openai/deployments/gpt/chat/completions?api-version=2024-10-21", body: chatBody, header: map[string]string{"Api-Key": "k"}}, 200},
		{call{path: "/openai/deployments/gpt/embeddings?api-version=2024-10-21", body: `{"model":"x","input":"a b"}`, header: map[string]string{"Api-Key": "k"}}, 200},
		{call{path: "/openai/deployments/gpt/chat/completions?api-version=2024-10-21", body: chatBody, header: map[string]string{"Authorization": "Bearer k"}}, 401},
		{call{path: "/openai/deployments/gpt/chat/completions", body: chatBody, header: map[string]string{"Api-Key": "k"}}, 404},
		{call{path: "/openai/deployments/gpt/responses?api-version=1", body: chatBody, header: map[string]string{"Api-Key": "k"}}, 404},
	} {
		if status, _, body := MustDo(t, base, tc.c); status != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.c.path, status, tc.status, body)
		}
	}
}

// sseLines is an SSE body's data payloads.
func sseLines(body string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if d, ok := strings.CutPrefix(l, "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}
