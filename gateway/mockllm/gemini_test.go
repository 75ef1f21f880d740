package mockllm_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate/gateway/mockllm"
)

const geminiBody = `{"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"one two three"}]}]}`

// geminiCall posts body to the mock's Gemini method and returns the status
// and body.
func geminiCall(t *testing.T, base, method, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1beta/models/gemini-2.5-flash:"+method, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

type geminiAnswer struct {
	Candidates []struct {
		Content struct {
			Role  string
			Parts []struct {
				Text         *string
				FunctionCall *struct {
					Name string
					Args map[string]any
				}
			}
		}
		FinishReason string
		Index        int
	}
	UsageMetadata gemUsage
	ModelVersion  string
	ResponseID    string
}

// gemUsage is usageMetadata's counts by name.
type gemUsage map[string]int

func (u *gemUsage) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*u = gemUsage{}
	for k, v := range m {
		var n int
		if json.Unmarshal(v, &n) == nil {
			(*u)[k] = n
		}
	}
	return nil
}

func decodeGemini(t *testing.T, s string) geminiAnswer {
	t.Helper()
	var a geminiAnswer
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return a
}

// TestGeminiGenerateContent: a deterministic answer in Gemini's shape,
// usage counted as on every route (6 prompt tokens here), cached content
// and thoughts reported as the knobs say.
func TestGeminiGenerateContent(t *testing.T) {
	srv := httptest.NewServer(&mockllm.Server{OutputTokens: 5})
	defer srv.Close()
	hdr := map[string]string{mockllm.HeaderCachedTokens: "2", mockllm.HeaderThoughtsTokens: "4"}
	st, _, body := geminiCall(t, srv.URL, "generateContent", geminiBody, hdr)
	_, _, again := geminiCall(t, srv.URL, "generateContent", geminiBody, hdr)
	if st != 200 || body != again {
		t.Fatalf("status %d, or not deterministic: %s / %s", st, body, again)
	}
	a := decodeGemini(t, body)
	c := a.Candidates[0]
	if len(a.Candidates) != 1 || c.Content.Role != "model" || c.FinishReason != "STOP" || mockllm.CountTokens(*c.Content.Parts[0].Text) != 5 ||
		a.ModelVersion != "gemini-2.5-flash" || a.ResponseID == "" {
		t.Errorf("answer %s", body)
	}
	u := a.UsageMetadata
	if u["promptTokenCount"] != 5 || u["cachedContentTokenCount"] != 2 || u["candidatesTokenCount"] != 5 || u["thoughtsTokenCount"] != 4 || u["totalTokenCount"] != 14 {
		t.Errorf("usageMetadata %v", u)
	}
}

// TestGeminiLimitsAndCandidates: maxOutputTokens cuts (MAX_TOKENS),
// candidateCount gives several candidates, a stop sequence ends early.
func TestGeminiLimitsAndCandidates(t *testing.T) {
	srv := httptest.NewServer(&mockllm.Server{OutputTokens: 10})
	defer srv.Close()
	_, _, body := geminiCall(t, srv.URL, "generateContent", `{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":3,"candidateCount":2}}`, nil)
	a := decodeGemini(t, body)
	if len(a.Candidates) != 2 || a.Candidates[1].Index != 1 || a.Candidates[0].FinishReason != "MAX_TOKENS" || a.UsageMetadata["candidatesTokenCount"] != 6 {
		t.Errorf("answer %s", body)
	}
}

// TestGeminiFunctionCall: mode ANY forces a call with deterministic args.
func TestGeminiFunctionCall(t *testing.T) {
	srv := httptest.NewServer(&mockllm.Server{})
	defer srv.Close()
	_, _, body := geminiCall(t, srv.URL, "generateContent", `{"contents":[{"parts":[{"text":"hi"}]}],`+
		`"tools":[{"functionDeclarations":[{"name":"lookup","parameters":{"type":"object","properties":{"id":{"type":"integer"}}}}]}],`+
		`"toolConfig":{"functionCallingConfig":{"mode":"ANY"}}}`, nil)
	a := decodeGemini(t, body)
	fc := a.Candidates[0].Content.Parts[0].FunctionCall
	if fc == nil || fc.Name != "lookup" || fc.Args["id"] == nil || a.Candidates[0].FinishReason != "STOP" {
		t.Errorf("answer %s", body)
	}
}

