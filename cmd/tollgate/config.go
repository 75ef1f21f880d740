package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// newFlagSet returns a FlagSet for a subcommand that reports errors instead
// of exiting, so Run can be tested.
func newFlagSet(name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("tollgate "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: tollgate %s [flags]\n\n%s\n\nFlags (each also read from TOLLGATE_<NAME>):\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs after applying TOLLGATE_* environment
// variables as defaults: --mch-id reads TOLLGATE_MCH_ID. Flags given on the
// command line win over the environment.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		key := "TOLLGATE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(key); ok && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", key, v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}
