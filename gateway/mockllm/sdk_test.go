package mockllm_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	anthropic "github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"tollgate/gateway/mockllm"
)

// These tests drive the mock with the official SDKs over real HTTP, as a
// user of tollgate would, so a wire-format mistake shows up as an SDK
// failure rather than as a golden file nobody can check.

func mustOpenAI(tb testing.TB, s *mockllm.Server) openai.Client {
	tb.Helper()
	return openai.NewClient(option.WithBaseURL(MustServe(tb, s)+"/v1/"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
}

func mustAnthropic(tb testing.TB, s *mockllm.Server) anthropic.Client {
	tb.Helper()
	return anthropic.NewClient(aoption.WithBaseURL(MustServe(tb, s)+"/"), aoption.WithAPIKey("sk-ant-test"), aoption.WithMaxRetries(0))
}

func TestOpenAISDKChat(t *testing.T) {
	client := mustOpenAI(t, &mockllm.Server{APIKey: "sk-test", CachedTokens: 2})
	c, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "mock-gpt",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("hello there world")},
	})
	if err != nil {
		t.Fatal(err)
	}
	text := c.Choices[0].Message.Content
	if got := mockllm.CountTokens(text); got != mockllm.DefaultOutputTokens || c.Usage.CompletionTokens != int64(got) {
		t.Errorf("content %q has %d tokens, usage says %d, want %d", text, got, c.Usage.CompletionTokens, mockllm.DefaultOutputTokens)
	}
	if c.Usage.PromptTokens != 5 || c.Usage.TotalTokens != 5+16 || c.Usage.PromptTokensDetails.CachedTokens != 2 {
		t.Errorf("usage = %+v, want 5 prompt (2 cached), 21 total", c.Usage)
	}
	if c.Choices[0].FinishReason != "stop" {
		t.Errorf("finish_reason = %q", c.Choices[0].FinishReason)
	}
}

func TestOpenAISDKStreamIncludeUsage(t *testing.T) {
	client := mustOpenAI(t, &mockllm.Server{})
	stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:         "mock-gpt",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("tell me a story")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		N:             openai.Int(2),
		MaxTokens:     openai.Int(10),
	}, option.WithHeader("X-Mock-Output-Tokens", "12"))
	var acc openai.ChatCompletionAccumulator
	deltas := 0
	for stream.Next() {
		chunk := stream.Current()
		acc.AddChunk(chunk)
		for _, ch := range chunk.Choices {
			if ch.Delta.Content != "" {
				deltas++
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 2 {
		t.Fatalf("got %d choices, want 2", len(acc.Choices))
	}
	for _, ch := range acc.Choices {
		if n := mockllm.CountTokens(ch.Message.Content); n != 10 || ch.FinishReason != "length" {
			t.Errorf("choice %d: %d tokens, finish %q; want 10, length", ch.Index, n, ch.FinishReason)
		}
	}
	if acc.Usage.CompletionTokens != int64(deltas) || deltas != 20 || acc.Usage.PromptTokens != 4 {
		t.Errorf("usage %+v, deltas %d; want completion = deltas = 20, prompt 4", acc.Usage, deltas)
	}
}

func TestOpenAISDKTools(t *testing.T) {
	client := mustOpenAI(t, &mockllm.Server{})
	params := openai.ChatCompletionNewParams{
		Model:    "mock-gpt",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("please call lookup_order for 42")},
		Tools: []openai.ChatCompletionToolUnionParam{
			openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
				Name: "lookup_order",
				Parameters: openai.FunctionParameters{
					"type":       "object",
					"properties": map[string]any{"order_id": map[string]any{"type": "integer"}, "verbose": map[string]any{"type": "boolean"}},
				},
			}),
		},
	}
	c, err := client.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if c.Choices[0].FinishReason != "tool_calls" || len(c.Choices[0].Message.ToolCalls) != 1 {
		t.Fatalf("choice = %+v, want one tool call", c.Choices[0])
	}
	call := c.Choices[0].Message.ToolCalls[0]
	var args struct {
		OrderID *int  `json:"order_id"`
		Verbose *bool `json:"verbose"`
	}
	if err := json.Unmarshal([]byte(call.Function.Arguments), &args); err != nil || args.OrderID == nil || args.Verbose == nil {
		t.Fatalf("arguments %q: %v", call.Function.Arguments, err)
	}

	stream := client.Chat.Completions.NewStreaming(context.Background(), params)
	var acc openai.ChatCompletionAccumulator
	var finished []openai.FinishedChatCompletionToolCall
	for stream.Next() {
		acc.AddChunk(stream.Current())
		if tc, ok := acc.JustFinishedToolCall(); ok {
			finished = append(finished, tc)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(finished) != 1 || finished[0].Name != "lookup_order" || finished[0].Arguments != call.Function.Arguments {
		t.Errorf("streamed calls %+v, want the non-stream call %+v", finished, call)
	}
	if acc.Usage.CompletionTokens != 0 {
		t.Errorf("usage without include_usage: %+v", acc.Usage)
	}
}

func TestOpenAISDKEmbeddings(t *testing.T) {
	client := mustOpenAI(t, &mockllm.Server{})
	for _, format := range []openai.EmbeddingNewParamsEncodingFormat{openai.EmbeddingNewParamsEncodingFormatFloat, ""} {
		e, err := client.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
			Model:          "text-embedding-3-small",
			Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"one two", "three"}},
			Dimensions:     openai.Int(16),
			EncodingFormat: format,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Data) != 2 || e.Usage.PromptTokens != 3 {
			t.Fatalf("format %q: %d vectors, usage %+v", format, len(e.Data), e.Usage)
		}
		want := mockllm.Vector("three", 16)
		for i, x := range e.Data[1].Embedding {
			if float32(x) != want[i] {
				t.Fatalf("format %q: vector[%d] = %v, want %v", format, i, x, want[i])
			}
		}
	}
}

