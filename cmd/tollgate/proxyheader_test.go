package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestServeTrustedProxyHeader: --trusted-proxy-header is read from the
// config file, TOLLGATE_TRUSTED_PROXY_HEADER and the flag, in that order of
// precedence, and a value that is no header name is refused.
func TestServeTrustedProxyHeader(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "tollgate.json")
	if err := os.WriteFile(cfg, []byte(`{"trusted-proxy-header":"X-Real-IP"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"--config", cfg}); err != nil || m.Config.TrustedProxyHeader != "X-Real-IP" {
		t.Fatalf("from the file: %q, %v", m.Config.TrustedProxyHeader, err)
	}
	t.Setenv("TOLLGATE_TRUSTED_PROXY_HEADER", "X-Forwarded-For")
	m = NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"--config", cfg}); err != nil || m.Config.TrustedProxyHeader != "X-Forwarded-For" {
		t.Fatalf("from the environment: %q, %v", m.Config.TrustedProxyHeader, err)
	}
	m = NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"--trusted-proxy-header", "CF-Connecting-IP"}); err != nil || m.Config.TrustedProxyHeader != "CF-Connecting-IP" {
		t.Fatalf("from the flag: %q, %v", m.Config.TrustedProxyHeader, err)
	}
	for _, bad := range []string{"X Real IP", "X-Forwarded-For:", "ip\n"} {
		if err := NewMain(io.Discard, io.Discard).ParseFlags([]string{"--trusted-proxy-header", bad}); err == nil {
			t.Errorf("--trusted-proxy-header %q accepted", bad)
		}
	}
}
