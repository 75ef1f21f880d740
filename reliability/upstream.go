package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// The public models of the harness's providers file. Both are priced by
// pricing/default.json (serve prices a providers file's models by their
// public name): ChatModel is what the users chat on, served by a flaky
// mock with failover to a healthy one; SlowModel ("mock": 1 credit per
// input token, 2 per output token) is served by a slow mock and used by
// the S9 contention phase.
const (
	ChatModel = "gpt-4o-mini"
	SlowModel = "mock"
	// SlowMaxOutput is the slow deployment's output cap; the slow mock
	// writes that many tokens, so a completion always reaches max_tokens.
	SlowMaxOutput = 20000
)

// Upstreams are the `tollgate mockllm` processes the instances call
// through the providers file File.
type Upstreams struct {
	Flaky, Healthy, Slow string // base URLs (without /v1)
	File                 string // providers file for serve --providers

	procs []*Process
}

// StartUpstreams starts three mock LLMs: a flaky one (5% of answers 429,
// 500 or 503, seeded from the run seed), a healthy one the gateway fails
// over to, and a slow one (300 ms before the first byte, SlowMaxOutput
// tokens per completion); and writes the providers file.
func StartUpstreams(ctx context.Context, bin, dir string, seed int64, log io.Writer) (*Upstreams, error) {
	u := &Upstreams{}
	var err error
	start := func(name string, args ...string) string {
		if err != nil {
			return ""
		}
		var p *Process
		var url string
		p, url, err = mockLLM(ctx, bin, name, log, args...)
		if p != nil {
			u.procs = append(u.procs, p)
		}
		return url
	}
	u.Flaky = start("mock-flaky", "--error-rate", "0.05", "--seed", fmt.Sprint(uint64(seed)))
	u.Healthy = start("mock-healthy")
	u.Slow = start("mock-slow", "--latency", "300ms", "--output-tokens", fmt.Sprint(SlowMaxOutput))
	if err != nil {
		return u, err
	}
	type dep struct {
		Provider        string `json:"provider"`
		Model           string `json:"model"`
		Weight          int    `json:"weight"`
		Priority        int    `json:"priority,omitempty"`
		MaxOutputTokens int    `json:"max_output_tokens"`
	}
	type prov struct {
		Name    string `json:"name"`
		Kind    string `json:"kind"`
		BaseURL string `json:"base_url"`
		Timeout string `json:"timeout"`
	}
	cfg := struct {
		Providers []prov           `json:"providers"`
		Models    map[string][]dep `json:"models"`
	}{
		Providers: []prov{
			{"flaky", "openai", u.Flaky + "/v1", "30s"},
			{"healthy", "openai", u.Healthy + "/v1", "30s"},
			{"slow", "openai", u.Slow + "/v1", "60s"},
		},
		Models: map[string][]dep{
			ChatModel: {
				{Provider: "flaky", Model: "gpt-4o-mini", Weight: 1, MaxOutputTokens: 64},
				{Provider: "healthy", Model: "gpt-4o-mini", Weight: 1, Priority: 1, MaxOutputTokens: 64},
			},
			SlowModel: {{Provider: "slow", Model: "gpt-4o-mini", Weight: 1, MaxOutputTokens: SlowMaxOutput}},
		},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return u, err
	}
	u.File = filepath.Join(dir, "providers.json")
	return u, os.WriteFile(u.File, b, 0o600)
}

// Close stops the mocks.
func (u *Upstreams) Close() {
	for _, p := range u.procs {
		p.Stop(5 * time.Second)
	}
}

// MockStats reads a mock's request counters: chat completions by status.
func MockStats(ctx context.Context, base string) (map[string]int64, error) {
	var s struct {
		Requests map[string]map[string]int64 `json:"requests"`
	}
	if err := getJSON(ctx, base+"/mock/stats", &s); err != nil {
		return nil, err
	}
	return s.Requests["/v1/chat/completions"], nil
}

func mockLLM(ctx context.Context, bin, name string, log io.Writer, args ...string) (*Process, string, error) {
	p := &Process{Name: name, Bin: bin, Args: append([]string{"mockllm", "--addr", "127.0.0.1:0"}, args...), Log: log}
	u, err := startForURL(ctx, p, "mock LLM listening on ")
	if err != nil {
		return nil, "", err
	}
	return p, u, nil
}