// TestGeminiStream: streamGenerateContent?alt=sse sends one chunk per
// token, the last with the finishReason and the final usage; cut after K
// events (FailAfter) it stops without one.
func TestGeminiStream(t *testing.T) {
	srv := httptest.NewServer(&mockllm.Server{OutputTokens: 4})
	defer srv.Close()
	chunks := func(hdr map[string]string) []geminiAnswer {
		st, h, body := geminiCall(t, srv.URL, "streamGenerateContent?alt=sse", geminiBody, hdr)
		if st != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("status %d: %s", st, body)
		}
		var out []geminiAnswer
		sc := bufio.NewScanner(strings.NewReader(body))
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				out = append(out, decodeGemini(t, d))
			}
		}
		return out
	}
	cs := chunks(nil)
	var text strings.Builder
	for _, c := range cs {
		text.WriteString(*c.Candidates[0].Content.Parts[0].Text)
	}
	last := cs[len(cs)-1]
	if len(cs) != 4 || cs[0].UsageMetadata["promptTokenCount"] != 5 || cs[0].Candidates[0].FinishReason != "" ||
		last.Candidates[0].FinishReason != "STOP" || last.UsageMetadata["candidatesTokenCount"] != 4 || mockllm.CountTokens(text.String()) != 4 {
		t.Errorf("%d chunks, text %q, last %+v", len(cs), text.String(), last)
	}
	cut := chunks(map[string]string{mockllm.HeaderFailAfter: "2"})
	if len(cut) != 2 || cut[1].Candidates[0].FinishReason != "" {
		t.Errorf("cut stream: %d chunks, last %+v", len(cut), cut[len(cut)-1])
	}
}

// TestGeminiErrors: injected statuses, a bad key and bad requests answer
// in Google's error shape.
func TestGeminiErrors(t *testing.T) {
	srv := httptest.NewServer(&mockllm.Server{APIKey: "k"})
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		method string
		body   string
		hdr    map[string]string
		status int
		name2  string
	}{
		{"NoKey", "generateContent", geminiBody, nil, 401, "UNAUTHENTICATED"},
		{"RateLimited", "generateContent", geminiBody, map[string]string{"X-Goog-Api-Key": "k", mockllm.HeaderStatus: "429"}, 429, "RESOURCE_EXHAUSTED"},
		{"Overloaded", "generateContent", geminiBody, map[string]string{"X-Goog-Api-Key": "k", mockllm.HeaderStatus: "503"}, 503, "UNAVAILABLE"},
		{"NoContents", "generateContent", `{"contents":[]}`, map[string]string{"X-Goog-Api-Key": "k"}, 400, "INVALID_ARGUMENT"},
		{"BadRole", "generateContent", `{"contents":[{"role":"bot","parts":[{"text":"x"}]}]}`, map[string]string{"X-Goog-Api-Key": "k"}, 400, "INVALID_ARGUMENT"},
		{"EmptyPart", "generateContent", `{"contents":[{"parts":[{}]}]}`, map[string]string{"X-Goog-Api-Key": "k"}, 400, "INVALID_ARGUMENT"},
		{"StreamWithoutSSE", "streamGenerateContent", geminiBody, map[string]string{"X-Goog-Api-Key": "k"}, 400, "INVALID_ARGUMENT"},
		{"UnknownMethod", "embedContent", geminiBody, map[string]string{"X-Goog-Api-Key": "k"}, 404, "NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, h, body := geminiCall(t, srv.URL, tc.method, tc.body, tc.hdr)
			var e struct {
				Error struct {
					Code    int
					Message string
					Status  string
				}
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || st != tc.status || e.Error.Code != tc.status || e.Error.Status != tc.name2 || e.Error.Message == "" {
				t.Errorf("status %d: %s, want %d %s", st, body, tc.status, tc.name2)
			}
			if tc.status == 429 && h.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		})
	}
}
