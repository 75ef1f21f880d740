package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// demoStyle renders marks and emphasis: colours and Unicode on a
// terminal, plain ASCII when NO_COLOR is set or the output is not a
// terminal.
type demoStyle struct{ fancy bool }

// styleFor picks the style for w.
func styleFor(w io.Writer) demoStyle {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return demoStyle{}
	}
	fi, err := f.Stat()
	return demoStyle{fancy: err == nil && fi.Mode()&os.ModeCharDevice != 0}
}

func (s demoStyle) sgr(code, text string) string {
	if !s.fancy {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (s demoStyle) bold(text string) string { return s.sgr("1", text) }
func (s demoStyle) dim(text string) string  { return s.sgr("2", text) }

func (s demoStyle) ok() string {
	if s.fancy {
		return s.sgr("32", "✓")
	}
	return "[ok]"
}

func (s demoStyle) fail() string {
	if s.fancy {
		return s.sgr("31", "✗")
	}
	return "[FAILED]"
}

// yuan formats fen as an amount: ¥9.90, or 9.90 CNY in plain ASCII.
func (s demoStyle) yuan(fen int64) string {
	amount := fmt.Sprintf("%d.%02d", fen/100, fen%100)
	if s.fancy {
		return "¥" + amount
	}
	return amount + " CNY"
}

// roundDuration shows a duration to a useful precision: 12ms, 1.3s.
func roundDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// prefix returns the first n bytes of s.
func prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
