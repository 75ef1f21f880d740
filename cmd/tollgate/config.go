package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Every subcommand reads its settings the same way (parseFlags): defaults,
// then a JSON file keyed by flag name (--config FILE, or its environment
// variable), then environment variables, then flags.
//
// Environment names. The deployment's subcommands (serve, accounts, audit,
// migrate, reconcile) share TOLLGATE_<FLAG> and TOLLGATE_CONFIG: there a
// name means one thing (TOLLGATE_DATABASE_URL is the deployment's
// database for each), so one environment and one file serve them all. The
// stand-alone tools (sandbox, mockllm, demo) read TOLLGATE_<TOOL>_<FLAG>
// and TOLLGATE_<TOOL>_CONFIG, since their flags mean something of their
// own: TOLLGATE_API_KEY was the emulator's merchant key to sandbox and the
// accepted client key to mockllm, TOLLGATE_ADDR serve's address and
// theirs. They still read the older TOLLGATE_<FLAG> where that name meant
// only their setting, never retiredEnv's.

// envScopes maps a stand-alone tool to its environment prefix.
var envScopes = map[string]string{"sandbox": "TOLLGATE_SANDBOX_", "mockllm": "TOLLGATE_MOCKLLM_", "demo": "TOLLGATE_DEMO_"}

// retiredEnv are the flags whose TOLLGATE_<FLAG> meant different things to
// different subcommands: only serve still reads TOLLGATE_ADDR.
var retiredEnv = map[string]bool{"addr": true, "api-key": true}

// deploymentFlagSets build the flags of the deployment's subcommands, so
// that a configuration file written for serve is also read by audit and
// the others: a key another of them has is skipped, a key none has is an
// error (a misspelt setting is never silently ignored).
var deploymentFlagSets []func() *flag.FlagSet

// newFlagSet returns a FlagSet for a subcommand that reports errors instead
// of exiting, so Run can be tested.
func newFlagSet(name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("tollgate "+name, flag.ContinueOnError)
	fs.Usage = func() {
		sub := subcommandOf(fs)
		fmt.Fprintf(fs.Output(), "Usage: tollgate %s [flags]\n\n%s\n\n", name, summary)
		fmt.Fprintf(fs.Output(), "Flags. Each is also %s<NAME> in the environment (dashes become underscores)\n"+
			"and a key of the JSON file --config FILE (%sCONFIG); flags win over the\n"+
			"environment, the environment over the file.%s\n", envPrefix(sub), envPrefix(sub), legacyNote(sub))
		fs.PrintDefaults()
	}
	return fs
}

// subcommandOf is the subcommand fs belongs to: "sandbox" for "tollgate
// sandbox", "accounts" for "tollgate accounts create".
func subcommandOf(fs *flag.FlagSet) string {
	f := strings.Fields(fs.Name())
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

func envPrefix(sub string) string {
	if p, ok := envScopes[sub]; ok {
		return p
	}
	return "TOLLGATE_"
}

func legacyNote(sub string) string {
	if _, ok := envScopes[sub]; !ok {
		return ""
	}
	return "\nThe older TOLLGATE_<NAME> is still read, except TOLLGATE_ADDR and TOLLGATE_API_KEY\n(they mean serve's address and other tools' keys)."
}

// envName is the environment variable of flag name for sub.
func envName(prefix, name string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parseFlags parses args into fs: the configuration file's values first,
// then the environment's (--mch-id reads TOLLGATE_SANDBOX_MCH_ID for
// sandbox, --data TOLLGATE_DATA for serve), then the command line's. It
// declares --config when fs has not.
func parseFlags(fs *flag.FlagSet, args []string) error {
	sub := subcommandOf(fs)
	prefix := envPrefix(sub)
	if fs.Lookup("config") == nil {
		fs.String("config", "", "JSON file of settings keyed by flag name; env and flags override it")
	}
	if path := configPath(args, prefix+"CONFIG"); path != "" {
		if err := loadConfigFile(fs, path, prefix == "TOLLGATE_"); err != nil {
			return err
		}
	}
	if err := applyEnv(fs, prefix, prefix != "TOLLGATE_"); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}

// applyEnv sets each flag from prefix<NAME>, or (legacy) from the older
// TOLLGATE_<NAME> unless that name is retired.
func applyEnv(fs *flag.FlagSet, prefix string, legacy bool) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil || f.Name == "config" {
			return
		}
		key := envName(prefix, f.Name)
		v, ok := os.LookupEnv(key)
		if !ok && legacy && !retiredEnv[f.Name] {
			key = envName("TOLLGATE_", f.Name)
			v, ok = os.LookupEnv(key)
		}
		if !ok {
			return
		}
		if err := f.Value.Set(v); err != nil {
			envErr = fmt.Errorf("%s=%q: %w", key, v, err)
		}
	})
	return envErr
}

// configPath finds --config in args, else the variable env, before the
// flags are parsed (the file's values are the flags' defaults).
func configPath(args []string, env string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return os.Getenv(env)
}

// loadConfigFile sets flags from a JSON object keyed by flag name. Keys
// starting with "_" are comments. With shared (the deployment's file), a
// key of another deployment subcommand is skipped; any other unknown key is
// an error, so a misspelt setting is not silently ignored.
func loadConfigFile(fs *flag.FlagSet, path string, shared bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("config %s: not a JSON object: %w", path, err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var others map[string]bool
	for _, k := range keys {
		if strings.HasPrefix(k, "_") {
			continue
		}
		if k == "config" {
			return fmt.Errorf("config %s: unknown setting %q", path, k)
		}
		if fs.Lookup(k) == nil {
			if shared && others == nil {
				others = deploymentSettings()
			}
			if others[k] {
				continue
			}
			return fmt.Errorf("config %s: unknown setting %q", path, k)
		}
		var v string
		switch x := raw[k].(type) {
		case string:
			v = x
		case float64, bool:
			v = fmt.Sprint(x)
		default:
			return fmt.Errorf("config %s: %q must be a string, number or boolean", path, k)
		}
		if err := fs.Set(k, v); err != nil {
			return fmt.Errorf("config %s: %q: %w", path, k, err)
		}
	}
	return nil
}

// deploymentSettings is every flag name of the deployment's subcommands.
func deploymentSettings() map[string]bool {
	names := map[string]bool{}
	for _, mk := range deploymentFlagSets {
		fs := mk()
		fs.SetOutput(io.Discard)
		fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	}
	return names
}
