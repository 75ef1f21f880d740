package gateway_test

import (
	"strings"
	"testing"

	"tollgate/gateway"
)

func TestParseConfig(t *testing.T) {
	const good = `{
	  "providers": [
	    {"name": "openai", "kind": "openai", "base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY", "timeout": "30s"},
	    {"name": "claude", "kind": "anthropic", "base_url": "https://api.anthropic.com", "api_key_env": "ANTHROPIC_API_KEY", "timeout": 20}
	  ],
	  "models": {
	    "gpt-4o": [
	      {"provider": "openai", "model": "gpt-4o", "weight": 3, "input_cost_per_1m": "2.50", "output_cost_per_1m": "10", "max_output_tokens": 16384},
	      {"provider": "claude", "model": "claude-sonnet-4-5", "priority": 1}
	    ]
	  }
	}`
	cfg, err := gateway.ParseConfig([]byte(good))
	if err != nil {
		t.Fatalf("good config: %v", err)
	}
	env := map[string]string{"OPENAI_API_KEY": "sk-a", "ANTHROPIC_API_KEY": "sk-b"}
	if err := cfg.Resolve(func(k string) string { return env[k] }); err != nil || cfg.Providers[1].APIKey != "sk-b" {
		t.Fatalf("resolve: %v", err)
	}
	if err := cfg.Resolve(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "OPENAI_API_KEY") {
		t.Fatalf("unset key variable: %v", err)
	}
	for _, tc := range []struct {
		name, json, want string
	}{
		{"UnknownField", `{"providers":[],"models":{},"api_key":"x"}`, "unknown field"},
		{"NoModels", `{"providers":[]}`, "at least one model"},
		{"BadKind", `{"providers":[{"name":"p","kind":"palm","base_url":"http://x"}],"models":{"m":[{"provider":"p","model":"u"}]}}`, "kind: want one of"},
		{"BadURL", `{"providers":[{"name":"p","kind":"openai","base_url":"x"}],"models":{"m":[{"provider":"p","model":"u"}]}}`, "base_url"},
		{"KeyInFile", `{"providers":[{"name":"p","kind":"openai","base_url":"http://x","api_key_env":"sk-live-123"}],"models":{"m":[{"provider":"p","model":"u"}]}}`, "not hold the key"},
		{"DuplicateProvider", `{"providers":[{"name":"p","kind":"openai","base_url":"http://x"},{"name":"p","kind":"openai","base_url":"http://y"}],"models":{"m":[{"provider":"p","model":"u"}]}}`, "duplicate"},
		{"UnknownProvider", `{"providers":[],"models":{"m":[{"provider":"q","model":"u"}]}}`, "unknown provider"},
		{"NoDeployments", `{"providers":[],"models":{"m":[]}}`, "at least one deployment"},
		{"NoUpstreamModel", `{"providers":[{"name":"p","kind":"openai","base_url":"http://x"}],"models":{"m":[{"provider":"p"}]}}`, "upstream name"},
		{"BadCost", `{"providers":[{"name":"p","kind":"openai","base_url":"http://x"}],"models":{"m":[{"provider":"p","model":"u","input_cost_per_1m":"1e3"}]}}`, "not a decimal"},
		{"NegativeWeight", `{"providers":[{"name":"p","kind":"openai","base_url":"http://x"}],"models":{"m":[{"provider":"p","model":"u","weight":-1}]}}`, "negative"},
		{"NegativeContext", `{"providers":[{"name":"p","kind":"openai","base_url":"http://x"}],"models":{"m":[{"provider":"p","model":"u","context_tokens":-1}]}}`, "context_tokens must not be negative"},
		{"BadCacheWriteCost", `{"providers":[{"name":"p","kind":"openai","base_url":"http://x"}],"models":{"m":[{"provider":"p","model":"u","cache_write_cost_per_1m":"1.2.3"}]}}`, "not a decimal"},
		{"BadTimeout", `{"providers":[{"name":"p","kind":"openai","base_url":"http://x","timeout":"soon"}],"models":{"m":[{"provider":"p","model":"u"}]}}`, "duration"},
		{"AzureWithoutBaseURL", `{"providers":[{"name":"p","kind":"azure-openai"}],"models":{"m":[{"provider":"p","model":"u"}]}}`, `base_url: required for kind "azure-openai"`},
		{"VLLMWithoutBaseURL", `{"providers":[{"name":"p","kind":"vllm"}],"models":{"m":[{"provider":"p","model":"u"}]}}`, `base_url: required for kind "vllm"`},
		{"APIVersionNotAzure", `{"providers":[{"name":"p","kind":"deepseek","api_version":"2024-10-21"}],"models":{"m":[{"provider":"p","model":"u"}]}}`, "api_version: only kind"},
		{"BadAPIVersion", `{"providers":[{"name":"p","kind":"azure-openai","base_url":"https://r.openai.azure.com","api_version":"x&y=1"}],"models":{"m":[{"provider":"p","model":"u"}]}}`, "api_version: want a version"},
		{"QueryInBaseURL", `{"providers":[{"name":"p","kind":"openai","base_url":"http://x/v1?a=1"}],"models":{"m":[{"provider":"p","model":"u"}]}}`, "query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gateway.ParseConfig([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDefaultMockProvidersIsValid(t *testing.T) {
	cfg := gateway.DefaultMockProviders("http://127.0.0.1:9999/")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := gateway.New(cfg, gateway.Options{Meter: newFakeMeter(t, 1), Pricer: fakePricer{}}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfigExample(t *testing.T) {
	for _, k := range []string{"OPENAI_API_KEY", "DEEPSEEK_API_KEY", "ANTHROPIC_API_KEY"} {
		t.Setenv(k, "test-"+k)
	}
	cfg, err := gateway.LoadConfig("testdata/providers.json")
	if err != nil {
		t.Fatal(err)
	}
	d, ok := cfg.Deployment("deepseek/deepseek-chat")
	if !ok || d.OutputCostPer1M != "1.10" || cfg.Providers[2].APIKey != "test-ANTHROPIC_API_KEY" {
		t.Fatalf("deployment %+v %v", d, ok)
	}
	t.Setenv("DEEPSEEK_API_KEY", "")
	if _, err := gateway.LoadConfig("testdata/providers.json"); err == nil || !strings.Contains(err.Error(), "DEEPSEEK_API_KEY") {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := gateway.LoadConfig("testdata/nope.json"); err == nil {
		t.Fatal("missing file accepted")
	}
}

// TestKindsAndPresets: every preset's base URL is its default, a kind's
// name is the one the issue gives, and a file may leave base_url out.
func TestKindsAndPresets(t *testing.T) {
	want := map[string]string{
		"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com", "azure-openai": "",
		"deepseek": "https://api.deepseek.com", "dashscope": "https://dashscope.aliyuncs.com/compatible-mode/v1",
		"moonshot": "https://api.moonshot.cn/v1", "zhipu": "https://open.bigmodel.cn/api/paas/v4",
		"ark": "https://ark.cn-beijing.volces.com/api/v3", "siliconflow": "https://api.siliconflow.cn/v1",
		"openrouter": "https://openrouter.ai/api/v1", "ollama": "http://localhost:11434/v1", "vllm": "",
	}
	for k, u := range want {
		if got := gateway.DefaultBaseURL(k); got != u {
			t.Errorf("%s: base URL %q, want %q", k, got, u)
		}
	}
	for _, k := range gateway.Kinds() {
		if _, ok := want[k]; !ok && k != "gemini" { // gemini: its own helper's
			t.Errorf("kind %q not covered here", k)
		}
	}
	cfg, err := gateway.ParseConfig([]byte(`{"providers":[{"name":"ds","kind":"deepseek","api_key_env":"DS_KEY"},{"name":"local","kind":"ollama"}],
		"models":{"m":[{"provider":"ds","model":"deepseek-chat"},{"provider":"local","model":"qwen3"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Providers[0].BaseURL != "" {
		t.Fatalf("ParseConfig changed the file's base_url: %q", cfg.Providers[0].BaseURL)
	}
}

func TestParseConfigFileYAML(t *testing.T) {
	const y = `
providers:
  - name: deepseek
    kind: deepseek
    api_key_env: DEEPSEEK_API_KEY
    timeout: 90s
  - name: azure
    kind: azure-openai
    base_url: https://example.openai.azure.com
    api_version: "2024-10-21"
    timeout: 30
models:
  chat-default:
    - provider: deepseek
      model: deepseek-chat
      input_cost_per_1m: 0.27
      cached_input_cost_per_1m: "0.07"
      output_cost_per_1m: 1
      max_output_tokens: 8192
    - provider: azure
      model: my-gpt-4o-deployment
      priority: 1
`
	cfg, err := gateway.ParseConfigFile("providers.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	d, ok := cfg.Deployment("deepseek/deepseek-chat")
	if !ok || d.InputCostPer1M != "0.27" || d.CachedInputCostPer1M != "0.07" || d.OutputCostPer1M != "1" || d.MaxOutputTokens != 8192 {
		t.Fatalf("deployment %+v %v", d, ok)
	}
	if p := cfg.Providers[1]; p.APIVersion != "2024-10-21" || p.Kind != gateway.KindAzureOpenAI || p.Timeout != gateway.Duration(30e9) {
		t.Fatalf("azure provider %+v", p)
	}
	if _, err := gateway.ParseConfigFile("p.JSON", []byte(`{"providers":[{"name":"o","kind":"ollama"}],"models":{"m":[{"provider":"o","model":"x"}]}}`)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, file, body, want string }{
		{"UnknownField", "p.yaml", "providers:\n  - name: a\n    kind: openai\n    api_key: sk-123\nmodels:\n  m:\n    - provider: a\n      model: x\n", `unknown field "api_key"`},
		{"DuplicateKey", "p.yml", "providers: []\nproviders: []\nmodels: {}\n", "providers"},
		{"WrongType", "p.yaml", "providers:\n  - name: a\n    kind: openai\nmodels:\n  m:\n    - provider: a\n      model: x\n      weight: heavy\n", "weight"},
		{"BadKind", "p.yaml", "providers:\n  - name: a\n    kind: palm\nmodels:\n  m:\n    - provider: a\n      model: x\n", "kind: want one of"},
		{"NotYAML", "p.yaml", "providers: [\n", "not valid YAML"},
		{"Empty", "p.yaml", "", "empty"},
		{"Extension", "p.toml", "", "must end in .json, .yaml or .yml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gateway.ParseConfigFile(tc.file, []byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
