package ledger

import (
	"encoding/json"
	"strconv"

	"tollgate"
)

// Units in a usage record: what the call used beyond text tokens
// (tollgate.Tokens' unit fields: audio tokens, speech characters, audio
// seconds, images, web search and fetch calls, the priority tier). The
// stores keep them in one text column, the compact JSON object EncodeUnits
// writes: sparse (most calls use none, and then it is ""), and a new kind
// of unit needs no migration.
//
// The object's members, each left out when zero: audio_input_tokens,
// audio_output_tokens, characters, audio_seconds, images, image_size,
// web_searches, web_fetches, priority (true).

// unitsJSON is the stored shape of Units.
type unitsJSON struct {
	AudioInput   int64  `json:"audio_input_tokens,omitempty"`
	AudioOutput  int64  `json:"audio_output_tokens,omitempty"`
	Characters   int64  `json:"characters,omitempty"`
	AudioSeconds int64  `json:"audio_seconds,omitempty"`
	Images       int64  `json:"images,omitempty"`
	ImageSize    string `json:"image_size,omitempty"`
	WebSearches  int64  `json:"web_searches,omitempty"`
	WebFetches   int64  `json:"web_fetches,omitempty"`
	Priority     bool   `json:"priority,omitempty"`
}

// EncodeUnits is u's unit fields as a usage record stores them: "" when
// none is used; a negative count (an upstream's mistake, billed as the
// hold) is stored as zero, as the gateway records token counts. Token
// fields are not units and are left out.
func EncodeUnits(u tollgate.Tokens) string {
	n := func(c int64) int64 { return max(c, 0) }
	j := unitsJSON{AudioInput: n(u.AudioInput), AudioOutput: n(u.AudioOutput), Characters: n(u.Characters),
		AudioSeconds: n(u.AudioSeconds), Images: n(u.Images), WebSearches: n(u.WebSearches), WebFetches: n(u.WebFetches),
		Priority: u.Priority}
	if j.Images > 0 {
		j.ImageSize = u.ImageSize
	}
	if j == (unitsJSON{}) {
		return ""
	}
	b, err := json.Marshal(j)
	if err != nil { // plain numbers and a string
		panic("ledger: encode units: " + err.Error())
	}
	return string(b)
}

// DecodeUnits reads what EncodeUnits wrote ("" is none).
func DecodeUnits(s string) (tollgate.Tokens, error) {
	if s == "" {
		return tollgate.Tokens{}, nil
	}
	var j unitsJSON
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		return tollgate.Tokens{}, fail(tollgate.EINTERNAL, "ledger.DecodeUnits", "usage units %s: %v", strconv.Quote(s), err)
	}
	return tollgate.Tokens{AudioInput: j.AudioInput, AudioOutput: j.AudioOutput, Characters: j.Characters,
		AudioSeconds: j.AudioSeconds, Images: j.Images, ImageSize: j.ImageSize, WebSearches: j.WebSearches,
		WebFetches: j.WebFetches, Priority: j.Priority}, nil
}

// UnitsJSON is u's units as the usage APIs show them: the stored object,
// nil when none is used.
func UnitsJSON(u tollgate.Tokens) json.RawMessage {
	if s := EncodeUnits(u); s != "" {
		return json.RawMessage(s)
	}
	return nil
}
