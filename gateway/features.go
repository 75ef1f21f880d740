package gateway

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strings"

	"tollgate"
)

// feature is one thing a request asks for that a provider bills beyond
// text tokens: the priority tier, web search or fetch calls, audio in or
// out. It is sold where the model prices it and refused where not.
type feature struct {
	field string // the request's field asking for it: "service_tier", "tools[0]"…
	what  string // what it is, for the caller: "web search"
	price string // the price table's field pricing it: "per_web_search"
	// units are the most the feature may use (tollgate.Tokens' unit
	// fields). AudioOutput > 0 says the output may be audio: the handler
	// holds every output token at the audio price (see worstCase).
	units tollgate.Tokens
}

// sellable checks that model prices every feature of fs, in order, and
// returns their units summed: what the hold adds at their worst case. A
// feature the model does not price is refused with EINVALID (a 400)
// naming the field, what it is and the price that would sell it. An
// unknown model is not this function's to refuse: reserve does.
//
// It is a function of the model and the features alone, so every endpoint
// asking for paid features sells them alike.
func (g *Gateway) sellable(model string, fs []feature) (tollgate.Tokens, error) {
	var sum tollgate.Tokens
	for _, f := range fs {
		if _, err := g.opts.Pricer.Cost(model, f.units); tollgate.ErrorCode(err) == tollgate.EINVALID {
			return tollgate.Tokens{}, invalid("%s: %s is billed beyond text tokens, and model %s has no price for it (%s in the price table)",
				f.field, f.what, model, f.price)
		}
		sum = addUnits(sum, f.units)
	}
	return sum, nil
}

// addUnits is a and b's unit fields summed (Priority: either's).
func addUnits(a, b tollgate.Tokens) tollgate.Tokens {
	a.AudioInput += b.AudioInput
	a.AudioOutput += b.AudioOutput
	a.Characters += b.Characters
	a.AudioSeconds += b.AudioSeconds
	a.WebSearches += b.WebSearches
	a.WebFetches += b.WebFetches
	if b.Images > 0 {
		a.Images += b.Images
		a.ImageSize = b.ImageSize
	}
	a.Priority = a.Priority || b.Priority
	return a
}

// Web search through the chat API (OpenAI's search models with
// web_search_options, DashScope's enable_search) is billed per request:
// one search call each answer. OpenRouter's web plugin is billed per
// result: max_results of them (5 when left out), the most it returns.
const (
	searchesPerChat           = 1
	defaultOpenRouterResults  = 5
	maxOpenRouterResults      = 100
	defaultServerToolMaxUses  = 5
	maxServerToolMaxUses      = 100
	audioTokensPerSecond      = 10   // OpenAI: an audio token is 100 ms of audio
	minAudioBytesPerSecond    = 1000 // 8 kbit/s, the lowest bit rate of the formats taken
	wavHeaderBytes            = 44
	serverToolWebSearchPrefix = "web_search_"
	serverToolWebFetchPrefix  = "web_fetch_"
)

