package gateway_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
)

// wav is a WAV file of seconds of 16 kHz 8-bit mono audio (16,000 bytes a
// second), base64.
func wav(seconds int) string {
	data := make([]byte, 16000*seconds)
	h := make([]byte, 44)
	copy(h, "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+len(data)))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], 1)
	binary.LittleEndian.PutUint32(h[24:], 16000)
	binary.LittleEndian.PutUint32(h[28:], 16000)
	binary.LittleEndian.PutUint16(h[32:], 1)
	binary.LittleEndian.PutUint16(h[34:], 8)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(len(data)))
	return base64.StdEncoding.EncodeToString(append(h, data...))
}

// TestSellPricedFeatures: what providers bill beyond text tokens (the
// priority tier, web search, audio in and out, Anthropic's server tools)
// goes through when the model prices it, held at its worst case and
// settled on what the mock provider reports: the balance moves by exactly
// usage.cost_credits, never more than held, and the usage record keeps the
// units. fakePricer{units: true}: 1 per input token, 2 per output token, 3
// per audio input token, 4 per audio output token, 100 per web search, 50
// per web fetch, the priority tier doubling the tokens' price.
func TestSellPricedFeatures(t *testing.T) {
	const ask = `"max_tokens":50,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"tell me four words"}]`
	audioAsk := `"max_tokens":50,"messages":[{"role":"user","content":[{"type":"text","text":"tell me four words"},{"type":"input_audio","input_audio":{"data":"` + wav(2) + `","format":"wav"}}]}]`
	for _, tc := range []struct {
		name    string
		openai  *mockllm.Server
		anth    *mockllm.Server
		path    string
		body    string
		credits int64           // charged: the usage reported at the prices above
		units   tollgate.Tokens // recorded
		atHold  bool            // billed at the hold
	}{
		// 6 prompt tokens, 8 output: 6 + 16 = 22 at the standard tier.
		{name: "PriorityServed", openai: &mockllm.Server{OutputTokens: 8}, path: "/v1/chat/completions",
			body: `{"model":"mock-gpt","service_tier":"priority",` + ask + `}`, credits: 44, units: tollgate.Tokens{Priority: true}},
		{name: "PriorityServedStream", openai: &mockllm.Server{OutputTokens: 8}, path: "/v1/chat/completions",
			body: `{"model":"mock-gpt","stream":true,"service_tier":"priority",` + ask + `}`, credits: 44, units: tollgate.Tokens{Priority: true}},
		{name: "PriorityAskedServedDefault", openai: &mockllm.Server{OutputTokens: 8, ServiceTier: "default"}, path: "/v1/chat/completions",
			body: `{"model":"mock-gpt","service_tier":"priority",` + ask + `}`, credits: 22},
		{name: "PriorityServedNotAsked", openai: &mockllm.Server{OutputTokens: 8, ServiceTier: "priority"}, path: "/v1/chat/completions",
			body: `{"model":"mock-gpt",` + ask + `}`, credits: 22},
		{name: "WebSearchOptions", openai: &mockllm.Server{OutputTokens: 8}, path: "/v1/chat/completions",
			body: `{"model":"mock-gpt","web_search_options":{},` + ask + `}`, credits: 122, units: tollgate.Tokens{WebSearches: 1}},
		{name: "DashScopeSearchStream", openai: &mockllm.Server{OutputTokens: 8}, path: "/v1/chat/completions",
			body: `{"model":"mock-gpt","stream":true,"enable_search":true,` + ask + `}`, credits: 122, units: tollgate.Tokens{WebSearches: 1}},
		// The 8 output tokens are audio: 6 + 4×8.
		{name: "AudioOut", openai: &mockllm.Server{OutputTokens: 8}, path: "/v1/chat/completions",
			body: `{"model":"mock-gpt","modalities":["text","audio"],"audio":{"voice":"alloy","format":"wav"},` + ask + `}`, credits: 38,
			units: tollgate.Tokens{AudioOutput: 8}},
		// 4 text tokens and 2 s of audio (20 tokens): 4 + 3×20 + 2×8.
		{name: "AudioIn", openai: &mockllm.Server{OutputTokens: 8}, path: "/v1/chat/completions",
			body: `{"model":"mock-gpt",` + audioAsk + `}`, credits: 80, units: tollgate.Tokens{AudioInput: 20}},
		{name: "AudioInStream", openai: &mockllm.Server{OutputTokens: 8}, path: "/v1/chat/completions",
			body: `{"model":"mock-gpt","stream":true,` + audioAsk + `}`, credits: 80, units: tollgate.Tokens{AudioInput: 20}},
		// Anthropic: 6 + 2×5 for the tokens, 100 a search, 50 a fetch.
		{name: "AnthropicWebSearch", anth: &mockllm.Server{OutputTokens: 5, WebSearches: 2}, path: "/v1/messages",
			body:    `{"model":"mock-claude","tools":[{"type":"web_search_20250305","name":"web_search","max_uses":3}],` + ask[:len(ask)-1] + `]}`,
			credits: 216, units: tollgate.Tokens{WebSearches: 2}},
		{name: "AnthropicWebSearchAndFetchStream", anth: &mockllm.Server{OutputTokens: 5, WebSearches: 2, WebFetches: 1}, path: "/v1/messages",
			body:    `{"model":"mock-claude","stream":true,"tools":[{"type":"web_search_20250305","name":"web_search"},{"type":"web_fetch_20250910","name":"web_fetch"}],` + ask[:len(ask)-1] + `]}`,
			credits: 266, units: tollgate.Tokens{WebSearches: 2, WebFetches: 1}},
		// More searches than max_uses allowed: the provider's mistake,
		// billed at the hold.
		{name: "AnthropicSearchesBeyondHold", anth: &mockllm.Server{OutputTokens: 5, WebSearches: 3}, path: "/v1/messages",
			body:  `{"model":"mock-claude","tools":[{"type":"web_search_20250305","name":"web_search","max_uses":1}],` + ask[:len(ask)-1] + `]}`,
			units: tollgate.Tokens{WebSearches: 3}, atHold: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const balance = 10_000_000
			if tc.openai == nil {
				tc.openai = &mockllm.Server{}
			}
			if tc.anth == nil {
				tc.anth = &mockllm.Server{}
			}
			e, _, _ := mockEnvPriced(t, balance, fakePricer{units: true}, tc.openai, tc.anth)
			if strings.HasPrefix(tc.body, `{"model":"mock-claude"`) {
				tc.body = strings.Replace(tc.body, `{"role":"system","content":"be brief"},`, ``, 1)
				tc.body = strings.Replace(tc.body, `"max_tokens":50,`, `"max_tokens":50,"system":"be brief",`, 1)
			}
			resp, body := e.do(context.Background(), tc.path, tc.body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			after, holds, usages, _ := e.meter.state()
			if holds != 0 || len(usages) != 1 {
				t.Fatalf("%d holds left, %d usages", holds, len(usages))
			}
			charged, held := balance-after, e.meter.lastHold.Load()
			want := tc.credits
			if tc.atHold {
				want = held
			}
			if charged != want || charged > held {
				t.Fatalf("charged %d (held %d), want %d: %s", charged, held, want, body)
			}
			if !strings.Contains(body, `"cost_credits":`+itoa(charged)) {
				t.Fatalf("answer does not say cost_credits %d: %s", charged, body)
			}
			if u := usages[0]; u.Units != tc.units || u.Credits != tollgate.Credits(charged) {
				t.Fatalf("usage units %+v credits %d, want %+v", u.Units, u.Credits, tc.units)
			}
		})
	}
}

