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
		{"BadKind", `{"providers":[{"name":"p","kind":"palm","base_url":"http://x"}],"models":{"m":[{"provider":"p","model":"u"}]}}`, "kind must be"},
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
