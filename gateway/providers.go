package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"tollgate"
)

// Provider kinds: the wire format, and for a preset the base URL, the
// auth header and the usage fields of one provider.
const (
	KindOpenAI      = "openai"       // OpenAI, or any OpenAI-compatible Chat Completions endpoint
	KindAnthropic   = "anthropic"    // the Anthropic Messages API
	KindGemini      = "gemini"       // the Gemini API (generateContent, streamGenerateContent)
	KindAzureOpenAI = "azure-openai" // Azure OpenAI: deployment URLs, api-version, api-key header
	KindDeepSeek    = "deepseek"
	KindDashScope   = "dashscope" // Alibaba Cloud Model Studio (Qwen), compatible mode
	KindMoonshot    = "moonshot"  // Moonshot AI (Kimi)
	KindZhipu       = "zhipu"     // Zhipu AI (GLM), BigModel open platform
	KindArk         = "ark"       // Volcengine Ark (Doubao)
	KindSiliconFlow = "siliconflow"
	KindOpenRouter  = "openrouter"
	KindOllama      = "ollama" // a local Ollama server's OpenAI-compatible API
	KindVLLM        = "vllm"   // a vLLM server's OpenAI-compatible API
)

// DefaultAzureAPIVersion is the api-version of an azure-openai provider
// without one: the latest generally available data-plane inference
// version in Microsoft's Azure OpenAI REST API reference.
const DefaultAzureAPIVersion = "2024-10-21"

// authStyle is how a provider takes its API key.
type authStyle int

const (
	authBearer    authStyle = iota // Authorization: Bearer KEY
	authAzure                      // api-key: KEY, and deployment URLs with ?api-version=
	authAnthropic                  // x-api-key: KEY (the anthropic upstream sets it)
	authGoogle                     // x-goog-api-key: KEY (the gemini upstream sets it)
)

// usageDialect is where an OpenAI-compatible provider reports cached and
// reasoning tokens. Every dialect reads OpenAI's own fields: prompt_tokens
// (every prompt token), completion_tokens (every output token, reasoning
// included), prompt_tokens_details.cached_tokens and
// completion_tokens_details.reasoning_tokens. A dialect adds the fields
// its provider uses besides. A field naming a cache that the dialect does
// not know, with tokens in it, makes the usage unknown: the request is
// billed at the hold's estimate, logged and counted
// (tollgate_gateway_usage_unknown_total), never guessed.
type usageDialect struct {
	name string
	// hits are top-level fields of prompt tokens read from the cache,
	// counted inside prompt_tokens.
	hits []string
	// miss is a top-level field of prompt tokens not read from the cache
	// (known, not needed: prompt_tokens has them).
	miss string
	// write is a prompt_tokens_details field of prompt tokens written to
	// the cache, counted inside prompt_tokens ("" when none).
	write string
}

var (
	usageOpenAI     = &usageDialect{name: "openai"}
	usageDeepSeek   = &usageDialect{name: "deepseek", hits: []string{"prompt_cache_hit_tokens"}, miss: "prompt_cache_miss_tokens"}
	usageMoonshot   = &usageDialect{name: "moonshot", hits: []string{"cached_tokens"}}
	usageOpenRouter = &usageDialect{name: "openrouter", write: "cache_write_tokens"}
	// usageAny knows every dialect's fields: kind openai's (any
	// OpenAI-compatible server), and for callers that do not know the
	// provider.
	usageAny = &usageDialect{name: "any", hits: []string{"prompt_cache_hit_tokens", "cached_tokens"}, miss: "prompt_cache_miss_tokens", write: "cache_write_tokens"}
)

// kindSpec is what a provider kind means. The kinds table below is the
// only list of kinds: Validate and the catalog check against it, and New
// builds each deployment's upstream from it.
type kindSpec struct {
	// baseURL is the default base_url ("" when the file must give one).
	baseURL string
	auth    authStyle
	// usage is the usage dialect of an OpenAI-compatible kind.
	usage *usageDialect
	// up makes the upstream speaking the kind's wire format.
	up func(client *http.Client, clock tollgate.Clock, k *kindSpec) upstream
}

func openAICompatible(client *http.Client, clock tollgate.Clock, k *kindSpec) upstream {
	return &openAI{client: client, clock: clock, kind: k}
}

