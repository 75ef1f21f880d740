package gateway

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// parse reads an OpenAI-compatible usage object in dialect d. It returns
// nil and no reason when raw is absent, null or reports nothing (the
// tokens are then counted); nil and the reason when the usage is in
// fields d does not know: counts not in prompt_tokens and
// completion_tokens, a cache field d does not know with tokens in it, or
// reasoning tokens beyond completion_tokens. The caller bills such a
// request at its estimate, and says so.
func (d *usageDialect) parse(raw json.RawMessage) (*tokenUsage, string) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, ""
	}
	m, err := objectFields(raw)
	if err != nil {
		return nil, "usage is not a JSON object"
	}
	var u tokenUsage
	_, hasIn := m["prompt_tokens"]
	_, hasOut := m["completion_tokens"]
	if !hasIn && !hasOut {
		if len(m) == 0 {
			return nil, ""
		}
		return nil, "usage has neither prompt_tokens nor completion_tokens (fields: " + fieldNames(m) + ")"
	}
	if !intField(m, "prompt_tokens", &u.Input) || !intField(m, "completion_tokens", &u.Output) {
		return nil, "prompt_tokens or completion_tokens is not a whole number"
	}
	// prompt_tokens_details: OpenAI's cached_tokens, and the dialect's
	// cache writes.
	if raw := m["prompt_tokens_details"]; len(raw) > 0 && string(raw) != "null" {
		details, err := objectFields(raw)
		if err != nil {
			return nil, "prompt_tokens_details is not a JSON object"
		}
		for _, name := range sortedKeys(details) {
			switch {
			case name == "cached_tokens":
				if !intField(details, name, &u.Cached) {
					return nil, "prompt_tokens_details.cached_tokens is not a whole number"
				}
			case name == "audio_tokens": // inside prompt_tokens, priced apart
				if !intField(details, name, &u.Units.AudioInput) {
					return nil, "prompt_tokens_details.audio_tokens is not a whole number"
				}
			case name == d.write && d.write != "":
				if !intField(details, name, &u.CacheWrite) {
					return nil, "prompt_tokens_details." + name + " is not a whole number"
				}
			case strings.Contains(name, "cache"):
				if why := unknownCount(details, name); why != "" {
					return nil, "prompt_tokens_details." + why
				}
			}
		}
	}
	// Top-level cache fields: the dialect's own, or unknown.
	for _, name := range sortedKeys(m) {
		switch {
		case !strings.Contains(name, "cache"):
		case d.isHit(name):
			var hit int64
			if !intField(m, name, &hit) {
				return nil, name + " is not a whole number"
			}
			u.Cached = max(u.Cached, hit) // the same tokens when both are reported
		case name == d.miss && d.miss != "":
		default:
			if why := unknownCount(m, name); why != "" {
				return nil, why
			}
		}
	}
	// Reasoning is inside completion_tokens (billed as output): more
	// reasoning than output means a provider counting it apart.
	if raw := m["completion_tokens_details"]; len(raw) > 0 && string(raw) != "null" {
		details, err := objectFields(raw)
		if err != nil {
			return nil, "completion_tokens_details is not a JSON object"
		}
		var reasoning int64
		if !intField(details, "reasoning_tokens", &reasoning) {
			return nil, "completion_tokens_details.reasoning_tokens is not a whole number"
		}
		if !intField(details, "audio_tokens", &u.Units.AudioOutput) { // inside completion_tokens, priced apart
			return nil, "completion_tokens_details.audio_tokens is not a whole number"
		}
		if reasoning > u.Output {
			return nil, fmt.Sprintf("completion_tokens_details.reasoning_tokens %d above completion_tokens %d", reasoning, u.Output)
		}
	}
	if u.Input == 0 && u.Output == 0 {
		return nil, ""
	}
	// Never more cached than prompt tokens (a provider's rounding). A
	// negative count is kept: pricing refuses it, and the request is
	// billed its hold (metered.cost).
	u.Cached = min(u.Cached, u.Input)
	u.CacheWrite = min(u.CacheWrite, max(u.Input-u.Cached, 0))
	// Audio tokens are among prompt_tokens and completion_tokens.
	u.Units.AudioInput = min(u.Units.AudioInput, max(u.Input-u.Cached-u.CacheWrite, 0))
	u.Units.AudioOutput = min(u.Units.AudioOutput, max(u.Output, 0))
	u.raw = m
	return &u, ""
}

// isHit reports whether name is one of d's top-level cache-hit fields.
func (d *usageDialect) isHit(name string) bool {
	for _, h := range d.hits {
		if h == name {
			return true
		}
	}
	return false
}

// unknownCount is the reason a field the dialect does not know makes the
// usage unknown: it holds tokens. Zero, null, or not a number: "".
func unknownCount(m map[string]json.RawMessage, name string) string {
	var n int64
	if intField(m, name, &n) && n != 0 {
		return fmt.Sprintf("%s (%d tokens) is a field tollgate does not know for this provider", name, n)
	}
	return ""
}

func fieldNames(m map[string]json.RawMessage) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) > 8 {
		names = append(names[:8], "…")
	}
	return strings.Join(names, ", ")
}
