package mockllm

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// vocab is the fixed word list completions are drawn from. Each word is one
// token; every word after the first is emitted with a leading space.
var vocab = [64]string{
	"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
	"india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa",
	"quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray",
	"yankee", "zulu", "amber", "basil", "cedar", "dune", "ember", "fjord",
	"granite", "harbor", "iris", "jade", "kelp", "lumen", "maple", "nectar",
	"onyx", "pebble", "quartz", "river", "saffron", "thistle", "umber", "velvet",
	"willow", "xenon", "yarrow", "zephyr", "anchor", "beacon", "canyon", "drift",
	"estuary", "falcon", "glacier", "horizon", "island", "juniper", "lantern", "meadow",
}

// spaced holds vocab with a leading space, precomputed so generating a
// completion allocates only the slice of pieces.
var spaced = func() (s [64]string) {
	for i, w := range vocab {
		s[i] = " " + w
	}
	return s
}()

// JSON mode wraps the words in one object; the opening and the closing
// piece are one token each.
const (
	jsonOpen  = `{"answer":"`
	jsonClose = `"}`
)

// CountTokens is the mock's tokenizer: the number of whitespace-separated
// words in s. Prompt usage is CountTokens summed over the text of every
// message (and the system prompt or instructions); roles, tool definitions
// and formatting count for nothing. It allocates nothing.
func CountTokens(s string) int {
	n, in := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			in = false
		default:
			if !in {
				n++
				in = true
			}
		}
	}
	return n
}

// FNV-1a, used to seed generation from the prompt.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	// A separator, so ("ab","c") and ("a","bc") differ.
	h ^= 0xff
	h *= fnvPrime
	return h
}

func hashBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// splitmix64 advances state and returns the next pseudo-random value.
func splitmix64(state *uint64) uint64 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// output is one generated completion: its pieces (one token each, so
// len(pieces) is the completion's token count), their concatenation, why it
// ended ("stop", "length") and, if a stop sequence ended it, which one.
type output struct {
	pieces  []string
	text    string
	reason  string
	stopSeq string
}

// generate makes the completion for seed: target pieces (words, or in JSON
// mode an object holding target-2 words), cut before the first piece that
// completes one of stops (reason "stop", the usual end too) and to at most
// limit pieces (reason "length"); limit < 0 means no limit.
func generate(seed uint64, target, limit int, stops []string, jsonMode bool) output {
	pieces := make([]string, 0, target)
	state := seed
	words := target
	if jsonMode {
		words = max(target-2, 0)
		if target > 0 {
			pieces = append(pieces, jsonOpen)
		}
	}
	for i := 0; i < words; i++ {
		k := splitmix64(&state) & 63
		if i == 0 {
			pieces = append(pieces, vocab[k])
		} else {
			pieces = append(pieces, spaced[k])
		}
	}
	if jsonMode && target > 1 {
		pieces = append(pieces, jsonClose)
	}
	out := output{reason: "stop"}
	var b strings.Builder
	for i, p := range pieces {
		if limit >= 0 && i == limit {
			out.reason = "length"
			pieces = pieces[:i]
			break
		}
		prev := b.Len()
		b.WriteString(p)
		if s := matchStop(b.String(), prev, stops); s != "" {
			out.stopSeq = s
			pieces = pieces[:i]
			b.Reset()
			for _, q := range pieces {
				b.WriteString(q)
			}
			break
		}
	}
	out.pieces = pieces
	out.text = b.String()
	return out
}

// matchStop reports the first stop sequence that occurs in text and ends
// after offset prev (that is, one the last piece completed).
func matchStop(text string, prev int, stops []string) string {
	for _, s := range stops {
		if s == "" {
			continue
		}
		from := max(prev-len(s)+1, 0)
		if strings.Contains(text[from:], s) {
			return s
		}
	}
	return ""
}

// fragments splits s into pieces of at most n bytes on rune boundaries:
// how tool-call arguments are streamed, one token per fragment.
func fragments(s string, n int) []string {
	var out []string
	for len(s) > 0 {
		k := min(n, len(s))
		for k < len(s) && k > 0 && !utf8.RuneStart(s[k]) {
			k--
		}
		if k == 0 {
			k = len(s)
		}
		out = append(out, s[:k])
		s = s[k:]
	}
	return out
}

// appendString appends s to dst as a JSON string.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
				dst = append(dst, s[start:i]...)
				if r == utf8.RuneError {
					dst = append(dst, `\ufffd`...)
				} else {
					dst = append(dst, `\u202`...)
					dst = append(dst, "0123456789abcdef"[r&0xf])
				}
				i += size
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, `\n`...)
		case '\r':
			dst = append(dst, `\r`...)
		case '\t':
			dst = append(dst, `\t`...)
		default:
			dst = append(dst, `\u00`...)
			dst = append(dst, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendInt appends n in decimal.
func appendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }

// appendID appends prefix followed by 24 hex digits derived from h.
func appendID(dst []byte, prefix string, h uint64) []byte {
	dst = append(dst, prefix...)
	s := h
	for range 3 {
		v := splitmix64(&s)
		for j := 0; j < 8; j++ {
			dst = append(dst, "0123456789abcdef"[v&0xf])
			v >>= 4
		}
	}
	return dst
}

// itoa formats n in decimal.
func itoa(n int) string { return strconv.Itoa(n) }
