package gateway

import (
	"fmt"
	"strings"
	"testing"
)

// TestTiktokenCounterRemembers: a remembered count is the tokenizer's
// count, and the memory stays within its bounds however many texts pass.
func TestTiktokenCounterRemembers(t *testing.T) {
	var cached, fresh TiktokenCounter
	texts := []string{"user", "You are a helpful assistant.", "Hello there, how are you?", "日本語のテキスト",
		strings.Repeat("lorem ipsum ", 500), "user", "Hello there, how are you?"}
	for round := range 2 {
		for _, s := range texts {
			if got, want := cached.Count(s), fresh.count(s); got != want {
				t.Fatalf("round %d: Count(%.20q) = %d, tokenizer %d", round, s, got, want)
			}
		}
	}
	if cached.Count("") != 0 {
		t.Fatal("Count of empty text is not 0")
	}
	for i := range countCacheEntries + 100 {
		cached.Count(fmt.Sprintf("message number %d", i))
	}
	cached.mu.Lock()
	n, b := len(cached.counts), cached.bytes
	cached.mu.Unlock()
	if n > countCacheEntries || b > countCacheBytes {
		t.Fatalf("cache holds %d texts, %d bytes; bounds %d, %d", n, b, countCacheEntries, countCacheBytes)
	}
	long := strings.Repeat("x ", countCacheMaxText)
	if cached.Count(long) != fresh.count(long) {
		t.Fatal("a long text is counted differently")
	}
	cached.mu.Lock()
	_, kept := cached.counts[long]
	cached.mu.Unlock()
	if kept {
		t.Fatal("a text longer than countCacheMaxText was remembered")
	}
}