func itoa(n int64) string {
	b := []byte{}
	if n == 0 {
		return "0"
	}
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// TestSellHoldsTheWorstCase: a sold feature is held at the most it can
// cost: every output token as audio, the estimated audio tokens of the
// input (never fewer than the provider counts), max_uses searches (5 when
// left out, and then told upstream), the priority tier's multiplier.
func TestSellHoldsTheWorstCase(t *testing.T) {
	up := &upstream{}
	e := newEnvWith(t, 10_000_000, func(o *gateway.Options) { o.Pricer = fakePricer{units: true} }, deploymentSpec{up: up})
	base := func(extra string) int64 {
		t.Helper()
		resp, body := e.chat(`{"model":"m","max_tokens":50` + extra + `,"messages":[{"role":"user","content":"x"}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", extra, resp.StatusCode, body)
		}
		return e.meter.lastHold.Load()
	}
	plain := base("")
	if got := base(`,"service_tier":"priority"`); got != 2*plain {
		t.Fatalf("priority held %d, want twice %d", got, plain)
	}
	if got := base(`,"web_search_options":{}`); got != plain+100 {
		t.Fatalf("web search held %d, want %d + 100", got, plain)
	}
	if got := base(`,"modalities":["audio"]`); got != plain+2*50 { // 50 output tokens at 4 instead of 2
		t.Fatalf("audio out held %d, want %d", got, plain+100)
	}
	an := &upstream{}
	ea := newEnvWith(t, 10_000_000, func(o *gateway.Options) { o.Pricer = fakePricer{units: true} }, deploymentSpec{up: an, kind: gateway.KindAnthropic})
	resp, body := ea.do(context.Background(), "/v1/messages", `{"model":"m","max_tokens":50,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := path(an.lastBody(t), "tools", 0, "max_uses"); got != float64(5) {
		t.Fatalf("upstream got max_uses %v, want the default cap 5", got)
	}
	if held := ea.meter.lastHold.Load(); held < 500 {
		t.Fatalf("held %d for 5 searches at 100", held)
	}
	ea.checkNoHolds()
	e.checkNoHolds()
}

// TestSellRefusesUnpriced: a model not priced for a feature refuses it
// with a 400 naming the field and the price that would sell it, before
// anything is held or sent.
func TestSellRefusesUnpriced(t *testing.T) {
	up := &upstream{}
	e := newEnv(t, 10_000, deploymentSpec{up: up})
	for _, tc := range []struct{ body, want string }{
		{`"service_tier":"priority"`, "priority_multiplier"},
		{`"web_search_options":{}`, "per_web_search"},
		{`"enable_search":true`, "per_web_search"},
		{`"plugins":[{"id":"web"}]`, "per_web_search"},
		{`"modalities":["text","audio"]`, "audio_output"},
		{`"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"` + wav(1) + `","format":"wav"}}]}]`, "audio_input"},
	} {
		body := `{"model":"m",` + tc.body + `,"messages":[{"role":"user","content":"x"}]}`
		if strings.HasPrefix(tc.body, `"messages"`) {
			body = `{"model":"m",` + tc.body + `}`
		}
		resp, got := e.chat(body)
		if resp.StatusCode != 400 || !strings.Contains(got, tc.want) || !strings.Contains(got, "model m has no price") {
			t.Fatalf("%s: status %d: %s", tc.body, resp.StatusCode, got)
		}
	}
	an := &upstream{}
	ea := newEnv(t, 10_000, deploymentSpec{up: an, kind: gateway.KindAnthropic})
	resp, got := ea.do(context.Background(), "/v1/messages", `{"model":"m","max_tokens":50,"tools":[{"type":"web_fetch_20250910","name":"web_fetch"}],"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 400 || !strings.Contains(got, "per_web_fetch") {
		t.Fatalf("web fetch: status %d: %s", resp.StatusCode, got)
	}
	if up.calls.Load()+an.calls.Load() != 0 {
		t.Fatal("a refused request reached the upstream")
	}
	if b, holds, usages, _ := e.meter.state(); b != 10_000 || holds != 0 || len(usages) != 0 {
		t.Fatalf("a refusal changed something: balance %d holds %d usages %d", b, holds, len(usages))
	}
}

// TestSellBadInput: a feature asked for wrongly is a 400 saying what is
// wrong, whatever the prices, and nothing is held or sent.
func TestSellBadInput(t *testing.T) {
	up, an := &upstream{}, &upstream{}
	priced := func(o *gateway.Options) { o.Pricer = fakePricer{units: true} }
	e := newEnvWith(t, 10_000, priced, deploymentSpec{up: up})
	audio := func(data, format string) string {
		return `"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"` + data + `","format":"` + format + `"}}]}]`
	}
	for _, tc := range []struct{ body, want string }{
		{audio("not base64!", "wav"), "not base64"},
		{audio(base64.StdEncoding.EncodeToString([]byte("just some bytes, not a WAV file at all....")), "wav"), "not a WAV file"},
		{audio(wav(1), "flac"), `format must be`},
		{`"messages":[{"role":"user","content":[{"type":"input_audio"}]}]`, "must have data"},
		{`"service_tier":"scale","messages":[{"role":"user","content":"x"}]`, `scale\" is not known`},
		{`"plugins":[{"id":"file-parser"}],"messages":[{"role":"user","content":"x"}]`, `only \"web\" is sold`},
		{`"plugins":[{"id":"web","max_results":0}],"messages":[{"role":"user","content":"x"}]`, "max_results"},
	} {
		resp, got := e.chat(`{"model":"m",` + tc.body + `}`)
		if resp.StatusCode != 400 || !strings.Contains(got, tc.want) {
			t.Fatalf("%s: status %d: %s", tc.body, resp.StatusCode, got)
		}
	}
	ea := newEnvWith(t, 10_000, priced, deploymentSpec{up: an, kind: gateway.KindAnthropic})
	for _, tools := range []string{
		`[{"type":"web_search_20250305","name":"web_search","max_uses":0}]`,
		`[{"type":"web_search_20250305","name":"web_search","max_uses":"5"}]`,
		`[{"type":"web_fetch_20250910","name":"web_fetch","max_uses":1000}]`,
		`[{"type":"code_execution_20250825","name":"code_execution"}]`,
	} {
		resp, got := ea.do(context.Background(), "/v1/messages", `{"model":"m","max_tokens":50,"tools":`+tools+`,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 400 || !strings.Contains(got, "tools[0]") {
			t.Fatalf("%s: status %d: %s", tools, resp.StatusCode, got)
		}
	}
	if up.calls.Load()+an.calls.Load() != 0 || e.meter.reserves.Load()+ea.meter.reserves.Load() != 0 {
		t.Fatal("a refused request was held or sent")
	}
}

// TestSellWithoutUsage: a provider reporting no usage bills the hold's
// estimate of the units, as of the tokens: the input audio's estimated
// tokens, every output token as audio when audio was asked for, the web
// calls allowed, the priority tier asked for; never more than held.
func TestSellWithoutUsage(t *testing.T) {
	const ask = `"max_tokens":50,"messages":[{"role":"user","content":[{"type":"text","text":"tell me four words"},{"type":"input_audio","input_audio":{"data":"` + "%s" + `","format":"wav"}}]}]`
	body := `{"model":"mock-gpt","stream":true,"service_tier":"priority","modalities":["audio"],` + strings.Replace(ask, "%s", wav(2), 1) + `}`
	const balance = 10_000_000
	e, _, _ := mockEnvPriced(t, balance, fakePricer{units: true}, &mockllm.Server{OutputTokens: 8, OmitUsage: true}, &mockllm.Server{})
	resp, got := e.do(context.Background(), "/v1/chat/completions", body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	after, _, usages, _ := e.meter.state()
	u := usages[0]
	// 2 s of WAV (32,044 bytes at 16,000 a second): 21 audio tokens held
	// and billed; 8 output tokens, all audio; twice at the priority tier.
	want := tollgate.Tokens{AudioInput: 21, AudioOutput: 8, Priority: true}
	if !u.Estimated || u.Units != want {
		t.Fatalf("usage %+v, want estimated units %+v", u, want)
	}
	text := u.InputTokens - 21
	if charged := balance - after; charged != 2*(text+3*21+4*8) || charged > e.meter.lastHold.Load() {
		t.Fatalf("charged %d for %d text tokens (held %d)", charged, text, e.meter.lastHold.Load())
	}
}
