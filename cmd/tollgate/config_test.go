package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The stand-alone tools read their own TOLLGATE_<TOOL>_* names; the
// ambiguous TOLLGATE_API_KEY and TOLLGATE_ADDR (serve's address) no
// longer reach them, while names that meant only their setting still do.
func TestToolsReadTheirOwnEnvironment(t *testing.T) {
	t.Setenv("TOLLGATE_API_KEY", "from-the-ambiguous-name")
	t.Setenv("TOLLGATE_ADDR", "127.0.0.1:1")
	t.Setenv("TOLLGATE_MOCKLLM_TOKENS_PER_SECOND", "7")
	t.Setenv("TOLLGATE_SEED", "42") // only mockllm ever had --seed
	addr, srv, err := parseMockLLM(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if srv.APIKey != "" || addr != "127.0.0.1:8091" || srv.TokensPerSecond != 7 || srv.Seed != 42 {
		t.Errorf("mockllm read api key %q, addr %q, tokens/s %v, seed %d", srv.APIKey, addr, srv.TokensPerSecond, srv.Seed)
	}
	t.Setenv("TOLLGATE_MOCKLLM_API_KEY", "mock-key")
	t.Setenv("TOLLGATE_MOCKLLM_ADDR", "127.0.0.1:0")
	if addr, srv, err = parseMockLLM(nil, io.Discard); err != nil || srv.APIKey != "mock-key" || addr != "127.0.0.1:0" {
		t.Errorf("mockllm: %q %q %v", srv.APIKey, addr, err)
	}

	t.Setenv("TOLLGATE_SANDBOX_API_KEY", strings.Repeat("k", 32))
	t.Setenv("TOLLGATE_SANDBOX_MCH_ID", "1900000888")
	_, printed := mustStartSandbox(t)
	for _, want := range []string{"api key (v2):     " + strings.Repeat("k", 32), "mch_id:           1900000888"} {
		if !strings.Contains(printed, want) {
			t.Errorf("sandbox start-up output lacks %q:\n%s", want, printed)
		}
	}
}

// One configuration file serves the deployment's subcommands: migrate
// reads serve's file (TOLLGATE_CONFIG or --config), skipping serve's own
// settings, and still refuses a key no subcommand has.
func TestDeploymentConfigShared(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tollgate.json")
	data := filepath.Join(dir, "data")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"_about":"x","data":` + quote(data) + `,"addr":"127.0.0.1:9","log-format":"json","hold-grace":"1m"}`)
	t.Setenv("TOLLGATE_CONFIG", cfg)
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"migrate"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "created "+filepath.Join(data, "tollgate.db")) {
		t.Errorf("migrate did not use the file's data directory:\n%s", out.String())
	}
	out.Reset()
	if err := Run(context.Background(), []string{"audit", "--config", cfg}, &out, io.Discard); err != nil {
		t.Errorf("audit with serve's file: %v", err)
	}
	write(`{"data":` + quote(data) + `,"databse-url":"postgres://x"}`)
	err := Run(context.Background(), []string{"accounts", "create"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unknown setting "databse-url"`) {
		t.Errorf("a misspelt key: %v", err)
	}
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `\`, `\\`) + `"` }

// Every subcommand's help names its environment variables.
func TestHelpNamesTheEnvironment(t *testing.T) {
	for sub, want := range map[string]string{"serve": "TOLLGATE_<NAME>", "audit": "TOLLGATE_<NAME>", "sandbox": "TOLLGATE_SANDBOX_<NAME>",
		"mockllm": "TOLLGATE_MOCKLLM_<NAME>", "demo": "TOLLGATE_DEMO_<NAME>", "reconcile": "TOLLGATE_CONFIG"} {
		var help bytes.Buffer
		Run(context.Background(), []string{sub, "--help"}, io.Discard, &help)
		if !strings.Contains(help.String(), want) || !strings.Contains(help.String(), "-config") {
			t.Errorf("%s --help lacks %s or --config:\n%s", sub, want, help.String())
		}
	}
}
