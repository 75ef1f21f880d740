package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	anthropic "github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"tollgate/internal/testenv"
)

// usageRecordView is GET /v1/usage/{id}'s answer, as an app reads it.
type usageRecordView struct {
	ID           string `json:"id"`
	RequestID    string `json:"request_id"`
	Model        string `json:"model"`
	Provider     string `json:"provider"`
	Deployment   string `json:"deployment"`
	UpstreamID   string `json:"upstream_id"`
	Status       string `json:"status"`
	InputTokens  int64  `json:"input_tokens"`
	OutputTokens int64  `json:"output_tokens"`
	Credits      int64  `json:"credits"`
	CreatedAt    string `json:"created_at"`
}

// TestIDsMatchThroughServe: through serve, on SQLite and on PostgreSQL,
// the official SDKs read answers whose id is the X-Request-Id and the
// usage record's id (OpenAI chat, each chunk of its stream, embeddings;
// Anthropic messages and the message_start of its stream), whose model is
// the one asked for, with X-Tollgate-Deployment naming what served it;
// GET /v1/usage/{id} gives that call, and nothing of another account's.
func TestIDsMatchThroughServe(t *testing.T) {
	for _, store := range []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"SQLite", func(*testing.T) []string { return nil }},
		{"PostgreSQL", func(t *testing.T) []string { return []string{"--database-url", testenv.MustPostgres(t)} }},
	} {
		t.Run(store.name, func(t *testing.T) {
			s := mustSDKServe(t, store.args(t)...)
			key := s.account(t)
			s.mustPrices(t, key)
			no, bought, _ := s.mustOrder(t, key)
			s.mustPay(t, key, no, bought)
			ctx := context.Background()
			oa := s.openai(key)
			an := anthropic.NewClient(aoption.WithBaseURL(s.m.URL), aoption.WithAPIKey(key), aoption.WithMaxRetries(0))

			type call struct {
				name, model, deployment, upPrefix string
				run                               func(t *testing.T) (resp *http.Response, ids, models []string)
			}
			calls := []call{
				{"OpenAIChat", "mock-gpt", "mock-openai/gpt-4o-mini", "chatcmpl-", func(t *testing.T) (*http.Response, []string, []string) {
					var resp *http.Response
					c, err := oa.Chat.Completions.New(ctx, chatParams("mock-gpt"), option.WithResponseInto(&resp))
					if err != nil {
						t.Fatal(err)
					}
					return resp, []string{c.ID}, []string{c.Model}
				}},
				{"OpenAIStream", "mock-gpt", "mock-openai/gpt-4o-mini", "chatcmpl-", func(t *testing.T) (*http.Response, []string, []string) {
					var resp *http.Response
					p := chatParams("mock-gpt")
					p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
					st := oa.Chat.Completions.NewStreaming(ctx, p, option.WithResponseInto(&resp))
					defer st.Close()
					var ids, models []string
					for st.Next() {
						ids, models = append(ids, st.Current().ID), append(models, st.Current().Model)
					}
					if err := st.Err(); err != nil {
						t.Fatal(err)
					}
					return resp, ids, models
				}},
				{"OpenAIEmbeddings", "mock-embedding", "mock-openai/text-embedding-3-small", "", func(t *testing.T) (*http.Response, []string, []string) {
					var resp *http.Response
					e, err := oa.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "mock-embedding",
						Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("a cat")}}, option.WithResponseInto(&resp))
					if err != nil {
						t.Fatal(err)
					}
					if len(e.Data) != 1 || len(e.Data[0].Embedding) == 0 {
						t.Fatalf("embeddings %+v", e.Data)
					}
					return resp, []string{strings.Trim(e.JSON.ExtraFields["id"].Raw(), `"`)}, []string{e.Model}
				}},
				{"AnthropicMessages", "mock-claude", "mock-anthropic/claude-sonnet-4-5", "msg_", func(t *testing.T) (*http.Response, []string, []string) {
					var resp *http.Response
					m, err := an.Messages.New(ctx, messageParams("mock-claude"), aoption.WithResponseInto(&resp))
					if err != nil {
						t.Fatal(err)
					}
					return resp, []string{m.ID}, []string{string(m.Model)}
				}},
				{"AnthropicStream", "mock-claude", "mock-anthropic/claude-sonnet-4-5", "msg_", func(t *testing.T) (*http.Response, []string, []string) {
					var resp *http.Response
					st := an.Messages.NewStreaming(ctx, messageParams("mock-claude"), aoption.WithResponseInto(&resp))
					defer st.Close()
					var acc anthropic.Message
					for st.Next() {
						if err := acc.Accumulate(st.Current()); err != nil {
							t.Fatal(err)
						}
					}
					if err := st.Err(); err != nil {
						t.Fatal(err)
					}
					return resp, []string{acc.ID}, []string{string(acc.Model)}
				}},
				{"MessagesOverOpenAI", "mock-gpt", "mock-openai/gpt-4o-mini", "chatcmpl-", func(t *testing.T) (*http.Response, []string, []string) {
					var resp *http.Response
					m, err := an.Messages.New(ctx, messageParams("mock-gpt"), aoption.WithResponseInto(&resp))
					if err != nil {
						t.Fatal(err)
					}
					return resp, []string{m.ID}, []string{string(m.Model)}
				}},
			}
			var seen []string
			for _, c := range calls {
				t.Run(c.name, func(t *testing.T) {
					resp, ids, models := c.run(t)
					id := resp.Header.Get("X-Request-Id")
					if !strings.HasPrefix(id, "req_") || len(ids) == 0 {
						t.Fatalf("X-Request-Id %q, answer ids %q", id, ids)
					}
					for i := range ids {
						if ids[i] != id || models[i] != c.model {
							t.Fatalf("answer %d: id %q model %q, want %q %q", i, ids[i], models[i], id, c.model)
						}
					}
					if got := resp.Header.Get("X-Tollgate-Deployment"); got != c.deployment {
						t.Fatalf("X-Tollgate-Deployment %q, want %q", got, c.deployment)
					}
					var u usageRecordView
					s.call(t, 200, "GET", "/v1/usage/"+id, key, "", nil, &u)
					if u.ID != id || u.RequestID != id || u.Model != c.model || u.Deployment != c.deployment || u.Status != "ok" ||
						u.Credits <= 0 || u.InputTokens <= 0 || u.CreatedAt == "" || !strings.HasPrefix(u.UpstreamID, c.upPrefix) ||
						(c.upPrefix != "" && u.UpstreamID == c.upPrefix) {
						t.Fatalf("GET /v1/usage/%s = %+v", id, u)
					}
					seen = append(seen, id)
				})
			}
			// The list carries the same ids, newest first.
			var list struct{ Data []usageRecordView }
			s.call(t, 200, "GET", "/v1/usage?limit=100", key, "", nil, &list)
			listed := map[string]bool{}
			for _, u := range list.Data {
				if u.ID != u.RequestID {
					t.Errorf("usage record id %q, request_id %q", u.ID, u.RequestID)
				}
				listed[u.ID] = true
			}
			for _, id := range seen {
				if !listed[id] {
					t.Errorf("%s not in GET /v1/usage", id)
				}
			}
			if len(seen) == 0 {
				t.Fatal("no call succeeded")
			}
			// Another account's call is as unknown as one that never was.
			other := s.account(t)
			for _, id := range append(seen[:1:1], "req_00000000000000000000000000000000000000ff") {
				s.call(t, 404, "GET", "/v1/usage/"+id, other, "", nil, nil)
			}
			s.call(t, 404, "GET", "/v1/usage/req_00000000000000000000000000000000000000ff", key, "", nil, nil)
			s.call(t, 401, "GET", "/v1/usage/"+seen[0], "", "", nil, nil)
		})
	}
}