func TestOpenAISDKModelsAndErrors(t *testing.T) {
	client := mustOpenAI(t, &mockllm.Server{Models: []string{"a", "b"}})
	page, err := client.Models.List(context.Background())
	if err != nil || len(page.Data) != 2 || page.Data[1].ID != "b" {
		t.Fatalf("models: %+v, %v", page, err)
	}
	_, err = client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "mock-gpt",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}, option.WithHeader("X-Mock-Status", "429"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" {
		t.Fatalf("err = %v, want a 429 rate_limit_exceeded openai.Error", err)
	}
}

func TestOpenAISDKResponses(t *testing.T) {
	client := mustOpenAI(t, &mockllm.Server{OutputTokens: 6})
	params := responses.ResponseNewParams{
		Model:        "mock-gpt",
		Instructions: openai.String("be brief"),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("hello world")},
	}
	r, err := client.Responses.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if mockllm.CountTokens(r.OutputText()) != 6 || r.Usage.OutputTokens != 6 || r.Usage.InputTokens != 4 {
		t.Errorf("text %q usage %+v; want 6 output, 4 input tokens", r.OutputText(), r.Usage)
	}
	stream := client.Responses.NewStreaming(context.Background(), params)
	var text strings.Builder
	var final responses.Response
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.Delta)
		case "response.completed":
			final = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != r.OutputText() || final.Usage.OutputTokens != 6 || final.Status != "completed" {
		t.Errorf("stream text %q, final %+v; want %q and 6 output tokens", text.String(), final.Usage, r.OutputText())
	}
}

func TestAnthropicSDKMessages(t *testing.T) {
	client := mustAnthropic(t, &mockllm.Server{APIKey: "sk-ant-test", CachedTokens: 1, CacheCreationTokens: 2})
	params := anthropic.MessageNewParams{
		Model:     "claude-sonnet-4-5",
		MaxTokens: 100,
		System:    []anthropic.TextBlockParam{{Text: "be brief"}},
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello there world"))},
	}
	m, err := client.Messages.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Content) != 1 || mockllm.CountTokens(m.Content[0].Text) != 16 || m.StopReason != anthropic.StopReasonEndTurn {
		t.Fatalf("message = %+v", m)
	}
	u := m.Usage
	if u.InputTokens != 2 || u.CacheReadInputTokens != 1 || u.CacheCreationInputTokens != 2 || u.OutputTokens != 16 {
		t.Errorf("usage = %+v, want input 2 + read 1 + creation 2, output 16", u)
	}

	count, err := client.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model:    params.Model,
		System:   anthropic.MessageCountTokensParamsSystemUnion{OfTextBlockArray: params.System},
		Messages: params.Messages,
	})
	if err != nil || count.InputTokens != u.InputTokens+u.CacheReadInputTokens+u.CacheCreationInputTokens {
		t.Errorf("count_tokens = %+v, %v; want the whole prompt, 5", count, err)
	}

	stream := client.Messages.NewStreaming(context.Background(), params)
	var acc anthropic.Message
	deltas := 0
	for stream.Next() {
		ev := stream.Current()
		if err := acc.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == "content_block_delta" {
			deltas++
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Content[0].Text != m.Content[0].Text || acc.Usage.OutputTokens != int64(deltas) || acc.Usage.CacheReadInputTokens != 1 {
		t.Errorf("streamed %q usage %+v deltas %d; want %q", acc.Content[0].Text, acc.Usage, deltas, m.Content[0].Text)
	}
}

func TestAnthropicSDKToolUseAndErrors(t *testing.T) {
	client := mustAnthropic(t, &mockllm.Server{})
	tool := anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{
		Properties: map[string]any{"city": map[string]any{"type": "string"}},
	}, "get_weather")
	params := anthropic.MessageNewParams{
		Model:      "claude-sonnet-4-5",
		MaxTokens:  100,
		Messages:   []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("weather in Paris?"))},
		Tools:      []anthropic.ToolUnionParam{tool},
		ToolChoice: anthropic.ToolChoiceParamOfTool("get_weather"),
	}
	stream := client.Messages.NewStreaming(context.Background(), params)
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.StopReason != anthropic.StopReasonToolUse || len(acc.Content) != 1 || acc.Content[0].Name != "get_weather" {
		t.Fatalf("message = %+v", acc)
	}
	var in struct{ City string }
	if err := json.Unmarshal(acc.Content[0].Input, &in); err != nil || in.City == "" {
		t.Errorf("input %s: %v", acc.Content[0].Input, err)
	}

	_, err := client.Messages.New(context.Background(), params, aoption.WithHeader("X-Mock-Status", "503"))
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 || !strings.Contains(apiErr.RawJSON(), "overloaded_error") {
		t.Fatalf("err = %v, want a 503 overloaded_error", err)
	}
}