func geminiUpstream(client *http.Client, clock tollgate.Clock, _ *kindSpec) upstream {
	return &gemini{client: client, clock: clock}
}

func anthropicUpstream(client *http.Client, clock tollgate.Clock, _ *kindSpec) upstream {
	return &anthropic{client: client, clock: clock}
}

// kinds is every provider kind. Each preset was checked (December 2026)
// against the public page named under it; "3rd party" marks a fact read
// from a third party's page where the provider's own was not found:
//
//	kind          default base_url                                  auth                 cached / reasoning tokens in usage
//	openai        https://api.openai.com/v1                         Bearer               prompt_tokens_details.cached_tokens; completion_tokens_details.reasoning_tokens;
//	              and, being any OpenAI-compatible server, every preset's fields below
//	anthropic     https://api.anthropic.com                         x-api-key            cache_read_input_tokens, cache_creation_input_tokens (beside input_tokens)
//	gemini        https://generativelanguage.googleapis.com        x-goog-api-key       usageMetadata: cachedContentTokenCount inside promptTokenCount; thoughtsTokenCount beside candidatesTokenCount
//	              ai.google.dev/api/generate-content (UsageMetadata); native, not OpenAI-compatible (gemini.go)
//	azure-openai  none: https://RESOURCE.openai.azure.com           api-key header       as openai; BASE/openai/deployments/MODEL/chat/completions?api-version=V
//	              learn.microsoft.com/azure/ai-services/openai/reference (data plane inference GA 2024-10-21)
//	deepseek      https://api.deepseek.com                          Bearer               prompt_cache_hit_tokens + prompt_cache_miss_tokens = prompt_tokens; reasoning_tokens as openai
//	              api-docs.deepseek.com/guides/kv_cache, api-docs.deepseek.com/api/create-chat-completion
//	dashscope     https://dashscope.aliyuncs.com/compatible-mode/v1 Bearer               as openai: prompt_tokens_details.cached_tokens, inside prompt_tokens
//	              alibabacloud.com/help/en/model-studio/context-cache
//	moonshot      https://api.moonshot.cn/v1                        Bearer               top-level cached_tokens (moonshot-v1 context caching); prompt_tokens_details.cached_tokens (kimi-k2)
//	              platform.moonshot.cn/docs/api/chat; the kimi-k2 field: 3rd party (openclaw src/agents/usage.ts)
//	zhipu         https://open.bigmodel.cn/api/paas/v4              Bearer               as openai; reasoning inside completion_tokens, not reported apart
//	              base URL and usage shape: 3rd party (docs.aiqji.cn curl example; docs.aispendops.com/providers/zai)
//	ark           https://ark.cn-beijing.volces.com/api/v3          Bearer               as openai: prompt_tokens_details.cached_tokens, completion_tokens_details.reasoning_tokens
//	              Volcengine Ark API reference, Chat API (usage.completion_tokens_details.reasoning_tokens)
//	siliconflow   https://api.siliconflow.cn/v1                     Bearer               as openai, and prompt_cache_hit_tokens / prompt_cache_miss_tokens as deepseek
//	              docs.siliconflow.cn/cn/api-reference/chat-completions/chat-completions
//	openrouter    https://openrouter.ai/api/v1                      Bearer               as openai, and prompt_tokens_details.cache_write_tokens (written to the cache); cost (USD) ignored
//	              openrouter.ai/docs/use-cases/usage-accounting
//	ollama        http://localhost:11434/v1                         none needed          prompt_tokens, completion_tokens only
//	              ollama.com/blog/openai-compatibility
//	vllm          none: the server's own (default :8000/v1)         Bearer (--api-key)   as openai (cached_tokens with --enable-prompt-tokens-details)
//	              docs.vllm.ai OpenAI-compatible server; github.com/vllm-project/vllm/issues/16162
//
// Reasoning tokens are inside completion_tokens with every one of them,
// so they are billed as output; a reasoning_tokens above
// completion_tokens makes the usage unknown.
var kinds = map[string]*kindSpec{
	KindOpenAI:      {baseURL: "https://api.openai.com/v1", usage: usageAny, up: openAICompatible},
	KindAnthropic:   {baseURL: "https://api.anthropic.com", auth: authAnthropic, up: anthropicUpstream},
	KindGemini:      {baseURL: "https://generativelanguage.googleapis.com", auth: authGoogle, up: geminiUpstream},
	KindAzureOpenAI: {auth: authAzure, usage: usageOpenAI, up: openAICompatible},
	KindDeepSeek:    {baseURL: "https://api.deepseek.com", usage: usageDeepSeek, up: openAICompatible},
	KindDashScope:   {baseURL: "https://dashscope.aliyuncs.com/compatible-mode/v1", usage: usageOpenAI, up: openAICompatible},
	KindMoonshot:    {baseURL: "https://api.moonshot.cn/v1", usage: usageMoonshot, up: openAICompatible},
	KindZhipu:       {baseURL: "https://open.bigmodel.cn/api/paas/v4", usage: usageOpenAI, up: openAICompatible},
	KindArk:         {baseURL: "https://ark.cn-beijing.volces.com/api/v3", usage: usageOpenAI, up: openAICompatible},
	KindSiliconFlow: {baseURL: "https://api.siliconflow.cn/v1", usage: usageDeepSeek, up: openAICompatible},
	KindOpenRouter:  {baseURL: "https://openrouter.ai/api/v1", usage: usageOpenRouter, up: openAICompatible},
	KindOllama:      {baseURL: "http://localhost:11434/v1", usage: usageOpenAI, up: openAICompatible},
	KindVLLM:        {usage: usageOpenAI, up: openAICompatible},
}

