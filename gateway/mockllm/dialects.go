package mockllm

import (
	"net/http"
	"sort"
	"strings"
)

// Usage dialects: where a provider's OpenAI-compatible chat usage reports
// cached, cache-write and reasoning tokens. Selected per server
// (Server.UsageDialect), per request (X-Mock-Usage-Dialect) or by a path
// prefix (/usage/NAME/v1/chat/completions), so a gateway's provider of
// that kind can point its base_url at the mock.
const (
	dialectOpenAI       = "openai"        // prompt_tokens_details.cached_tokens, completion_tokens_details.reasoning_tokens
	dialectDeepSeek     = "deepseek"      // prompt_cache_hit_tokens, prompt_cache_miss_tokens; reasoning as openai
	dialectSiliconFlow  = "siliconflow"   // both openai's and deepseek's fields
	dialectMoonshot     = "moonshot"      // top-level cached_tokens
	dialectOpenRouter   = "openrouter"    // openai's, with prompt_tokens_details.cache_write_tokens and cost
	dialectPlain        = "plain"         // prompt_tokens, completion_tokens, total_tokens only (ollama)
	dialectUnknown      = "unknown"       // counts in input_tokens / output_tokens: fields an OpenAI client does not know
	dialectUnknownCache = "unknown-cache" // openai's counts, cached tokens in a top-level cache_read_tokens
)

// usageDialects maps each name the mock takes (the dialects and
// tollgate's provider kinds) to its dialect.
var usageDialects = map[string]string{
	"": dialectOpenAI, dialectOpenAI: dialectOpenAI, "azure-openai": dialectOpenAI, "dashscope": dialectOpenAI,
	"zhipu": dialectOpenAI, "ark": dialectOpenAI, "vllm": dialectOpenAI,
	dialectDeepSeek: dialectDeepSeek, dialectSiliconFlow: dialectSiliconFlow, dialectMoonshot: dialectMoonshot,
	dialectOpenRouter: dialectOpenRouter, dialectPlain: dialectPlain, "ollama": dialectPlain,
	dialectUnknown: dialectUnknown, dialectUnknownCache: dialectUnknownCache,
}

// UsageDialects returns the names Server.UsageDialect, the
// X-Mock-Usage-Dialect header and the /usage/NAME/ path prefix take.
func UsageDialects() []string {
	var out []string
	for k := range usageDialects {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// routePath is the route of r with its prefixes taken off: /usage/NAME
// (the usage dialect) and Azure's /openai/deployments/DEPLOYMENT/…
// (which needs the api-version query parameter, as Azure does). msg is
// the 404's message when a prefix is wrong.
func routePath(r *http.Request) (path, dialect string, azure bool, msg string) {
	path = r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/usage/"); ok {
		name, tail, _ := strings.Cut(rest, "/")
		if _, ok := usageDialects[name]; !ok || name == "" {
			return "", "", false, "mockllm: unknown usage dialect " + name + " (one of " + strings.Join(UsageDialects(), ", ") + ")"
		}
		dialect, path = name, "/"+tail
	}
	if rest, ok := strings.CutPrefix(path, "/openai/deployments/"); ok {
		dep, tail, _ := strings.Cut(rest, "/")
		if dep == "" || (tail != "chat/completions" && tail != "embeddings") {
			return "", "", false, "mockllm does not model " + r.Method + " " + r.URL.Path
		}
		if r.URL.Query().Get("api-version") == "" {
			return "", "", false, "mockllm: Azure OpenAI requires the api-version query parameter"
		}
		path, azure = "/v1/"+tail, true
	}
	return path, dialect, azure, ""
}

// appendUsage appends the chat usage object in the answer's dialect. Every
// count is the same answer's: prompt_tokens (cached and cache writes
// inside), completion_tokens (reasoning inside).
func (a *chatAnswer) appendUsage(buf []byte) []byte {
	// Audio input tokens are counted in prompt_tokens (audio output is
	// among the completion's tokens already).
	p, c := int64(a.prompt.tokens+a.audioIn), int64(a.completion)
	cached, write, reasoning := int64(a.cached), int64(a.cacheWrite), int64(a.reasoning)
	num := func(name string, v int64) {
		buf = append(buf, `"`...)
		buf = append(buf, name...)
		buf = append(buf, `":`...)
		buf = appendInt(buf, v)
	}
	counts := func(in, out string) {
		buf = append(buf, '{')
		num(in, p)
		buf = append(buf, ',')
		num(out, c)
		buf = append(buf, ',')
		num("total_tokens", p+c)
	}
	reasoningDetails := func() {
		buf = append(buf, `,"completion_tokens_details":{`...)
		num("reasoning_tokens", reasoning)
		buf = append(buf, '}')
	}
	switch usageDialects[a.dialect] {
	case dialectDeepSeek:
		counts("prompt_tokens", "completion_tokens")
		buf = append(buf, ',')
		num("prompt_cache_hit_tokens", cached)
		buf = append(buf, ',')
		num("prompt_cache_miss_tokens", p-cached)
		reasoningDetails()
	case dialectSiliconFlow:
		counts("prompt_tokens", "completion_tokens")
		reasoningDetails()
		buf = append(buf, `,"prompt_tokens_details":{`...)
		num("cached_tokens", cached)
		buf = append(buf, `},`...)
		num("prompt_cache_hit_tokens", cached)
		buf = append(buf, ',')
		num("prompt_cache_miss_tokens", p-cached)
	case dialectMoonshot:
		counts("prompt_tokens", "completion_tokens")
		buf = append(buf, ',')
		num("cached_tokens", cached)
	case dialectOpenRouter:
		counts("prompt_tokens", "completion_tokens")
		buf = append(buf, `,"prompt_tokens_details":{`...)
		num("cached_tokens", cached)
		buf = append(buf, ',')
		num("cache_write_tokens", write)
		buf = append(buf, `,"audio_tokens":0}`...)
		reasoningDetails()
		buf = append(buf, `,"cost":0.0001,"is_byok":false`...)
	case dialectPlain:
		counts("prompt_tokens", "completion_tokens")
	case dialectUnknown:
		counts("input_tokens", "output_tokens")
	case dialectUnknownCache:
		counts("prompt_tokens", "completion_tokens")
		buf = append(buf, ',')
		num("cache_read_tokens", cached)
	default:
		counts("prompt_tokens", "completion_tokens")
		buf = append(buf, `,"prompt_tokens_details":{`...)
		num("cached_tokens", cached)
		buf = append(buf, ',')
		num("audio_tokens", int64(a.audioIn))
		buf = append(buf, `},"completion_tokens_details":{`...)
		num("reasoning_tokens", reasoning)
		buf = append(buf, ',')
		num("audio_tokens", int64(a.audioOut))
		buf = append(buf, `,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}`...)
	}
	return append(buf, '}')
}
