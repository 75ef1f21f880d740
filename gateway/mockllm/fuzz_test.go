package mockllm_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate/gateway/mockllm"
)

// FuzzEcho checks that strings the mock echoes (the model name, a tool's
// name) come back byte for byte through its hand-written JSON encoder, and
// that every answer is valid JSON whose usage matches its content.
func FuzzEcho(f *testing.F) {
	for _, s := range []string{"mock-gpt", `quote " and \ slash`, "tab\tnew\nline\x00\x1f", "中文 模型", "\u2028\u2029", "<&>", "\xff\xfe"} {
		f.Add(s)
	}
	s := &mockllm.Server{}
	f.Fuzz(func(t *testing.T, name string) {
		if name == "" {
			return
		}
		model, _ := json.Marshal(name)
		body := `{"model":` + string(model) + `,"messages":[{"role":"user","content":` + string(model) + `}],` +
			`"tools":[{"type":"function","function":{"name":` + string(model) + `}}],"tool_choice":"required"}`
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body)))
		var c struct {
			Model   string
			Choices []struct {
				Message struct {
					ToolCalls []struct {
						Function struct{ Name, Arguments string }
					} `json:"tool_calls"`
				}
			}
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil {
			t.Fatalf("answer is not JSON: %v\n%s", err, rec.Body)
		}
		var want string
		_ = json.Unmarshal(model, &want) // invalid UTF-8 became U+FFFD
		if c.Model != want || c.Choices[0].Message.ToolCalls[0].Function.Name != want || c.Choices[0].Message.ToolCalls[0].Function.Arguments != "{}" {
			t.Errorf("echoed %q / %+v, want %q", c.Model, c.Choices[0].Message.ToolCalls, want)
		}
		if c.Usage.PromptTokens != mockllm.CountTokens(want) {
			t.Errorf("prompt_tokens %d, CountTokens %d", c.Usage.PromptTokens, mockllm.CountTokens(want))
		}
	})
}
