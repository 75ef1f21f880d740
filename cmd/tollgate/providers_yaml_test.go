package main

import (
	"strings"
	"testing"
)

// A YAML providers file is read like a JSON one: serve's production
// check names a provider at the mock model in it, and a bad one's
// problem names the field.
func TestProvidersFileYAML(t *testing.T) {
	at := writeFile(t, "providers.yaml", "providers:\n  - {name: up, kind: openai, base_url: 'https://pay.example.com/mockllm/v1'}\n"+
		"models:\n  gpt-4o-mini:\n    - {provider: up, model: gpt-4o-mini}\n")
	if p := (ServeConfig{Providers: at}).mockProviders(); len(p) != 1 || !strings.Contains(p[0], `provider "up" points at the mock model`) {
		t.Fatalf("problems %q", p)
	}
	preset := writeFile(t, "providers.yml", "providers:\n  - {name: ds, kind: deepseek, api_key_env: DEEPSEEK_API_KEY}\n"+
		"models:\n  chat:\n    - {provider: ds, model: deepseek-chat, input_cost_per_1m: 0.27}\n")
	if p := (ServeConfig{Providers: preset}).mockProviders(); len(p) != 0 {
		t.Fatalf("problems %q", p)
	}
	bad := writeFile(t, "providers.yaml", "providers:\n  - {name: up, kind: openai, base_url: 'https://x/v1', key: sk-1}\nmodels: {}\n")
	if p := (ServeConfig{Providers: bad}).mockProviders(); len(p) != 1 || !strings.Contains(p[0], `unknown field "key"`) {
		t.Fatalf("problems %q", p)
	}
}
