// Package gateway is tollgate's OpenAI-compatible proxy: it routes a public
// model name to ordered upstream deployments (OpenAI-compatible, Anthropic
// or Gemini, by provider kind), fails over on connection errors, timeouts, 429 and 5xx with a
// per-deployment circuit breaker, relays SSE streams, and meters every call
// by reserving its worst-case cost through a Meter before going upstream and
// settling the real usage after.
//
// It is not the HTTP surface: authentication and request ids live in
// httpapi, which authenticates a key, stores the tollgate.Caller (account,
// key limits, provisional grant) with tollgate.WithCaller and mounts
// Handler (or the per-route methods). Options.RequestID is the hook for
// httpapi's request ids; Options.Admitter takes Limits, the per-key rate
// limits over a kv.Limiter; Options.Observer takes Metrics, the Prometheus
// metrics; Options.Breaker takes a shared breaker such as
// gateway/redisbreaker. It knows nothing of the ledger or the price table:
// both reach it through Meter and Pricer.
//
// Money rules, in order, for every request that reaches an upstream:
//
//  1. sell what is priced, refuse what is not: what an upstream charges
//     beyond text tokens is sold where the price table prices it for the
//     model, and a 400 naming the field and the missing price before
//     anything is held where not (one check, sellable, over the model and
//     the request's features): the priority tier (service_tier "priority",
//     priority_multiplier), web search (web_search_options and
//     DashScope's enable_search, one call per answer; OpenRouter's web
//     plugin, max_results results; per_web_search), audio output
//     (modalities/audio, audio_output) and input (input_audio parts,
//     audio_input), Anthropic's web_search and web_fetch server tools (per
//     use, per_web_search and per_web_fetch). Other server tools,
//     other OpenRouter plugins and regional inference stay refused;
//  2. hold: prompt tokens (counted with Counter, plus a margin; for a
//     prompt with an image, a file or a document, whose tokens only the
//     upstream can count, the deployments' context window) at the
//     dearest prompt price (input, or a cache write, which an Anthropic
//     upstream may make of any prompt token) and the output cap
//     (max_completion_tokens, else max_tokens, else the deployments'
//     max_output_tokens, capped by both and by the key's limit) times n at
//     the output price, through Meter.Reserve; a refusal is 402 and
//     nothing goes upstream. Sold features are held at their worst case:
//     every output token as audio when audio output is asked for; input
//     audio's tokens at 10 a second of its length (a WAV header's byte
//     rate, else 8 kbit/s, the lowest bit rate taken, so never under the
//     provider's count); max_uses server tool uses (5 when left out, and
//     max_uses 5 then sent upstream), whose results enter the prompt, so
//     it is held at the context window; the priority multiplier;
//  3. settle: the upstream's usage, normalised so that prompt tokens read
//     from and written to the provider's cache are counted inside the
//     prompt, and each kind priced at its own rate (Anthropic charges a
//     cache write above input, a 1-hour one more than a 5-minute one);
//     without usage, the prompt and the delivered output counted with
//     Counter (never zero output when some was delivered); an interrupted
//     stream is billed on what was delivered; never more than held. Units
//     are settled on what the provider reports: OpenAI's
//     prompt_tokens_details.audio_tokens and
//     completion_tokens_details.audio_tokens (priced apart from the text
//     tokens they are counted among), the priority tier only when asked
//     for and the answer's service_tier says "priority", Anthropic's
//     usage.server_tool_use web_search_requests and web_fetch_requests (more
//     than max_uses, the provider's mistake, is billed at the hold); a chat
//     web search is one call per answer of an OpenAI-compatible
//     deployment. The usage record keeps the units (Usage.Units);
//  4. release: a request failing before any output (every deployment down,
//     a 4xx from the upstream, the client leaving) is charged nothing.
//
// POST /v1/responses (OpenAI's Responses API) is metered the same way.
// tollgate keeps no responses: previous_response_id, conversation,
// background and item references are refused and GET or DELETE
// /v1/responses/{id} is 404, because a follow-up could not be routed to
// the upstream that stored the first and storage is a cost nobody is
// billed for; every request goes upstream with store false. A deployment of
// kind openai gets the request natively (BaseURL+"/responses"); the others
// get it translated to chat, and the answer translated back. Built-in
// tools, whose fees per use token usage does not report, are refused in
// one place (unbilledTools).
//
// Provider kinds (providers.go) are one table: a wire format (openai,
// anthropic, azure-openai) or a provider's preset (deepseek, dashscope,
// moonshot, zhipu, ark, siliconflow, openrouter, ollama, vllm), each with
// its default base URL, auth header and usage dialect: where it reports
// cached, cache-write and reasoning tokens, each checked against the
// provider's public API reference (the table names the page). Validate
// and the catalog check kinds against it; a new kind is one entry. A usage
// in fields the dialect does not know is billed at the hold (the provider's
// real usage may be above any estimate; the hold is the most the caller
// agreed to), logged, and counted through UsageObserver
// (tollgate_gateway_usage_unknown_total). The providers file is JSON or
// YAML (ParseConfigFile), decoded strictly either way. Upstreams are the
// operator's configuration: a local one (ollama, vllm) is called as
// configured, with no private-address guard.
//
// Beyond chat, messages and embeddings (tokens), the gateway serves, on
// OpenAI-compatible deployments: POST /v1/images/generations, held for n
// images at the model's per-image price of the size and quality asked
// and settled on the images returned; POST /v1/audio/speech, held and
// settled on the input's characters; POST /v1/audio/transcriptions,
// whose file's duration is measured before the hold (audioDuration: WAV,
// MP3, FLAC; anything else is a 400) and held rounded up plus 2% and a
// second, settled on the seconds the upstream reports, never above the
// hold (the measured seconds when it reports none); legacy
// POST /v1/completions, metered as chat; POST /v1/moderations, free (no
// hold, no usage record); GET /v1/models/{id}. A unit the model has no
// price for (an image size, speech characters, audio minutes) is a 400
// before anything is held. These answers give their cost in CostHeader.
//
// Answers carry usage.cost_credits: in the JSON body, in the usage chunk of
// a stream when the client asked for stream_options.include_usage (the
// gateway always asks OpenAI-compatible upstreams for usage and strips the
// chunk otherwise), else on the last chunk before [DONE].
//
// Clients speak three APIs, each served from every deployment kind: chat
// (/v1/chat/completions), Anthropic's Messages (/v1/messages) and
// Gemini's generateContent (/v1beta/models/{model}:generateContent and
// :streamGenerateContent, also under /v1/models/). Each upstream kind
// implements one interface in chat's shape (upstream), so a Messages or
// Gemini request is translated to chat and back; an Anthropic upstream
// also takes Messages requests as sent. A gemini upstream's usageMetadata
// is normalised like the others: toolUsePromptTokenCount is prompt,
// cachedContentTokenCount the cached part of the prompt, thoughtsTokenCount
// output; a usage count the gateway does not know is billed at the hold.
package gateway
