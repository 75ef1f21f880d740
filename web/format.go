package web

import (
	"strconv"
	"strings"
)

// groupDigits writes n with thousands separators: 1234567 -> "1,234,567".
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// compact writes a large count briefly in the page's language: "1.4M",
// "250K" in English; "140万", "1.2亿" in Chinese. One decimal at most,
// dropped when zero.
func compact(n int64, lang string) string {
	type unit struct {
		div  int64
		name string
	}
	units := []unit{{1_000_000_000, "B"}, {1_000_000, "M"}, {1_000, "K"}}
	if lang == langZH {
		units = []unit{{100_000_000, "亿"}, {10_000, "万"}}
	}
	for _, u := range units {
		if n >= u.div {
			return oneDecimal(n, u.div) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// oneDecimal returns n/div rounded half-up to one decimal, without a
// trailing ".0"; from 100 up, to a whole number (114M, not 114.3M).
func oneDecimal(n, div int64) string {
	if n/div >= 100 {
		return strconv.FormatInt((n+div/2)/div, 10)
	}
	tenths := (n*10 + div/2) / div
	s := strconv.FormatInt(tenths/10, 10)
	if f := tenths % 10; f != 0 {
		s += "." + strconv.FormatInt(f, 10)
	}
	return s
}

// tokensFor returns roughly how many tokens credits buy of a model, with 3
// input tokens per output token: credits·1e6·4 / (3·input + output), where
// prices are credits per 1M tokens. 0 when the model has no price.
func tokensFor(credits int64, m ModelPrice) int64 {
	blend := 3*int64(m.Input) + int64(m.Output)
	if blend <= 0 || credits <= 0 {
		return 0
	}
	// credits ≤ ~9e12 keeps credits·4e6 inside int64; past that, divide first.
	if credits > 2_000_000_000_000 {
		return credits / blend * 4_000_000
	}
	return credits * 4_000_000 / blend
}