// Kinds returns every provider kind, sorted.
func Kinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DefaultBaseURL returns a kind's default base URL, "" when a provider of
// that kind must give its own (azure-openai, vllm) or the kind is unknown.
func DefaultBaseURL(kind string) string {
	if k, ok := kinds[kind]; ok {
		return k.baseURL
	}
	return ""
}

// OpenAICompatible reports whether a kind speaks OpenAI's Chat
// Completions (openai, azure-openai and every preset but anthropic).
func OpenAICompatible(kind string) bool {
	k, ok := kinds[kind]
	return ok && k.usage != nil
}

// FieldProblem is one problem of a provider, at one of its fields (the
// JSON name: "kind", "base_url", "api_version", …); Message reads after
// the field's name ("base_url: want an absolute http(s) URL, …").
type FieldProblem struct {
	Field   string
	Message string
}

// Check names the problems of one provider alone (not its name's
// uniqueness): the kind, the base URL (required when the kind has no
// default), api_version (azure-openai only), the timeout and
// api_key_env. Validate and the catalog both use it.
func (p ProviderConfig) Check() []FieldProblem {
	var out []FieldProblem
	bad := func(field, format string, args ...any) {
		out = append(out, FieldProblem{field, fmt.Sprintf(format, args...)})
	}
	k, ok := kinds[p.Kind]
	if !ok {
		bad("kind", "want one of %s, not %q", strings.Join(Kinds(), ", "), p.Kind)
	}
	switch u, err := url.Parse(p.BaseURL); {
	case p.BaseURL == "" && ok && k.baseURL != "":
		// the preset's default
	case p.BaseURL == "" && ok:
		bad("base_url", "required for kind %q, which has no default", p.Kind)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		bad("base_url", "want an absolute http(s) URL, not %q", p.BaseURL)
	case u.RawQuery != "" || u.Fragment != "":
		bad("base_url", "want a URL without a query or fragment, not %q", p.BaseURL)
	}
	if p.APIVersion != "" && p.Kind != KindAzureOpenAI {
		bad("api_version", "only kind %q takes an api_version", KindAzureOpenAI)
	} else if strings.ContainsAny(p.APIVersion, "&#?/ ") {
		bad("api_version", "want a version such as %q, not %q", DefaultAzureAPIVersion, p.APIVersion)
	}
	if p.Timeout < 0 {
		bad("timeout", "must not be negative")
	}
	if looksLikeKey(p.APIKeyEnv) {
		bad("api_key_env", "must name an environment variable, not hold the key")
	}
	return out
}

// withDefaults is p with its kind's default base URL and api-version
// filled in where the file left them out.
func (p ProviderConfig) withDefaults() ProviderConfig {
	if k, ok := kinds[p.Kind]; ok && p.BaseURL == "" {
		p.BaseURL = k.baseURL
	}
	if p.Kind == KindAzureOpenAI && p.APIVersion == "" {
		p.APIVersion = DefaultAzureAPIVersion
	}
	return p
}