// chatFeatures reads what a chat request asks for beyond text tokens:
// the priority tier (service_tier "priority"), web search
// (web_search_options, enable_search, OpenRouter's web plugin), audio out
// (audio, modalities with "audio") and audio in (input_audio parts, their
// tokens estimated from the audio's length). Reading the content parts, it
// also marks the request uncounted when a part is neither text nor audio.
func chatFeatures(req *chatRequest) ([]feature, error) {
	present := func(name string) bool {
		raw, ok := req.raw[name]
		return ok && string(raw) != "null"
	}
	var fs []feature
	if present("service_tier") {
		var tier string
		if json.Unmarshal(req.raw["service_tier"], &tier) != nil {
			return nil, invalid("service_tier must be a string")
		}
		switch tier {
		case "auto", "default", "flex":
		case "priority":
			fs = append(fs, feature{field: "service_tier", what: "the priority tier", price: "priority_multiplier",
				units: tollgate.Tokens{Priority: true}})
		default:
			return nil, invalid("service_tier %q is not known; use \"auto\", \"default\", \"flex\" or \"priority\"", tier)
		}
	}
	for _, name := range []string{"web_search_options", "enable_search"} {
		if present(name) && string(req.raw[name]) != "false" {
			fs = append(fs, feature{field: name, what: "web search", price: "per_web_search",
				units: tollgate.Tokens{WebSearches: searchesPerChat}})
		}
	}
	if present("plugins") {
		var plugins []struct {
			ID         string `json:"id"`
			MaxResults *int64 `json:"max_results"`
		}
		if json.Unmarshal(req.raw["plugins"], &plugins) != nil {
			return nil, invalid("plugins must be an array of objects")
		}
		for i, p := range plugins {
			if p.ID != "web" {
				return nil, invalid("plugins[%d]: plugin %q is charged apart from tokens, which tollgate cannot bill; only \"web\" is sold", i, p.ID)
			}
			n := int64(defaultOpenRouterResults)
			if p.MaxResults != nil {
				n = *p.MaxResults
			}
			if n < 1 || n > maxOpenRouterResults {
				return nil, invalid("plugins[%d].max_results must be between 1 and %d", i, maxOpenRouterResults)
			}
			fs = append(fs, feature{field: "plugins", what: "web search (per result)", price: "per_web_search",
				units: tollgate.Tokens{WebSearches: n}})
		}
	}
	audioOut := present("audio")
	if present("modalities") {
		var ms []string
		if json.Unmarshal(req.raw["modalities"], &ms) != nil {
			return nil, invalid("modalities must be an array of strings")
		}
		audioOut = audioOut || slices.Contains(ms, "audio")
	}
	if audioOut {
		fs = append(fs, feature{field: "audio", what: "audio output", price: "audio_output",
			units: tollgate.Tokens{AudioOutput: 1}})
	}
	for i, m := range req.Messages {
		if len(m.Content) == 0 || m.Content[0] != '[' {
			continue // a string: text
		}
		var parts []struct {
			Type       string `json:"type"`
			InputAudio *struct {
				Data   string `json:"data"`
				Format string `json:"format"`
			} `json:"input_audio"`
		}
		if json.Unmarshal(m.Content, &parts) != nil {
			return nil, invalid("messages[%d].content must be a string or an array of content parts", i)
		}
		for j, p := range parts {
			switch p.Type {
			case "input_audio":
				if p.InputAudio == nil || p.InputAudio.Data == "" {
					return nil, invalid("messages[%d].content[%d].input_audio must have data (base64 audio) and a format", i, j)
				}
				n, err := audioTokens(p.InputAudio.Data, p.InputAudio.Format)
				if err != nil {
					return nil, invalid("messages[%d].content[%d].input_audio: %s", i, j, err.Error())
				}
				fs = append(fs, feature{field: "messages[" + itoa(i) + "].content[" + itoa(j) + "]", what: "audio input",
					price: "audio_input", units: tollgate.Tokens{AudioInput: n}})
			case "text", "refusal":
			default:
				req.uncounted = true
			}
		}
	}
	return fs, nil
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// audioTokens is the most audio tokens base64 audio data of format ("wav"
// or "mp3") can count: its seconds at audioTokensPerSecond, rounded up.
// A WAV file's seconds are its data's bytes over the byte rate its header
// gives; any other's, its bytes over the lowest bit rate of its format
// (8 kbit/s), which no real file is below: the count is never under the
// provider's.
func audioTokens(data, format string) (int64, error) {
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return 0, errorString("data is not base64")
	}
	if len(raw) == 0 {
		return 0, errorString("data is empty")
	}
	rate := int64(minAudioBytesPerSecond)
	switch format {
	case "wav":
		if len(raw) < wavHeaderBytes || string(raw[0:4]) != "RIFF" || string(raw[8:12]) != "WAVE" {
			return 0, errorString("format is wav but the data is not a WAV file")
		}
		if br := int64(binary.LittleEndian.Uint32(raw[28:32])); br >= minAudioBytesPerSecond {
			rate = br
		}
	case "mp3":
	default:
		return 0, errorString("format must be \"wav\" or \"mp3\"")
	}
	n := int64(len(raw))
	return (n*audioTokensPerSecond + rate - 1) / rate, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

// messagesFeatures reads the server tools of a Messages request's tools:
// web search and web fetch, each sold per use up to its max_uses (set to
// defaultServerToolMaxUses upstream when the client left it out, so the
// hold is the most the provider runs). Tools the client runs cost tokens
// only; other server tools (code execution…) are refused. tools is
// returned as it goes upstream.
func messagesFeatures(raw json.RawMessage) ([]feature, json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, raw, nil
	}
	var tools []map[string]json.RawMessage
	if json.Unmarshal(raw, &tools) != nil {
		return nil, nil, invalid("tools must be an array of tools")
	}
	var fs []feature
	changed := false
	for i, t := range tools {
		var typ string
		_ = json.Unmarshal(t["type"], &typ)
		if typ == "" || typ == "custom" || slices.ContainsFunc(clientToolTypes, func(p string) bool { return strings.HasPrefix(typ, p) }) {
			continue
		}
		var units tollgate.Tokens
		what, price := "", ""
		switch {
		case strings.HasPrefix(typ, serverToolWebSearchPrefix):
			what, price = "the web_search server tool (per use)", "per_web_search"
		case strings.HasPrefix(typ, serverToolWebFetchPrefix):
			what, price = "the web_fetch server tool (per use)", "per_web_fetch"
		default:
			return nil, nil, invalid("tools[%d]: %q is a server tool with fees tollgate does not sell; use tools your client runs, web_search or web_fetch", i, typ)
		}
		uses := int64(defaultServerToolMaxUses)
		if v, ok := t["max_uses"]; ok && string(v) != "null" {
			if json.Unmarshal(v, &uses) != nil || uses < 1 || uses > maxServerToolMaxUses {
				return nil, nil, invalid("tools[%d].max_uses must be an integer between 1 and %d", i, maxServerToolMaxUses)
			}
		} else {
			t["max_uses"] = json.RawMessage(itoa(defaultServerToolMaxUses))
			changed = true
		}
		if price == "per_web_search" {
			units.WebSearches = uses
		} else {
			units.WebFetches = uses
		}
		fs = append(fs, feature{field: "tools[" + itoa(i) + "]", what: what, price: price, units: units})
	}
	if changed {
		b, err := json.Marshal(tools)
		if err != nil {
			return nil, nil, err
		}
		raw = b
	}
	return fs, raw, nil
}
