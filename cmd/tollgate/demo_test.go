package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/store/sqlite"
)

// demoTitles are the steps the demo must show, in order.
var demoTitles = []string{
	"Start tollgate",
	"Create an account",
	"Place an order",
	"Pay it in the WeChat Pay emulator",
	"Notification verified, balance credited",
	"Stream a chat completion from the mock model",
	"Check the deduction",
	"The operator refunds the unused part",
}

// TestDemo runs `tollgate demo` end to end and checks the story from what
// it printed: every step passed, the balance went down by exactly the
// reported cost, and the refund is floor(fen × left / granted).
func TestDemo(t *testing.T) {
	// The demo is embedded whatever the environment says.
	t.Setenv("TOLLGATE_DATABASE_URL", "postgres://nowhere.invalid/tollgate")
	t.Setenv("TOLLGATE_WXPAY_URL", "https://nowhere.invalid")
	t.Setenv("TOLLGATE_PROVIDERS", filepath.Join(t.TempDir(), "missing.json"))
	t.Setenv("TOLLGATE_CONFIG", filepath.Join(t.TempDir(), "missing.json"))
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), []string{"demo"}, &out, &errOut); err != nil {
		t.Fatalf("demo: %v\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	text := out.String()
	t.Log("\n" + text)
	mustStepsPassed(t, text, len(demoTitles))
	for i, b := range out.Bytes() {
		if b >= 0x80 || b == 0x1b {
			t.Fatalf("output to a non-terminal is not plain ASCII at byte %d: %q", i, text[max(0, i-20):min(len(text), i+20)])
		}
	}

	order := mustInts(t, text, `\(amount_fen (\d+)\) for (\d+) credits`)
	fen, granted := order[0], order[1]
	credited := mustInts(t, text, `balance 0 -> (\d+) credits`)[0]
	cost := mustInts(t, text, `cost_credits (\d+) \(`)[0]
	ded := mustInts(t, text, `balance (\d+) -> (\d+) credits: -(\d+), exactly cost_credits`)
	refundFen := mustInts(t, text, `refund_fen (\d+) \(`)[0]
	if credited != granted {
		t.Errorf("credited %d, the order granted %d", credited, granted)
	}
	if before, after := ded[0], ded[1]; before != credited || before-after != cost || cost <= 0 {
		t.Errorf("balance %d -> %d, cost_credits %d (credited %d)", before, after, cost, credited)
	}
	left := ded[1]
	if want := fen * left / granted; refundFen != want || want <= 0 {
		t.Errorf("refund_fen %d, want floor(%d × %d / %d) = %d", refundFen, fen, left, granted, want)
	}
	if !strings.Contains(text, "order REFUND, balance 0 credits") {
		t.Error("the order and balance after the refund are not shown")
	}

	dir := regexp.MustCompile(`data\s+(\S+)`).FindStringSubmatch(text)
	if dir == nil {
		t.Fatal("no data directory printed")
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("the temporary data directory %s is still there (%v)", dir[1], err)
	}
}

// TestDemoFailureNamesStep checks a failure says which step failed and why.
func TestDemoFailureNamesStep(t *testing.T) {
	var out, errOut bytes.Buffer
	err := Run(context.Background(), []string{"demo", "--addr", "127.0.0.1:99999", "--dir", t.TempDir()}, &out, &errOut)
	if err == nil {
		t.Fatalf("demo on an impossible address passed:\n%s", out.String())
	}
	if !strings.Contains(err.Error(), "step 1/8 (Start tollgate) failed") || !strings.Contains(err.Error(), "listen") {
		t.Errorf("error %q does not name the step and the cause", err)
	}
	if !strings.Contains(out.String(), "[FAILED]") || strings.Contains(out.String(), "[2/8]") {
		t.Errorf("output does not stop at the failed step:\n%s", out.String())
	}
}

// TestDemoInterrupted checks that Ctrl-C before the end is a failure of
// the step it interrupted, and that the temporary directory goes.
func TestDemoInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	err := Run(ctx, []string{"demo"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "step 1/8 (Start tollgate) failed: interrupted") {
		t.Fatalf("demo with a cancelled context: %v\n%s", err, out.String())
	}
	dir := regexp.MustCompile(`data\s+(\S+)`).FindStringSubmatch(out.String())
	if dir != nil {
		if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
			t.Errorf("the temporary data directory %s is still there (%v)", dir[1], err)
		}
	}
}

// TestDemoKeep checks that --keep keeps serving with the printed API key
// until the context ends, and keeps the data.
func TestDemoKeep(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	done := make(chan error, 1)
	go func() { done <- Run(ctx, []string{"demo", "--keep", "--dir", dir}, &out, &out) }()

	var key, url []string
	for deadline := time.Now().Add(time.Minute); key == nil || url == nil; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("demo --keep returned %v:\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no API key and URL printed:\n%s", out.String())
		}
		key = regexp.MustCompile(`API key\s+(tg-\S+)`).FindStringSubmatch(out.String())
		url = regexp.MustCompile(`keeps serving on (\S+) \(--keep\)`).FindStringSubmatch(out.String())
	}
	mustStepsPassed(t, out.String(), len(demoTitles))
	req, _ := http.NewRequest("GET", url[1]+"/v1/balance", nil)
	req.Header.Set("Authorization", "Bearer "+key[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the server is not serving after the walk-through: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/balance with the printed key: %d", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo --keep after Ctrl-C: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo --keep did not stop when its context ended")
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err != nil {
		t.Errorf("the data was not kept: %v", err)
	}
}

// mustStepsPassed checks that each of n steps was announced in order and
// marked ok.
func mustStepsPassed(tb testing.TB, text string, n int) {
	tb.Helper()
	at := 0
	for i, title := range demoTitles[:n] {
		head := "[" + strconv.Itoa(i+1) + "/" + strconv.Itoa(n) + "] " + title + " ("
		j := strings.Index(text[at:], head)
		if j < 0 {
			tb.Fatalf("step line %q missing or out of order:\n%s", head, text)
		}
		at += j + len(head)
		line := strings.SplitN(text[at:], "\n  [", 2)
		if len(line) < 2 || !strings.HasPrefix(line[1], "ok] ") {
			tb.Fatalf("step %q not marked [ok]:\n%s", title, text)
		}
	}
	if !strings.Contains(text, "[ok] every step passed") {
		tb.Fatalf("no closing line:\n%s", text)
	}
}

// mustInts returns the integers captured by the first match of re.
func mustInts(tb testing.TB, text, re string) []int64 {
	tb.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(text)
	if m == nil {
		tb.Fatalf("nothing printed matches %s", re)
	}
	var out []int64
	for _, s := range m[1:] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// lockedBuffer is a bytes.Buffer written by the demo while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
