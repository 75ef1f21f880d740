//go:build unix

package main

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logTee keeps a process's output for the test to read while it runs, and
// sends it to the test log too (shown on failure).
type logTee struct {
	tb testing.TB
	mu sync.Mutex
	b  strings.Builder
}

func (w *logTee) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.b.Write(p)
	w.mu.Unlock()
	return tbWriter{w.tb}.Write(p)
}

func (w *logTee) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestServeCatalogSIGHUP runs the real `tollgate serve` process with
// --catalog and signals it: SIGHUP puts a rewritten file in force (the
// digest changes, calls are billed at the new price), and a bad file is
// refused — the digest in force stays, the process lives on, the log says
// why and /metrics counts it. The in-process tests call ReloadCatalog;
// this one proves the signal is wired to it.
func TestServeCatalogSIGHUP(t *testing.T) {
	bin := tollgateBinary(t) // skips with -short
	up := httptest.NewServer(&gatedUpstream{})
	t.Cleanup(up.Close)
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	digest := writeCatalog(t, path, houseCatalog(up.URL, "10.00", "20.00"))
	const admin = "sighup-admin-token-for-tests"
	addr := freeAddr(t)
	out := &logTee{tb: t}
	proc := startProcTo(t, out, bin, addr, []string{"TOLLGATE_TEST_UP_KEY=up-key"},
		"serve", "--addr", addr, "--data", t.TempDir(), "--admin-token", admin, "--catalog", path)
	c := client{t, "http://" + addr}

	catalogNow := func() (digest, input string) {
		var v struct {
			Digest  string
			Catalog struct {
				Models map[string]struct{ Price struct{ Input string } }
			}
		}
		c.must(200, "GET", "/admin/catalog", admin, "", &v)
		return v.Digest, v.Catalog.Models["house-model"].Price.Input
	}
	if d, in := catalogNow(); d != digest || in != "10.00" {
		t.Fatalf("GET /admin/catalog: digest %s, house-model input %q; want %s, 10.00", d, in, digest)
	}
	a := mustAccount(c, admin)
	if st, b, _ := c.call("POST", "/admin/accounts/"+a.AccountID+"/adjustments", admin, `{"credits":100000,"reason":"credits to call with"}`,
		map[string]string{"Idempotency-Key": "sighup-credits"}); st != 201 {
		t.Fatalf("adjustment: %d %s", st, b)
	}
	if u := houseChat(c, a.APIKey); u.Cost != u.Prompt+2*u.Completion {
		t.Fatalf("before SIGHUP: usage %+v, want 1 credit a prompt token, 2 a completion token", u)
	}

	// A rewritten file, then SIGHUP: the new catalog is in force.
	newDigest := writeCatalog(t, path, houseCatalog(up.URL, "30.00", "60.00"))
	if err := proc.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the SIGHUP reload puts the new digest in force", func() bool { d, _ := catalogNow(); return d == newDigest })
	if _, in := catalogNow(); in != "30.00" {
		t.Fatalf("after SIGHUP, house-model input %q, want 30.00", in)
	}
	if u := houseChat(c, a.APIKey); u.Cost != 3*u.Prompt+6*u.Completion {
		t.Fatalf("after SIGHUP: usage %+v, want 3 credits a prompt token, 6 a completion token", u)
	}
	if !strings.Contains(out.String(), "catalog reloaded") {
		t.Fatal("the log lacks the reload line")
	}

	// A bad file, then SIGHUP: refused and logged; the catalog in force
	// stays, and so does the process.
	refusedBefore := grepLines(metricsText(c), `tollgate_catalog_reloads_total{result="refused"}`)
	writeCatalog(t, path, houseCatalog(up.URL, "30.00", "60.00")+"bogus: 1\n")
	if err := proc.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refused reload is logged", func() bool { return strings.Contains(out.String(), "catalog reload refused") })
	var refusal string
	for l := range strings.Lines(out.String()) {
		if strings.Contains(l, "catalog reload refused") {
			refusal = l
		}
	}
	for _, want := range []string{"actor=SIGHUP", "bogus", path, newDigest[len("sha256:"):]} {
		if !strings.Contains(refusal, want) {
			t.Errorf("the refusal log line lacks %q: %s", want, refusal)
		}
	}
	if refusedBefore != `tollgate_catalog_reloads_total{result="refused"} 0` {
		t.Fatalf("before the bad file, /metrics says %q", refusedBefore)
	}
	if mt := metricsText(c); !strings.Contains(mt, `tollgate_catalog_reloads_total{result="refused"} 1`) ||
		!strings.Contains(mt, `tollgate_catalog_reloads_total{result="ok"} 1`) {
		t.Fatalf("after one good and one refused SIGHUP, /metrics:\n%s", grepLines(mt, "tollgate_catalog_reloads_total"))
	}
	if d, in := catalogNow(); d != newDigest || in != "30.00" {
		t.Fatalf("after a refused SIGHUP: digest %s, input %q; want %s, 30.00 kept", d, in, newDigest)
	}
	if err := proc.Process.Signal(syscall.Signal(0)); err != nil || proc.ProcessState != nil {
		t.Fatalf("the process did not survive a refused reload: %v", err)
	}
	if u := houseChat(c, a.APIKey); u.Cost != 3*u.Prompt+6*u.Completion {
		t.Fatalf("after the refused SIGHUP: usage %+v, want the price in force kept", u)
	}

	// SIGTERM still ends it cleanly.
	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- proc.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}
