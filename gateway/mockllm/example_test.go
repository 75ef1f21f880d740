package mockllm_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"tollgate/gateway/mockllm"
)

// A test runs the mock as a real HTTP server and picks its behaviour per
// request with X-Mock-* headers: here a 3-token completion, then a 429.
func ExampleServer() {
	mock := &mockllm.Server{APIKey: "sk-test"}
	ts := httptest.NewServer(mock)
	defer ts.Close()

	post := func(header, value string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer sk-test")
		req.Header.Set(header, value)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	status, body := post(mockllm.HeaderOutputTokens, "3")
	fmt.Println(status, strings.Contains(body, `"completion_tokens":3`))
	status, _ = post(mockllm.HeaderStatus, "429")
	fmt.Println(status, mock.Count("/v1/chat/completions", 429))
	// Output:
	// 200 true
	// 429 1
}
