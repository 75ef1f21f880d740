// Package mockllm is a deterministic OpenAI-, Anthropic- and Gemini-compatible LLM
// upstream for tollgate's tests, demo and load benchmarks. It is a real
// http.Handler (Server) with failure knobs; it is not a model and not a
// proxy.
//
// # Determinism
//
// The same request gives the same response bytes, ids included: ids are
// derived from a hash of the model and the messages; only "created" comes
// from Server.Clock. The x-request-id (OpenAI) and request-id (Anthropic)
// headers number requests per server.
//
// # Tokens
//
// The tokenizer is CountTokens: whitespace-separated words. Prompt usage is
// CountTokens over the text of every message (system prompt, instructions,
// text parts, tool results); roles, images, tool definitions and formatting
// are free. POST /v1/messages/count_tokens answers the same count.
//
// A completion is OutputTokens words (default DefaultOutputTokens = 16,
// changed by Server.OutputTokens or the X-Mock-Output-Tokens header) drawn
// from a fixed vocabulary by a generator seeded with a hash of the prompt
// (choice i of n gets its own seed). Every word is one token: the first
// has no leading space, the others have one. With response_format
// json_object (or json_schema) the content is {"answer":"<words>"}, where
// the opening {"answer":" and the closing "} are one token each. The usage
// reported is exactly the number of pieces, and a stream sends exactly one
// content delta per token, so a client counting deltas can verify usage.
//
// max_tokens / max_completion_tokens / max_output_tokens cut the
// completion (finish_reason "length", stop_reason "max_tokens", Responses
// status "incomplete"). A stop sequence ends the completion before the
// token that completes it (finish_reason "stop", stop_reason
// "stop_sequence").
//
// Cached prompt tokens are whatever Server.CachedTokens or the
// X-Mock-Cached-Tokens header says (capped at the prompt): OpenAI reports
// them inside prompt_tokens as prompt_tokens_details.cached_tokens;
// Anthropic reports them apart, as cache_read_input_tokens, with
// cache_creation_input_tokens from CacheCreationTokens /
// X-Mock-Cache-Creation-Tokens (of which CacheCreation1hTokens /
// X-Mock-Cache-Creation-1h-Tokens are split out in cache_creation as
// written to a 1-hour cache), and input_tokens the rest.
//
// Reasoning tokens are Server.ReasoningTokens or X-Mock-Reasoning-Tokens of
// the completion (capped at it), reported inside completion_tokens as
// completion_tokens_details.reasoning_tokens.
//
// # Usage dialects
//
// Chat usage is reported in one provider's fields, selected by
// Server.UsageDialect, the X-Mock-Usage-Dialect header or a path prefix
// /usage/NAME/ (so a gateway provider's base_url selects it): openai (the
// default; also azure-openai, dashscope, zhipu, ark, vllm), deepseek
// (prompt_cache_hit_tokens and prompt_cache_miss_tokens), siliconflow
// (both), moonshot (top-level cached_tokens), openrouter (cache writes
// from CacheCreationTokens as prompt_tokens_details.cache_write_tokens,
// and a cost), ollama or plain (counts only), and two faults: unknown
// (input_tokens and output_tokens) and unknown-cache (a cache_read_tokens
// no provider uses). UsageDialects lists them. Azure's deployment URLs
// (/openai/deployments/NAME/chat/completions or /embeddings, with the
// api-version query parameter, else 404) take the api-key header.
//
// Units beyond text tokens, reported when asked for: an OpenAI chat answer
// says service_tier "priority" when the request asked for it, else
// "default" (Server.ServiceTier / X-Mock-Service-Tier overrides it);
// input_audio parts count 10 audio tokens a second of audio (a WAV's
// seconds from its header, any other at 128 kbit/s), reported as
// prompt_tokens_details.audio_tokens and counted in prompt_tokens; with
// modalities holding "audio", every completion token is reported as
// completion_tokens_details.audio_tokens. An Anthropic answer to a request
// offering a web_search_* or web_fetch_* tool reports
// usage.server_tool_use web_search_requests and web_fetch_requests: one
// each, or Server.WebSearches / WebFetches (X-Mock-Web-Searches,
// X-Mock-Web-Fetches), which may exceed max_uses to test a provider that
// does.
//
// # Tool calls
//
// When a request offers tools, the answer is one call (finish_reason
// "tool_calls", stop_reason "tool_use") if tool_choice names a tool
// (OpenAI {"type":"function","function":{"name":N}}, Anthropic
// {"type":"tool","name":N}), if tool_choice is "required" / {"type":"any"}
// (the tool named in the message, else the first), or if the last user
// message contains "call <name>" for an offered tool. tool_choice "none"
// forbids calls. The arguments are a JSON object with every property of
// the tool's schema, in name order, filled deterministically (a word for
// strings, a number below 100 for numbers, true, [], {}, an enum member).
// A call costs one token for its name plus one per 8-byte argument
// fragment; streams send the name (OpenAI: its own delta; Anthropic: in
// content_block_start), then one delta per fragment. A Responses request
// (tools {"type":"function","name":N,"parameters":…}, a named tool_choice
// {"type":"function","name":N}) is answered with one function_call output
// item; its stream sends the item (with the name) in output_item.added,
// one function_call_arguments.delta per fragment, then
// function_call_arguments.done. A function_call_output input item's
// output counts as prompt, a function_call item does not.
//
// # Embeddings
//
// POST /v1/embeddings answers Vector(input, dimensions) for each input
// (default DefaultEmbeddingDimensions), as floats or base64 float32
// little-endian; usage is CountTokens of the inputs (token-id arrays count
// their length).
//
// # Gemini
//
// POST /v1beta/models/{model}:generateContent and
// :streamGenerateContent?alt=sse speak the Gemini API: the key in
// x-goog-api-key (or ?key=), contents of user and model turns with text,
// inlineData, fileData, functionCall and functionResponse parts (one per
// part, else 400), systemInstruction, generationConfig (maxOutputTokens
// cuts with finishReason MAX_TOKENS, stopSequences, candidateCount,
// responseMimeType application/json), tools' functionDeclarations and
// toolConfig.functionCallingConfig (ANY forces a call, to the one
// allowedFunctionNames when there is one; NONE forbids). usageMetadata
// reports promptTokenCount (cached content inside it:
// cachedContentTokenCount from CachedTokens), candidatesTokenCount,
// thoughtsTokenCount from ThoughtsTokens / X-Mock-Thoughts-Tokens, and
// totalTokenCount. A stream is one data event per token of each candidate
// in turn (a function call whole, in one event), every event with the
// prompt's usage and the last with the finishReason and the final usage;
// there is no end marker. Errors use Google's shape,
// {"error":{"code","message","status"}}. Stats count the full path.
//
// # Images, audio, moderations, legacy completions
//
// POST /v1/images/generations answers n images, each Image(prompt, i) (a
// deterministic 8x8 PNG), as b64_json or, for response_format url, as a
// data: URL; no usage, as dall-e. POST /v1/audio/speech answers
// Speech(input): a WAV file of SpeechMillisPerChar of tone per character,
// whatever response_format asks. POST /v1/audio/transcriptions (multipart
// file and model) answers a text of one word per KiB of the file and, in
// json, usage {"type":"duration","seconds"} of AudioSeconds(file) (a WAV
// file's true length, else its size at 16,000 bytes a second), or
// TranscriptionSeconds / X-Mock-Audio-Seconds when set; verbose_json
// gives it as duration, text, srt and vtt give none. POST /v1/moderations
// flags an input containing FlagWord (category violence). POST
// /v1/completions answers each prompt as chat does, cut by max_tokens
// (default 16). Every knob but FailAfter (nothing is streamed) applies.
//
// # Knobs
//
// Every knob is an exported Server field and a per-request X-Mock-* header
// (see the Header constants), so one server can serve tests with different
// behaviours at the same time: latency before the first byte, tokens per
// second, output length, error rates (one rate over 429, 500 and 503, or
// a rate per status; a seeded sequence; 429 carries Retry-After), a fixed
// failure status, a stream cut after K events
// (the connection is aborted), missing usage, hanging until the client
// leaves, cached tokens. Errors use each API's own JSON shape. Counters
// of requests by path and status are read with Count, Stats and
// GET /mock/stats.
//
// A request meets the knobs in this order: API key (401), X-Mock-* headers
// (400 for an unknown header or a bad value), latency, hang, injected
// status (Status, then ErrorRate), then the request's own validation
// (400). A gateway in front of the mock must forward X-Mock-* headers for
// per-request knobs to reach it; otherwise set the fields.
//
// Streams that are neither paced nor cut are written without a flush per
// event (the connection's buffer coalesces them, as TCP would for a fast
// upstream); the bytes, and so every parsed event, are the same.
package mockllm
